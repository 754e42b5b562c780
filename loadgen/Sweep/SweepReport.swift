import EchoProtocol
import Foundation

/// What a sweep leaves in its output folder (results.json, results.csv, the SVG charts, index.html)
/// and the table it prints.
enum SweepReport {
    static let jsonFile = "results.json"
    static let csvFile = "results.csv"
    static let indexFile = "index.html"

    /// Writes every file into `directory` (created if missing); each file is replaced atomically, so a
    /// reader never sees half a file. Returns the paths written.
    @discardableResult
    static func write(_ results: SweepResults, to directory: URL) throws -> [String] {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var files: [(String, Data)] = [
            (jsonFile, try results.json()),
            (csvFile, Data(results.csv().utf8)),
        ]
        if let summary = results.summaryCSV() { files.append((SweepResults.summaryCSVFile, Data(summary.utf8))) }
        let charts = SweepCharts.render(results)
        files += charts.map { ($0.file, Data($0.svg.utf8)) }
        files += percentileFiles(results)
        files.append((indexFile, Data(html(results, charts: charts.map { ($0.file, $0.title) }).utf8)))
        for (name, data) in files {
            try data.write(to: directory.appendingPathComponent(name), options: .atomic)
        }
        return files.map { directory.appendingPathComponent($0.0).path }
    }

    /// One `.hgrm` per step's loaded phase (`libev-1000.hgrm`; with a scenario `libev-block-1000.hgrm`),
    /// for HdrHistogram's plotters.
    static func percentileFiles(_ results: SweepResults) -> [(String, Data)] {
        results.steps.compactMap { step in
            guard let histogram = step.completedLoaded?.run?.latencyHistogram else { return nil }
            let name = step.server.replacingOccurrences(of: "/", with: "-")
            let round = step.round.map { "-round\($0)" } ?? ""
            return ("\(name)-\(step.connections)\(round).hgrm", Data(PercentileFile.text(histogram).utf8))
        }
    }

    // MARK: The table

    /// The columns of the printed table and of index.html's table: heading and the step's cell.
    static let columns: [(heading: String, cell: @Sendable (SweepStep) -> String)] = [
        ("server", { $0.server }),
        ("conns", { String($0.connections) }),
        ("status", { $0.status.rawValue }),
        ("round", { $0.round.map { String($0) } ?? "" }),
        ("RSS MiB", { $0.idle.map { TextFormat.fixed(Double($0.rssKiB) / 1024, 1) } ?? "-" }),
        ("KiB/conn", { $0.idle.map { TextFormat.fixed($0.rssPerConnectionKiB, 2) } ?? "-" }),
        ("slope KiB/conn", { $0.idle?.rssSlopeKiBPerConnection.map { TextFormat.fixed($0, 2) } ?? "-" }),
        ("kernel KiB/conn", { $0.idle?.kernelPerConnection.map { TextFormat.fixed($0.totalKiB, 2) } ?? "-" }),
        ("VmSize MiB", { $0.idle.map { TextFormat.fixed(Double($0.vmSizeKiB) / 1024, 0) } ?? "-" }),
        ("threads", { $0.idle.map { String($0.threads) } ?? "-" }),
        ("fds", { $0.idle.map { String($0.openFDs) } ?? "-" }),
        ("active", { $0.loaded.map { String($0.active) } ?? "-" }),
        ("msgs/s", { $0.loaded.map { TextFormat.fixed($0.messagesPerSecond, 0) } ?? "-" }),
        ("p50 µs", { $0.loaded.map { TextFormat.fixed($0.p50Microseconds, 0) } ?? "-" }),
        ("p99 µs", { $0.loaded.map { TextFormat.fixed($0.p99Microseconds, 0) } ?? "-" }),
        ("srv CPU%", { $0.loaded?.serverCPUPercent.map { TextFormat.fixed($0, 0) } ?? "-" }),
        ("srv cs/msg", { $0.loaded?.serverContextSwitchesPerMessage.map { TextFormat.fixed($0, 3) } ?? "-" }),
        ("cli CPU%", { $0.loaded.map { TextFormat.fixed($0.clientCPUPercent, 0) } ?? "-" }),
        ("cli cs/msg", { $0.loaded.map { TextFormat.fixed($0.clientContextSwitchesPerMessage, 3) } ?? "-" }),
        ("fairness", { $0.loaded.map { TextFormat.fixed($0.fairness, 3) } ?? "-" }),
        ("lives/s", { $0.churn.map { TextFormat.fixed($0.livesPerSecond, 0) } ?? "-" }),
        ("srv µs/conn", { $0.churn?.serverCPUMicrosecondsPerConnection.map { TextFormat.fixed($0, 1) } ?? "-" }),
        // With --curve: the highest offered rate that met the p99 bound (blank for steps without a curve).
        ("msgs/s within p99", { step in
            guard let curve = step.curve else { return step.curve == nil ? "" : "-" }
            return curve.highestRateWithinBound.map { TextFormat.fixed($0, 0) } ?? "none"
        }),
    ]

    /// The columns, the round column only in a sweep of rounds.
    static func visibleColumns(_ results: SweepResults) -> [(heading: String, cell: @Sendable (SweepStep) -> String)] {
        results.settings.rounds == nil ? columns.filter { $0.heading != "round" } : columns
    }

