#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization

/// What every echo server does around its echo loop, in the order docs/ARCHITECTURE.md gives:
/// prepare the process, serve stats, announce readiness, stop on a signal, print final stats.
///
/// ```
/// let runtime = ServerRuntime.start(variant: "libev", options: options)   // exits on failure
/// let listeners = runtime.orExit { try Listener.open(...) }
/// runtime.announce(listening: listeners[0])
/// runtime.onStop { wake the loops }
/// ... serve until stopped ...
/// runtime.finish()
/// ```
public final class ServerRuntime: Sendable {
    public let variant: String
    public let options: ServerOptions
    public let counters: ServerCounters
    public let startedAt: ContinuousClock.Instant
    public let statsAddress: SocketAddress
    private let stop = Mutex(StopState.waiting)

    /// The signal thread starts with the runtime, before the readiness line, so the server's thread
    /// count is steady from then on; a signal that comes before `onStop` is kept until it is called.
    private enum StopState {
        case waiting
        case handler(@Sendable () -> Void)
        case signalled
    }

    /// Prepares the process (see `Lifecycle.prepare`) and starts the stats endpoint.
    /// On failure prints one line, `echo-VARIANT: reason`, and exits 1.
    public static func start(variant: String, options: ServerOptions) -> ServerRuntime {
        Lifecycle.prepare()
        let counters = ServerCounters()
        let startedAt = ContinuousClock.now
        // The stats port is opened before the echo port, and its failure says it is the stats port
        // (its address, on loopback unless --stats-host, is in the error), not the echo port.
        let address = orExit(tool: "echo-\(variant)") {
            do {
                return try StatsEndpoint.start(host: options.statsListenHost, port: options.statsPort) {
                    ServerSnapshot.ofSelf(variant: variant, counters: counters, startedAt: startedAt)
                }
            } catch {
                throw StartupError("the stats port (--stats-port \(options.statsPort)): \(error)")
            }
        }
        let runtime = ServerRuntime(
            variant: variant, options: options, statsAddress: address, counters: counters, startedAt: startedAt)
        Lifecycle.onStopSignal { runtime.stopSignalled() }
        return runtime
    }

    private init(variant: String, options: ServerOptions, statsAddress: SocketAddress, counters: ServerCounters,
                 startedAt: ContinuousClock.Instant) {
        self.variant = variant
        self.options = options
        self.statsAddress = statsAddress
        self.counters = counters
        self.startedAt = startedAt
    }

    public var snapshot: ServerSnapshot {
        ServerSnapshot.ofSelf(variant: variant, counters: counters, startedAt: startedAt)
    }

    /// Prints the readiness line for the listening socket `fd`, then any extra lines, and flushes.
    public func announce(listening fd: Int32, extra: [String] = []) {
        let address = Listener.boundAddress(of: fd)
            ?? (try? SocketAddress.resolve(options.host, port: options.port))?.first
            ?? SocketAddress("127.0.0.1", port: options.port)!
        announce(listening: address, extra: extra)
    }

    public func announce(listening address: SocketAddress, extra: [String] = []) {
        let line = ReadinessLine(listening: address, stats: statsAddress, pid: getpid(), variant: variant)
        Lifecycle.printLine(line.description)
        extra.forEach(Lifecycle.printLine)
    }

    /// Calls `handler` once, on the signal thread, when SIGINT or SIGTERM arrives
    /// (at once, on this thread, if one already has).
    public func onStop(_ handler: @escaping @Sendable () -> Void) {
        let alreadySignalled = stop.withLock { state -> Bool in
            if case .signalled = state { return true }
            state = .handler(handler)
            return false
        }
        if alreadySignalled { handler() }
    }

    private func stopSignalled() {
        let handler = stop.withLock { state -> (@Sendable () -> Void)? in
            defer { state = .signalled }
            if case .handler(let handler) = state { return handler }
            return nil
        }
        handler?()
    }

    /// Prints the final stats line: `final-stats {json}`.
    public func finish() {
        Lifecycle.printLine("final-stats " + snapshot.jsonLine())
    }

    /// Runs `body`; on error prints `echo-VARIANT: error` on stderr and exits 1.
    public func orExit<T>(_ body: () throws -> T) -> T {
        Self.orExit(tool: "echo-\(variant)", body)
    }

    public static func orExit<T>(tool: String, _ body: () throws -> T) -> T {
        do {
            return try body()
        } catch {
            Lifecycle.fail(tool: tool, message: "\(error)")
        }
    }
}
