import EchoProtocol

/// `sweep --rounds N`: each step measured N times, the servers interleaved (A B, B A, …); every figure
/// reported as the median of its rounds with their minimum and maximum, so one unlucky run on a noisy
/// machine is seen as the outlier it is instead of read as a result.
enum SweepRounds {
    /// The figures summarised, with the CSV key each gets (`KEY_median`, `KEY_min`, `KEY_max`).
    static let figures: [(key: String, value: @Sendable (SweepStep) -> Double?)] = [
        ("idle_rss_kib", { $0.completedIdle.map { Double($0.rssKiB) } }),
        ("rss_per_connection_kib", { $0.completedIdle?.rssPerConnectionKiB }),
        ("kernel_per_connection_kib", { $0.completedIdle?.kernelPerConnection?.totalKiB }),
        ("idle_threads", { $0.completedIdle.map { Double($0.threads) } }),
        ("msgs_per_second", { $0.completedLoaded?.messagesPerSecond }),
        ("p50_us", { $0.completedLoaded?.p50Microseconds }),
        ("p99_us", { $0.completedLoaded?.p99Microseconds }),
        ("p999_us", { $0.completedLoaded?.p999Microseconds }),
        ("server_cpu_percent", { $0.completedLoaded?.serverCPUPercent }),
        ("server_cpu_us_per_msg", { $0.completedLoaded?.run?.server?.cpuMicrosecondsPerMessage }),
        ("server_ctx_switches_per_msg", { $0.completedLoaded?.serverContextSwitchesPerMessage }),
        ("client_cpu_percent", { $0.completedLoaded?.clientCPUPercent }),
        ("client_ctx_switches_per_msg", { $0.completedLoaded?.clientContextSwitchesPerMessage }),
        ("fairness_jain", { $0.completedLoaded?.fairness }),
        ("churn_lives_per_second", { $0.completedChurn?.livesPerSecond }),
        ("churn_server_cpu_us_per_connection", { $0.completedChurn?.serverCPUMicrosecondsPerConnection }),
    ]

    /// Round r's server order: as given in even rounds, reversed in odd ones.
    static func order<T>(_ servers: [T], round: Int) -> [T] {
        round % 2 == 0 ? servers : servers.reversed()
    }

    /// One row per server and connection count that has steps, in sweep order of servers, then counts.
    static func summarize(_ results: SweepResults) -> [SweepSummaryRow] {
        var rows: [SweepSummaryRow] = []
        for server in results.serverNames {
            let mine = results.steps.filter { $0.server == server }
            for count in Set(mine.map(\.connections)).sorted() {
                let steps = mine.filter { $0.connections == count }
                var row = SweepSummaryRow(server: server, scenario: steps.first?.scenario, connections: count,
                                          rounds: steps.count, completedRounds: steps.filter { $0.status == .ok }.count)
                for figure in figures {
                    if let spread = Spread(steps.compactMap(figure.value)) { row.figures[figure.key] = spread }
                }
                rows.append(row)
            }
        }
        return rows
    }
}

/// The median of a figure's rounds, with their range.
struct Spread: Codable, Sendable, Equatable {
    var median: Double
    var minimum: Double
    var maximum: Double
    var count: Int

    init?(_ values: [Double]) {
        let usable = values.filter(\.isFinite)
        guard !usable.isEmpty else { return nil }
        median = RatioSummary.median(usable)
        minimum = usable.min()!
        maximum = usable.max()!
        count = usable.count
    }

    /// `60.7k (55.1k–63.0k)` with the given formatter.
    func text(_ format: (Double) -> String) -> String {
        count > 1 ? "\(format(median)) (\(format(minimum))–\(format(maximum)))" : format(median)
    }
}

/// One server at one connection count over all its rounds.
struct SweepSummaryRow: Codable, Sendable, Equatable {
    var server: String
    var scenario: String?
    var connections: Int
    /// Steps run, and how many of them completed.
    var rounds: Int
    var completedRounds: Int
    /// Keyed by `SweepRounds.figures`' keys; a figure no round has is absent.
    var figures: [String: Spread] = [:]
}

extension SweepResults {
    static let summaryCSVFile = "summary.csv"

    /// `server,scenario,connections,rounds,completed_rounds,KEY_median,KEY_min,KEY_max,…`
    func summaryCSV() -> String? {
        guard let summary else { return nil }
        var header = ["server", "scenario", "connections", "rounds", "completed_rounds"]
        for figure in SweepRounds.figures { header += ["\(figure.key)_median", "\(figure.key)_min", "\(figure.key)_max"] }
        var lines = [header.joined(separator: ",")]
        for row in summary {
            var fields = [row.server, row.scenario ?? "", String(row.connections), String(row.rounds), String(row.completedRounds)]
            for figure in SweepRounds.figures {
                let spread = row.figures[figure.key]
                fields += [spread?.median, spread?.minimum, spread?.maximum].map { $0.map(TextFormat.trimmed) ?? "" }
            }
            lines.append(fields.map(TextFormat.csvField).joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The printed summary: median (min–max) of the figures a reader compares first.
    func summaryTable() -> String? {
        guard let summary else { return nil }
        let columns: [(heading: String, key: String, format: (Double) -> String)] = [
            ("KiB/conn", "rss_per_connection_kib", { TextFormat.fixed($0, 2) }),
            ("msgs/s", "msgs_per_second", { TextFormat.fixed($0, 0) }),
            ("p99 µs", "p99_us", { TextFormat.fixed($0, 0) }),
            ("srv µs/msg", "server_cpu_us_per_msg", { TextFormat.fixed($0, 2) }),
            ("srv cs/msg", "server_ctx_switches_per_msg", { TextFormat.fixed($0, 3) }),
            ("cli CPU%", "client_cpu_percent", { TextFormat.fixed($0, 0) }),
            ("lives/s", "churn_lives_per_second", { TextFormat.fixed($0, 0) }),
        ]
        let headings = ["server", "conns", "rounds"] + columns.map(\.heading)
        let rows = summary.map { row in
            [row.server, String(row.connections), "\(row.completedRounds)/\(row.rounds)"]
                + columns.map { column in row.figures[column.key]?.text(column.format) ?? "-" }
        }
        let widths = headings.indices.map { index in ([headings[index]] + rows.map { $0[index] }).map(\.count).max() ?? 0 }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { index, cell in
                let pad = String(repeating: " ", count: widths[index] - cell.count)
                return index < 1 ? cell + pad : pad + cell
            }.joined(separator: "  ")
        }
        return (["median (min–max) over the rounds:", line(headings)] + rows.map(line)).joined(separator: "\n")
    }
}
