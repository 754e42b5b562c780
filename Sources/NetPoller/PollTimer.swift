#if canImport(Glibc)
import Glibc
#endif

/// A timer a task on a netpoller loop can sleep on: a timerfd, registered like any other descriptor,
/// so the sleep parks and is cancelled exactly as a read does. Open it while descriptors are to be
/// had (a server sleeps on it when it has run out of them).
public struct PollTimer: Sendable {
    private let descriptor: PollDescriptor

    /// Opens and registers the timer on `loop`; call on the loop's thread.
    public init(on loop: PollLoop) throws(SocketError) {
        let fd = c_timerfd_create(CLOCK_MONOTONIC, Epoll.closeOnExec | Epoll.nonBlocking)
        guard fd >= 0 else { throw SocketError(code: errno, operation: "timerfd_create") }
        do {
            descriptor = try loop.register(fd)
        } catch {
            Glibc.close(fd)
            throw error
        }
    }

    /// Parks the task for `nanoseconds` (at least 1). Throws `CancellationError` if cancelled meanwhile.
    public func sleep(nanoseconds: Int) async throws {
        let delay = max(nanoseconds, 1)
        var setting = itimerspec()
        setting.it_value = timespec(tv_sec: delay / 1_000_000_000, tv_nsec: delay % 1_000_000_000)
        guard c_timerfd_settime(descriptor.fd, 0, &setting, nil) == 0 else {
            throw SocketError(code: errno, operation: "timerfd_settime")
        }
        try await waitForExpiry()
    }

    /// Reads the timer's expiry count, parking until it fires.
    func waitForExpiry() async throws {
        var expirations: UInt64 = 0
        while true {
            let count = Glibc.read(descriptor.fd, &expirations, 8)
            if count == 8 { return }
            let code = count < 0 ? errno : EIO  // a timerfd reads 8 bytes or fails; anything else is not one
            switch code {
            case EAGAIN:  // not expired yet: wait for the timer's event
                try await descriptor.waitAfterEAGAIN(.read)
            case EINTR: continue
            default: throw SocketError(code: code, operation: "read timerfd")  // parking would never end
            }
        }
    }

    public func close() {
        descriptor.close()
    }

    /// For tests: puts another file (/dev/null, write-only) behind the timer's descriptor number, as
    /// a bug that lost track of it would, so every timerfd call and every read on it fails;
    /// `close()` still closes it once.
    /// (Closing it behind the registration's back instead would free the number for any thread of
    /// the process to take, and this timer's calls, and its close, would then act on that thread's
    /// descriptor.)
    func breakDescriptor() {
        let null = Glibc.open("/dev/null", O_WRONLY | O_CLOEXEC)
        guard null >= 0 else { return }
        _ = dup2(null, descriptor.fd)  // the number is the timer's own: nothing of anyone else is closed
        _ = fcntl(descriptor.fd, F_SETFD, FD_CLOEXEC)
        Glibc.close(null)
    }
}
