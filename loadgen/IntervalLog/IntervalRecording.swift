import Foundation
import Histogram
import Synchronization

/// Latency over time: the measured phase cut into intervals (1 s by default), one histogram each,
/// for `--histogram-log` and `--heatmap`. Hand one to `LoadRun.intervals`; after the run it holds the
/// intervals, merged over the client loops, every interval of the window present (an empty one is a
/// second in which nothing came back).
final class IntervalRecording: Sendable {
    let length: Duration
    private let state = Mutex<(intervals: [LatencyInterval], startEpochSeconds: Double)>(([], 0))

    init(length: Duration = .seconds(1)) { self.length = length }

    var intervals: [LatencyInterval] { state.withLock { $0.intervals } }
    /// When the measured phase began, in seconds since the Unix epoch.
    var startEpochSeconds: Double { state.withLock { $0.startEpochSeconds } }

    /// Each loop's sparse intervals (index → value, count) merged per index, for a window of `seconds`.
    func collect(_ perLoop: [[Int: [(UInt64, UInt64)]]], windowSeconds seconds: Double, startEpochSeconds: Double) {
        let lengthSeconds = length.seconds
        let count = max(perLoop.flatMap(\.keys).map { $0 + 1 }.max() ?? 0, Int((seconds / lengthSeconds).rounded(.up)))
        let intervals = (0..<count).map { index in
            var histogram = Self.emptyHistogram()
            for loop in perLoop {
                for (value, n) in loop[index] ?? [] { histogram.record(value, count: n) }
            }
            let start = Double(index) * lengthSeconds
            return LatencyInterval(startSeconds: start, lengthSeconds: min(lengthSeconds, max(0, seconds - start)), histogram: histogram)
        }
        state.withLock { $0 = (intervals, startEpochSeconds) }
    }

    /// Two significant digits: a 1% bucket is plenty to draw or to log per second, and the histogram is
    /// small enough to reset every interval.
    static func emptyHistogram() -> Histogram<UInt64> {
        Histogram<UInt64>(highestTrackableValue: ClientLoop.highestLatency, numberOfSignificantValueDigits: .two)
    }
}

/// One interval of the measured phase: latencies in nanoseconds of the messages that came back in it.
struct LatencyInterval: Sendable {
    /// Seconds since the measured phase began.
    var startSeconds: Double
    var lengthSeconds: Double
    var histogram: Histogram<UInt64>
}
