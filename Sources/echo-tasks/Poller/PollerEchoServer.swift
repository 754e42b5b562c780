import EchoProtocol
import NetPoller

/// echo-tasks over the netpoller (`--io poller`): the task tree, top to bottom.
///
/// ```
/// server task (on loop 0)                      withThrowingDiscardingTaskGroup
/// ├── accept task, loop 0                      its own discarding group of batches
/// │   ├── batch task (loop 0)                  a group of up to 256 connections (ConnectionBatch)
/// │   │   ├── connection task (loop 0)         read → write → read … parks only on EAGAIN
/// │   │   └── …
/// │   └── …
/// └── accept task, loop 1 …
/// ```
///
/// Each loop has its own SO_REUSEPORT listener, so the kernel spreads connections among the loops
/// and a connection's task runs on the loop that accepted it, beside its socket's events. Cancelling
/// the server task (SIGTERM) reaches every parked task through the tree; each is resumed once, by
/// its loop, with `CancellationError`, closes its socket and ends.
struct PollerEchoServer: Sendable {
    let runtime: ServerRuntime
    let group: PollLoopGroup
    /// One listening socket per loop, in the loops' order.
    let listeners: [Int32]
    /// One tally per loop, published at the end of each of its iterations.
    let tallies: [LocalTally]
    /// `--offload N`: the threads that run `--block`'s calls, for every loop; nil runs them inline.
    let offload: BlockingPool?
    /// How `--block`'s call is made when it is not offloaded.
    let blockMode: BlockMode

    /// The server task's body: returns when cancelled, with every connection closed.
    func serve() async {
        do {
            try await withThrowingDiscardingTaskGroup { server in
                for (index, loop) in group.loops.enumerated() {
                    let acceptor = Acceptor(
                        loop: loop, listener: listeners[index], tally: tallies[index], counters: runtime.counters,
                        maxConnections: runtime.options.maxConnections, cost: runtime.options.messageCost,
                        offload: offload, blockMode: blockMode)
                    server.addTask(executorPreference: loop) { try await acceptor.run() }
                }
            }
        } catch is CancellationError {
            // Stopping: every accept task and connection has ended.
        } catch {
            Lifecycle.fail(tool: "echo-tasks", message: "accepting connections failed: \(error)")
        }
    }
}
