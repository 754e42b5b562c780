import EchoProtocol
import Foundation
import Histogram

/// `loadgen curve`: latency against offered load. Open-loop steps (`run --rate`, coordinated
/// omission corrected) at a fixed population, each a fresh run; per step the offered and achieved
/// rate and the percentiles. With `auto` the rate doubles from `start` until a step misses the bound
/// (achieved below 0.95 × offered, or p99 above the limit), then bisects between the last rate that
/// met it and the first that did not; the answer is the highest rate that met it.
struct Curve {
    var connection: ConnectionSettings
    var messageSize = 64
    var duration: Duration = .seconds(5)
    var warmup: Duration = .seconds(1)
    /// Fixed rates, in order; empty for `auto`.
    var rates: [Double] = []
    var startRate = 1000.0
    var p99LimitMicroseconds = 10_000.0
    var bisections = 4
    /// Client loops poll without sleeping (`--spin`).
    var spin = false
    /// Doubling stops here at the latest, so the curve always ends.
    static let maximumRate = 20_000_000.0

    /// Runs the steps; `stepDone` sees each as it ends. Stops at the first step with errors or one
    /// that was interrupted (it is kept, and the result says so).
    func run(stop: StopRequest? = nil, stepDone: (CurveStep, LoadResult) -> Void = { _, _ in })
        throws(StartupError) -> CurveResult
    {
        var steps: [CurveStep] = []
        var failedRun: String? = nil
        func measure(_ rate: Double) throws(StartupError) -> CurveStep? {
            let result = try LoadRun(connection: connection, messageSize: messageSize, depth: nil, rate: rate,
                                     duration: duration, warmup: warmup, spin: spin).run(stop: stop)
            let step = CurveStep(offered: rate, result: result, p99LimitMicroseconds: p99LimitMicroseconds)
            steps.append(step)
            stepDone(step, result)
            if !result.succeeded {
                failedRun = result.stopReason ?? result.errors.firstError ?? "errors at \(Int(rate)) msgs/s"
                return nil
            }
            return step
        }

        if !rates.isEmpty {
            for rate in rates { guard try measure(rate) != nil else { break } }
        } else {
            var good: Double? = nil
            var bad: Double? = nil
            var rate = startRate
            while rate <= Self.maximumRate {
                guard let step = try measure(rate) else { break }
                if step.metBound { good = rate } else { bad = rate; break }
                rate *= 2
            }
            if failedRun == nil, var low = good, var high = bad {
                for _ in 0..<bisections {
                    let middle = ((low + high) / 2).rounded()
                    guard middle > low, middle < high, let step = try measure(middle) else { break }
                    if step.metBound { low = middle } else { high = middle }
                }
            }
        }
        let best = steps.filter(\.metBound).map(\.offered).max()
        return CurveResult(
            target: connection.target.description,
            settings: .init(
                connections: connection.connections, messageSize: messageSize, durationSeconds: duration.seconds,
                warmupSeconds: warmup.seconds, rates: rates.isEmpty ? nil : rates, p99LimitMicroseconds: p99LimitMicroseconds,
                spin: spin ? true : nil),
            steps: steps, highestRateWithinBound: best, complete: failedRun == nil, stopReason: failedRun,
            provenance: .current())
    }
}

/// One rate of a curve.
struct CurveStep: Codable, Sendable, Equatable {
    var offered: Double
    var achieved: Double
    var latencyMicroseconds: LatencyFigures
    /// How late the client sent against the schedule (`LoadResult.sendLatenessMicroseconds`).
    var sendLatenessMicroseconds: LatencyFigures?
    var clientWasLate: Bool?
    var serverCPUPercent: Double?
    var serverCPUMicrosecondsPerMessage: Double?
    var clientCPUPercent: Double
    var errors: Int
    /// Achieved at least 0.95 × offered, and p99 within the limit.
    var metBound: Bool
    /// `met`, `missed`, `failed` (errors, or every connection lost) or `interrupted` (cut short by
    /// Ctrl-C: its figures are partial and say nothing about the bound).
    var status: String

