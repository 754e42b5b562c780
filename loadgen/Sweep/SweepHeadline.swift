import EchoProtocol
import Foundation

/// index.html's answer, before any chart: per server (and scenario), at the largest connection count
/// its idle phase completed, the figures that answer "what does a connection cost?", and one sentence
/// saying them. RSS is the slope of a line through every count, so a fixed cost at small N (a runtime's
/// first pages) does not read as a per-connection one. With rounds, each figure is the median of the
/// rounds at that count.
struct SweepHeadline: Equatable {
    var server: String
    var connections: Int
    var rssSlopeKiB: Double?
    /// (RSS at N − RSS before) / N: the sentence's figure when one count gives no slope.
    var rssPerConnectionKiB: Double?
    var kernelKiB: Double?
    var messagesPerSecond: Double?
    var p99Microseconds: Double?
    var switchesPerMessage: Double?
    var churnMicroseconds: Double?
    var active: Int?

    /// One headline per server and scenario, in the sweep's order; none for a server with no
    /// completed idle phase.
    static func rows(_ results: SweepResults) -> [SweepHeadline] {
        var keys: [String] = []
        for step in results.steps where !keys.contains(key(step)) { keys.append(key(step)) }
        return keys.compactMap { key in
            let steps = results.steps.filter { Self.key($0) == key }
            guard let largest = steps.filter({ $0.completedIdle != nil }).map(\.connections).max() else { return nil }
            let atLargest = steps.filter { $0.connections == largest }
            func median(_ figure: (SweepStep) -> Double?) -> Double? { Spread(atLargest.compactMap(figure))?.median }
            return SweepHeadline(
                server: key, connections: largest,
                rssSlopeKiB: median { $0.completedIdle?.rssSlopeKiBPerConnection },
                rssPerConnectionKiB: median { $0.completedIdle?.rssPerConnectionKiB },
                kernelKiB: median { $0.completedIdle?.kernelPerConnection?.totalKiB },
                messagesPerSecond: median { $0.completedLoaded?.messagesPerSecond },
                p99Microseconds: median { $0.completedLoaded?.p99Microseconds },
                switchesPerMessage: median { $0.completedLoaded?.serverContextSwitchesPerMessage },
                churnMicroseconds: median { $0.completedChurn?.serverCPUMicrosecondsPerConnection },
                active: atLargest.compactMap { $0.completedLoaded?.active }.first)
        }
    }

    private static func key(_ step: SweepStep) -> String {
        step.scenario.map { "\(step.server) (\($0))" } ?? step.server
    }

    static let headings = [
        "server", "at N", "RSS slope KiB/conn", "kernel KiB/conn", "msgs/s", "p99", "switches/msg", "churn µs/conn",
    ]

    var cells: [String] {
        [
            server, TextFormat.grouped(connections),
            rssSlopeKiB.map { TextFormat.fixed($0, 2) } ?? "-",
            kernelKiB.map { TextFormat.fixed($0, 2) } ?? "-",
            messagesPerSecond.map { TextFormat.groupedFixed($0, 0) } ?? "-",
            p99Microseconds.map { TextFormat.latency(microseconds: $0) } ?? "-",
            switchesPerMessage.map { TextFormat.fixed($0, 3) } ?? "-",
            churnMicroseconds.map { TextFormat.fixed($0, 1) } ?? "-",
        ]
    }

    /// The row in words: "echo-threads at 19,000 connections: 12.44 KiB of RSS and 31.70 KiB of the
    /// kernel's memory per connection; 100 sending, 95,000 msgs/s with p99 4.3 ms and 1.000 context
    /// switches per message; a new connection cost 92.0 µs of server CPU." Figures that were not
    /// measured are left out, not guessed.
    var sentence: String {
        var memory: [String] = []
        if let rssSlopeKiB {
            memory.append("\(TextFormat.fixed(rssSlopeKiB, 2)) KiB of RSS")
        } else if let rssPerConnectionKiB {
            memory.append("\(TextFormat.fixed(rssPerConnectionKiB, 2)) KiB of RSS (one count: no slope)")
        }
        if let kernelKiB { memory.append("\(TextFormat.fixed(kernelKiB, 2)) KiB of the kernel's memory (machine-wide)") }
        var parts: [String] = []
        if !memory.isEmpty { parts.append(memory.joined(separator: " and ") + " per connection") }
        if let messagesPerSecond {
            var load = (active.map { "\(TextFormat.grouped($0)) sending, " } ?? "")
                + "\(TextFormat.groupedFixed(messagesPerSecond, 0)) msgs/s"
            if let p99Microseconds { load += " with p99 \(TextFormat.latency(microseconds: p99Microseconds))" }
            if let switchesPerMessage { load += " and \(TextFormat.fixed(switchesPerMessage, 3)) context switches per message" }
            parts.append(load)
        }
        if let churnMicroseconds { parts.append("a new connection cost \(TextFormat.fixed(churnMicroseconds, 1)) µs of server CPU") }
        let figures = parts.isEmpty ? "no figure completed" : parts.joined(separator: "; ")
        return "\(server) at \(TextFormat.grouped(connections)) connections: \(figures)."
    }

    /// The headline table and a sentence per server, as HTML lines.
    static func html(_ rows: [SweepHeadline]) -> [String] {
        guard !rows.isEmpty else { return [] }
        var lines = [
            "<h2>The answer: what a connection costs</h2>",
            "<p>Each server at the largest count its idle phase completed. RSS is the slope of server RSS "
                + "against N over every count (a fixed cost does not inflate it); the kernel's part is "
                + "machine-wide, the client's sockets included, so an upper bound; msgs/s, p99 and context "
                + "switches are the loaded phase's; churn is server CPU per connection created.</p>",
            #"<div class="wide"><table class="headline">"#,
            "<tr>" + headings.map { "<th>\($0.xmlEscaped)</th>" }.joined() + "</tr>",
        ]
        for row in rows {
            lines.append("<tr>" + row.cells.map { "<td>\($0.xmlEscaped)</td>" }.joined() + "</tr>")
        }
        lines.append("</table></div>")
        lines.append("<ul>")
        lines += rows.map { "<li>\($0.sentence.xmlEscaped)</li>" }
        lines.append("</ul>")
        return lines
    }
}
