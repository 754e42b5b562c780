import EchoProtocol
import Foundation

/// One step of a sweep: one server at one connection count, its idle phase and its loaded phase.
/// A figure is nil when its phase did not run or failed; `status` and `reason` say why.
struct SweepStep: Codable, Sendable, Equatable {
    enum Status: String, Codable, Sendable {
        case ok
        /// The step could not run or its figures cannot be trusted; `reason` says why.
        case failed
        /// Ctrl-C arrived during this step.
        case interrupted
    }

    /// The server's name in the sweep: `threads`, `libev`, `tasks`, or a `--server NAME=…` name.
    /// The parts of a step, in order; a failure names the one it happened in.
    enum Phase: String, Codable, Sendable, Comparable {
        case start, idle, loaded, churn, stop

        static func < (a: Phase, b: Phase) -> Bool { a.order < b.order }
        private var order: Int { [.start, .idle, .loaded, .churn, .stop].firstIndex(of: self)! }
    }

    var server: String
    /// `--rounds`: which round this step belongs to (1-based); nil in a sweep of one round.
    var round: Int? = nil
    /// The `--scenario` this step ran under, if any (then `server` is `SERVER/SCENARIO`).
    var scenario: String? = nil
    var connections: Int
    var status: Status = .ok
    var reason: String?
    /// Where the step failed or was interrupted; nil when it is ok.
    var failedIn: Phase?
    var serverPID: Int32?
    var idle: IdleFigures?
    var loaded: LoadedFigures?
    /// `--curve`: latency against offered load at this step's population, after the loaded phase.
    var curve: CurveResult?
    /// The churn phase (unless `--no-churn`): connection lives against the same server, N still open.
    var churn: ChurnFigures?
    /// The loaded phase's latency over time: an SVG heat map's file name in the output folder.
    var heatmap: String? = nil

    /// The churn figures, if that phase completed.
    var completedChurn: ChurnFigures? {
        guard failedIn.map({ $0 > .churn }) ?? true else { return nil }
        return churn
    }

    /// What a sweep keeps of a `loadgen churn` run: the article's creation cost.
    struct ChurnFigures: Codable, Sendable, Equatable {
        var concurrency: Int
        var lives: Int
        var livesPerSecond: Double
        var p99Microseconds: Double
        var serverCPUMicrosecondsPerConnection: Double?
        var serverContextSwitchesPerConnection: Double?
        var clientCPUMicrosecondsPerConnection: Double
        var clientWasTheBottleneck: Bool
        var errors: Int
    }

    /// The idle figures, if that phase completed (all N open and measured), even when a later phase failed.
    var completedIdle: IdleFigures? {
        guard let idle, idle.open == connections, failedIn.map({ $0 > .idle }) ?? true else { return nil }
        return idle
    }

    /// The loaded figures, if that phase completed, even when stopping the server then failed.
    var completedLoaded: LoadedFigures? {
        guard failedIn.map({ $0 > .loaded }) ?? true else { return nil }
        return loaded
    }

    /// The idle phase: all N connections open, each echoed once, none sending.
    struct IdleFigures: Codable, Sendable, Equatable {
        /// Connections open and echoed when measured (N when the step is ok).
        var open: Int
        /// Server VmRSS before its first connection, KiB.
        var baselineRSSKiB: Int
        /// Server VmRSS with `open` idle connections, KiB.
        var rssKiB: Int
        /// (rssKiB − baselineRSSKiB) / open: what one idle connection costs in resident memory.
        var rssPerConnectionKiB: Double
        var baselineVmSizeKiB: Int
        var vmSizeKiB: Int
        var threads: Int
        var openFDs: Int
        /// Seconds to open and echo all connections.
        var openSeconds: Double
        /// The kernel's memory per idle connection, machine-wide (see `KernelPerConnection`).
        var kernelPerConnection: KernelPerConnection? = nil
        /// The slope of a least-squares line through this server's (N, RSS) over every idle phase of
        /// the sweep: what one more connection costs, without the fixed cost that inflates
        /// `rssPerConnectionKiB` at small N. Nil with fewer than two idle phases.
        var rssSlopeKiBPerConnection: Double? = nil
    }

    /// The loaded phase: N connections open, `active` of them sending closed loop, the rest idle.
    struct LoadedFigures: Codable, Sendable, Equatable {
        var active: Int
        var idle: Int
        var measuredSeconds: Double
        var messages: Int
        var messagesPerSecond: Double
        var p50Microseconds: Double
        var p99Microseconds: Double
        var p999Microseconds: Double?
        var serverCPUPercent: Double?
        var serverContextSwitchesPerMessage: Double?
        /// Server VmRSS at the end of the loaded phase, KiB.
        var serverRSSKiB: Int?
        var clientCPUPercent: Double
        var clientContextSwitchesPerMessage: Double
        /// Jain's index over the active connections' message counts: 1 = perfectly even.
        var fairness: Double
        var errors: Int
        /// The load engine's complete result, for anything the columns above leave out.
        var run: LoadResult?
    }
}

/// What a sweep was asked to do, written into results.json so a reader can reproduce it.
struct SweepSettings: Codable, Sendable, Equatable {
    struct Server: Codable, Sendable, Equatable {
        var name: String
        /// The command line it was started with (`{port}` replaced).
        var command: String
    }

    var servers: [Server]
    var connections: [Int]
    var active: Int
    var messageSize: Int
    var depth: Int
    var durationSeconds: Double
    var warmupSeconds: Double
    var pinning: SweepPinning
    /// The sweep's own command line.
    var commandLine: String
    /// `--scenario`s, in order; nil or empty without.
    var scenarios: [SweepScenario]? = nil
    /// `--rounds`: how often each step runs; nil for once.
    var rounds: Int? = nil
}

