#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import EchoProtocol
import Foundation

/// The live line on stderr, rewritten once a second; only on a terminal.
final class LiveLine: Sendable {
    private let line: TerminalLine
    var enabled: Bool { line.enabled }

    init(enabled: Bool) { line = TerminalLine(enabled: enabled) }

    var callback: ((LiveFigures) -> Void)? {
        guard enabled else { return nil }
        return { figures in self.show(figures) }
    }

    func show(_ live: LiveFigures) {
        var line = "\(TextFormat.fixed(live.elapsedSeconds, 0)) s  \(live.phase)  \(TextFormat.grouped(live.open))/\(TextFormat.grouped(live.requested)) "
        line += live.phase == "connecting" ? "connected" : "open"
        if live.phase != "connecting" && live.phase != "echoing" && live.phase != "holding" {
            line += "  \(TextFormat.grouped(Int(live.messagesPerSecond))) msgs/s  p99 \(live.p99Microseconds > 0 ? TextFormat.latency(microseconds: live.p99Microseconds) : "-")"
        }
        line += "  errors \(live.errors)"
        self.line.show(line)
    }

    func clear() { line.clear() }
}

/// The final report: a table for people, one JSON object for scripts, a CSV row per run.
enum Report {
    static func emit(_ result: LoadResult, json: Bool, csv: String?) throws {
        Lifecycle.printLine(json ? jsonText(result) : table(result))
        if let csv { try appendCSV(to: csv, header: runCSVHeader, row: runCSVRow(result)) }
    }

    static func emit(_ result: IdleResult, json: Bool, csv: String?) throws {
        Lifecycle.printLine(json ? jsonText(result) : table(result))
        if let csv { try appendCSV(to: csv, header: idleCSVHeader, row: idleCSVRow(result)) }
    }

    /// See `ResultJSON`: "or null" fields present as null.
    static func jsonText(_ value: some Encodable) -> String { ResultJSON.text(value) }

    // MARK: Tables

