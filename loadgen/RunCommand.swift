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
                Every echoed byte is checked; any error makes the exit status 1. Example:
                  loadgen run --target 127.0.0.1:7007 -c 1000 --size 64 --duration 10s --cpus 1
                """)

        @OptionGroup(title: "Connections") var connection: ConnectionOptions

        @Option(
            help: ArgumentHelp("Bytes per message: 64, 1K, 16KiB (default 64).", valueName: "bytes"),
            transform: ByteCount.parse)
        var size: Int = 64

        @Option(
            help: ArgumentHelp("Messages in flight per connection (closed loop; default 1). With --rate: the most one connection may hold unanswered (default 64).", valueName: "n"),
            transform: { try TextValues.positiveCount($0, name: "--depth") })
        var depth: Int?

        @Option(
            help: ArgumentHelp("Total messages per second over all connections: an open loop instead of a closed one.", valueName: "msgs/s"),
            transform: { try TextValues.positiveRate($0, name: "--rate") })
        var rate: Double?

        @Option(help: ArgumentHelp("Length of the measured phase: 500ms, 10s, 2m (default 10s).", valueName: "duration"),
                transform: TextValues.duration)
        var duration: Duration = .seconds(10)

        @Option(help: ArgumentHelp("Load before measuring starts, not counted (default 1s).", valueName: "duration"),
                transform: TextValues.duration)
        var warmup: Duration = .seconds(1)

        @OptionGroup(title: "Open loop") var spinning: SpinOption

        @OptionGroup(title: "Output") var output: OutputOptions

        @Option(
            help: ArgumentHelp("Also write the latency distribution here, in HdrHistogram's .hgrm text format (µs).", valueName: "file"))
        var percentiles: String?

        func validate() throws {
            guard (1...ByteCount.maxBufferSize).contains(size) else {
                throw ValidationError("--size must be 1 B...64 MiB, got \(size)")
            }
            if let depth, depth > LoadRun.maxDepth {
                throw ValidationError("--depth must be 1...\(LoadRun.maxDepth), got \(depth)")
            }
            guard duration > .zero else { throw ValidationError("--duration must be above 0, e.g. 10s") }
            guard duration <= .seconds(24 * 3600), warmup <= .seconds(3600) else {
                throw ValidationError("--duration is at most 24h and --warmup at most 1h")
            }
        }

        func run() throws {
            let result = measure(connection, output) { settings, progress, stop throws(StartupError) in
                try LoadRun(connection: settings, messageSize: size, depth: depth, rate: rate, duration: duration,
                            warmup: warmup, spin: spinning.spin).run(progress: progress, stop: stop)
            }
            if let percentiles, let histogram = result.latencyHistogram {
                PercentileFile.write(histogram, to: percentiles)
            }
            try Report.emit(result, json: output.json, csv: output.csv)
            if !result.succeeded { throw ExitCode(1) }
        }
    }
}
