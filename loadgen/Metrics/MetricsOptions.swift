import ArgumentParser
import EchoProtocol
import Foundation

/// `--metrics-port` and `--metrics-host`, for `run`, `idle` and `churn`.
struct MetricsOptions: ParsableArguments {
    @Option(parsing: .unconditional,
            help: ArgumentHelp("Serve Prometheus metrics at http://HOST:PORT/metrics while the command runs: messages, bytes, errors by kind, connections open, latency as a histogram. 0 picks a free port (printed on stderr).", valueName: "port"),
            transform: OptionValue.count("--metrics-port", in: 0...65535))
    var metricsPort: Int?

    @Option(parsing: .unconditional,
            help: ArgumentHelp("The address the metrics port listens on (default: 127.0.0.1; 0.0.0.0 for every interface).", valueName: "host"))
    var metricsHost: String?

    func validate() throws {
        if metricsHost != nil && metricsPort == nil { throw ValidationError("--metrics-host needs --metrics-port") }
    }

    /// Starts the endpoint when asked: the metrics to hand the engine and the server to stop after it.
    /// A port that cannot be opened ends the command with one line, before any connection is made.
    func start(mode: String) -> (LiveMetrics?, MetricsServer?) {
        guard let metricsPort else { return (nil, nil) }
        let metrics = LiveMetrics(mode: mode)
        do {
            let server = try MetricsServer(host: metricsHost ?? "127.0.0.1", port: metricsPort, metrics: metrics)
            writeAll(STDERR_FILENO, Array("loadgen: metrics at http://\(server.address)/metrics\n".utf8))
            return (metrics, server)
        } catch {
            Lifecycle.fail(tool: "loadgen", message: "--metrics-port: \(error.message)")
        }
    }
}
