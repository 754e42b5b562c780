import ArgumentParser
import EchoProtocol
import NIOCore
import NIOPosix
import NetPoller

/// `echo-tasks`: an RFC 862 echo server with one Swift task per connection.
///
/// The connection code reads like the blocking thread version; the task, not a thread, is parked
/// while it waits. The start-up order matters, so `run()` spells it out for each `--io`.
///
/// A plain `ParsableCommand`, not an `AsyncParsableCommand`, on purpose: an async `main` hands the
/// main thread to libdispatch, which leaves it in `sigsuspend` with every signal unblocked, so SIGTERM
/// would kill the process instead of reaching `Lifecycle`'s `sigwait`; and the main thread has a
/// better use: with `--io poller` it is loop 0.
@main
struct EchoTasks: ParsableCommand {
    static func main() { CommandLineMain.run(Self.self) }

    static let configuration = CommandConfiguration(
        commandName: "echo-tasks",
        abstract: "Echo server: one structured-concurrency task per connection.",
        usage: ServerOptions.usage("echo-tasks"),
        discussion: """
            Prints `listening HOST:PORT stats=HOST:PORT pid=PID variant=tasks` once it listens, \
            serves a JSON snapshot on the stats port, and stops on SIGINT/SIGTERM.
            With --io poller (the default) the tasks run on --loops netpoller loops, each an epoll \
            loop that is also the tasks' executor: a task that finds its socket empty (EAGAIN) parks, \
            and the loop resumes it when epoll says the socket is ready, as Go's netpoller does for \
            goroutines. Each loop has its own SO_REUSEPORT listener and accept task.
            With --io nio the same tasks use SwiftNIO's NIOAsyncChannel; --executor eventloop (the \
            default) runs them on NIO's event loops, --executor global on Swift's cooperative pool, \
            where every message hops between the two.
            """,
        version: BuildVersion.text)

    @OptionGroup var server: ServerOptions

    @OptionGroup var offloading: OffloadOption

    @Option(help: "How the tasks wait for the network: 'poller' (our netpoller) or 'nio' (SwiftNIO's NIOAsyncChannel).")
    var io: IOMode = .poller

    @Option(
        parsing: .unconditional, help: ArgumentHelp("Netpoller loops (threads), --io poller only, 1...1024 (default: the CPUs this process may run on, taskset).", valueName: "n"),
        transform: OptionValue.count("--loops", in: 1...1024))
    var loops: Int?

    @Option(help: "Who runs the tasks, --io nio only: 'eventloop' (NIO's event loops) or 'global' (Swift's cooperative pool) (default: eventloop).")
    var executor: ExecutorMode?

    @Option(
        parsing: .unconditional, help: ArgumentHelp("NIO event loops (threads), --io nio only, 1...1024 (default: the number of cores).", valueName: "n"),
        transform: OptionValue.count("--threads", in: 1...1024))
    var threads: Int?

    @Option(help: "How --block's call is made, --io poller only: 'handoff' (the default: through the netpoller's bracket; a call longer than --handoff-after hands the loop to a spare thread, as Go's sysmon does) or 'inline' (on the loop's thread: its other connections wait).")
    var blockMode: BlockMode?

    @Option(
        parsing: .unconditional,
        help: ArgumentHelp("How long a --block call may hold its loop before the loop is handed to a spare thread (20us when the loop's previous call lasted longer, as Go's sysmon's first look), --io poller only, 1us...10s; about what a hand-off costs here (default: 200us).", valueName: "duration"),
        transform: { text in
            let value = try OptionValue.positiveDuration("--handoff-after")(text)
            guard value >= .microseconds(1), value <= .seconds(10) else {
                throw ValidationError("--handoff-after must be 1us...10s, got \(text)")
            }
            return value
        })
    var handoffAfter: Duration?

    /// Go's reads: after every short read, read again to see EAGAIN before parking. By default a read
    /// shorter than the buffer counts as "drained" (Tokio's rule), one syscall less per message.
    @Flag(help: "After a short read, read again until EAGAIN before parking (Go's rule), --io poller only; by default a short read counts as drained (Tokio's rule).")
    var readUntilEagain = false

