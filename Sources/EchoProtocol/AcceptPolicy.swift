#if canImport(Glibc)
import Glibc
#endif

/// What every accept loop does when accept(2) fails, in one place: the servers' loops and the
/// stats endpoint once kept four lists of "transient" errnos that disagreed.
public enum AcceptPolicy {
    /// What an accept(2) failure means to the loop that got it.
    public enum Failure: Equatable, Sendable {
        /// EAGAIN: nothing is queued; wait until the listener is readable.
        case queueEmpty
        /// The connection failed in the queue before we took it (accept(2): "treat like EAGAIN by
        /// retrying"), or the call was interrupted: accept again at once.
        case failedInQueue
        /// EMFILE, ENFILE: the connection stays queued; refuse it with the spare descriptor's slot
        /// (`SpareDescriptor.refuseQueued`) or rest, never spin.
        case outOfDescriptors
        /// Anything else (ENOBUFS, ENOMEM, ...): rest a moment, warn, and try again.
        case other
    }

    /// accept(2)'s network errors that belong to one queued connection (the Linux man page's list for
    /// TCP/IP, ECONNABORTED, and EPERM: a firewall rule refused that connection).
    static let failedInQueueCodes: Set<Int32> = [
        ECONNABORTED, EPROTO, EPERM, ENETDOWN, ENOPROTOOPT, EHOSTDOWN, ENONET, EHOSTUNREACH, EOPNOTSUPP,
        ENETUNREACH, EINTR,
    ]

    public static func failure(_ code: Int32) -> Failure {
        switch code {
        case EAGAIN: return .queueEmpty
        case EMFILE, ENFILE: return .outOfDescriptors
        case _ where failedInQueueCodes.contains(code): return .failedInQueue
        default: return .other
        }
    }
}

/// The reserve descriptor (/dev/null) an accept loop holds for running out of descriptors: out of
/// them, accept(2) fails and leaves the connection queued, so the client would hang in the backlog
/// and a level-triggered loop would spin. Closing the spare frees exactly one slot to accept and
/// close what is queued with (libev's manual: "The special problem of accept()ing when you can't").
/// Exact only in a single-threaded program: another thread may take the freed slot first, which
/// `refuseQueued` reports as `noSlot`. A value owned by one loop (copies would share the fd).
public struct SpareDescriptor: Sendable {
    public private(set) var fd: Int32

    public init() { fd = Self.open() }

    /// Gives it up for good (the loop is ending).
    public mutating func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    /// Opens it again if it was lost (an earlier refusal could not take it back).
    public mutating func reopenIfLost() {
        if fd < 0 { fd = Self.open() }
    }

    public enum Refusal: Equatable, Sendable {
        /// accept said EAGAIN: nothing more is queued.
        case drained
        /// A batch was refused and more may wait: let other work run, then refuse again.
        case more
        /// The freed slot went to another thread, or the spare could not be had again: rest.
        case noSlot
    }

    /// Gives up the spare, accepts and closes up to `batch` queued connections (each counted as
    /// refused: the client sees an orderly close, not a hang), and takes the spare back. A blocking
    /// listener is made nonblocking for the while, so an empty queue ends the refusal instead of
    /// waiting for the next client.
    public mutating func refuseQueued(on listener: Int32, batch: Int, counters: ServerCounters) -> Refusal {
        reopenIfLost()  // lost earlier: try again while there may be room
        guard fd >= 0 else { return .noSlot }
        close()
        let flags = fcntl(listener, F_GETFL)
        let wasBlocking = flags >= 0 && flags & O_NONBLOCK == 0
        if wasBlocking { _ = fcntl(listener, F_SETFL, flags | O_NONBLOCK) }
        defer { if wasBlocking { _ = fcntl(listener, F_SETFL, flags) } }
        var outcome = Refusal.more
        for _ in 0..<batch {
            let queued = Listener.accept(listener, nonBlocking: true)
            if queued >= 0 {
                Glibc.close(queued)
                counters.refuse()
                continue
            }
            let failure = AcceptPolicy.failure(errno)
            if failure == .failedInQueue { continue }
            outcome = failure == .queueEmpty ? .drained : .noSlot
            break
        }
        fd = Self.open()
        return fd >= 0 ? outcome : .noSlot
    }

    private static func open() -> Int32 {
        Glibc.open("/dev/null", O_RDONLY | O_CLOEXEC)
    }
}
