import EchoProtocol
import Foundation

/// The sweep's charts: which figure each one plots, and the footer they share.
enum SweepCharts {
    /// One chart of a sweep: a file name in the output folder, and the figure it plots per step.
    struct Definition: Sendable {
        var file: String
        var title: String
        var y: SVGChart.Axis
        /// The step's figure, or nil when that step has none (its phase failed or did not run).
        var value: @Sendable (SweepStep) -> Double?
        /// On a per-connection chart: the step's fitted slope, drawn per server as a dashed level
        /// (the median over the server's steps). At small N a fixed cost divided by N dominates the
        /// points; the level is what they approach, what one more connection adds.
        var slope: (@Sendable (SweepStep) -> Double?)? = nil
    }

    static let connectionsAxis = SVGChart.Axis(label: "connections open", scale: .log)

    /// In the order index.html shows them; the first is the headline.
    static let definitions: [Definition] = [
        Definition(
            file: "rss-vs-connections.svg", title: "Server memory (RSS) with N idle connections",
            y: .init(label: "server RSS", unit: "MiB"), value: { $0.completedIdle.map { Double($0.rssKiB) / 1024 } }),
        Definition(
            file: "rss-per-connection.svg", title: "Resident memory per idle connection (dashed: the slope of RSS against N)",
            y: .init(label: "RSS per connection", unit: "KiB"), value: { $0.completedIdle?.rssPerConnectionKiB },
            slope: { $0.completedIdle?.rssSlopeKiBPerConnection }),
        Definition(
            file: "throughput.svg", title: "Throughput: N connections open, the active ones sending",
            y: .init(label: "throughput", unit: "msgs/s"), value: { $0.completedLoaded?.messagesPerSecond }),
        Definition(
            file: "context-switches.svg", title: "Server context switches per message",
            y: .init(label: "context switches per message"),
            value: { $0.completedLoaded?.serverContextSwitchesPerMessage }),
        Definition(
            file: "p99-latency.svg", title: "p99 latency: N connections open, the active ones sending",
            y: .init(label: "p99 round-trip latency", unit: "µs", scale: .log), value: { $0.completedLoaded?.p99Microseconds }),
        Definition(
            file: "churn-lives.svg", title: "Churn: connection lives per second (connect, one echo, close)",
            y: .init(label: "lives per second"), value: { $0.completedChurn?.livesPerSecond }),
        Definition(
            file: "churn-cpu.svg", title: "Churn: server CPU per connection (creation cost)",
            y: .init(label: "server CPU per connection", unit: "µs"),
            value: { $0.completedChurn?.serverCPUMicrosecondsPerConnection }),
        Definition(
            file: "kernel-per-connection.svg", title: "Kernel memory per idle connection (machine-wide)",
            y: .init(label: "KernelStack + PageTables + SUnreclaim + TCP mem per connection", unit: "KiB"),
            value: { $0.completedIdle?.kernelPerConnection?.totalKiB }),
    ]

    /// With `--scenario`: the loaded phase's figures, grouped by scenario, a bar per server.
    static let scenarioDefinitions: [Definition] = [
        Definition(
            file: "scenario-throughput.svg", title: "Throughput per scenario",
            y: .init(label: "throughput", unit: "msgs/s"), value: { $0.completedLoaded?.messagesPerSecond }),
        Definition(
            file: "scenario-p50.svg", title: "p50 latency per scenario",
            y: .init(label: "p50 round-trip latency", unit: "µs", scale: .log), value: { $0.completedLoaded?.p50Microseconds }),
        Definition(
            file: "scenario-p99.svg", title: "p99 latency per scenario",
            y: .init(label: "p99 round-trip latency", unit: "µs", scale: .log), value: { $0.completedLoaded?.p99Microseconds }),
        Definition(
            file: "scenario-p999.svg", title: "p99.9 latency per scenario",
            y: .init(label: "p99.9 round-trip latency", unit: "µs", scale: .log),
            value: { $0.completedLoaded?.p999Microseconds }),
        Definition(
            file: "scenario-context-switches.svg", title: "Server context switches per message, per scenario",
            y: .init(label: "context switches per message"), value: { $0.completedLoaded?.serverContextSwitchesPerMessage }),
    ]

