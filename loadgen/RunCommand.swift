#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import EchoProtocol

extension Loadgen {
    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Load a server with echo traffic and report throughput, latency, fairness and costs.",
            discussion: """
                Closed loop by default: every connection keeps --depth messages in flight. With --rate the load \
                is an open loop at that many messages per second in total, and latency counts from each \
                message's scheduled send time (coordinated omission corrected, as wrk2 does).
                Every echoed byte is checked; any error, or a run that measured no message, makes the exit \
                status 1 (130 when interrupted). Example:
                  loadgen run --target 127.0.0.1:7007 -c 1000 --size 64 --duration 10s --cpus 1
                """)

        @OptionGroup(title: "Connections") var connection: ConnectionOptions

        @Option(
            parsing: .unconditional, help: ArgumentHelp("Bytes per message: 64, 1K, 16KiB (K, M, G are powers of 1024) (default: 64).", valueName: "bytes"),
            transform: OptionValue.size("--size", maximum: ByteCount.maxBufferSize))
        var size: Int = 64

        @Option(
            parsing: .unconditional, help: ArgumentHelp("Messages in flight per connection (closed loop); with --rate, the most one connection may hold unanswered (default: 1; with --rate, 64).", valueName: "n"),
            transform: OptionValue.count("--depth", in: 1...LoadRun.maxDepth))
        var depth: Int?

        @Option(
            parsing: .unconditional, help: ArgumentHelp("Total messages per second over all connections (10k = 10000): an open loop instead of a closed one.", valueName: "msgs/s"),
            transform: OptionValue.rate("--rate"))
        var rate: Double?

        @Option(parsing: .unconditional, help: ArgumentHelp("Length of the measured phase: 500ms, 10s, 2m (default: 10s).", valueName: "duration"),
                transform: OptionValue.positiveDuration("--duration"))
        var duration: Duration = .seconds(10)

        @Option(parsing: .unconditional, help: ArgumentHelp("Load before measuring starts, not counted (default: 1s).", valueName: "duration"),
                transform: OptionValue.duration("--warmup"))
        var warmup: Duration = .seconds(1)

        @OptionGroup(title: "Open loop") var spinning: SpinOption

        @OptionGroup(title: "Output") var output: OutputOptions

        @OptionGroup(title: "Output") var progress: ProgressOption

        @OptionGroup(title: "Latency over time") var overTime: LatencyOverTimeOptions

        @Option(
            parsing: .unconditional, help: ArgumentHelp("Also write the latency distribution here, in HdrHistogram's .hgrm text format (µs).", valueName: "file"))
        var percentiles: String?

        func validate() throws {
            guard duration <= .seconds(24 * 3600), warmup <= .seconds(3600) else {
                throw ValidationError("--duration is at most 24h and --warmup at most 1h")
            }
            if let csv = output.csv { try OutputPaths.checkCSV(csv, header: Report.runCSVHeader, kind: "run") }
            if let percentiles { try OutputPaths.checkFile(percentiles, option: "--percentiles") }
            if let log = overTime.histogramLog { try OutputPaths.checkFile(log, option: "--histogram-log") }
            if let heatmap = overTime.heatmap { try OutputPaths.checkFile(heatmap, option: "--heatmap") }
        }

        @OptionGroup(title: "Live metrics") var metricsOptions: MetricsOptions

        func run() throws {
            let (metrics, metricsServer) = metricsOptions.start(mode: "run")
            defer { metricsServer?.stop() }
            let recording = overTime.recording()
            let result = measure(connection, progress) { settings, progress, stop throws(StartupError) in
                try LoadRun(connection: settings, messageSize: size, depth: depth, rate: rate, duration: duration,
                            warmup: warmup, spin: spinning.spin, intervals: recording, metrics: metrics)
                    .run(progress: progress, stop: stop)
            }
            let written = overTime.write(
                recording, title: "Latency over time: \(result.target), \(TextFormat.grouped(result.settings.connections)) connections",
                footer: [Report.table(result).split(separator: "\n").first.map(String.init) ?? ""])
            if let percentiles, let histogram = result.latencyHistogram {
                PercentileFile.write(histogram, to: percentiles)
            }
            try Report.emit(result, json: output.json, csv: output.csv)
            try ExitStatus.finish(
                succeeded: result.succeeded, interrupted: result.stopReason == ExitStatus.interruptedReason,
                why: NothingCompleted.reason(result) ?? result.failureLine)
            if !written { throw ExitCode(1) }
        }
    }
}
