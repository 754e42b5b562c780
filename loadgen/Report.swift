#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import EchoProtocol
import Foundation

/// The live line on stderr, rewritten once a second; only on a terminal.
final class LiveLine: Sendable {
    let enabled: Bool

    init(enabled: Bool) { self.enabled = enabled && isatty(STDERR_FILENO) == 1 }

    var callback: ((LiveFigures) -> Void)? {
        guard enabled else { return nil }
        return { figures in self.show(figures) }
    }

    func show(_ live: LiveFigures) {
        var line = "\(Report.decimal(live.elapsedSeconds, 0)) s  \(live.phase)  \(Report.grouped(live.open))/\(Report.grouped(live.requested)) "
        line += live.phase == "connecting" ? "connected" : "open"
        if live.phase != "connecting" && live.phase != "echoing" && live.phase != "holding" {
            line += "  \(Report.grouped(Int(live.messagesPerSecond))) msgs/s  p99 \(live.p99Microseconds > 0 ? Report.decimal(live.p99Microseconds, 0) + " µs" : "-")"
        }
        line += "  errors \(live.errors)"
        writeAll(STDERR_FILENO, Array(("\r\u{1B}[K" + line).utf8))
    }

    func clear() {
        if enabled { writeAll(STDERR_FILENO, Array("\r\u{1B}[K".utf8)) }
    }
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

    static func jsonText(_ value: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    // MARK: Tables

    static func table(_ result: LoadResult) -> String {
        let settings = result.settings
        let shape = settings.rate.map { "open loop at \(grouped(Int($0))) msgs/s" } ?? "depth \(settings.depth)"
        var lines = [
            "loadgen run: \(result.target), \(grouped(settings.connections)) connections × \(ByteCount.describe(settings.messageSize)), \(shape), \(settings.threads) loop\(settings.threads == 1 ? "" : "s"); \(decimal(result.measuredSeconds, 2)) s measured after \(decimal(settings.warmupSeconds, 1)) s warm-up",
            row("throughput", "\(grouped(result.messages)) messages   \(grouped(Int(result.messagesPerSecond))) msgs/s   \(decimal(result.bytesPerSecond / 1e6, 1)) MB/s each way"),
        ]
        let latency = result.latencyMicroseconds
        lines.append(row("latency µs", "p50 \(decimal(latency.p50, 1))   p90 \(decimal(latency.p90, 1))   p99 \(decimal(latency.p99, 1))   p99.9 \(decimal(latency.p999, 1))   max \(decimal(latency.max, 1))"))
        let fairness = result.fairness
        lines.append(row("fairness", "msgs per connection min \(grouped(fairness.minimum))   median \(grouped(fairness.median))   max \(grouped(fairness.maximum))   Jain \(decimal(fairness.jainIndex, 4))"))
        if let server = result.server {
            lines.append(row("server", "pid \(server.pid) \(server.variant) (\(server.source))   CPU \(decimal(server.cpuSeconds, 2)) s (\(decimal(server.cpuPercent, 0))%)   \(decimal(server.cpuMicrosecondsPerMessage, 2)) µs/msg"))
            lines.append(row("", "context switches \(decimal(server.contextSwitchesPerMessage, 4))/msg (voluntary \(grouped(server.voluntaryContextSwitches)), involuntary \(grouped(server.involuntaryContextSwitches)))\(server.contextSwitchesUndercounted ? ", a lower bound: server threads exited meanwhile" : "")"))
            lines.append(row("", "RSS \(grouped(server.rssKiB)) KiB   HWM \(grouped(server.hwmKiB)) KiB   VmSize \(grouped(server.vmSizeKiB)) KiB   threads \(server.threads)   fds \(grouped(server.openFDs))"))
        } else {
            lines.append(row("server", result.serverNote ?? "no figures"))
        }
        if result.server != nil, let note = result.serverNote { lines.append(row("", note)) }
        let client = result.client
        lines.append(row("client", "CPU \(decimal(client.cpuSeconds, 2)) s (\(decimal(client.cpuPercent, 0))%)   \(decimal(client.cpuMicrosecondsPerMessage, 2)) µs/msg   context switches \(decimal(client.contextSwitchesPerMessage, 4))/msg (voluntary \(grouped(client.voluntaryContextSwitches)), involuntary \(grouped(client.involuntaryContextSwitches)))"))
        lines.append(row("connections", "\(grouped(result.connections.established)) of \(grouped(result.connections.requested)) up in \(decimal(result.connections.connectSeconds, 2)) s, at most \(grouped(result.connections.peakOpen)) open at once\(overflowNote(result.connections))"))
        lines.append(row("errors", result.errors.summary))
        if let first = result.errors.firstError { lines.append(row("first error", first)) }
        if result.unsentMessages > 0 {
            lines.append(row("behind", "\(grouped(result.unsentMessages)) scheduled messages never sent: the load fell behind the rate (see the CPU figures for who was slow)"))
        }
        if let reason = result.stopReason { lines.append(row("stopped", "\(reason): partial results")) }
        return lines.joined(separator: "\n")
    }

    static func table(_ result: IdleResult) -> String {
        var lines = [
            "loadgen idle: \(result.target), \(grouped(result.connections.requested)) connections, one \(ByteCount.describe(result.settings.messageSize)) echo each, held \(decimal(result.settings.holdSeconds, 1)) s",
            row("connections", "\(grouped(result.connections.established)) up in \(decimal(result.connections.connectSeconds, 2)) s, \(grouped(result.echoed)) echoed, \(grouped(result.heldOpen)) open when read\(overflowNote(result.connections))"),
        ]
        if let server = result.server {
            lines.append(row("server", "pid \(server.pid) \(server.variant) (\(server.source))"))
            lines.append(row("RSS", "\(grouped(server.before.rssKiB)) KiB -> \(grouped(server.after.rssKiB)) KiB   \(decimal(server.rssPerConnectionKiB, 2)) KiB per connection"))
            lines.append(row("VmSize", "\(grouped(server.before.vmSizeKiB)) KiB -> \(grouped(server.after.vmSizeKiB)) KiB   \(decimal(server.vmSizePerConnectionKiB, 1)) KiB per connection"))
            lines.append(row("", "threads \(server.before.threads) -> \(server.after.threads)   fds \(grouped(server.before.openFDs)) -> \(grouped(server.after.openFDs))   HWM \(grouped(server.after.hwmKiB)) KiB"))
        } else {
            lines.append(row("server", result.serverNote ?? "no figures"))
        }
        if result.server != nil, let note = result.serverNote { lines.append(row("", note)) }
        lines.append(row("client", "CPU \(decimal(result.client.cpuSeconds, 2)) s   max RSS \(grouped(result.client.maxRSSKiB)) KiB"))
        lines.append(row("errors", result.errors.summary))
        if let first = result.errors.firstError { lines.append(row("first error", first)) }
        if let reason = result.stopReason { lines.append(row("stopped", "\(reason): partial results")) }
        return lines.joined(separator: "\n")
    }

    private static func overflowNote(_ connections: ConnectionFigures) -> String {
        connections.listenOverflows > 0
            ? "; \(grouped(connections.listenOverflows)) listen-queue overflows on this machine meanwhile" : ""
    }

    private static func row(_ label: String, _ text: String) -> String {
        "  " + label.padding(toLength: 13, withPad: " ", startingAt: 0) + text
    }

    static func grouped(_ value: Int) -> String {
        let digits = String(value.magnitude)
        var out = ""
        for (index, digit) in digits.enumerated() {
            if index > 0 && (digits.count - index) % 3 == 0 { out.append(",") }
            out.append(digit)
        }
        return (value < 0 ? "-" : "") + out
    }

    static func decimal(_ value: Double, _ places: Int) -> String {
        String(format: "%.\(places)f", value)
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
            "\(r.settings.threads)", "\(r.settings.durationSeconds)", decimal(r.measuredSeconds, 3), "\(r.messages)",
            decimal(r.messagesPerSecond, 1), decimal(r.latencyMicroseconds.p50, 1), decimal(r.latencyMicroseconds.p90, 1),
            decimal(r.latencyMicroseconds.p99, 1), decimal(r.latencyMicroseconds.p999, 1),
            decimal(r.latencyMicroseconds.max, 1), decimal(r.fairness.jainIndex, 4), "\(r.errors.total)",
            r.errors.firstError ?? "", r.server.map { "\($0.pid)" } ?? "",
            r.server.map { decimal($0.cpuPercent, 1) } ?? "", r.server.map { decimal($0.cpuMicrosecondsPerMessage, 3) } ?? "",
            r.server.map { decimal($0.contextSwitchesPerMessage, 4) } ?? "", r.server.map { "\($0.rssKiB)" } ?? "",
            r.server.map { "\($0.threads)" } ?? "", decimal(r.client.cpuPercent, 1),
            decimal(r.client.cpuMicrosecondsPerMessage, 3), decimal(r.client.contextSwitchesPerMessage, 4),
            "\(r.complete)",
        ]
    }

