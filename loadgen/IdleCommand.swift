import ArgumentParser
import EchoProtocol

extension Loadgen {
    struct Idle: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Open idle connections and report what each costs the server in memory.",
            discussion: """
                Reads the server (RSS, VmSize, threads, fds) before the first connection, opens -c connections \
                (at --connect-rate), echoes one message on each, holds them for --hold, reads the server again \
                and reports (RSS after - RSS before) / connections. --hold 30s leaves time to look at the server.
                Example:
                  loadgen idle --target 127.0.0.1:7007 -c 10000 --connect-rate 5000 --hold 30s
                """)

        @OptionGroup(title: "Connections") var connection: ConnectionOptions

        @Option(parsing: .unconditional, help: ArgumentHelp("Bytes of the one message echoed on each connection (K = 1024) (default: 16).", valueName: "bytes"),
                transform: OptionValue.size("--size", maximum: 65536))
        var size: Int = 16

        @Option(parsing: .unconditional, help: ArgumentHelp("How long to hold the connections open before reading the server (default: 1s).", valueName: "duration"),
                transform: OptionValue.duration("--hold"))
        var hold: Duration = .seconds(1)

        @OptionGroup(title: "Output") var output: OutputOptions

        @OptionGroup(title: "Output") var progress: ProgressOption

        func validate() throws {
            guard hold <= .seconds(24 * 3600) else { throw ValidationError("--hold is at most 24h") }
            if let csv = output.csv { try OutputPaths.checkCSV(csv, header: Report.idleCSVHeader, kind: "idle") }
        }

        @OptionGroup(title: "Live metrics") var metricsOptions: MetricsOptions

        func run() throws {
            let (metrics, metricsServer) = metricsOptions.start(mode: "idle")
            defer { metricsServer?.stop() }
            let result = measure(connection, progress) { settings, progress, stop throws(StartupError) in
                try IdleRun(connection: settings, messageSize: size, hold: hold, metrics: metrics).run(progress: progress, stop: stop)
            }
            try Report.emit(result, json: output.json, csv: output.csv)
            try ExitStatus.finish(
                succeeded: result.succeeded, interrupted: result.stopReason == ExitStatus.interruptedReason,
                why: result.failureLine)
        }
    }
}
