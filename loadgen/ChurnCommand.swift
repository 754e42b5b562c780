import ArgumentParser
import EchoProtocol
import Foundation

extension Loadgen {
    struct Churn: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Connection churn: lives of connect, one verified echo, close; lives per second and CPU per connection.",
            discussion: """
                --concurrency lives are in flight; one starts as another ends. Reports lives per second, the \
                life's latency (connect to last byte back), errors by kind (refused, reset, timed out, \
                mismatch, short), the server's CPU and context switches per connection and the client's CPU \
                per connection. Out of local ports (TIME_WAIT), it stops with one line naming the fix. Example:
                  loadgen churn --target 127.0.0.1:7007 --concurrency 64 --size 16 --duration 10s --cpus 1
                """)

        @OptionGroup(title: "Connections") var connection: TargetOptions

        @Option(parsing: .unconditional, help: ArgumentHelp("Lives in flight at once (default: 64).", valueName: "k"),
                transform: OptionValue.count("--concurrency", in: 1...16384))
        var concurrency: Int = 64

        @Option(parsing: .unconditional, help: ArgumentHelp("Bytes each life echoes (K = 1024) (default: 16).", valueName: "bytes"),
                transform: OptionValue.size("--size", maximum: 65536))
        var size: Int = 16

        @Option(parsing: .unconditional, help: ArgumentHelp("Measured time (default: 10s).", valueName: "duration"),
                transform: OptionValue.positiveDuration("--duration"))
        var duration: Duration = .seconds(10)

        @Option(parsing: .unconditional, help: ArgumentHelp("Unmeasured churn first (default: 1s).", valueName: "duration"),
                transform: OptionValue.duration("--warmup"))
        var warmup: Duration = .seconds(1)

        @Option(parsing: .unconditional, help: ArgumentHelp("Also write the life-latency distribution here (.hgrm, µs).", valueName: "file"))
        var percentiles: String?

        @Flag(help: "Print one JSON object on stdout instead of the summary.")
        var json = false

        @Option(parsing: .unconditional, help: ArgumentHelp("Append one CSV row per run to this file (a header first when the file is new).", valueName: "file"))
        var csv: String?

        @OptionGroup(title: "Output") var progress: ProgressOption

        static let csvHeader = [
            "time", "target", "concurrency", "size", "lives", "lives_per_second", "p50_us", "p99_us", "errors",
            "server_cpu_us_per_connection", "client_cpu_us_per_connection",
        ]

        func validate() throws {
            guard duration <= .seconds(24 * 3600), warmup <= .seconds(3600) else {
                throw ValidationError("--duration is at most 24h and --warmup at most 1h")
            }
            if let csv { try OutputPaths.checkCSV(csv, header: Self.csvHeader, kind: "churn") }
            if let percentiles { try OutputPaths.checkFile(percentiles, option: "--percentiles") }
        }

        @OptionGroup(title: "Live metrics") var metricsOptions: MetricsOptions

        func run() throws {
            let (settings, stop) = prepareClient { connection.settings(connections: concurrency) }
            let (metrics, metricsServer) = metricsOptions.start(mode: "churn")
            defer { metricsServer?.stop() }
            var churn = ChurnRun(connection: settings)
            churn.metrics = metrics
            churn.concurrency = concurrency
            churn.messageSize = size
            churn.duration = duration
            churn.warmup = warmup
            churn.lifeTimeout = settings.connectTimeout  // --connect-timeout bounds a life as it bounds a connection and its first echo
            let result: ChurnResult
            let live = TerminalLine(enabled: !progress.noProgress)
            do {
                result = try churn.run(stop: stop, progress: live.enabled ? { live.show($0) } : nil)
                live.clear()
            } catch {
                live.clear()
                ExitStatus.fail(error, interrupted: stop.isRequested)
            }
            if let percentiles, let histogram = result.latencyHistogram { PercentileFile.write(histogram, to: percentiles) }
            if let csv {
                try Report.appendCSV(
                    to: csv, header: Self.csvHeader,
                    row: [Date().ISO8601Format(), result.target, String(concurrency), String(size), String(result.lives),
                          TextFormat.trimmed(result.livesPerSecond), TextFormat.trimmed(result.latencyMicroseconds.p50),
                          TextFormat.trimmed(result.latencyMicroseconds.p99), String(result.errors.total),
                          result.server.map { TextFormat.trimmed($0.cpuMicrosecondsPerMessage) } ?? "",
                          TextFormat.trimmed(result.client.cpuMicrosecondsPerMessage)])
            }
            Lifecycle.printLine(json ? Report.jsonText(result) : result.table)
            try ExitStatus.finish(
                succeeded: result.succeeded, interrupted: result.stopReason == ExitStatus.interruptedReason,
                why: NothingCompleted.reason(result, lifeTimeout: churn.lifeTimeout) ?? result.failureLine)
        }
    }
}
