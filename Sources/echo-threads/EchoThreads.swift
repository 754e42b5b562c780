#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import EchoProtocol

/// The thread-per-connection echo server: the accept loop runs on the main thread and hands every
/// connection to a detached pthread that echoes with blocking `read`/`write` until EOF or an error.
/// No pool, no event loop: the kernel's scheduler is the event loop, one context switch per message.
@main
struct EchoThreads: ParsableCommand {
    static func main() { CommandLineMain.run(Self.self) }

    static let configuration = CommandConfiguration(
        commandName: "echo-threads",
        abstract: "TCP echo server (RFC 862): one pthread per connection, blocking read/write.",
        usage: ServerOptions.usage("echo-threads"),
        discussion: """
            Prints `listening HOST:PORT stats=HOST:PORT pid=PID variant=threads`, then \
            `stack-size SIZE`, once it accepts connections. SIGINT or SIGTERM stops it: it stops \
            accepting, shuts down the open connections, prints `final-stats {json}` and exits 0.
            """,
        version: BuildVersion.text)

    @OptionGroup var server: ServerOptions

    @Option(
        parsing: .unconditional, help: ArgumentHelp(
            "Stack size of each connection thread (e.g. 64K, 1M, 8M; K, M are powers of 1024) (default: the pthread default, which follows RLIMIT_STACK, ulimit -s).",
            valueName: "bytes"),
        transform: OptionValue.size("--stack-size"))
    var stackSize: Int?

    func validate() throws {
        guard let stackSize else { return }
        let minimum = ThreadAttributes.minimumStackSize
        guard stackSize >= minimum else {
            throw ValidationError(
                "--stack-size must be at least \(ByteCount.describe(minimum)) (PTHREAD_STACK_MIN), got \(ByteCount.describe(stackSize))")
        }
        // glibc also needs room for thread-local storage and refuses sizes it cannot map;
        // one throwaway thread finds out now rather than on every connection.
        if let reason = ThreadAttributes.trialThreadFailure(stackSize: stackSize) {
            throw ValidationError("--stack-size \(ByteCount.describe(stackSize)) cannot be used: \(reason)")
        }
    }

    func run() throws {
        let runtime = ServerRuntime.start(variant: "threads", options: server)
        let listenFD = runtime.orExit {
            try Listener.open(
                host: server.host, port: server.port, backlog: server.backlog, count: 1, nonBlocking: false)[0]
        }
        let attributes = ThreadAttributes(stackSize: stackSize)
        let connections = OpenConnections()
        let acceptor = Acceptor(
            listenFD: listenFD, attributes: attributes, connections: connections, runtime: runtime)

        runtime.announce(
            listening: listenFD, extra: ["stack-size \(ByteCount.describe(attributes.effectiveStackSize))"])
        runtime.onStop {
            // Wake the accept loop (accept fails with EINVAL once the socket is shut down), then
            // end every connection: its thread's blocked read returns 0 and the thread exits.
            acceptor.stop()
            connections.shutDownAll()
        }

        acceptor.run()

        // Bounded wait for the connection threads to notice the shutdown and close their sockets.
        let deadline = ContinuousClock.now + .seconds(1)
        while runtime.counters.snapshot.active > 0 && ContinuousClock.now < deadline {
            usleep(5_000)
        }
        close(listenFD)
        runtime.finish()
        // Returning exits 0; threads that ignored the shutdown end with the process.
    }
}
