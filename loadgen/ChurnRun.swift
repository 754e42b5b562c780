#if canImport(Glibc)
import Glibc
#endif
import EchoProtocol
import Histogram
import NetPoller

/// `loadgen churn`: the article's creation cost. Each connection's life is connect → one message,
/// every byte verified → close; `concurrency` lives are in flight, and one starts as another ends.
/// One epoll loop on one thread, as the run engine's loops are; never a thread per connection.
struct ChurnRun {
    var connection: ConnectionSettings
    var concurrency = 64
    var messageSize = 16
    var duration: Duration = .seconds(10)
    var warmup: Duration = .seconds(1)
    /// A life that has not ended after this long is counted as timed out and closed.
    var lifeTimeout: Duration = .seconds(5)
    /// `--metrics-port`: lives (as messages), failures by kind, lives open, life latency.
    var metrics: LiveMetrics? = nil

    enum Failure: String, ErrorKind {
        case refused, reset, timedOut, mismatch, short

        var words: String { self == .timedOut ? "timed out" : rawValue }
        var metricName: String { rawValue }
    }

    /// `progress`, when given, gets a live line once a second: elapsed time, phase, lives per second
    /// over the last second, errors so far.
    func run(stop: StopRequest? = nil, progress: ((String) -> Void)? = nil) throws(StartupError) -> ChurnResult {
        guard concurrency >= 1, messageSize >= 1, messageSize <= 64 * 1024 else {
            throw StartupError("churn needs a concurrency of at least 1 and a size of 1 B...64 KiB")
        }
        try Preflight.checkReachable(connection)
        let (probe, probeNote) = ServerProbe.choose(
            statsAddress: connection.serverStats, pid: connection.serverPID, target: connection.target)
        let begin = monotonicNanoseconds()
        let measureFrom = begin + warmup.nanoseconds
        let end = measureFrom + duration.nanoseconds
        let engine = try ChurnEngine(
            connection: connection, concurrency: concurrency, messageSize: messageSize, lifeTimeout: lifeTimeout,
            metrics: metrics, end: end)
        var serverStart: ServerSnapshot? = nil
        var serverEnd: ServerSnapshot? = nil
        var serverNote = probeNote
        var serverRead = ServerReadCost()
        var clientStart = ResourceUsage.ofSelf()

        engine.startAll(now: begin)
        var lastTick = begin
        var livesAtTick = 0
        while engine.stopReason == nil {
            let now = monotonicNanoseconds()
            if let progress, now - lastTick >= 1_000_000_000 {
                let perSecond = Double(engine.livesEnded - livesAtTick) / (Double(now - lastTick) / 1e9)
                let errorCount = engine.errors.total
                progress("\(TextFormat.fixed(Double(now - begin) / 1e9, 0)) s  \(engine.measuring ? "measuring" : "warm-up")  \(TextFormat.grouped(Int(perSecond))) lives/s  \(TextFormat.grouped(engine.completed)) measured  errors \(errorCount)")
                (lastTick, livesAtTick) = (now, engine.livesEnded)
            }
            if metrics != nil { engine.publish(now: now) }
            if !engine.measuring && now >= measureFrom {
                engine.beginMeasuring()
                clientStart = ResourceUsage.ofSelf()
                serverStart = LoadRun.read(probe, note: &serverNote, when: "at the start of the measured phase",
                                           took: &serverRead)
            }
            if now >= end { break }
            if let stop, stop.isRequested {
                engine.stopReason = ExitStatus.interruptedReason
                break
            }
            engine.poll()
        }
        let measuredTo = monotonicNanoseconds()
        if metrics != nil { engine.publish(now: measuredTo, force: true) }  // the final totals
        let clientUsage = ResourceUsage.ofSelf().since(clientStart)
        if serverStart != nil {
            serverEnd = LoadRun.read(probe, note: &serverNote, when: "at the end of the measured phase", took: &serverRead)
        }
        engine.finishAll()
        let completed = engine.completed
        let seconds = engine.measuring ? Double(measuredTo - measureFrom) / 1e9 : 0
        var server: ServerFigures? = nil
        if let probe, let serverStart, let serverEnd {
            server = ServerFigures(source: probe.method, from: serverStart, to: serverEnd, seconds: seconds, messages: completed,
                                   read: serverRead)
            serverRead.note(window: seconds, countedBy: serverEnd.contextSwitchesFrom, into: &serverNote)
        }
        let client = ClientFigures(loops: 1, usage: clientUsage, seconds: seconds, messages: completed)
        return ChurnResult(
            target: connection.target.description,
            settings: .init(concurrency: concurrency, messageSize: messageSize, durationSeconds: duration.seconds,
                            warmupSeconds: warmup.seconds, sourceAddresses: connection.sourceAddresses.count, cpus: connection.cpus),
            measuredSeconds: seconds, lives: completed, livesPerSecond: seconds > 0 ? Double(completed) / seconds : 0,
            latencyMicroseconds: LatencyFigures(engine.latency), errors: engine.errors,
            server: server, serverNote: serverNote, client: client,
            clientWasTheBottleneck: client.cpuPercent >= 90, complete: engine.stopReason == nil, stopReason: engine.stopReason,
            latencyHistogram: engine.latency, provenance: .current())
    }
}

