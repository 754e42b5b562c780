#if canImport(Glibc)
import Glibc
#endif
import EchoProtocol
import NetPoller
import Synchronization

/// What a loop's connections do once connected.
enum Workload: Sendable, Equatable {
    /// Keep `depth` messages in flight on every connection: a new one as soon as one comes back.
    case closedLoop(depth: Int)
    /// Send `messagesPerSecond` in total on a fixed schedule, whatever comes back; latency counts
    /// from each message's scheduled time. A connection holds at most `maxInFlight` unanswered messages;
    /// beyond that the schedule waits, and the wait shows up in the latency (coordinated omission).
    case openLoop(messagesPerSecond: Double, maxInFlight: Int)
    /// Send one message as soon as the connection is up, then hold it idle.
    case echoOnce
}

/// Everything one loop needs to know, fixed before it starts.
struct LoopPlan: Sendable {
    var target: SocketAddress
    /// Global connection numbers this loop owns (they pick the source address and the pattern).
    var connectionIDs: [Int]
    var sourceAddresses: [SocketAddress]
    var messageSize: Int
    var workload: Workload
    /// Connections this loop opens per second; nil = as fast as the pending-connect cap allows.
    var connectRate: Double?
    var connectTimeoutNanoseconds: UInt64
    var drainTimeoutNanoseconds: UInt64
    /// The CPU to pin this loop's thread to, if any.
    var cpu: Int?
    /// Keep a one-second latency histogram for the live line.
    var liveLatency: Bool
    /// Poll epoll without sleeping (`--spin`): a full core, and no late wake-ups.
    var spin = false
    /// Keep a histogram per interval of this length (ns) of the measured phase; 0 = none.
    var intervalNanoseconds: UInt64 = 0
    /// `--metrics-port`: where this loop publishes its running totals.
    var metrics: LiveMetrics? = nil
}

/// The coordinator's instructions to every loop: atomics the loops read once per wake-up, plus an
/// eventfd per loop to wake it when they change.
final class RunControl: Sendable {
    /// When to start sending (CLOCK_MONOTONIC ns); 0 = not yet. Stored last, after the fields below.
    let startAt = Atomic<UInt64>(0)
    /// Messages sent from this instant until `stopAt` are the measured ones.
    let measureAt = Atomic<UInt64>(0)
    /// No new message after this instant; then drain. Lowered to stop a run early.
    let stopAt = Atomic<UInt64>(.max)
    /// Close every connection and end the loop now, in whatever phase.
    let closeNow = Atomic<Bool>(false)
    /// Connections established across all loops when the run starts (each loop's share of `--rate`).
    let establishedTotal = Atomic<Int>(0)
    let wakeFDs: [Int32]

    init(loops: Int) {
        wakeFDs = (0..<loops).map { _ in c_eventfd(0, Epoll.closeOnExec | Epoll.nonBlocking) }
    }

    deinit { wakeFDs.forEach { close($0) } }

    var descriptorsValid: Bool { wakeFDs.allSatisfy { $0 >= 0 } }

    func wake() {
        for fd in wakeFDs {
            var one: UInt64 = 1
            _ = write(fd, &one, 8)
        }
    }

    /// Starts sending at `start`, measuring from `start + warmup` for `duration`.
    func start(at start: UInt64, warmup: UInt64, duration: UInt64, established: Int) {
        establishedTotal.store(established, ordering: .relaxed)
        measureAt.store(start + warmup, ordering: .relaxed)
        stopAt.store(start + warmup + duration, ordering: .relaxed)
        startAt.store(start, ordering: .releasing)
        wake()
    }

    /// Ends the sending phase now (the loops still drain what is in flight).
    func stopSending() {
        let now = monotonicNanoseconds()
        if stopAt.load(ordering: .relaxed) > now { stopAt.store(now, ordering: .relaxed) }
        wake()
    }

    func closeAll() {
        closeNow.store(true, ordering: .releasing)
        wake()
    }
}

/// What one loop publishes while it runs, for the coordinator and the live line. Relaxed atomics:
/// tallies, never synchronisation (the loop's full results are read after its thread is joined).
final class LoopStatus: Sendable {
    let open = Atomic<Int>(0)
    /// Connection attempts that ended, either way.
    let resolved = Atomic<Int>(0)
    let connectPhaseDone = Atomic<Bool>(false)
    /// Messages that came back whole, since the start.
    let completed = Atomic<Int>(0)
    /// Connections whose one `echoOnce` message came back.
    let echoed = Atomic<Int>(0)
    /// Messages sent on open connections and not yet answered.
    let inFlight = Atomic<Int>(0)
    let errors = Atomic<Int>(0)
    /// A connection's first bytes back were not the ones it sent: the target is not an echo server,
    /// and the connect phase need not wait for the others to time out.
    let notAnEchoServer = Atomic<Bool>(false)
    /// p99 latency of the last second, ns (only with `liveLatency`).
    let liveP99 = Atomic<UInt64>(0)
    /// The load is over and nothing is in flight; the connections stay open until `closeNow`, so a
    /// server read at the end still has every connection (and every thread-per-connection) alive.
    let drained = Atomic<Bool>(false)
    let finished = Atomic<Bool>(false)
}