    /// A plain-text table a person reads, then one line per failed step with its reason.
    static func table(_ results: SweepResults) -> String {
        let columns = visibleColumns(results)
        let rows = results.steps.map { step in columns.map { $0.cell(step) } }
        let headings = columns.map(\.heading)
        let widths = headings.indices.map { column in
            ([headings[column]] + rows.map { $0[column] }).map(\.count).max() ?? 0
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { column, cell in
                let pad = String(repeating: " ", count: widths[column] - cell.count)
                return column < 3 ? cell + pad : pad + cell  // names left, figures right
            }.joined(separator: "  ")
        }
        var lines = [line(headings)] + rows.map(line)
        for step in results.steps where step.status != .ok {
            lines.append("\(step.server) at \(step.connections): \(step.status.rawValue): \(step.reason ?? "no reason given")")
        }
        if let summary = results.summaryTable() { lines += ["", summary] }
        if !results.complete { lines.append("sweep incomplete: \(results.stopReason ?? "interrupted")") }
        return lines.joined(separator: "\n")
    }

    // MARK: index.html

    /// One page: the answer first (a headline row and a sentence per server), what ran where, every
    /// chart, the whole table (in a box of its own that scrolls sideways), and links to the data.
    static func html(_ results: SweepResults, charts: [(file: String, title: String)]) -> String {
        let settings = results.settings
        var page: [String] = [
            "<!DOCTYPE html>",
            #"<html lang="en"><head><meta charset="utf-8">"#,
            "<title>echo-lab sweep · \(results.machine.date.xmlEscaped)</title>",
            "<style>",
            "body { font-family: Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }",
            "img { display: block; max-width: 100%; margin: 1.5em 0; border: 1px solid #ddd; }",
            "table { border-collapse: collapse; font-size: 13px; }",
            "th, td { padding: 3px 8px; border-bottom: 1px solid #e3e3e3; text-align: right; }",
            "th:nth-child(-n+3), td:nth-child(-n+3) { text-align: left; }",
            "tr.failed td, tr.interrupted td { color: #b00; }",
            "code { background: #f4f4f4; padding: 1px 4px; }",
            "div.wide { overflow-x: auto; max-width: 100%; border: 1px solid #ddd; margin: 1em 0; }",
            "table.headline { font-size: 14px; }",
            "table.headline th:nth-child(n+2), table.headline td:nth-child(n+2) { text-align: right; }",
            "</style></head><body>",
            "<h1>echo-lab: connections vs memory</h1>",
            "<p>\(results.machine.summary.xmlEscaped) · \(settings.pinning.summary.xmlEscaped)</p>",
        ]
        page += SweepHeadline.html(SweepHeadline.rows(results))
        page += [
            "<p>Servers: " + settings.servers.map { "<code>\($0.command.xmlEscaped)</code> (\($0.name.xmlEscaped))" }
                .joined(separator: ", ") + "</p>",
            "<p>Each step starts a fresh server. Idle phase: N connections, one echo each, then silent; "
                + "RSS per connection = (RSS with N idle − RSS before the first) / N. Loaded phase: the N stay open, "
                + "\(settings.active) of them send \(settings.messageSize) B messages, \(settings.depth) in flight each, "
                + "measured for \(TextFormat.trimmed(settings.durationSeconds)) s after a "
                + "\(TextFormat.trimmed(settings.warmupSeconds)) s warm-up.</p>",
            "<p><code>\(settings.commandLine.xmlEscaped)</code></p>",
        ]
        if !results.complete {
            page.append(#"<p style="color:#b00">Incomplete sweep: \#((results.stopReason ?? "interrupted").xmlEscaped)</p>"#)
        }
        for chart in charts {
            page.append(#"<img src="\#(chart.file.xmlEscaped)" alt="\#(chart.title.xmlEscaped)">"#)
        }
        // Latency over time: one heat map per server, at the largest count whose loaded phase has one.
        let heatmaps = results.serverNames.compactMap { name in
            results.steps.filter { $0.server == name && $0.heatmap != nil }.max { $0.connections < $1.connections }?.heatmap
        }
        if !heatmaps.isEmpty {
            page.append("<h2>Latency over time</h2>")
            page.append("<p>Each server's loaded phase at its largest count: a column per second, a row per latency bucket, darker = more messages. Every loaded phase has one: <code>heatmap-SERVER-N.svg</code>.</p>")
            for file in heatmaps { page.append(#"<img src="\#(file.xmlEscaped)" alt="latency over time">"#) }
        }
        page.append("<h2>Results</h2>")
        page.append(#"<div class="wide"><table>"#)
        let columns = visibleColumns(results)
        page.append("<tr>" + columns.map { "<th>\($0.heading.xmlEscaped)</th>" }.joined() + "</tr>")
        for step in results.steps {
            let cells = columns.map { "<td>\($0.cell(step).xmlEscaped)</td>" }.joined()
            let title = step.reason.map { #" title="\#($0.xmlEscaped)""# } ?? ""
            page.append(#"<tr class="\#(step.status.rawValue)"\#(title)>"# + cells + "</tr>")
        }
        page.append("</table></div>")
        let failed = results.steps.filter { $0.status != .ok }
        if !failed.isEmpty {
            page.append("<ul>")
            for step in failed {
                page.append(
                    "<li>\(step.server.xmlEscaped) at \(step.connections): \(step.status.rawValue): "
                        + "\((step.reason ?? "no reason given").xmlEscaped)</li>")
            }
            page.append("</ul>")
        }
        page.append(
            #"<p>Data: <a href="\#(csvFile)">\#(csvFile)</a>, <a href="\#(jsonFile)">\#(jsonFile)</a>"#
                + (results.summary == nil ? "" : #", <a href="\#(SweepResults.summaryCSVFile)">\#(SweepResults.summaryCSVFile)</a> (median, min and max over the rounds)"#)
                + "</p>")
        page.append("</body></html>")
        return page.joined(separator: "\n") + "\n"
    }
}
