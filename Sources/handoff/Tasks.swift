import ArgumentParser
import NetPoller
import Synchronization

/// `handoff tasks N`: two Swift tasks pass a turn back and forth. The waiting task parks a
/// continuation; the passing task resumes it, which enqueues the waiter on the executor — a handoff
/// inside the runtime, with no thread necessarily sleeping.
///
/// `--executor default` runs both on Swift's global pool, where a resumed task may wake another
/// worker thread; `--executor loop` runs both on one netpoller loop (echo-tasks' executor), where a
/// handoff is a job appended to the loop's own queue, as two goroutines on one P hand off in Go.
struct Tasks: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Two Swift tasks pass a turn (continuations) N round trips = 2N handoffs."
    )

    enum Executor: String, ExpressibleByArgument, CaseIterable {
        case `default`, loop
    }

    @OptionGroup var arguments: RoundTripArguments

    @Option(help: "Where the two tasks run: 'default' (Swift's global pool) or 'loop' (one netpoller loop).")
    var executor: Executor = .default

    func run() async throws {
        let report = try await Self.measure(roundTrips: arguments.roundTrips, executor: executor)
        emit(report, lines: report.lines, json: arguments.json)
    }

    static func measure(roundTrips: Int, executor: Executor) async throws -> HandoffReport {
        switch executor {
        case .default:
            return await measure(roundTrips: roundTrips)
        case .loop:
            let loop = try PollLoop(scratchBytes: 1)
            let thread = try PosixThread(name: "poller-0") { loop.run() }
            defer {
                loop.requestStop()
                thread.join()
            }
            var report = await withTaskExecutorPreference(loop) { await measure(roundTrips: roundTrips) }
            report.executor = "loop"
            return report
        }
    }

    /// The measured interval includes creating the two tasks (about a microsecond).
    static func measure(roundTrips: Int) async -> HandoffReport {
        let turn = TaskTurn(holder: .a)
        let stopwatch = Stopwatch()
        let completed = await withTaskGroup(of: Int.self) { group in
            // Party A starts with the turn: it passes, then waits to get it back (one round trip).
            group.addTask {
                var completed = 0
                for _ in 0..<roundTrips {
                    turn.pass(to: .b)
                    await turn.wait(for: .a)
                    completed += 1
                }
                return completed
            }
            group.addTask {
                for _ in 0..<roundTrips {
                    await turn.wait(for: .b)
                    turn.pass(to: .a)
                }
                return 0
            }
            return await group.reduce(0, +)
        }
        let measured = stopwatch.stop()
        return HandoffReport(mode: "tasks", handoffs: turn.handoffs, roundTrips: completed, measured: measured)
    }
}

/// The turn two tasks pass: who holds it, and the continuation of the party parked waiting for it.
///
/// The continuation is an `UnsafeContinuation`: a `CheckedContinuation` allocates a checking object
/// per wait and, being a resilient type of the runtime, makes every move of `State` go through value
/// witnesses; together those were about 40% of a handoff on one loop. The mutex already guarantees
/// what the check would catch: a parked continuation is taken out under the lock by exactly one
/// `pass`, which alone resumes it.
final class TaskTurn: Sendable {
    private struct State {
        var holder: Party
        var parked: (party: Party, continuation: UnsafeContinuation<Void, Never>)?
        var handoffs = 0
    }

    private let state: Mutex<State>

    init(holder: Party) {
        state = Mutex(State(holder: holder))
    }

    /// Suspends until `party` holds the turn (returns at once if it already does).
    func wait(for party: Party) async {
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            let hasTurn = state.withLock { state in
                if state.holder == party { return true }
                precondition(state.parked == nil, "only one party waits at a time")
                state.parked = (party, continuation)
                return false
            }
            if hasTurn { continuation.resume() }
        }
    }

    /// One handoff: gives the turn to `party` and resumes it if it is parked.
    func pass(to party: Party) {
        let waiter = state.withLock { state -> UnsafeContinuation<Void, Never>? in
            state.holder = party
            state.handoffs += 1
            guard let parked = state.parked, parked.party == party else { return nil }
            state.parked = nil
            return parked.continuation
        }
        waiter?.resume()
    }

    var handoffs: Int { state.withLock { $0.handoffs } }
}
