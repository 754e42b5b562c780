import ArgumentParser
import EchoProtocol
import NetPoller  // for PosixThread, the package's joinable thread

/// The evented echo server: nonblocking sockets and libev watchers, so an idle connection costs a
/// watcher and a pointer, never a thread or a buffer.
///
/// The shape, top to bottom: prepare the process and the stats endpoint (`ServerRuntime`), open one
/// listening socket per loop, build the loops, arrange for SIGINT/SIGTERM to stop them, announce,
/// run each loop on its own thread until it stops, print the final stats.
@main
struct EchoLibev: ParsableCommand {
    static func main() { CommandLineMain.run(Self.self) }

    static let maxLoops = 256

    static let configuration = CommandConfiguration(
        commandName: "echo-libev",
        abstract: "A TCP echo server (RFC 862) on libev event loops: one ev_io watcher per connection.",
        usage: ServerOptions.usage("echo-libev"),
        discussion: """
            Each of the --loops event loops runs on its own thread with its own listening socket; the \
            sockets share the port through SO_REUSEPORT, so the kernel spreads new connections among \
            the loops, and a connection stays on the loop that accepted it. When listening, prints one \
            line: listening HOST:PORT stats=HOST:PORT pid=PID variant=libev. SIGINT or SIGTERM stops \
            every loop, closes its connections and prints a final-stats line.
            """,
        version: BuildVersion.text)

    @OptionGroup var server: ServerOptions

    @OptionGroup var offloading: OffloadOption

    @Option(
        parsing: .unconditional, help: ArgumentHelp("Event loops, each on its own thread with its own listening socket, SO_REUSEPORT (default: 1).", valueName: "n"),
        transform: OptionValue.count("--loops", in: 1...EchoLibev.maxLoops))
    var loops: Int = 1

    func validate() throws {
        try offloading.validate(with: server)
        guard (1...Self.maxLoops).contains(loops) else {
            throw ValidationError("--loops must be 1...\(Self.maxLoops), got \(loops)")
        }
    }

    func run() throws {
        let runtime = ServerRuntime.start(variant: "libev", options: server)
        let listeners = runtime.orExit {
            try Listener.open(
                host: server.host, port: server.port, backlog: server.backlog, count: loops, nonBlocking: true)
        }
        let offload = offloading.offload.map { BlockingPool(threads: $0) }
        let eventLoops = runtime.orExit {
            try listeners.enumerated().map { index, listener in
                try EventLoop(index: index, listener: listener, runtime: runtime, offload: offload)
            }
        }
        // The signal thread only wakes the loops; each loop closes its own connections on its own thread.
        runtime.onStop { eventLoops.forEach { $0.requestStop() } }
        runtime.announce(listening: listeners[0])

        let threads = runtime.orExit {
            try eventLoops.map { eventLoop in try PosixThread(name: "libev-\(eventLoop.index)") { eventLoop.run() } }
        }
        threads.forEach { $0.join() }
        runtime.finish()
    }
}
