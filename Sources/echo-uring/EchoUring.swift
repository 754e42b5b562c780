import ArgumentParser
import EchoProtocol
import Foundation
import NetPoller  // for PosixThread, the package's joinable thread
import Synchronization

/// The completion-based echo server: io_uring rings, one per loop. The kernel does the reads and
/// the sends and posts completions; one io_uring_enter submits a batch and collects the next.
///
/// The shape, top to bottom: ask the kernel which ring set-up it allows (or refuse in one line),
/// prepare the process and the stats endpoint (`ServerRuntime`), open one listening socket per
/// loop, start each loop on its own thread (its ring must be created there: SINGLE_ISSUER), wait
/// until every loop is armed, announce, serve until SIGINT/SIGTERM, print the final stats.
@main
struct EchoUring: ParsableCommand {
    static func main() { CommandLineMain.run(Self.self) }

    static let maxLoops = 256

    static let configuration = CommandConfiguration(
        commandName: "echo-uring",
        abstract: "A TCP echo server (RFC 862) on io_uring: multishot accept, multishot recv into a provided-buffer ring.",
        usage: ServerOptions.usage("echo-uring"),
        discussion: """
            Each of the --loops loops runs on its own thread with its own ring and its own listening \
            socket (SO_REUSEPORT). Rings are set up with IORING_SETUP_SINGLE_ISSUER | DEFER_TASKRUN | \
            COOP_TASKRUN; a kernel without one of them runs without it, and one line names what is \
            missing. A connection's messages land in buffers of the loop's buffer ring (an idle \
            connection holds none) and go back out of the same buffer. Where io_uring is refused \
            (ENOSYS, EPERM, kernel.io_uring_disabled), prints one line saying so and exits 1. When \
            listening, prints: listening HOST:PORT stats=HOST:PORT pid=PID variant=uring.
            """,
        version: BuildVersion.text)

    @OptionGroup var server: ServerOptions

    @OptionGroup var offloading: OffloadOption

    @Option(
        parsing: .unconditional, help: ArgumentHelp("Loops, each on its own thread with its own ring and listening socket, SO_REUSEPORT (default: 1).", valueName: "n"),
        transform: OptionValue.count("--loops", in: 1...EchoUring.maxLoops))
    var loops: Int = 1

    @Option(
        parsing: .unconditional, help: ArgumentHelp("Buffers in each loop's provided-buffer ring, a power of two, each min(--buffer-size, 4K) (default: 1024).", valueName: "n"),
        transform: OptionValue.count("--ring-buffers", in: 1...32768))
    var ringBuffers: Int = 1024

    @Option(help: ArgumentHelp("multishot: one recv per connection stays armed; single: a recv per message (to measure what multishot buys).", valueName: "mode"))
    var recv: RecvMode = .multishot

    @Flag(help: "Create rings without SINGLE_ISSUER, DEFER_TASKRUN and COOP_TASKRUN (to measure what they buy).")
    var plainRing = false

    enum RecvMode: String, ExpressibleByArgument, CaseIterable {
        case multishot, single
    }

    func validate() throws {
        try offloading.validate(with: server)
        guard (1...Self.maxLoops).contains(loops) else {
            throw ValidationError("--loops must be 1...\(Self.maxLoops), got \(loops)")
        }
        guard (1...32768).contains(ringBuffers), ringBuffers & (ringBuffers - 1) == 0 else {
            throw ValidationError("--ring-buffers must be a power of two, 1...32768, got \(ringBuffers)")
        }
    }

    func run() throws {
        let wanted = plainRing ? 0 : RingSetup.singleIssuer | RingSetup.deferTaskrun | RingSetup.coopTaskrun
        let setup = ServerRuntime.orExit(tool: "echo-uring") { try RingSetup.negotiate(wanted: wanted) }
        if !setup.missing.isEmpty {
            Lifecycle.warn("echo-uring: this kernel lacks \(setup.missing.joined(separator: ", ")); running without")
        }
        let settings = LoopSettings(
            ringFlags: setup.flags, multishotRecv: recv == .multishot, ringBuffers: ringBuffers,
            ringBufferSize: min(server.bufferSize, 4096))

        let runtime = ServerRuntime.start(variant: "uring", options: server)
        let listeners = runtime.orExit {
            try Listener.open(
                host: server.host, port: server.port, backlog: server.backlog, count: loops, nonBlocking: false)
        }
        let offload = offloading.offload.map { BlockingPool(threads: $0) }
        let started = LoopStarter(count: loops)
        let threads = runtime.orExit {
            try listeners.enumerated().map { index, listener in
                try PosixThread(name: "uring-\(index)") {
                    do throws(StartupError) {
                        let loop = try RingLoop(
                            index: index, listener: listener, settings: settings, runtime: runtime, offload: offload)
                        started.ready(loop)
                        loop.run()
                    } catch {
                        started.failed(error)
                    }
                }
            }
        }
        let ringLoops = runtime.orExit { try started.wait() }
        // The signal thread only wakes the loops; each loop closes its own connections on its own thread.
        runtime.onStop { ringLoops.forEach { $0.requestStop() } }
        runtime.announce(listening: listeners[0], extra: ["ring-setup \(setup.description) recv \(recv.rawValue)"])
        threads.forEach { $0.join() }
        runtime.finish()
    }
}

/// The main thread waits here until every loop has built its ring (on its own thread) or one failed.
final class LoopStarter: Sendable {
    private let count: Int
    private let state = Mutex<(loops: [RingLoop], error: StartupError?)>(([], nil))
    private let done = DispatchSemaphore(value: 0)

    init(count: Int) { self.count = count }

    func ready(_ loop: RingLoop) {
        state.withLock { $0.loops.append(loop) }
        done.signal()
    }

    func failed(_ error: StartupError) {
        state.withLock { $0.error = $0.error ?? error }
        done.signal()
    }

    func wait() throws(StartupError) -> [RingLoop] {
        for _ in 0..<count { done.wait() }
        let (loops, error) = state.withLock { ($0.loops, $0.error) }
        if let error { throw error }
        return loops
    }
}
