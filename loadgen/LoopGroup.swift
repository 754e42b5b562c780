#if canImport(Glibc)
import Glibc
#endif
import EchoProtocol
import NetPoller
import Synchronization

/// How to open the connections: shared by `run`, `idle` and the sweep.
struct ConnectionSettings: Sendable, Equatable {
    var target: SocketAddress
    var connections: Int
    /// New connections per second over all loops; nil = as fast as possible (at most 256 pending per loop).
    var connectRate: Double? = nil
    var connectTimeout: Duration = .seconds(5)
    /// Connection i binds `sourceAddresses[i % count]` before connecting; empty = the kernel chooses.
    var sourceAddresses: [SocketAddress] = []
    /// Client event loops (threads); connections are dealt to them in turn.
    var threads: Int = 1
    /// Loop i runs on `cpus[i % count]`; empty = wherever the kernel puts it.
    var cpus: [Int] = []
    var serverStats: SocketAddress? = nil
    var serverPID: Int32? = nil

    init(target: SocketAddress, connections: Int) {
        self.target = target
        self.connections = connections
    }
}

/// The client loops of one run and their threads: started together, watched through their status
/// atomics, joined together.
final class LoopGroup {
    let control: RunControl
    let loops: [ClientLoop]
    private var threads: [PosixThread] = []

    init(settings: ConnectionSettings, messageSize: Int, workload: Workload, drainTimeout: Duration,
         liveLatency: Bool, spin: Bool = false, intervalNanoseconds: UInt64 = 0,
         metrics: LiveMetrics? = nil) throws(StartupError) {
        let count = max(1, min(settings.threads, settings.connections))
        let control = RunControl(loops: count)
        guard control.descriptorsValid else {
            throw StartupError("cannot create an eventfd: \(errnoDescription(errno))")
        }
        self.control = control
        loops = (0..<count).map { loop in
            let plan = LoopPlan(
                target: settings.target,
                connectionIDs: Array(stride(from: loop, to: settings.connections, by: count)),
                sourceAddresses: settings.sourceAddresses, messageSize: messageSize, workload: workload,
                connectRate: settings.connectRate.map { $0 / Double(count) },
                connectTimeoutNanoseconds: settings.connectTimeout.nanoseconds,
                drainTimeoutNanoseconds: drainTimeout.nanoseconds,
                cpu: settings.cpus.isEmpty ? nil : settings.cpus[loop % settings.cpus.count],
                liveLatency: liveLatency, spin: spin, intervalNanoseconds: intervalNanoseconds, metrics: metrics)
            return ClientLoop(plan: plan, control: control, wakeFD: control.wakeFDs[loop])
        }
    }

    /// Starts a thread per loop. If one cannot be started, the loops already running are closed
    /// and joined before the error is thrown.
    func start() throws(StartupError) {
        for loop in loops {
            do {
                threads.append(try PosixThread(name: "loadgen-\(threads.count)") { loop.run() })
            } catch {
                _ = closeAndJoin()
                throw StartupError(error.description)
            }
        }
    }

    /// Tells every loop to close its connections and end, and waits for their threads.
    func closeAndJoin() -> [LoopOutcome] {
        control.closeAll()
        return join()
    }

    /// Waits for every loop thread to end by itself.
    func join() -> [LoopOutcome] {
        threads.forEach { $0.join() }
        threads = []
        return loops.map(\.outcome)
    }

    var open: Int { loops.reduce(0) { $0 + $1.status.open.load(ordering: .relaxed) } }
    var resolved: Int { loops.reduce(0) { $0 + $1.status.resolved.load(ordering: .relaxed) } }
    var completed: Int { loops.reduce(0) { $0 + $1.status.completed.load(ordering: .relaxed) } }
    var echoed: Int { loops.reduce(0) { $0 + $1.status.echoed.load(ordering: .relaxed) } }
    var inFlight: Int { loops.reduce(0) { $0 + $1.status.inFlight.load(ordering: .relaxed) } }
    var errors: Int { loops.reduce(0) { $0 + $1.status.errors.load(ordering: .relaxed) } }
    var liveP99: UInt64 { loops.reduce(0) { max($0, $1.status.liveP99.load(ordering: .relaxed)) } }
    var sawNotAnEchoServer: Bool { loops.contains { $0.status.notAnEchoServer.load(ordering: .relaxed) } }
    var allFinished: Bool { loops.allSatisfy { $0.status.finished.load(ordering: .acquiring) } }
    /// Every loop has drained (and holds its connections until told to close), or ended.
    var allDrained: Bool {
        loops.allSatisfy {
            $0.status.drained.load(ordering: .acquiring) || $0.status.finished.load(ordering: .acquiring)
        }
    }
    /// Every loop has resolved all its connection attempts (or ended).
    var connectPhaseDone: Bool {
        loops.allSatisfy {
            $0.status.connectPhaseDone.load(ordering: .acquiring) || $0.status.finished.load(ordering: .acquiring)
        }
    }
}

/// Set from another thread (a signal handler's thread) to end the current run early, with results.
final class StopRequest: Sendable {
    private let requested = Atomic<Bool>(false)
    init() {}
    func request() { requested.store(true, ordering: .relaxed) }
    var isRequested: Bool { requested.load(ordering: .relaxed) }
}

/// What the live line shows, once a second.
struct LiveFigures: Sendable {
    var phase: String
    var elapsedSeconds: Double
    var open: Int
    var requested: Int
    var messagesPerSecond: Double
    var p99Microseconds: Double
    var errors: Int
}
