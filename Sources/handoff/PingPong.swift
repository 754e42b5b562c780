import ArgumentParser
import NetPoller
#if canImport(Glibc)
import Glibc
#endif

/// `handoff pingpong N`: two pthreads pass a turn back and forth with a mutex and a condition
/// variable. Every pass wakes a thread that is asleep in the kernel (futex), so each handoff
/// costs a context switch.
struct PingPong: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pingpong",
        abstract: "Two pthreads pass a turn (pthread mutex + condition variable) N round trips = 2N handoffs."
    )

    @OptionGroup var arguments: RoundTripArguments

    func run() {
        let report = Self.measure(roundTrips: arguments.roundTrips)
        emit(report, lines: report.lines, json: arguments.json)
    }

    static func measure(roundTrips: Int) -> HandoffReport {
        let turn = ThreadTurn()
        // Party A starts with the turn: it passes, then waits to get it back (one round trip).
        let partyA = try? PosixThread(name: "pingpong-a") {
            turn.checkIn()
            turn.wait(for: .a)
            var completed = 0
            for _ in 0..<roundTrips {
                turn.pass(to: .b)
                turn.wait(for: .a)
                completed += 1
            }
            turn.record(roundTrips: completed)
        }
        let partyB = try? PosixThread(name: "pingpong-b") {
            turn.checkIn()
            for _ in 0..<roundTrips {
                turn.wait(for: .b)
                turn.pass(to: .a)
            }
        }
        guard let partyA, let partyB else {
            // Two threads fail to start only on a machine already out of threads or memory.
            fatalError("handoff: cannot start the two pingpong threads")
        }
        // Thread creation is not a handoff: start the clock once both parties are waiting.
        turn.waitUntilCheckedIn(parties: 2)
        let stopwatch = Stopwatch()
        turn.start(with: .a)
        partyA.join()
        partyB.join()
        let measured = stopwatch.stop()
        let result = turn.result
        return HandoffReport(mode: "pingpong", handoffs: result.handoffs, roundTrips: result.roundTrips, measured: measured)
    }
}

enum Party: Sendable { case a, b }

/// The turn two pthreads pass: who holds it, guarded by a pthread mutex, with a condition
/// variable to sleep on until it is yours.
final class ThreadTurn: @unchecked Sendable {
    // @unchecked is safe: every stored `var` is read and written only while `mutex` is held, and the
    // mutex and condition variable live at fixed heap addresses for the object's whole life.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let changed = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var holder: Party?
    private var checkedIn = 0
    private var handoffs = 0
    private var roundTrips = 0

    init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(changed, nil)
    }

    deinit {
        pthread_cond_destroy(changed)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        changed.deallocate()
    }

    func checkIn() {
        locked {
            checkedIn += 1
            pthread_cond_broadcast(changed)
        }
    }

    func waitUntilCheckedIn(parties: Int) {
        locked { while checkedIn < parties { pthread_cond_wait(changed, mutex) } }
    }

    func start(with party: Party) {
        locked {
            holder = party
            pthread_cond_broadcast(changed)
        }
    }

    /// Sleeps until `party` holds the turn.
    func wait(for party: Party) {
        locked { while holder != party { pthread_cond_wait(changed, mutex) } }
    }

    /// One handoff: gives the turn to `party` and wakes it.
    func pass(to party: Party) {
        locked {
            holder = party
            handoffs += 1
            // Only the other party ever waits once the run has started, so one wake-up is enough.
            pthread_cond_signal(changed)
        }
    }

    func record(roundTrips: Int) {
        locked { self.roundTrips = roundTrips }
    }

    var result: (handoffs: Int, roundTrips: Int) {
        locked { (handoffs, roundTrips) }
    }

    private func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return body()
    }
}
