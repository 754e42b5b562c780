import CLibURing
import EchoProtocol
#if canImport(Glibc)
import Glibc
#endif

/// Accepting with one multishot request: armed once, it posts a completion per connection until
/// it fails or the kernel ends it (no IORING_CQE_F_MORE), and is then armed again.
///
/// Out of descriptors (EMFILE, ENFILE) the request ends with that error and the connection stays
/// queued. Arming it again at once would spin, as a level-triggered loop does (libev's manual,
/// "The special problem of accept()ing when you can't"); we do what echo-libev does: give up a
/// spare descriptor, accept the queued connections and close them (the client sees an orderly
/// close, not a hang), take the spare back; then rest for `acceptRetryNanoseconds` (a ring
/// timeout) before arming again, because io_uring's accept reserves a descriptor number before it
/// looks at the queue and so fails at once, queue or not, while the process is at its limit.
/// Established connections are served throughout.
extension RingLoop {
    func armAccept() {
        acceptArmed = true
        curing_multishot_accept(ring, listener, UserData(.accept).raw)
    }

    func accepted(_ completion: curing_cqe) {
        let armed = completion.flags & UInt32(CURING_CQE_F_MORE) != 0
        let result = completion.res
        if !armed { acceptArmed = false }
        if result >= 0 {
            warnedOutOfDescriptors = false
            open(result)
            if !acceptArmed && !acceptPaused { armAccept() }
            return
        }
        let code = -result
        if code == ECANCELED && !running { return }  // the accept was cancelled to stop
        switch AcceptPolicy.failure(code) {
        case .outOfDescriptors:
            refuseQueuedConnections(code)
        case .failedInQueue, .queueEmpty:
            break  // armed again below
        case .other:
            warn("echo-uring: accept failed: \(errnoDescription(code)); retrying in 0.1 s")
            pauseAccepting()
        }
        if !acceptArmed && !acceptPaused { armAccept() }
    }

    /// Takes on an accepted socket, or refuses it beyond --max-connections.
    func open(_ fd: Int32) {
        guard counters.admit(limit: maxConnections) else {
            Glibc.close(fd)  // counted as refused by `admit`
            return
        }
        Listener.setOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
        let connection = connections[fd]
        connection.pointee.generation &+= 1
        connection.pointee.state = .open
        connection.pointee.backlog = nil
        connections.noteInUse(fd)
        resumeReading(fd, connection)
    }

    /// Out of descriptors: refuses what is queued with the help of the spare descriptor, or pauses.
    func refuseQueuedConnections(_ code: Int32) {
        if !warnedOutOfDescriptors {
            warn("echo-uring: out of file descriptors (\(errnoDescription(code))); refusing new connections "
                + "until some close (ulimit -n raises the limit)")
            warnedOutOfDescriptors = true
        }
        // The listener is blocking for io_uring's sake; `refuseQueued` drains it nonblocking.
        _ = spare.refuseQueued(on: listener, batch: Int.max, counters: counters)
        // Unlike accept(2), io_uring's accept takes a descriptor number before it looks at the
        // queue: at the limit it fails at once even with nothing queued. So rest in any case.
        pauseAccepting()
    }

    /// Stops accepting for `acceptRetryNanoseconds`; connections arriving meanwhile wait in the
    /// kernel's queue (up to --backlog).
    func pauseAccepting() {
        guard !acceptPaused else { return }
        acceptPaused = true
        curing_timeout(ring, Self.acceptRetryNanoseconds, UserData(.acceptPause).raw)
    }

    func resumeAccepting() {
        guard running else { return }
        acceptPaused = false
        spare.reopenIfLost()
        if !acceptArmed { armAccept() }
    }
}