    static func table(_ result: LoadResult) -> String {
        let settings = result.settings
        let shape = settings.rate.map { "open loop at \(TextFormat.grouped(Int($0))) msgs/s" } ?? "depth \(settings.depth)"
        var lines = [
            "loadgen \(result.mergedRuns.map { "merge of \($0) runs" } ?? "run"): \(result.target), \(TextFormat.grouped(settings.connections)) connections × \(ByteCount.describe(settings.messageSize)), \(shape), \(settings.threads) loop\(settings.threads == 1 ? "" : "s"); \(measuredPhrase(result))",
            row("throughput", "\(TextFormat.grouped(result.messages)) messages   \(TextFormat.grouped(Int(result.messagesPerSecond))) msgs/s   \(TextFormat.fixed(result.bytesPerSecond / 1e6, 1)) MB/s each way"),
        ]
        let latency = result.latencyMicroseconds
        lines.append(row("latency", latencySummary(latency)))
        if let lateness = result.sendLatenessMicroseconds {
            lines.append(row("lateness", SendLateness.summary(lateness)))
            if let note = SendLateness.note(result) { lines.append(row("", note)) }
        }
        let fairness = result.fairness
        lines.append(row("fairness", "msgs per connection min \(TextFormat.grouped(fairness.minimum))   median \(TextFormat.grouped(fairness.median))   max \(TextFormat.grouped(fairness.maximum))   Jain \(TextFormat.fixed(fairness.jainIndex, 4))"))
        if let server = result.server {
            lines.append(row("server", "pid \(server.pid) \(server.variant) (\(server.source))   CPU \(TextFormat.fixed(server.cpuSeconds, 2)) s (\(TextFormat.fixed(server.cpuPercent, 0))%)   \(TextFormat.fixed(server.cpuMicrosecondsPerMessage, 2)) µs/msg"))
            lines.append(row("", "context switches \(TextFormat.fixed(server.contextSwitchesPerMessage, 4))/msg (voluntary \(TextFormat.grouped(server.voluntaryContextSwitches)), involuntary \(TextFormat.grouped(server.involuntaryContextSwitches)))\(server.contextSwitchesUndercounted ? ", a lower bound: server threads exited meanwhile" : "")"))
            lines.append(row("", "RSS \(TextFormat.grouped(server.rssKiB)) KiB   HWM \(TextFormat.grouped(server.hwmKiB)) KiB   VmSize \(TextFormat.grouped(server.vmSizeKiB)) KiB   threads \(server.threads)   fds \(TextFormat.grouped(server.openFDs))"))
        } else {
            lines.append(row("server", result.serverNote ?? "no figures"))
        }
        if result.server != nil, let note = result.serverNote { lines.append(row("", note)) }
        let client = result.client
        lines.append(row("client", "CPU \(TextFormat.fixed(client.cpuSeconds, 2)) s (\(TextFormat.fixed(client.cpuPercent, 0))%)   \(TextFormat.fixed(client.cpuMicrosecondsPerMessage, 2)) µs/msg   context switches \(TextFormat.fixed(client.contextSwitchesPerMessage, 4))/msg (voluntary \(TextFormat.grouped(client.voluntaryContextSwitches)), involuntary \(TextFormat.grouped(client.involuntaryContextSwitches)))"))
        lines.append(row("connections", "\(TextFormat.grouped(result.connections.established)) of \(TextFormat.grouped(result.connections.requested)) up in \(TextFormat.fixed(result.connections.connectSeconds, 2)) s, at most \(TextFormat.grouped(result.connections.peakOpen)) open at once\(overflowNote(result.connections))"))
        lines.append(row("errors", result.errors.summary))
        if let first = result.errors.firstError { lines.append(row("first error", first)) }
        if result.unsentMessages > 0 {
            lines.append(row("behind", "\(TextFormat.grouped(result.unsentMessages)) scheduled messages never sent: the load fell behind the rate (see the CPU figures for who was slow)"))
        }
        if let reason = result.stopReason { lines.append(row("stopped", "\(reason): partial results")) }
        return lines.joined(separator: "\n")
    }

    /// `p50 95.4 µs   p90 …   max 12.35 ms`: each figure in the unit that reads best (TextFormat.latency).
    static func latencySummary(_ latency: LatencyFigures) -> String {
        [("p50", latency.p50), ("p90", latency.p90), ("p99", latency.p99), ("p99.9", latency.p999), ("max", latency.max)]
            .map { "\($0.0) \(TextFormat.latency(microseconds: $0.1))" }.joined(separator: "   ")
    }

    /// `2.00 s measured after 1.0 s warm-up`, or what was cut short: a partial result says it is one.
    static func measuredPhrase(_ result: LoadResult) -> String {
        let warmup = TextFormat.fixed(result.settings.warmupSeconds, 1)
        if result.complete { return "\(TextFormat.fixed(result.measuredSeconds, 2)) s measured after \(warmup) s warm-up" }
        if result.measuredSeconds == 0 && result.settings.warmupSeconds > 0 {
            return "stopped during the \(warmup) s warm-up: nothing measured (partial)"
        }
        return "\(TextFormat.fixed(result.measuredSeconds, 2)) of \(TextFormat.fixed(result.settings.durationSeconds, 2)) s measured after \(warmup) s warm-up (partial)"
    }

