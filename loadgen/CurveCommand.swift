#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import EchoProtocol
import Foundation

extension Loadgen {
    struct Curve: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Latency against offered load: open-loop steps until the server saturates.",
            discussion: """
                Each step is `run --rate R` at the same population (a fresh set of connections each time): \
                the offered and achieved rate, p50/p90/p99/p99.9/max, server and client CPU. --rates auto \
                doubles the rate from --start-rate until a step achieves less than 0.95 × offered or its p99 \
                exceeds --p99-limit, then bisects; the answer is the highest rate that met the bound. Example:
                  loadgen curve --target 127.0.0.1:7007 -c 1000 --size 64 --rates auto --cpus 1
                """)

        @OptionGroup(title: "Connections") var connection: ConnectionOptions

        @Option(parsing: .unconditional, help: ArgumentHelp("Bytes per message (K, M are powers of 1024) (default: 64).", valueName: "bytes"),
                transform: OptionValue.size("--size", maximum: ByteCount.maxBufferSize))
        var size: Int = 64

        @Option(parsing: .unconditional, help: ArgumentHelp("Offered rates in msgs/s, comma-separated (10k, 20000, 1.5M: powers of 1000), or 'auto'.", valueName: "list"))
        var rates: String = "auto"

        @Option(parsing: .unconditional, help: ArgumentHelp("With auto: the first rate (default: 1000).", valueName: "msgs/s"),
                transform: OptionValue.rate("--start-rate"))
        var startRate: Double = 1000

        @Option(parsing: .unconditional, help: ArgumentHelp("The latency bound a step must meet (default: 10ms).", valueName: "duration"),
                transform: OptionValue.positiveDuration("--p99-limit"))
        var p99Limit: Duration = .milliseconds(10)

        @Option(parsing: .unconditional, help: ArgumentHelp("Measured time per step (default: 5s).", valueName: "duration"),
                transform: OptionValue.positiveDuration("--duration"))
        var duration: Duration = .seconds(5)

        @Option(parsing: .unconditional, help: ArgumentHelp("Unmeasured load before each step (default: 1s).", valueName: "duration"),
                transform: OptionValue.duration("--warmup"))
        var warmup: Duration = .seconds(1)

        @Option(parsing: .unconditional, help: ArgumentHelp("Also write each step's distribution as FILE with the rate added (curve.hgrm → curve-20000.hgrm).", valueName: "file"))
        var percentiles: String?

        @OptionGroup(title: "Open loop") var spinning: SpinOption

        @Flag(help: "Print one JSON object on stdout instead of the table.")
        var json = false

        @Option(
            parsing: .unconditional,
            help: ArgumentHelp("Append one CSV row per step to this file, as each step ends (a header first when the file is new).", valueName: "file"))
        var csv: String?

        static let csvHeader = [
            "time", "target", "connections", "size", "offered", "achieved", "p50_us", "p90_us", "p99_us", "p999_us", "max_us",
            "server_cpu_percent", "client_cpu_percent", "errors", "status",
        ]

        static func csvRow(_ step: CurveStep, target: String, connections: Int, size: Int) -> [String] {
            let l = step.latencyMicroseconds
            return [
                Date().ISO8601Format(), target, String(connections), String(size), TextFormat.trimmed(step.offered),
                TextFormat.trimmed(step.achieved), TextFormat.trimmed(l.p50), TextFormat.trimmed(l.p90), TextFormat.trimmed(l.p99),
                TextFormat.trimmed(l.p999), TextFormat.trimmed(l.max), step.serverCPUPercent.map(TextFormat.trimmed) ?? "",
                TextFormat.trimmed(step.clientCPUPercent), String(step.errors), step.status,
            ]
        }

        @OptionGroup(title: "Output") var progress: ProgressOption

        func validate() throws {
            _ = try parsedRates()
            guard duration <= .seconds(3600) else { throw ValidationError("--duration is at most 1h, got \(duration.shortDescription)") }
            if let percentiles { try OutputPaths.checkFile(Self.path(percentiles, rate: startRate), option: "--percentiles") }
            if let csv { try OutputPaths.checkCSV(csv, header: Self.csvHeader, kind: "curve") }
        }

        /// `auto` → []; `10k,20000,1.5M` → rates (the count grammar, `CountText`).
        func parsedRates() throws -> [Double] {
            if rates == "auto" { return [] }
            return try rates.split(separator: ",", omittingEmptySubsequences: false).map { part in
                try OptionValue.rate("--rates")(String(part))
            }
        }

        func run() throws {
            let (settings, stop) = prepareClient { connection.settings }
            var curve = loadgen.Curve(connection: settings)
            curve.messageSize = size
            curve.duration = duration
            curve.warmup = warmup
            curve.rates = try parsedRates()
            curve.startRate = startRate
            curve.p99LimitMicroseconds = Double(p99Limit.nanoseconds) / 1000
            curve.spin = spinning.spin
            let result: CurveResult
            do {
                result = try curve.run(stop: stop) { step, run in
                    if !progress.noProgress { writeAll(STDERR_FILENO, Array((
                        "curve: \(Int(step.offered)) msgs/s offered → \(Int(step.achieved)) achieved, "
                            + "p99 \(TextFormat.fixed(step.latencyMicroseconds.p99, 0)) µs (send lateness p99 \(TextFormat.fixed(step.sendLatenessMicroseconds?.p99 ?? 0, 0)) µs): \(step.status)\n").utf8)) }
                    if let csv {
                        // Each step as it ends: an interrupted curve keeps the steps it finished.
                        try? Report.appendCSV(to: csv, header: Self.csvHeader,
                                              row: Self.csvRow(step, target: run.target, connections: settings.connections, size: size))
                    }
                    if let percentiles, let histogram = run.latencyHistogram {
                        PercentileFile.write(histogram, to: Self.path(percentiles, rate: step.offered))
                    }
                }
            } catch {
                ExitStatus.fail(error, interrupted: stop.isRequested)
            }
            Lifecycle.printLine(json ? Report.jsonText(result) : result.table)
            try ExitStatus.finish(
                succeeded: result.complete, interrupted: result.stopReason == ExitStatus.interruptedReason,
                why: result.stopReason.map { "the curve stopped: \($0)" })
        }

        /// `curve.hgrm` at 20000 → `curve-20000.hgrm`.
        static func path(_ path: String, rate: Double) -> String {
            let url = URL(fileURLWithPath: path)
            let ext = url.pathExtension
            let stem = ext.isEmpty ? path : String(path.dropLast(ext.count + 1))
            return "\(stem)-\(Int(rate))" + (ext.isEmpty ? "" : ".\(ext)")
        }
    }
}
