import EchoProtocol
import Foundation

/// The coordinator's clock: sleeps in short slices until a deadline, calls the live-line callback once a
/// second, and notices a stop request.
final class Watch {
    let group: LoopGroup
    let requested: Int
    let progress: ((LiveFigures) -> Void)?
    let stop: StopRequest?
    var phase = "starting"
    var startedAt = monotonicNanoseconds()
    private(set) var stopped = false
    private var lastTick = monotonicNanoseconds()
    private var lastCompleted = 0
    /// One entry per second of the measured phase.
    private(set) var series: [SecondFigures] = []
    private var seriesStart: UInt64?

    /// The measured phase starts now: the per-second series counts from here.
    func beginSeries() {
        let now = monotonicNanoseconds()
        seriesStart = now
        lastTick = now
        lastCompleted = group.completed
    }

    /// The measured phase ended now: the time since the last full second becomes the series' last,
    /// partial entry (a 3 s run has three entries, the third marked partial when it ended short of a tick).
    func endSeries() {
        let now = monotonicNanoseconds()
        guard let seriesStart, now > lastTick + 1_000_000 else { return }
        let completed = group.completed
        series.append(SecondFigures(
            second: Double(now - seriesStart) / 1e9, messagesPerSecond: Double(completed - lastCompleted) / (Double(now - lastTick) / 1e9),
            p99Microseconds: Double(group.liveP99) / 1000, partial: true))
        lastCompleted = completed
        lastTick = now
        self.seriesStart = nil
    }

    init(group: LoopGroup, requested: Int, progress: ((LiveFigures) -> Void)?, stop: StopRequest?) {
        self.group = group
        self.requested = requested
        self.progress = progress
        self.stop = stop
    }

    /// Sleeps until `deadline` or until `done` holds. Returns true when the deadline came (not stopped early).
    @discardableResult
    func wait(until deadline: UInt64, ignoringStop: Bool = false, done: () -> Bool) -> Bool {
        while true {
            // The deadline first: loops that end right after it (a quick drain) did not end early.
            let now = monotonicNanoseconds()
            if now >= deadline { return true }
            if done() { return false }
            if !ignoringStop, let stop, stop.isRequested {
                stopped = true
                return false
            }
            if now - lastTick >= 1_000_000_000 { tick(now: now) }
            sleep(untilNanoseconds: min(deadline, now + 50_000_000))
        }
    }

    private func tick(now: UInt64) {
        let completed = group.completed
        let seconds = Double(now - lastTick) / 1e9
        progress?(LiveFigures(
            phase: phase, elapsedSeconds: Double(now - startedAt) / 1e9,
            open: phase == "connecting" ? group.resolved : group.open, requested: requested,
            messagesPerSecond: Double(completed - lastCompleted) / seconds,
            p99Microseconds: Double(group.liveP99) / 1000, errors: group.errors))
        if phase == "measuring", let seriesStart {  // nil again after endSeries
            series.append(SecondFigures(
                second: Double(now - seriesStart) / 1e9, messagesPerSecond: Double(completed - lastCompleted) / seconds,
                p99Microseconds: Double(group.liveP99) / 1000))
        }
        lastCompleted = completed
        lastTick = now
    }
}
