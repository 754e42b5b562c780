import EchoProtocol

/// What `loadgen ab` measured: every run of every round, and per figure the median of per-round ratios
/// of each contender to the first (the baseline). `--json` prints it.
struct ABResult: Codable, Sendable, Equatable {
    var schemaVersion = 1
    var mode = "ab"
    var contenders: [Contender]
    var settings: Settings
    var rounds: [Round]
    /// Each later contender against the first, one entry per figure.
    var comparisons: [RatioSummary]
    /// False when a run failed or the comparison was interrupted; `failures` says which.
    var complete: Bool
    var failures: [String]
    var provenance: Provenance?

    struct Contender: Codable, Sendable, Equatable {
        var name: String
        /// The command loadgen started it with, or the address it was reached at.
        var origin: String
    }

    struct Settings: Codable, Sendable, Equatable {
        var rounds: Int
        var connections: Int
        /// Idle connections held open beside the loading ones during each run.
        var idleConnections: Int
        var messageSize: Int
        var depth: Int?
        var rate: Double?
        var durationSeconds: Double
        var warmupSeconds: Double
        var threads: Int
        var spin: Bool
        var pinning: String
    }

    struct Round: Codable, Sendable, Equatable {
        var round: Int
        var order: [String]
        var runs: [Run]
    }

    /// One run's figures (the ones compared, and what tells a failed or client-bound run).
    struct Run: Codable, Sendable, Equatable {
        var contender: String
        var messagesPerSecond: Double
        var p99Microseconds: Double
        var serverCPUMicrosecondsPerMessage: Double?
        var serverContextSwitchesPerMessage: Double?
        var clientCPUMicrosecondsPerMessage: Double
        var clientCPUPercent: Double
        var sendLatenessP99Microseconds: Double?
        var errors: Int
        /// Why the run has no (or partial) figures; nil when it succeeded.
        var failure: String?

        init(contender: String, result: LoadResult) {
            self.contender = contender
            messagesPerSecond = result.messagesPerSecond
            p99Microseconds = result.latencyMicroseconds.p99
            serverCPUMicrosecondsPerMessage = result.server?.cpuMicrosecondsPerMessage
            serverContextSwitchesPerMessage = result.server?.contextSwitchesPerMessage
            clientCPUMicrosecondsPerMessage = result.client.cpuMicrosecondsPerMessage
            clientCPUPercent = result.client.cpuPercent
            sendLatenessP99Microseconds = result.sendLatenessMicroseconds?.p99
            errors = result.errors.total
            failure = result.succeeded ? nil : (result.stopReason ?? result.errors.firstError ?? "errors")
        }

        init(contender: String, failure: String) {
            self.contender = contender
            messagesPerSecond = 0
            p99Microseconds = 0
            clientCPUMicrosecondsPerMessage = 0
            clientCPUPercent = 0
            errors = 0
            self.failure = failure
        }
    }

    /// The figures compared, and how each is read from a run.
    static let figures: [(name: String, value: @Sendable (Run) -> Double?)] = [
        ("rate", { $0.messagesPerSecond }),
        ("server CPU/msg", { $0.serverCPUMicrosecondsPerMessage }),
        ("p99", { $0.p99Microseconds }),
        ("server switches/msg", { $0.serverContextSwitchesPerMessage }),
        ("client CPU/msg", { $0.clientCPUMicrosecondsPerMessage }),
    ]

    /// Per later contender and figure: the ratios of the rounds where both runs succeeded.
    static func compare(_ rounds: [Round], contenders: [String]) -> [RatioSummary] {
        guard let baseline = contenders.first else { return [] }
        var summaries: [RatioSummary] = []
        for other in contenders.dropFirst() {
            for figure in figures {
                let ratios: [Double] = rounds.compactMap { round in
                    guard let a = round.runs.first(where: { $0.contender == baseline }), a.failure == nil,
                        let b = round.runs.first(where: { $0.contender == other }), b.failure == nil,
                        let valueA = figure.value(a), let valueB = figure.value(b), valueA > 0
                    else { return nil }
                    return valueB / valueA
                }
                if let summary = RatioSummary(figure: figure.name, baseline: baseline, other: other, ratios: ratios) {
                    summaries.append(summary)
                }
            }
        }
        return summaries
    }

    // MARK: The table

    var table: String {
        let s = settings
        let shape = s.rate.map { "open loop at \(TextFormat.grouped(Int($0))) msgs/s" } ?? "depth \(s.depth ?? 1)"
        var lines = [
            "loadgen ab: \(contenders.map(\.name).joined(separator: " vs ")), \(s.rounds) round\(s.rounds == 1 ? "" : "s") in alternating order; \(TextFormat.grouped(s.connections)) connections\(s.idleConnections > 0 ? " (+\(TextFormat.grouped(s.idleConnections)) idle)" : "") × \(ByteCount.describe(s.messageSize)), \(shape), \(TextFormat.fixed(s.durationSeconds, 1)) s after \(TextFormat.fixed(s.warmupSeconds, 1)) s warm-up\(s.spin ? ", --spin" : ""); \(s.pinning)",
            "round  contender           msgs/s    p99 µs  srv µs/msg  srv cs/msg  cli µs/msg  cli CPU%",
        ]
        for round in rounds {
            for run in round.runs {
                var cells = [pad("\(round.round)", 5), "  " + run.contender.padding(toLength: 16, withPad: " ", startingAt: 0)]
                if let failure = run.failure, run.messagesPerSecond == 0 {
                    cells.append("  failed: \(failure)")
                } else {
                    cells += [
                        pad(TextFormat.grouped(Int(run.messagesPerSecond)), 9), pad(TextFormat.fixed(run.p99Microseconds, 0), 9),
                        pad(run.serverCPUMicrosecondsPerMessage.map { TextFormat.fixed($0, 2) } ?? "-", 11),
                        pad(run.serverContextSwitchesPerMessage.map { TextFormat.fixed($0, 3) } ?? "-", 11),
                        pad(TextFormat.fixed(run.clientCPUMicrosecondsPerMessage, 2), 11), pad(TextFormat.fixed(run.clientCPUPercent, 0), 9),
                    ]
                    if let failure = run.failure { cells.append("  (\(failure))") }
                }
                lines.append(cells.joined(separator: " "))
            }
        }
        lines.append("median of per-round ratios (range):")
        lines += comparisons.map { "  " + $0.line }
        if comparisons.isEmpty { lines.append("  none: no round has two successful runs to compare") }
        lines += failures.map { "failed: \($0)" }
        return lines.joined(separator: "\n")
    }

    private func pad(_ text: String, _ width: Int) -> String {
        String(repeating: " ", count: max(0, width - text.count)) + text
    }
}