    static func table(_ result: IdleResult) -> String {
        var lines = [
            "loadgen idle: \(result.target), \(TextFormat.grouped(result.connections.requested)) connections, one \(ByteCount.describe(result.settings.messageSize)) echo each, held \(TextFormat.fixed(result.heldSeconds ?? result.settings.holdSeconds, 1)) s\(result.complete ? "" : " of \(TextFormat.fixed(result.settings.holdSeconds, 1)) s (partial)")",
            row("connections", "\(TextFormat.grouped(result.connections.established)) up in \(TextFormat.fixed(result.connections.connectSeconds, 2)) s, \(TextFormat.grouped(result.echoed)) echoed, \(TextFormat.grouped(result.heldOpen)) open when read\(overflowNote(result.connections))"),
        ]
        if let server = result.server {
            lines.append(row("server", "pid \(server.pid) \(server.variant) (\(server.source))"))
            lines.append(row("RSS", "\(TextFormat.grouped(server.before.rssKiB)) KiB -> \(TextFormat.grouped(server.after.rssKiB)) KiB   \(TextFormat.fixed(server.rssPerConnectionKiB, 2)) KiB per connection"))
            if let pss = server.pssPerConnectionKiB, let before = server.before.pssKiB, let after = server.after.pssKiB {
                // PSS splits shared pages between the processes that map them: when the tree's processes
                // change, it can fall, and "-0.4 KiB per connection" would read as memory given back.
                let perConnection = pss < 0
                    ? "none measurable per connection (it fell by \(TextFormat.fixed(-pss, 2)) KiB each: shared pages moved between processes)"
                    : "\(TextFormat.fixed(pss, 2)) KiB per connection (shared pages split between processes)"
                lines.append(row("PSS", "\(TextFormat.grouped(before)) KiB -> \(TextFormat.grouped(after)) KiB   \(perConnection)"))
            }
            lines.append(row("VmSize", "\(TextFormat.grouped(server.before.vmSizeKiB)) KiB -> \(TextFormat.grouped(server.after.vmSizeKiB)) KiB   \(TextFormat.fixed(server.vmSizePerConnectionKiB, 1)) KiB per connection"))
            lines.append(row("", "threads \(server.before.threads) -> \(server.after.threads)   fds \(TextFormat.grouped(server.before.openFDs)) -> \(TextFormat.grouped(server.after.openFDs))   HWM \(TextFormat.grouped(server.after.hwmKiB)) KiB"))
        } else {
            lines.append(row("server", result.serverNote ?? "no figures"))
        }
        if result.server != nil, let note = result.serverNote { lines.append(row("", note)) }
        lines.append(row("client", "CPU \(TextFormat.fixed(result.client.cpuSeconds, 2)) s   max RSS \(TextFormat.grouped(result.client.maxRSSKiB)) KiB"))
        lines.append(row("errors", result.errors.summary))
        if let first = result.errors.firstError { lines.append(row("first error", first)) }
        if let reason = result.stopReason { lines.append(row("stopped", "\(reason): partial results")) }
        return lines.joined(separator: "\n")
    }

    private static func overflowNote(_ connections: ConnectionFigures) -> String {
        connections.listenOverflows > 0
            ? "; \(TextFormat.grouped(connections.listenOverflows)) listen-queue overflows on this machine meanwhile" : ""
    }

    private static func row(_ label: String, _ text: String) -> String {
        "  " + label.padding(toLength: 13, withPad: " ", startingAt: 0) + text
    }

    // MARK: CSV

    static let runCSVHeader = [
        "time", "target", "connections", "established", "size", "depth", "rate", "threads", "durationSeconds",
        "measuredSeconds", "messages", "messagesPerSecond", "p50us", "p90us", "p99us", "p999us", "maxUs",
        "jainIndex", "errors", "firstError", "serverPid", "serverCPUPercent", "serverCPUusPerMessage",
        "serverContextSwitchesPerMessage", "serverRSSKiB", "serverThreads", "clientCPUPercent",
        "clientCPUusPerMessage", "clientContextSwitchesPerMessage", "complete",
    ]

