import EchoProtocol
import Histogram

/// The open loop's own lateness: how long after its scheduled time each message was really sent.
///
/// In an open loop a message's latency counts from its scheduled time (coordinated omission corrected),
/// so when the client oversleeps, say because its idle CPU was halted and woke late, the wait is charged
/// to the server. Recorded beside the latency, the lateness says how much of it was the client's.
enum SendLateness {
    /// A run whose lateness p99 is above this share of its latency p99 is flagged: the latency's tail
    /// is then largely the client's.
    static let flaggedShare = 0.25

    /// Puts the lateness figures, the histogram and the flag into an open-loop result.
    static func attach(_ histogram: Histogram<UInt64>, to result: inout LoadResult) {
        let figures = LatencyFigures(histogram)
        result.sendLatenessMicroseconds = figures
        result.sendLatenessHistogram = histogram
        result.clientWasLate = isLate(lateness: figures, latency: result.latencyMicroseconds)
    }

    static func isLate(lateness: LatencyFigures, latency: LatencyFigures) -> Bool {
        lateness.count > 0 && lateness.p99 > flaggedShare * latency.p99
    }

    /// The warning a table prints when the run is flagged; nil otherwise.
    static func note(_ result: LoadResult) -> String? {
        guard result.clientWasLate == true, let lateness = result.sendLatenessMicroseconds else { return nil }
        let spun = result.settings.spin == true
        return "the client was late: its sends' p99 lateness \(TextFormat.fixed(lateness.p99, 1)) µs is more than a quarter of the latency p99 \(TextFormat.fixed(result.latencyMicroseconds.p99, 1)) µs, so much of the latency is loadgen's own"
            + (spun ? " (even with --spin: the client's CPU is busy or shared)" : " (try --spin, which keeps the client's CPU awake)")
    }

    /// `p50 1.2   p99 30.5   max 812.0`, the table's lateness row.
    static func summary(_ lateness: LatencyFigures) -> String {
        "p50 \(TextFormat.latency(microseconds: lateness.p50))   p99 \(TextFormat.latency(microseconds: lateness.p99))   max \(TextFormat.latency(microseconds: lateness.max))   (send time − scheduled time)"
    }
}