    func validate() throws {
        try offloading.validate(with: server)
        switch io {
        case .poller:
            if executor != nil { throw ValidationError("--executor applies to --io nio only") }
            if blockMode != nil && server.block == nil { throw ValidationError("--block-mode needs --block") }
            if blockMode == .handoff && offloading.offload != nil {
                throw ValidationError("--block-mode handoff and --offload are two answers to one call; pick one")
            }
            if threads != nil { throw ValidationError("--threads applies to --io nio only (use --loops)") }
            if let loops, !(1...1024).contains(loops) {
                throw ValidationError("--loops must be 1...1024, got \(loops)")
            }
        case .nio:
            if loops != nil { throw ValidationError("--loops applies to --io poller only (use --threads)") }
            if readUntilEagain { throw ValidationError("--read-until-eagain applies to --io poller only") }
            if blockMode != nil { throw ValidationError("--block-mode applies to --io poller only") }
            if handoffAfter != nil { throw ValidationError("--handoff-after applies to --io poller only") }
            if server.work != nil || server.block != nil {
                throw ValidationError("--work and --block apply to --io poller only")
            }
            if let threads, !(1...1024).contains(threads) {
                throw ValidationError("--threads must be 1...1024, got \(threads)")
            }
        }
    }

    func run() throws {
        switch io {
        case .poller: runOnNetpoller()
        case .nio: try runOnNIO()
        }
    }

    private func runOnNetpoller() {
        // 1. Signals blocked and the stats thread started on the main thread, before any other
        //    thread exists, so every later thread inherits the blocked SIGINT/SIGTERM.
        let runtime = ServerRuntime.start(variant: "tasks", options: server)
        // 2. The listeners and the loops, before any task: a bind error is one line and exit 1.
        let count = loops ?? CPUList.allowed().count  // as Go sizes GOMAXPROCS: `taskset -c 0` means one loop
        let listeners = runtime.orExit {
            try Listener.open(
                host: server.host, port: server.port, backlog: server.backlog, count: count, nonBlocking: true)
        }
        let group = runtime.orExit {
            try PollLoopGroup(
                count: count, scratchBytes: server.bufferSize, shortReadDrains: !readUntilEagain,
                handOffAfterNanoseconds: handoffAfter.map(DurationText.nanoseconds) ?? LoopMonitor.defaultHandOffAfterNanoseconds,
                warn: { Lifecycle.warn("echo-tasks: \($0)") })
        }
        let tallies = group.loops.map { _ in LocalTally.allocate() }
        for (loop, tally) in zip(group.loops, tallies) {
            let counters = runtime.counters
            loop.iterationEnded = { tally.publish(to: counters) }
        }
        // 3. The one root task, on loop 0: the server and, below it, every connection. When it
        //    returns, every connection is closed, and the loops stop.
        let echoServer = PollerEchoServer(
            runtime: runtime, group: group, listeners: listeners, tallies: tallies,
            offload: offloading.offload.map { BlockingPool(threads: $0) },
            blockMode: blockMode ?? (offloading.offload == nil ? .handoff : .inline))
        let root = Task(executorPreference: group.loops[0]) {
            await echoServer.serve()
            group.stop()
        }
        // 4. SIGINT/SIGTERM cancel it, from the signal thread; cancellation reaches each parked task
        //    through the tree, and its loop resumes it.
        runtime.onStop { root.cancel() }
        let otherLoops = runtime.orExit { try group.startOtherLoops() }
        runtime.announce(listening: listeners[0])
        // 5. The main thread becomes loop 0 until the loops stop.
        group.run(joining: otherLoops)
        runtime.finish()
    }

    private func runOnNIO() throws {
        let runtime = ServerRuntime.start(variant: "tasks", options: server)
        // NIO's group sized and, for `eventloop`, made the global executor: before the group's
        // first use and before the first task.
        let executor = self.executor ?? .eventloop
        executor.install(threads: threads ?? System.coreCount)
        // The signal thread cannot cancel a task itself: on SIGINT/SIGTERM it finishes this stream,
        // and the server's task group, which waits on it, cancels the server task.
        let (stopRequested, requestStop) = AsyncStream<Never>.makeStream()
        runtime.onStop { requestStop.finish() }
        // Swift concurrency starts here, with the one root task; the main thread only waits for it.
        let group = MultiThreadedEventLoopGroup.singleton
        try group.any().makeFutureWithTask {
            await NIOEchoServer(runtime: runtime, group: group, executor: executor).runUntilStopped(stopRequested)
        }.wait()
        runtime.finish()
    }
}