    /// With `--curve`: p99 against the achieved rate, one line per server, log scale.
    static func curveChart(_ results: SweepResults) -> SVGChart {
        var chart = SVGChart(
            title: "p99 latency against achieved rate (open loop)",
            x: .init(label: "achieved rate", unit: "msgs/s"), y: .init(label: "p99 round-trip latency", unit: "µs", scale: .log))
        chart.series = results.serverNames.map { name in
            let steps = results.steps.first { $0.server == name && $0.curve != nil }?.curve?.steps ?? []
            return SVGChart.Series(name: name, points: steps.sorted { $0.offered < $1.offered }
                .map { ($0.achieved, $0.latencyMicroseconds.p99) })
        }
        chart.footer = footer(results)
        return chart
    }

    /// Memory per idle connection, one bar per server at the largest N its idle phase completed,
    /// stacked: user (the server's RSS) and then the kernel's parts, which RSS does not show
    /// (a thread's kernel stack and page tables, socket slab, TCP buffers).
    static func memoryStackChart(_ results: SweepResults) -> SVGBarChart {
        let largest: [(server: String, step: SweepStep)] = results.serverNames.compactMap { name in
            results.steps.filter { $0.server == name && $0.completedIdle?.kernelPerConnection != nil }
                .max { $0.connections < $1.connections }.map { (name, $0) }
        }
        var chart = SVGBarChart(
            title: "Memory per idle connection: user (RSS) + kernel (machine-wide)",
            y: .init(label: "KiB per idle connection", unit: "KiB"),
            categories: largest.map { "\($0.server) · \(TextFormat.grouped($0.step.connections))" })
        chart.stacked = true
        let layers: [(String, @Sendable (SweepStep.IdleFigures, KernelPerConnection) -> Double)] = [
            ("user: RSS", { idle, _ in idle.rssPerConnectionKiB }),
            ("KernelStack", { $1.kernelStackKiB }),
            ("PageTables", { $1.pageTablesKiB }),
            ("SUnreclaim (slab)", { $1.slabUnreclaimableKiB }),
            ("TCP mem", { $1.tcpMemKiB }),
        ]
        chart.series = layers.map { name, part in
            (name: name, values: largest.map { entry in
                // With --rounds, every round's step at that count: the median of the layer.
                let rounds = results.steps.filter {
                    $0.server == entry.server && $0.connections == entry.step.connections
                }
                return Spread(rounds.compactMap { step in
                    step.completedIdle.flatMap { idle in idle.kernelPerConnection.map { part(idle, $0) } }
                })?.median
            })
        }
        chart.footer = ["kernel parts: /proc/meminfo and /proc/net/sockstat deltas, every process on the machine (the client's sockets too)"]
            + footer(results)
        return chart
    }

    /// Every chart of `results`, as (file name, title, SVG text).
    static func render(_ results: SweepResults) -> [(file: String, title: String, svg: String)] {
        var charts = definitions.map { definition in
            (file: definition.file, title: definition.title, svg: chart(definition, results).render())
        }
        let memory = memoryStackChart(results)
        if !memory.categories.isEmpty {
            charts.append((file: "memory-per-connection.svg", title: memory.title, svg: memory.render()))
        }
        if results.steps.contains(where: { $0.curve != nil }) {
            let chart = curveChart(results)
            charts.append((file: "curve-p99.svg", title: chart.title, svg: chart.render()))
        }
        if results.steps.contains(where: { $0.scenario != nil }) || !(results.settings.scenarios ?? []).isEmpty {
            charts += scenarioDefinitions.map { definition in
                (file: definition.file, title: definition.title, svg: barChart(definition, results).render())
            }
        }
        return charts
    }