    init(offered: Double, result: LoadResult, p99LimitMicroseconds: Double) {
        self.offered = offered
        achieved = result.messagesPerSecond
        latencyMicroseconds = result.latencyMicroseconds
        sendLatenessMicroseconds = result.sendLatenessMicroseconds
        clientWasLate = result.clientWasLate
        serverCPUPercent = result.server?.cpuPercent
        serverCPUMicrosecondsPerMessage = result.server?.cpuMicrosecondsPerMessage
        clientCPUPercent = result.client.cpuPercent
        errors = result.errors.total
        metBound = result.succeeded && achieved >= 0.95 * offered && latencyMicroseconds.p99 <= p99LimitMicroseconds
        status = result.stopReason == ExitStatus.interruptedReason ? "interrupted"
            : !result.succeeded ? "failed" : metBound ? "met" : "missed"
    }
}

/// What `loadgen curve --json` prints.
struct CurveResult: Codable, Sendable, Equatable {
    var schemaVersion = 1
    var mode = "curve"
    var target: String
    var settings: Settings
    var steps: [CurveStep]
    /// The highest offered rate whose step met the bound; nil if none did.
    var highestRateWithinBound: Double?
    var complete: Bool
    var stopReason: String?
    var provenance: Provenance?

    struct Settings: Codable, Sendable, Equatable {
        var connections: Int
        var messageSize: Int
        var durationSeconds: Double
        var warmupSeconds: Double
        /// The fixed rates asked for; nil for `auto`.
        var rates: [Double]?
        var p99LimitMicroseconds: Double
        var spin: Bool? = nil
    }

    /// A table a person reads, then the answer.
    var table: String {
        var lines = ["offered msgs/s  achieved msgs/s    p50 µs    p90 µs    p99 µs  p99.9 µs    max µs  late p99 µs  late max µs  srv CPU%  cli CPU%  bound"]
        for step in steps {
            let l = step.latencyMicroseconds
            let cells = [
                pad(TextFormat.groupedFixed(step.offered, 0), 14), pad(TextFormat.groupedFixed(step.achieved, 0), 16),
                pad(TextFormat.groupedFixed(l.p50, 0), 9), pad(TextFormat.groupedFixed(l.p90, 0), 9), pad(TextFormat.groupedFixed(l.p99, 0), 9),
                pad(TextFormat.groupedFixed(l.p999, 0), 9), pad(TextFormat.groupedFixed(l.max, 0), 9),
                pad(step.sendLatenessMicroseconds.map { TextFormat.groupedFixed($0.p99, 0) } ?? "-", 11),
                pad(step.sendLatenessMicroseconds.map { TextFormat.groupedFixed($0.max, 0) } ?? "-", 11),
                pad(step.serverCPUPercent.map { TextFormat.fixed($0, 0) } ?? "-", 8), pad(TextFormat.fixed(step.clientCPUPercent, 0), 8),
                "  " + step.status + (step.clientWasLate == true ? ", client late" : ""),
            ]
            lines.append(cells.joined(separator: " "))
        }
        let limit = TextFormat.fixed(settings.p99LimitMicroseconds / 1000, 1)
        let partial = stopReason == ExitStatus.interruptedReason ? " (interrupted: a partial curve)" : ""
        lines.append((highestRateWithinBound.map {
            "highest rate within p99 ≤ \(limit) ms and ≥ 95% achieved: \(TextFormat.grouped(Int($0))) msgs/s"
        } ?? "no rate met p99 ≤ \(limit) ms and ≥ 95% achieved") + partial)
        if steps.contains(where: { $0.clientWasLate == true }) {
            lines.append("client late: the step's send lateness p99 was over a quarter of its latency p99, so much of that latency is loadgen's own\(settings.spin == true ? "" : " (try --spin)")")
        }
        if let stopReason { lines.append("stopped early: \(stopReason)") }
        return lines.joined(separator: "\n")
    }

    private func pad(_ text: String, _ width: Int) -> String {
        String(repeating: " ", count: max(0, width - text.count)) + text
    }
}