/// What `loadgen churn --json` prints. Per-connection figures are per completed life: the server's
/// `cpuMicrosecondsPerMessage` there is its CPU per connection.
struct ChurnResult: Codable, Sendable, Equatable {
    var schemaVersion = 1
    var mode = "churn"
    var target: String
    var settings: Settings
    var measuredSeconds: Double
    /// Lives that ended well (every byte back) within the measured phase.
    var lives: Int
    var livesPerSecond: Double
    /// From connect() to the last byte back.
    var latencyMicroseconds: LatencyFigures
    var errors: Errors
    var server: ServerFigures?
    var serverNote: String?
    var client: ClientFigures
    /// The client used ≥ 90% of a CPU: the figures may be the client's limit, not the server's.
    var clientWasTheBottleneck: Bool
    var complete: Bool
    var stopReason: String?
    var latencyHistogram: Histogram<UInt64>?
    var provenance: Provenance?

    struct Settings: Codable, Sendable, Equatable {
        var concurrency: Int
        var messageSize: Int
        var durationSeconds: Double
        var warmupSeconds: Double
        var sourceAddresses: Int
        var cpus: [Int]
    }

    typealias Errors = ErrorTally<ChurnRun.Failure>

    var succeeded: Bool { complete && errors.total == 0 && lives > 0 }

    /// Why it did not succeed, in one line for stderr; nil when it did.
    var failureLine: String? {
        if succeeded { return nil }
        return errors.failureLine ?? stopReason
    }

    var table: String {
        let l = latencyMicroseconds
        var lines = [
            "churn \(target): \(settings.concurrency) lives in flight, \(settings.messageSize) B each, \(TextFormat.fixed(measuredSeconds, 1)) s measured",
            "lives: \(TextFormat.grouped(lives))  (\(TextFormat.grouped(Int(livesPerSecond))) per second)",
            "life latency: \(Report.latencySummary(l))",
            "errors: \(errors.everyKind)"
                + (errors.firstError.map { "; first: \($0)" } ?? ""),
        ]
        if let server {
            lines.append("server: \(TextFormat.fixed(server.cpuMicrosecondsPerMessage, 1)) µs CPU and \(TextFormat.fixed(server.contextSwitchesPerMessage, 2)) context switches per connection")
        } else if let serverNote {
            lines.append("server: \(serverNote)")
        }
        lines.append("client: \(TextFormat.fixed(client.cpuMicrosecondsPerMessage, 1)) µs CPU per connection, \(TextFormat.fixed(client.cpuPercent, 0))% of a CPU"
            + (clientWasTheBottleneck ? " — the client was the bottleneck" : ""))
        if let stopReason { lines.append("stopped early: \(stopReason)") }
        return lines.joined(separator: "\n")
    }
}