    /// Groups: the scenarios in order; bars: the servers in order; the value of the step at the
    /// largest connection count (a scenario sweep usually has one).
    static func barChart(_ definition: Definition, _ results: SweepResults) -> SVGBarChart {
        let scenarios = (results.settings.scenarios ?? []).map(\.name)
        var servers: [String] = []
        for step in results.steps where step.scenario != nil {
            let base = SweptServer.baseName(step.server, scenario: step.scenario)
            if !servers.contains(base) { servers.append(base) }
        }
        var chart = SVGBarChart(title: definition.title, y: definition.y, categories: scenarios)
        chart.series = servers.map { server in
            (name: server, values: scenarios.map { scenario in
                // With --rounds, several steps share the largest count: their median.
                let steps = results.steps.filter { $0.scenario == scenario && $0.server == "\(server)/\(scenario)" }
                let largest = steps.map(\.connections).max()
                return Spread(steps.filter { $0.connections == largest }.compactMap(definition.value))?.median
            })
        }
        chart.footer = footer(results)
        return chart
    }

    /// One series per server, in sweep order, even a server without any point (its legend entry says
    /// it failed), so colours match across charts.
    static func chart(_ definition: Definition, _ results: SweepResults) -> SVGChart {
        var chart = SVGChart(title: definition.title, x: connectionsAxis, y: definition.y)
        chart.series = results.serverNames.map { name in
            let steps = results.steps.filter { $0.server == name }
            var points: [(Double, Double)] = []
            var failures: [(x: Double, reason: String)] = []
            var ranges: [(x: Double, low: Double, high: Double)] = []
            for step in steps {
                // A figure from a phase that completed is drawn even if a later phase failed;
                // the failure is drawn too, as a cross on the x axis.
                if step.round == nil, let value = definition.value(step) { points.append((Double(step.connections), value)) }
                if step.status != .ok { failures.append((Double(step.connections), step.reason ?? step.status.rawValue)) }
            }
            // Rounds: the median at each count, the rounds' range as an error bar.
            for count in Set(steps.filter { $0.round != nil }.map(\.connections)).sorted() {
                guard let spread = Spread(steps.filter { $0.round != nil && $0.connections == count }.compactMap(definition.value))
                else { continue }
                points.append((Double(count), spread.median))
                ranges.append((Double(count), spread.minimum, spread.maximum))
            }
            let level = definition.slope.flatMap { slope in Spread(steps.compactMap(slope))?.median }.map { median in
                (y: median, note: "slope \(SVGChart.exact(median))\(definition.y.unit.map { " \($0)" } ?? "") per connection, "
                    + "least squares over every count: what one more connection adds")
            }
            return SVGChart.Series(name: name, points: points, failures: failures, ranges: ranges, level: level)
        }
        chart.footer = footer(results)
        return chart
    }

    /// Machine, date, what was pinned, the workload, and how to reproduce.
    static func footer(_ results: SweepResults) -> [String] {
        let settings = results.settings
        var lines = [
            "\(results.machine.summary) · \(settings.pinning.summary)",
            "idle: N connections, one echo each · loaded: up to \(settings.active) of the N sending \(settings.messageSize) B, "
                + "depth \(settings.depth), \(TextFormat.trimmed(settings.durationSeconds)) s measured after "
                + "\(TextFormat.trimmed(settings.warmupSeconds)) s warm-up"
                + (settings.rounds.map { " · \($0) rounds, servers alternating: the median, bars the range" } ?? ""),
        ]
        let command = settings.commandLine
        lines.append(command.count > 140 ? String(command.prefix(137)) + "…" : command)
        if !results.complete { lines.append("incomplete sweep: \(results.stopReason ?? "interrupted")") }
        return lines
    }
}
