import Synchronization

/// What `--metrics-port` serves: the engines' running totals. Each publisher (a client loop, or churn's
/// one loop) hands in its own totals every ~100 ms; a scrape adds them up. Nothing is shared on the
/// hot path: a loop counts into its own `Tally` and copies it here under a lock ten times a second.
final class LiveMetrics: Sendable {
    /// Latency bucket bounds (seconds), Prometheus' `le`: 50 µs to 10 s, then +Inf.
    static let bucketBounds: [Double] = [
        0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
    ]
    static let bucketBoundsNanoseconds: [UInt64] = bucketBounds.map { UInt64(($0 * 1e9).rounded()) }
    static let publishEveryNanoseconds: UInt64 = 100_000_000

    /// One publisher's totals since it started.
    struct Tally: Sendable, Equatable {
        var messages = 0
        var bytes = 0
        var open = 0
        var errors: [String: Int] = [:]
        /// Per bucket, not cumulative; the last is above the largest bound.
        var buckets = [UInt64](repeating: 0, count: LiveMetrics.bucketBounds.count + 1)
        var latencySumNanoseconds: UInt64 = 0

        /// Counts one latency (nanoseconds) into its bucket: a short scan, most land in the first few.
        @inline(__always)
        mutating func record(latencyNanoseconds value: UInt64) {
            var index = 0
            let bounds = LiveMetrics.bucketBoundsNanoseconds
            while index < bounds.count && value > bounds[index] { index += 1 }
            buckets[index] &+= 1
            latencySumNanoseconds &+= value
        }

        mutating func add(_ other: Tally) {
            messages += other.messages
            bytes += other.bytes
            open += other.open
            for (kind, count) in other.errors { errors[kind, default: 0] += count }
            for index in buckets.indices { buckets[index] += other.buckets[index] }
            latencySumNanoseconds += other.latencySumNanoseconds
        }
    }

    /// The `mode` label: run, idle or churn.
    let mode: String
    private let tallies = Mutex<[Int: Tally]>([:])

    init(mode: String) { self.mode = mode }

    func publish(_ tally: Tally, from publisher: Int) {
        tallies.withLock { $0[publisher] = tally }
    }

    var total: Tally {
        tallies.withLock { $0.values.reduce(into: Tally()) { $0.add($1) } }
    }

    /// Prometheus' text exposition format, version 0.0.4.
    func exposition() -> String {
        let t = total
        let label = #"mode="\#(mode)""#
        var lines = [
            "# HELP loadgen_messages_total Messages that came back whole, every byte verified.",
            "# TYPE loadgen_messages_total counter",
            "loadgen_messages_total{\(label)} \(t.messages)",
            "# HELP loadgen_bytes_total Payload bytes echoed back and verified.",
            "# TYPE loadgen_bytes_total counter",
            "loadgen_bytes_total{\(label)} \(t.bytes)",
            "# HELP loadgen_errors_total Errors by kind (a connection that failed, an echo that was wrong or cut short).",
            "# TYPE loadgen_errors_total counter",
        ]
        for kind in t.errors.keys.sorted() {
            lines.append("loadgen_errors_total{\(label),kind=\"\(kind)\"} \(t.errors[kind] ?? 0)")
        }
        lines += [
            "# HELP loadgen_connections_open Connections open now.",
            "# TYPE loadgen_connections_open gauge",
            "loadgen_connections_open{\(label)} \(t.open)",
            "# HELP loadgen_latency_seconds Round-trip latency of the messages that came back (churn: of a connection's whole life).",
            "# TYPE loadgen_latency_seconds histogram",
        ]
        var cumulative: UInt64 = 0
        for (index, bound) in Self.bucketBounds.enumerated() {
            cumulative += t.buckets[index]
            lines.append("loadgen_latency_seconds_bucket{\(label),le=\"\(Self.number(bound))\"} \(cumulative)")
        }
        cumulative += t.buckets[Self.bucketBounds.count]
        lines.append("loadgen_latency_seconds_bucket{\(label),le=\"+Inf\"} \(cumulative)")
        lines.append("loadgen_latency_seconds_sum{\(label)} \(Double(t.latencySumNanoseconds) / 1e9)")
        lines.append("loadgen_latency_seconds_count{\(label)} \(cumulative)")
        return lines.joined(separator: "\n") + "\n"
    }

    /// `0.00005` rather than `5e-05`: both parse, this one reads.
    static func number(_ value: Double) -> String {
        var text = String(format: "%.6f", value)
        while text.hasSuffix("0") { text.removeLast() }
        if text.hasSuffix(".") { text.removeLast() }
        return text
    }
}