/// Everything a sweep produced; written as results.json and results.csv after every step, so an
/// interrupted or crashed sweep still leaves what it measured.
struct SweepResults: Codable, Sendable, Equatable {
    static let currentSchemaVersion = 1

    var schemaVersion = SweepResults.currentSchemaVersion
    var machine: SweepMachine
    var settings: SweepSettings
    var steps: [SweepStep] = []
    /// False until the sweep ran every step; an interrupted sweep says why in `stopReason`.
    var complete = false
    var stopReason: String?
    /// `--rounds`: per server and connection count, every figure's median over the rounds with its
    /// range (`SweepRounds`); nil in a sweep of one round.
    var summary: [SweepSummaryRow]? = nil

    /// Server names in sweep order: the order of the series (and so of the colours) in every chart.
    var serverNames: [String] { settings.servers.map(\.name) }

    /// Sets every idle phase's `rssSlopeKiBPerConnection` from its server's completed idle phases.
    mutating func updateSlopes() {
        for name in Set(steps.map(\.server)) {
            let points = steps.filter { $0.server == name }.compactMap { step in
                step.completedIdle.map { (Double(step.connections), Double($0.rssKiB)) }
            }
            let slope = Self.leastSquaresSlope(points)
            for index in steps.indices where steps[index].server == name && steps[index].idle != nil {
                steps[index].idle!.rssSlopeKiBPerConnection = slope
            }
        }
    }

    /// The slope of the least-squares line through `points`; nil for fewer than two distinct x.
    static func leastSquaresSlope(_ points: [(x: Double, y: Double)]) -> Double? {
        guard points.count >= 2 else { return nil }
        let n = Double(points.count)
        let meanX = points.reduce(0) { $0 + $1.x } / n
        let meanY = points.reduce(0) { $0 + $1.y } / n
        let sxx = points.reduce(0) { $0 + ($1.x - meanX) * ($1.x - meanX) }
        guard sxx > 0 else { return nil }
        return points.reduce(0) { $0 + ($1.x - meanX) * ($1.y - meanY) } / sxx
    }

    func json() throws -> Data { try ResultJSON.data(self) }

    static func decode(_ data: Data) throws -> SweepResults {
        try JSONDecoder().decode(SweepResults.self, from: data)
    }

    static let csvHeader = [
        "server", "connections", "status", "failed_in", "reason", "server_pid",
        "idle_open", "baseline_rss_kib", "idle_rss_kib", "rss_per_connection_kib", "baseline_vmsize_kib",
        "idle_vmsize_kib", "idle_threads", "idle_fds", "open_seconds",
        "active", "measured_seconds", "messages", "msgs_per_second", "p50_us", "p99_us",
        "server_cpu_percent", "server_ctx_switches_per_msg", "loaded_rss_kib", "client_cpu_percent",
        "client_ctx_switches_per_msg", "fairness_jain", "errors",
        "rss_slope_kib_per_connection", "kernel_per_connection_kib_machine_wide", "scenario", "p999_us",
        "churn_lives_per_second", "churn_server_cpu_us_per_connection", "churn_client_cpu_us_per_connection",
        "round",
    ]

    /// One header line, then one line per step; empty fields where a phase has no figure.
    func csv() -> String {
        var lines = [Self.csvHeader.joined(separator: ",")]
        for step in steps {
            let idle = step.idle
            let loaded = step.loaded
            let fields: [String?] = [
                step.server, String(step.connections), step.status.rawValue, step.failedIn?.rawValue, step.reason,
                step.serverPID.map { String($0) },
                idle.map { String($0.open) }, idle.map { String($0.baselineRSSKiB) }, idle.map { String($0.rssKiB) },
                idle.map { TextFormat.trimmed($0.rssPerConnectionKiB) }, idle.map { String($0.baselineVmSizeKiB) },
                idle.map { String($0.vmSizeKiB) }, idle.map { String($0.threads) }, idle.map { String($0.openFDs) },
                idle.map { TextFormat.trimmed($0.openSeconds) },
                loaded.map { String($0.active) }, loaded.map { TextFormat.trimmed($0.measuredSeconds) },
                loaded.map { String($0.messages) }, loaded.map { TextFormat.trimmed($0.messagesPerSecond) },
                loaded.map { TextFormat.trimmed($0.p50Microseconds) }, loaded.map { TextFormat.trimmed($0.p99Microseconds) },
                loaded?.serverCPUPercent.map(TextFormat.trimmed), loaded?.serverContextSwitchesPerMessage.map(TextFormat.trimmed),
                loaded?.serverRSSKiB.map { String($0) }, loaded.map { TextFormat.trimmed($0.clientCPUPercent) },
                loaded.map { TextFormat.trimmed($0.clientContextSwitchesPerMessage) }, loaded.map { TextFormat.trimmed($0.fairness) },
                loaded.map { String($0.errors) },
                idle?.rssSlopeKiBPerConnection.map(TextFormat.trimmed), idle?.kernelPerConnection.map { TextFormat.trimmed($0.totalKiB) },
                step.scenario, loaded?.p999Microseconds.map(TextFormat.trimmed),
                step.churn.map { TextFormat.trimmed($0.livesPerSecond) },
                step.churn?.serverCPUMicrosecondsPerConnection.map(TextFormat.trimmed),
                step.churn.map { TextFormat.trimmed($0.clientCPUMicrosecondsPerConnection) },
                step.round.map { String($0) },
            ]
            lines.append(fields.map { TextFormat.csvField($0 ?? "") }.joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }


}
