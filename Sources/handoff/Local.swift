import ArgumentParser
import Synchronization

/// `handoff local N`: the baseline. One thread increments a counter 2N times — the work the
/// handoff modes do (one increment per pass), without passing anything.
struct Local: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Baseline: one thread increments a counter 2N times (as many as N round trips' handoffs)."
    )

    @OptionGroup var arguments: RoundTripArguments

    func run() {
        let report = Self.measure(roundTrips: arguments.roundTrips)
        emit(report, lines: report.lines, json: arguments.json)
    }

    static func measure(roundTrips: Int) -> HandoffReport {
        let counter = MemoryCounter()
        let operations = 2 * roundTrips
        let stopwatch = Stopwatch()
        counter.increment(times: operations)
        let measured = stopwatch.stop()
        return HandoffReport(mode: "local", operations: counter.value, measured: measured)
    }
}

/// A counter that lives in memory. Each increment is a relaxed atomic load and a relaxed atomic
/// store: on x86 an ordinary `mov` pair, no lock prefix, but the optimiser may neither keep the
/// value in a register nor fold the loop into one `+= 2N`, so the loop really runs 2N times.
final class MemoryCounter: Sendable {
    private let storage = Atomic<Int>(0)

    @inline(never)
    func increment(times: Int) {
        for _ in 0..<times {
            storage.store(storage.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
        }
    }

    var value: Int { storage.load(ordering: .relaxed) }
}
