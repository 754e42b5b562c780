import ArgumentParser
import EchoProtocol
import NIOCore
import NIOPosix

/// `echo-tasks`: an RFC 862 echo server with one Swift task per connection.
///
/// The connection code reads like the blocking thread version; SwiftNIO parks the task instead of a
/// thread while it waits. The start-up order matters, so `run()` spells it out.
///
/// A plain `ParsableCommand`, not an `AsyncParsableCommand`, on purpose: an async `main` hands the
/// main thread to libdispatch, which leaves it in `sigsuspend` with every signal unblocked, so SIGTERM
/// would kill the process instead of reaching `Lifecycle`'s `sigwait`; and ArgumentParser's async
/// parsing would run jobs on Swift's global pool before NIO's executor could be installed.
@main
struct EchoTasks: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "echo-tasks",
        abstract: "Echo server: one structured-concurrency task per connection over SwiftNIO.",
        discussion: """
            Prints `listening HOST:PORT stats=HOST:PORT pid=PID variant=tasks` once it listens, \
            serves a JSON snapshot on the stats port, and stops on SIGINT/SIGTERM.
            With --executor eventloop (the default) NIO's event loops also run the tasks, so a \
            read wakes its task on the same thread; with --executor global the tasks run on Swift's \
            cooperative pool and every message hops between the two.
            """)

    @OptionGroup var server: ServerOptions

    @Option(help: "Who runs the tasks: 'eventloop' (NIO's event loops) or 'global' (Swift's cooperative pool).")
    var executor: ExecutorMode = .eventloop

    @Option(help: "Number of NIO event loops (threads). Default: the number of cores.")
    var threads: Int = System.coreCount

    func validate() throws {
        guard (1...1024).contains(threads) else {
            throw ValidationError("--threads must be 1...1024, got \(threads)")
        }
    }

    func run() throws {
        // 1. Signals blocked and the stats thread started on the main thread, before any other
        //    thread exists, so every later thread inherits the blocked SIGINT/SIGTERM.
        let runtime = ServerRuntime.start(variant: "tasks", options: server)
        // 2. NIO's group sized and, for `eventloop`, made the global executor: before the group's
        //    first use and before the first task.
        executor.install(threads: threads)
        // 3. The signal thread cannot cancel a task itself: on SIGINT/SIGTERM it finishes this
        //    stream, and the server's task group, which waits on it, cancels the server task.
        let (stopRequested, requestStop) = AsyncStream<Never>.makeStream()
        runtime.onStop { requestStop.finish() }
        // 4. Swift concurrency starts here, with the one root task: the server and, below it, every
        //    connection. The main thread only waits for it.
        let group = MultiThreadedEventLoopGroup.singleton
        let executor = self.executor
        try group.any().makeFutureWithTask {
            await EchoServer(runtime: runtime, group: group, executor: executor).runUntilStopped(stopRequested)
        }.wait()
        runtime.finish()
    }
}
