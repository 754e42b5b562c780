import EchoProtocol
import Foundation

/// One run of `local`, `pingpong` or `tasks`: the article's lines, or the same as JSON.
struct HandoffReport: Codable, Equatable {
    var mode: String
    /// Where the tasks ran (`tasks --executor loop` only; absent for the default executor).
    var executor: String?
    /// Counter increments on one thread (`local` only).
    var operations: Int?
    /// Passes of the turn from one party to the other (`pingpong`, `tasks`): 2 × roundTrips.
    var handoffs: Int?
    /// Times party A got the turn back from party B (`pingpong`, `tasks`).
    var roundTrips: Int?
    var elapsedMilliseconds: Double
    /// Elapsed time divided by operations or handoffs.
    var averageNanoseconds: Double
    var voluntaryContextSwitches: Int
    var involuntaryContextSwitches: Int
    var userSeconds: Double
    var systemSeconds: Double

    init(mode: String, operations: Int? = nil, handoffs: Int? = nil, roundTrips: Int? = nil, measured: Measured) {
        self.mode = mode
        self.operations = operations
        self.handoffs = handoffs
        self.roundTrips = roundTrips
        let count = Double(operations ?? handoffs ?? 1)
        elapsedMilliseconds = Double(measured.nanoseconds) / 1e6
        averageNanoseconds = Double(measured.nanoseconds) / max(count, 1)
        voluntaryContextSwitches = measured.usage.voluntaryContextSwitches
        involuntaryContextSwitches = measured.usage.involuntaryContextSwitches
        userSeconds = measured.usage.userSeconds
        systemSeconds = measured.usage.systemSeconds
    }

    /// The article's format, one fact per line.
    var lines: [String] {
        var lines = ["mode: \(mode)"]
        if let executor { lines.append("executor: \(executor)") }
        if let operations { lines.append("operations: \(operations)") }
        if let handoffs { lines.append("handoffs: \(handoffs)") }
        lines.append("elapsed: \(TextFormat.fixed(elapsedMilliseconds, 3)) ms")
        lines.append("average \(operations != nil ? "operation" : "handoff"): \(TextFormat.fixed(averageNanoseconds, 1)) ns")
        lines.append("voluntary context switches: \(voluntaryContextSwitches)")
        lines.append("involuntary context switches: \(involuntaryContextSwitches)")
        return lines
    }
}

/// Wall time and resource usage of one measured interval.
struct Measured {
    var nanoseconds: Int64
    var usage: ResourceUsage
}

/// A point to measure from: monotonic time and getrusage, taken together.
struct Stopwatch {
    private let startTime: ContinuousClock.Instant
    private let startUsage: ResourceUsage

    init() {
        startUsage = ResourceUsage.ofSelf()
        startTime = ContinuousClock.now
    }

    func stop() -> Measured {
        let elapsed = ContinuousClock.now - startTime
        let usage = ResourceUsage.ofSelf().since(startUsage)
        let (seconds, attoseconds) = elapsed.components
        return Measured(nanoseconds: seconds * 1_000_000_000 + attoseconds / 1_000_000_000, usage: usage)
    }
}

/// `value` with exactly `digits` decimals.
/// Prints a report as lines or as one line of JSON.
func emit<Report: Encodable>(_ report: Report, lines: [String], json: Bool) {
    if json {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = (try? encoder.encode(report)) ?? Data("{}".utf8)
        Lifecycle.printLine(String(decoding: data, as: UTF8.self))
    } else {
        for line in lines { Lifecycle.printLine(line) }
    }
}
