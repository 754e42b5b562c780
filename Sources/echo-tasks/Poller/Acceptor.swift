import EchoProtocol
import NetPoller

#if canImport(Glibc)
import Glibc
#endif

/// One loop's accept task: takes connections from the loop's listener and starts a child task for
/// each, on the same loop, in a discarding group (a finished connection's task is freed at once).
///
/// Out of descriptors, accept(2) fails with EMFILE and leaves the connection queued; the listener
/// stays readable, and a naive loop would spin. As echo-libev does (libev's manual, "The special
/// problem of accept()ing when you can't"): give up a spare descriptor, accept and close what is
/// queued (the client sees an orderly close, not a hang), take the spare back; if another thread took
/// the slot meanwhile, or for any other failure, sleep on a timer before trying again. Connections
/// already open are served throughout.
struct Acceptor: Sendable {
    let loop: PollLoop
    let listener: Int32
    let tally: LocalTally
    let counters: ServerCounters
    let maxConnections: Int
    let cost: MessageCost
    let offload: BlockingPool?
    let blockMode: BlockMode

    /// Connections accepted in a row before other tasks on the loop get a turn.
    static let batch = 128
    /// How long accepting rests after a failure for want of resources.
    static let retryDelayNanoseconds = 100_000_000

    func run() async throws {
        let listening = try loop.register(listener)
        defer { listening.close() }
        let backoff = try PollTimer(on: loop)
        defer { backoff.close() }
        var spare = SpareDescriptor()
        defer { spare.close() }
        var warnedOutOfDescriptors = false
        try await withThrowingDiscardingTaskGroup { batches in
            var batch: ConnectionBatch? = nil
            var acceptedInARow = 0
            while true {
                // A flood of connects never parks the accept task, so look for cancellation here.
                try Task.checkCancellation()
                let fd = Listener.accept(listening.fd, nonBlocking: true)
                if fd < 0 {
                    acceptedInARow = 0
                    let code = errno
                    switch AcceptPolicy.failure(code) {
                    case .queueEmpty:
                        try await listening.waitAfterEAGAIN(.read)
                    case .outOfDescriptors:
                        if !warnedOutOfDescriptors {
                            Lifecycle.warn("echo-tasks: out of file descriptors (\(errnoDescription(code))); "
                                + "refusing new connections until some close (ulimit -n raises the limit)")
                            warnedOutOfDescriptors = true
                        }
                        // Linux takes the descriptor before it looks at the queue: EMFILE does not
                        // mean a connection waits. Refusing ends at EAGAIN (drained: wait for the
                        // next one as usual) or without a slot (rest).
                        switch spare.refuseQueued(on: listening.fd, batch: Self.batch, counters: counters) {
                        case .drained:
                            try await listening.waitAfterEAGAIN(.read)
                        case .more:
                            await loop.yieldTurn()
                        case .noSlot:
                            try await backoff.sleep(nanoseconds: Self.retryDelayNanoseconds)
                        }
                    case .failedInQueue:
                        continue
                    case .other:
                        Lifecycle.warn("echo-tasks: accept failed: \(errnoDescription(code)); retrying in 0.1 s")
                        try await backoff.sleep(nanoseconds: Self.retryDelayNanoseconds)
                    }
                    continue
                }
                warnedOutOfDescriptors = false
                spare.reopenIfLost()
                if let connection = admit(fd) {
                    if batch == nil || batch!.isFull {
                        batch?.close()
                        batch = ConnectionBatch.start(in: &batches, acceptor: self)
                    }
                    if !batch!.add(connection) {
                        // Accepted while cancellation spread: no task will serve it, so it is
                        // closed and counted here rather than lost (the server is stopping).
                        connection.close()
                        counters.closed()
                    }
                }
                acceptedInARow += 1
                if acceptedInARow == Self.batch {
                    acceptedInARow = 0
                    await loop.yieldTurn()
                }
            }
        }
    }

    /// One connection's task, with `--work`/`--block` only when asked (its own echo function, so the
    /// plain one's idle frame stays as small as it is).
    func addConnectionTask(_ connection: PollConnection, to group: inout DiscardingTaskGroup) {
        let (tally, counters, cost, offload, blockMode) = (tally, counters, cost, offload, blockMode)
        if cost.isNone {
            group.addTask(executorPreference: loop) {
                await PollerEchoConnection.echo(connection, tally: tally, counters: counters)
            }
        } else {
            group.addTask(executorPreference: loop) {
                await PollerEchoConnection.echo(
                    connection, tally: tally, counters: counters, cost: cost, offload: offload, blockMode: blockMode)
            }
        }
    }

    /// Counts and registers an accepted socket; nil, having closed it, beyond `--max-connections`
    /// or when it cannot be registered (counted as refused either way, as the other servers do).
    private func admit(_ fd: Int32) -> PollConnection? {
        guard counters.admit(limit: maxConnections) else {
            close(fd)
            return nil
        }
        do {
            return PollConnection(try loop.register(fd))
        } catch {
            close(fd)
            counters.refuseAdmitted()
            return nil
        }
    }
}
