#if canImport(Glibc)
import Glibc
#endif

/// What a loop knows of one registered descriptor: Go's `pollDesc` (runtime/netpoll.go), spelled out.
///
/// - One epoll registration for the descriptor's whole life, edge-triggered for input, urgent data
///   and output at once (`EPOLLIN|EPOLLPRI|EPOLLOUT|EPOLLRDHUP|EPOLLET`), so nothing is ever re-armed
///   or modified.
/// - One readiness bit, for input. Edge-triggered epoll reports a *change*, so the bit remembers it:
///   `readable` is true from an input event (or registration) until a syscall says EAGAIN or a short
///   read shows the socket drained, and a read that starts while it is false parks first. It is
///   private: a caller whose syscall said EAGAIN calls `waitAfterEAGAIN(_:)`, which clears it and
///   parks in one step (Go's `netpollblock`), so no caller can clear it and forget to wait. Output
///   needs no bit: a write is always tried first and parks only on its own EAGAIN.
/// - At most one waiting reader and one waiting writer, each an `UnsafeContinuation` of a parked task.
/// - `token`, the generation tag and the fd, which epoll hands back with each event: an event meant
///   for a descriptor that has since been closed, its number reused, no longer matches (Go's `fdseq`).
///
/// Threading: everything here is touched only on the owning loop's thread, which is what makes the
/// plain `var`s safe and the class `@unchecked Sendable`: connection tasks run on their loop (task
/// executor preference), and a waiter is resumed only by that loop, after the event or the
/// cancellation request has reached it. The one call from elsewhere is the cancellation handler,
/// and all it does is post a request to the loop (`PollLoop.requestCancellation`).
public final class PollDescriptor: @unchecked Sendable {
    public let fd: Int32
    public let loop: PollLoop
    let token: UInt64

    /// True from an input event (or registration, so the first read is tried at once) until the
    /// descriptor says EAGAIN, or a short read shows it drained.
    private(set) var readable = true
    /// The peer shut down its side, or the socket failed: final, never cleared. After it, a short
    /// read is no proof of "drained" (the end of stream may be queued behind the bytes just read, and
    /// no event will say so again), so reads go on until they see it.
    public private(set) var peerClosed = false
    /// The peer sent urgent data (`MSG_OOB`): final, never cleared. Linux's `tcp_recvmsg` stops a
    /// read at the urgent mark once it has copied something, so a read comes back short while bytes
    /// are still queued behind the mark, and no event will say so again: after it, as after
    /// `peerClosed`, a short read is no proof of "drained", and reads go on until EAGAIN.
    public private(set) var urgentSeen = false

    /// Whether a read of `count` bytes into a buffer of `capacity` shows the socket drained, so
    /// the next read may wait for an event instead of trying the syscall (Tokio's rule). Only a
    /// short read says so, and only while nothing can stop a read short with bytes left behind:
    /// not after the peer's end of stream (`peerClosed`) or urgent data (`urgentSeen`).
    @inline(__always)
    func shortReadShowsDrained(_ count: Int, capacity: Int) -> Bool {
        count < capacity && loop.shortReadDrains && !peerClosed && !urgentSeen
    }

    /// A short read showed the socket drained: the next read waits for an input event instead of
    /// trying the syscall first.
    @inline(__always)
    func markDrained() {
        readable = false
    }

    private var reader: UnsafeContinuation<Void, any Error>?
    private var writer: UnsafeContinuation<Void, any Error>?
    private(set) var isRegistered = true

    public enum Direction: Sendable { case read, write }

    init(fd: Int32, token: UInt64, loop: PollLoop) {
        self.fd = fd
        self.token = token
        self.loop = loop
    }

    /// The descriptor said EAGAIN in `direction`: forgets the readiness and parks the calling task
    /// until the next event in that direction. Throws `CancellationError` if the task is cancelled
    /// while parked. Call on the loop's thread, in the job whose syscall said EAGAIN: the loop
    /// delivers events only between jobs, so none can have come since the syscall, and none is lost.
    @inline(__always)
    public func waitAfterEAGAIN(_ direction: Direction) async throws {
        if direction == .read { readable = false }
        try await park(direction)
    }

    /// Parks the calling task until an input event comes, unless one came since a short read
    /// marked the socket drained (or it never was). For the start of a read.
    @inline(__always)
    func waitUntilReadable() async throws {
        if !readable { try await park(.read) }
    }

    /// The one suspension point of the netpoller. Nothing can come between the caller's "not
    /// ready" and the continuation being stored: both run in one job on the loop's thread, and the
    /// loop delivers events only between jobs. So no wake-up is lost there.
    ///
    /// Not inlined, and no large locals: while a connection idles, this frame and the two below it
    /// (the cancellation handler's and the continuation's) are what its task holds suspended.
    @inline(never)
    private func park(_ direction: Direction) async throws {
        try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Void, any Error>) in
                switch direction {
                case .read:
                    precondition(reader == nil, "two tasks wait to read fd \(fd)")
                    reader = continuation
                case .write:
                    precondition(writer == nil, "two tasks wait to write fd \(fd)")
                    writer = continuation
                }
            }
        } onCancel: {
            // Any thread, possibly before the continuation is stored (a task already cancelled calls
            // this at once): the loop resumes the waiter later, on its own thread, if one still waits.
            loop.requestCancellation(of: self, direction)
        }
    }

    /// An event from epoll, on the loop's thread: sets the readiness it reports and resumes the
    /// waiters it concerns. An error or hang-up wakes both, so each sees it from its next syscall.
    func deliver(_ flags: UInt32) {
        if flags & (Epoll.readHangUp | Epoll.hangUp | Epoll.error) != 0 { peerClosed = true }
        if flags & Epoll.priority != 0 { urgentSeen = true }
        if flags & (Epoll.input | Epoll.priority | Epoll.readHangUp | Epoll.hangUp | Epoll.error) != 0 {
            readable = true
            resume(.read, with: nil)
        }
        if flags & (Epoll.output | Epoll.hangUp | Epoll.error) != 0 {
            resume(.write, with: nil)
        }
    }

    /// Resumes the waiter in `direction`, if there is one, exactly once: the slot is emptied first.
    func resume(_ direction: Direction, with error: (any Error)?) {
        let waiter: UnsafeContinuation<Void, any Error>?
        switch direction {
        case .read:
            waiter = reader
            reader = nil
        case .write:
            waiter = writer
            writer = nil
        }
        guard let waiter else { return }
        if let error { waiter.resume(throwing: error) } else { waiter.resume() }
    }

    /// Whether a task is parked in `direction` (for tests of the races).
    func isWaiting(_ direction: Direction) -> Bool {
        direction == .read ? reader != nil : writer != nil
    }

    /// Forgets the registration and closes the descriptor (which also removes it from epoll).
    /// A task still parked on it (there should be none: its owner is the one closing) is resumed
    /// with an error rather than left hanging.
    public func close() {
        guard isRegistered else { return }
        isRegistered = false
        loop.forget(self)
        Glibc.close(fd)
        resume(.read, with: SocketError(code: EBADF, operation: "read"))
        resume(.write, with: SocketError(code: EBADF, operation: "write"))
    }
}

/// A socket call failed: `operation` and errno, e.g. "read: Connection reset by peer".
public struct SocketError: Error, CustomStringConvertible, Sendable {
    public let code: Int32
    public let operation: String

    public init(code: Int32, operation: String) {
        self.code = code
        self.operation = operation
    }

    public var description: String { "\(operation): \(String(cString: strerror(code)))" }
}