    static func runCSVRow(_ r: LoadResult) -> [String] {
        [
            timestamp(), r.target, "\(r.settings.connections)", "\(r.connections.established)",
            "\(r.settings.messageSize)", "\(r.settings.depth)", r.settings.rate.map { "\($0)" } ?? "",
            "\(r.settings.threads)", "\(r.settings.durationSeconds)", TextFormat.fixed(r.measuredSeconds, 3), "\(r.messages)",
            TextFormat.fixed(r.messagesPerSecond, 1), TextFormat.fixed(r.latencyMicroseconds.p50, 1), TextFormat.fixed(r.latencyMicroseconds.p90, 1),
            TextFormat.fixed(r.latencyMicroseconds.p99, 1), TextFormat.fixed(r.latencyMicroseconds.p999, 1),
            TextFormat.fixed(r.latencyMicroseconds.max, 1), TextFormat.fixed(r.fairness.jainIndex, 4), "\(r.errors.total)",
            r.errors.firstError ?? "", r.server.map { "\($0.pid)" } ?? "",
            r.server.map { TextFormat.fixed($0.cpuPercent, 1) } ?? "", r.server.map { TextFormat.fixed($0.cpuMicrosecondsPerMessage, 3) } ?? "",
            r.server.map { TextFormat.fixed($0.contextSwitchesPerMessage, 4) } ?? "", r.server.map { "\($0.rssKiB)" } ?? "",
            r.server.map { "\($0.threads)" } ?? "", TextFormat.fixed(r.client.cpuPercent, 1),
            TextFormat.fixed(r.client.cpuMicrosecondsPerMessage, 3), TextFormat.fixed(r.client.contextSwitchesPerMessage, 4),
            "\(r.complete)",
        ]
    }

    static let idleCSVHeader = [
        "time", "target", "connections", "established", "echoed", "holdSeconds", "serverPid", "serverRSSBeforeKiB",
        "serverRSSAfterKiB", "rssPerConnectionKiB", "vmSizePerConnectionKiB", "pssPerConnectionKiB", "serverThreadsAfter",
        "serverFDsAfter", "errors", "firstError", "complete",
    ]

    static func idleCSVRow(_ r: IdleResult) -> [String] {
        [
            timestamp(), r.target, "\(r.connections.requested)", "\(r.connections.established)", "\(r.echoed)",
            "\(r.settings.holdSeconds)", r.server.map { "\($0.pid)" } ?? "",
            r.server.map { "\($0.before.rssKiB)" } ?? "", r.server.map { "\($0.after.rssKiB)" } ?? "",
            r.server.map { TextFormat.fixed($0.rssPerConnectionKiB, 3) } ?? "",
            r.server.map { TextFormat.fixed($0.vmSizePerConnectionKiB, 2) } ?? "",
            r.server?.pssPerConnectionKiB.map { TextFormat.fixed($0, 3) } ?? "", r.server.map { "\($0.after.threads)" } ?? "",
            r.server.map { "\($0.after.openFDs)" } ?? "", "\(r.errors.total)", r.errors.firstError ?? "",
            "\(r.complete)",
        ]
    }

    /// Appends `row`, writing `header` first if the file is new or empty. A file whose header differs
    /// holds another kind of row: refuse rather than mix them.
    static func appendCSV(to path: String, header: [String], row: [String]) throws {
        let headerLine = header.map(TextFormat.csvField).joined(separator: ",")
        let existing = readText(path) ?? ""
        var text = ""
        if existing.isEmpty {
            text = headerLine + "\n"
        } else if existing.split(separator: "\n", maxSplits: 1).first.map(String.init) != headerLine {
            Lifecycle.fail(tool: "loadgen", message: "\(path) holds rows of another kind (its header differs); give --csv another file")
        }
        text += row.map(TextFormat.csvField).joined(separator: ",") + "\n"
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0, writeAll(fd, Array(text.utf8)) else {
            Lifecycle.fail(tool: "loadgen", message: "cannot write \(path): \(errnoDescription(errno))")
        }
        close(fd)
    }


    private static func timestamp() -> String {
        Date().ISO8601Format()
    }
}