    static let idleCSVHeader = [
        "time", "target", "connections", "established", "echoed", "holdSeconds", "serverPid", "serverRSSBeforeKiB",
        "serverRSSAfterKiB", "rssPerConnectionKiB", "vmSizePerConnectionKiB", "serverThreadsAfter", "serverFDsAfter",
        "errors", "firstError", "complete",
    ]

    static func idleCSVRow(_ r: IdleResult) -> [String] {
        [
            timestamp(), r.target, "\(r.connections.requested)", "\(r.connections.established)", "\(r.echoed)",
            "\(r.settings.holdSeconds)", r.server.map { "\($0.pid)" } ?? "",
            r.server.map { "\($0.before.rssKiB)" } ?? "", r.server.map { "\($0.after.rssKiB)" } ?? "",
            r.server.map { decimal($0.rssPerConnectionKiB, 3) } ?? "",
            r.server.map { decimal($0.vmSizePerConnectionKiB, 2) } ?? "", r.server.map { "\($0.after.threads)" } ?? "",
            r.server.map { "\($0.after.openFDs)" } ?? "", "\(r.errors.total)", r.errors.firstError ?? "",
            "\(r.complete)",
        ]
    }

    /// Appends `row`, writing `header` first if the file is new or empty. A file whose header differs
    /// holds another kind of row: refuse rather than mix them.
    static func appendCSV(to path: String, header: [String], row: [String]) throws {
        let headerLine = header.map(csvField).joined(separator: ",")
        let existing = readText(path) ?? ""
        var text = ""
        if existing.isEmpty {
            text = headerLine + "\n"
        } else if existing.split(separator: "\n", maxSplits: 1).first.map(String.init) != headerLine {
            Lifecycle.fail(tool: "loadgen", message: "\(path) holds rows of another kind (its header differs); give --csv another file")
        }
        text += row.map(csvField).joined(separator: ",") + "\n"
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0, writeAll(fd, Array(text.utf8)) else {
            Lifecycle.fail(tool: "loadgen", message: "cannot write \(path): \(errnoDescription(errno))")
        }
        close(fd)
    }

    static func csvField(_ text: String) -> String {
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    private static func timestamp() -> String {
        Date().ISO8601Format()
    }
}
