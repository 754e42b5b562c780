import CLibev
import EchoProtocol
#if canImport(Glibc)
import Glibc
#endif

/// Accepting connections, and what to do when the process runs out of descriptors.
///
/// The problem, in the words of libev's manual ("The special problem of accept()ing when you
/// can't"): when accept fails with EMFILE or ENFILE, Linux leaves the connection in the queue, so
/// the listener stays readable and a level-triggered loop calls us again at once: 100% CPU doing
/// nothing. The manual offers two remedies and we use both:
///
/// 1. Keep a spare descriptor (`SpareDescriptor`). Out of descriptors, give it up, accept the queued
///    connections, close them at once (the client sees an orderly close, not a hang), take the spare
///    back. This refuses clients gracefully, but it is exact only in a single-threaded program:
///    another thread (the other loops, the stats endpoint) may grab the freed slot first.
/// 2. So when that happens, or for any other resource failure, stop watching the listener for
///    `acceptRetryDelay` and let a timer resume it.
///
/// Either way the loop keeps serving its established connections, and accepts normally again as
/// soon as descriptors free up.
extension EventLoop {
    /// Accepts up to `acceptBatch` queued connections. Runs when the listener is readable.
    func acceptQueuedConnections() {
        for _ in 0..<Self.acceptBatch {
            let fd = Listener.accept(listener, nonBlocking: true)
            guard fd >= 0 else {
                let code = errno
                switch AcceptPolicy.failure(code) {
                case .queueEmpty:
                    return
                case .outOfDescriptors:
                    refuseQueuedConnections(code)
                    return
                case .failedInQueue:
                    continue
                case .other:
                    warn("echo-libev: accept failed: \(errnoDescription(code)); retrying in \(Self.acceptRetryDelay) s")
                    pauseAccepting()
                    return
                }
            }
            warnedOutOfDescriptors = false
            guard counters.admit(limit: maxConnections) else {
                Glibc.close(fd)  // over --max-connections: counted as refused by `admit`
                continue
            }
            guard open(fd) else {
                Glibc.close(fd)
                counters.refuseAdmitted()
                continue
            }
        }
    }

    /// Out of descriptors: refuses what is queued with the help of the spare descriptor, or pauses.
    func refuseQueuedConnections(_ code: Int32) {
        if !warnedOutOfDescriptors {
            warn("echo-libev: out of file descriptors (\(errnoDescription(code))); refusing new connections "
                + "until some close (ulimit -n raises the limit)")
            warnedOutOfDescriptors = true
        }
        // More queued after a batch: the listener stays readable and libev calls again.
        if spare.refuseQueued(on: listener, batch: Self.acceptBatch, counters: counters) == .noSlot {
            pauseAccepting()
        }
    }

    /// Stops watching the listener; `acceptRetryDue` resumes after `acceptRetryDelay`. Connections
    /// arriving meanwhile wait in the kernel's queue (up to --backlog).
    func pauseAccepting() {
        ev_io_stop(loop, acceptWatcher)
        guard clibev_is_active(acceptRetryTimer) == 0 else { return }
        // Set the delay again each time: an expired timer keeps `at` ≈ 0 and would fire at once.
        clibev_timer_set(acceptRetryTimer, Self.acceptRetryDelay, 0)
        ev_timer_start(loop, acceptRetryTimer)
    }

    func resumeAccepting() {
        spare.reopenIfLost()
        ev_io_start(loop, acceptWatcher)
    }
}

/// libev calls this when the listening socket is readable: connections are queued.
func listenerReady(_ loop: OpaquePointer?, _ watcher: UnsafeMutablePointer<ev_io>?, _ revents: Int32) {
    EventLoop.with(loop) { $0.acceptQueuedConnections() }
}

/// libev calls this when a pause in accepting is over.
func acceptRetryDue(_ loop: OpaquePointer?, _ watcher: UnsafeMutablePointer<ev_timer>?, _ revents: Int32) {
    EventLoop.with(loop) { $0.resumeAccepting() }
}
