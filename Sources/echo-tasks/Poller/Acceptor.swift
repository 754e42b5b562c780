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
        var spare = Self.openSpare()
        defer { if spare >= 0 { close(spare) } }
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
                    switch code {
                    case EAGAIN:
                        listening.readable = false
                        try await listening.waitUntilReadable()
                    case EMFILE, ENFILE:
                        if !warnedOutOfDescriptors {
                            Lifecycle.warn("echo-tasks: out of file descriptors (\(errnoDescription(code))); "
                                + "refusing new connections until some close (ulimit -n raises the limit)")
                            warnedOutOfDescriptors = true
                        }
                        // Linux takes the descriptor before it looks at the queue: EMFILE does not
                        // mean a connection waits. Refusing ends at EAGAIN (drained: wait for the
                        // next one as usual) or without a slot (rest).
                        switch refuseQueued(listening.fd, spare: &spare) {
                        case .drained:
                            listening.readable = false
                            try await listening.waitUntilReadable()
                        case .more:
                            await loop.yieldTurn()
                        case .noSlot:
                            try await backoff.sleep(nanoseconds: Self.retryDelayNanoseconds)
                        }
                    case _ where Self.failedBeforeTaken(code):
                        continue  // that connection failed before we took it (accept(2): "treat like EAGAIN")
                    default:
                        Lifecycle.warn("echo-tasks: accept failed: \(errnoDescription(code)); retrying in 0.1 s")
                        try await backoff.sleep(nanoseconds: Self.retryDelayNanoseconds)
                    }
                    continue
                }
                warnedOutOfDescriptors = false
                if spare < 0 { spare = Self.openSpare() }
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

    enum Refusal { case drained, more, noSlot }

    /// Accepts and closes what is queued, with the spare descriptor's slot: `drained` once accept
    /// says EAGAIN, `more` after a batch; `noSlot` when that slot was lost to another thread or the
    /// spare cannot be had again (then the caller rests).
    private func refuseQueued(_ listener: Int32, spare: inout Int32) -> Refusal {
        if spare < 0 { spare = Self.openSpare() }  // lost earlier: try again while there may be room
        guard spare >= 0 else { return .noSlot }
        close(spare)
        spare = -1
        var outcome = Refusal.more
        for _ in 0..<Self.batch {
            let fd = Listener.accept(listener, nonBlocking: true)
            if fd >= 0 {
                close(fd)
                counters.refuse()
                continue
            }
            if Self.failedBeforeTaken(errno) { continue }
            outcome = errno == EAGAIN ? .drained : .noSlot
            break
        }
        spare = Self.openSpare()
        return spare >= 0 ? outcome : .noSlot
    }

    /// accept(2) errors that belong to a connection that failed in the queue: "treat like EAGAIN" and retry.
    static func failedBeforeTaken(_ code: Int32) -> Bool {
        [ECONNABORTED, EPROTO, ENETDOWN, ENOPROTOOPT, EHOSTDOWN, ENONET, EHOSTUNREACH, EOPNOTSUPP, ENETUNREACH]
            .contains(code)
    }

    /// The reserve descriptor: cheap to hold, and closing it frees exactly one slot.
    static func openSpare() -> Int32 {
        open("/dev/null", O_RDONLY | O_CLOEXEC)
    }
}
