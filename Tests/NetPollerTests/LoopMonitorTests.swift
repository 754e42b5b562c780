import Foundation
import Synchronization
import Testing

@testable import NetPoller

#if canImport(Glibc)
import Glibc
#endif

/// The loops' monitor (Go's sysmon): a loop whose thread sits in a marked blocking call is handed
/// to another thread, its other tasks keep running, and the task in the call comes back to its
/// loop, once, on whatever thread runs the loop by then.
@Suite(.serialized) struct LoopMonitorTests {
    /// A group of `count` loops running on threads of their own (loop 0 on a test thread rather
    /// than the main one); `finish()` stops the loops and waits for every thread the group started.
    final class RunningGroup: Sendable {
        let group: PollLoopGroup
        private let main: PosixThread
        let warnings = Lines()

        init(count: Int = 1, handOffAfterNanoseconds: UInt64 = LoopMonitor.defaultHandOffAfterNanoseconds) throws {
            let warnings = self.warnings
            group = try PollLoopGroup(
                count: count, scratchBytes: 1024, handOffAfterNanoseconds: handOffAfterNanoseconds,
                warn: { warnings.add($0) })
            let others = try group.startOtherLoops()
            let group = self.group
            main = try PosixThread(name: "test-loop-0") { group.run(joining: others) }
        }

        func onLoop<T: Sendable>(_ index: Int = 0, timeout: Double = 10, _ body: @escaping @Sendable () async throws -> T) throws -> T {
            let outcome = Outcome<T>()
            Task(executorPreference: group.loops[index]) { outcome.deliver(await Result { try await body() }) }
            return try outcome.wait(timeout: timeout).get()
        }

        func start<T: Sendable>(_ index: Int = 0, _ body: @escaping @Sendable () async throws -> T) -> Outcome<T> {
            let outcome = Outcome<T>()
            Task(executorPreference: group.loops[index]) { outcome.deliver(await Result { try await body() }) }
            return outcome
        }

        func finish() {
            group.stop()
            main.join()
        }
    }

    /// One task sleeps 300 ms through the bracket; meanwhile another task on the same loop echoes
    /// over a socket pair. The echo must come back long before the sleep ends (the loop was
    /// handed to a spare thread), and the sleeper must get its result back on its loop.
    @Test func loopMateIsServedDuringALongBlockingCall() throws {
        let running = try RunningGroup()
        let loop = running.group.loops[0]
        let pair = try SocketPair()
        let descriptor = try running.onLoop { try loop.register(pair.near) }
        let sleeper = running.start { () async -> [Bool] in
            let value = await loop.blocking { () -> Bool in
                usleep(300_000)
                return true
            }
            return [value, loop.isCurrent]
        }
        usleep(50_000)  // the sleeper is in its call
        let started = Date()
        let echoed = running.start { () async throws -> Int in
            let connection = PollConnection(descriptor)
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 16, alignment: 1)
            defer { buffer.deallocate() }
            return try await connection.read(into: buffer) ?? 0
        }
        _ = write(pair.farBlocking(), [1, 2, 3], 3)
        #expect(try echoed.wait(timeout: 10).get() == 3)
        let waited = Date().timeIntervalSince(started)
        #expect(waited < 0.2, "the loop-mate waited \(waited) s: the loop was not handed off")
        #expect(try sleeper.wait(timeout: 10).get() == [true, true])
        #expect(running.group.handOffs >= 1)
        _ = try running.onLoop { descriptor.close() }
        close(pair.far)
        running.finish()
    }

    /// Many calls, some shorter and some longer than the hand-off deadline, from tasks on two
    /// loops that also hand work to each other: every call returns its own value to its own task,
    /// exactly once, on its loop's thread; nothing runs a loop on two threads at once (a task
    /// checks, around each call, that its loop's work is not interleaved); and the group stops.
    @Test func shortAndLongCallsRaceHandOffsSafely() throws {
        let running = try RunningGroup(count: 2, handOffAfterNanoseconds: 20_000)
        let inside = [Gate(), Gate()]
        let overlaps = Counter()
        let results = (0..<8).map { task in
            running.start(task % 2) { () async -> Int in
                let loop = running.group.loops[task % 2]
                var sum = 0
                for call in 0..<150 {
                    // Loop-local work must never be run by two threads at once.
                    if !inside[task % 2].enter() { overlaps.add(1) }
                    let until = PollLoop.now() + 5_000
                    while PollLoop.now() < until {}
                    inside[task % 2].leave()
                    let micros = UInt32((call * 7 + task * 13) % 60)  // 0–59 µs, around the 20 µs deadline
                    sum += await loop.blocking { () -> Int in
                        if micros > 0 { usleep(micros) }
                        return call
                    }
                    if !loop.isCurrent { overlaps.add(1_000) }
                }
                return sum
            }
        }
        for result in results { #expect(try result.wait(timeout: 60).get() == (0..<150).reduce(0, +)) }
        #expect(overlaps.count == 0)
        #expect(running.group.handOffs > 0, "no call was handed off: the race was not run")
        running.finish()
    }

    /// A job that blocks without the bracket cannot be handed off; the monitor says so, once.
    @Test func loopStuckOutsideTheBracketIsReported() throws {
        let running = try RunningGroup()
        try running.onLoop { () async -> Void in usleep(60_000) }
        running.finish()
        let warnings = running.warnings.all
        #expect(warnings.count == 1, "\(warnings)")
        #expect(warnings.first?.contains("loop 0 has been stuck") == true, "\(warnings)")
    }
}

/// Counts the threads inside a stretch of a loop's work: more than one means two threads ran it.
final class Gate: Sendable {
    private let inside = Atomic<Int>(0)
    func enter() -> Bool { inside.add(1, ordering: .sequentiallyConsistent).newValue == 1 }
    func leave() { inside.subtract(1, ordering: .sequentiallyConsistent) }
}

/// Lines several threads add to.
final class Lines: Sendable {
    private let lines = Mutex<[String]>([])
    func add(_ line: String) { lines.withLock { $0.append(line) } }
    var all: [String] { lines.withLock { $0 } }
}

extension LoopMonitorTests {
    /// A spare thread that takes over a loop sleeps as the loop's own thread would: it has the
    /// process's timer slack, not the monitor's 1 ns (a thread inherits its creator's), or a
    /// handed-off blocking call would cost less than the same call made inline.
    @Test func spareThreadsKeepTheProcessTimerSlack() throws {
        let running = try RunningGroup()
        let loop = running.group.loops[0]
        let slacks = try running.onLoop { () async -> [Int32] in
            let own = prctl(30)  // PR_GET_TIMERSLACK, on the loop's first thread
            _ = await loop.blocking { usleep(100_000) }  // handed off: the task comes back on a spare
            return [own, prctl(30)]
        }
        #expect(running.group.handOffs >= 1)
        #expect(slacks[0] == slacks[1], "the loop's thread had \(slacks[0]) ns of slack, the spare \(slacks[1])")
        running.finish()
    }
}

@_silgen_name("prctl")
private func prctl(_ option: Int32, _ a: UInt = 0, _ b: UInt = 0, _ c: UInt = 0, _ d: UInt = 0) -> Int32

extension LoopMonitorTests {
    /// The monitor stops following each call's deadline after 50 looks in a row that saw calls and
    /// nothing to hand off, then looks at intervals doubling up to its cap (a look between two
    /// calls doubles it too), and goes back to following deadlines after a hand-off or a whole
    /// capped interval without a call.
    @Test func backOffStartsAfterPatienceDoublesToItsCapAndEnds() {
        var backOff = LoopMonitor.BackOff(first: 20_000, longest: 100_000)
        backOff.record(handedOff: false, callsMade: false)  // a doze that timed out: not counted
        for _ in 1..<LoopMonitor.BackOff.patience { backOff.record(handedOff: false, callsMade: true) }
        #expect(backOff.pause == nil)
        backOff.record(handedOff: false, callsMade: false)  // before the pause: starts the count again
        for _ in 1..<LoopMonitor.BackOff.patience { backOff.record(handedOff: false, callsMade: true) }
        #expect(backOff.pause == nil)
        backOff.record(handedOff: false, callsMade: true)
        #expect(backOff.pause == 20_000)
        backOff.record(handedOff: false, callsMade: false)  // between two calls
        #expect(backOff.pause == 40_000)
        for _ in 0..<5 { backOff.record(handedOff: false, callsMade: true) }
        #expect(backOff.pause == 100_000)
        backOff.record(handedOff: true, callsMade: true)
        #expect(backOff.pause == nil)
        for _ in 0..<LoopMonitor.BackOff.patience + 5 { backOff.record(handedOff: false, callsMade: true) }
        #expect(backOff.pause == 100_000)
        backOff.record(handedOff: false, callsMade: false)  // a whole capped interval without a call
        #expect(backOff.pause == nil)
    }

    /// A stream of calls that end before their deadline, each followed by some work: the monitor
    /// must not wake for each of them (that costs a blocking call a context switch or two more
    /// than the call itself); and a long call right after them, while the monitor looks only now
    /// and then, must still be handed off.
    @Test func shortCallsDoNotWakeTheMonitorEachTimeAndALongOneIsStillHandedOff() throws {
        let running = try RunningGroup()
        let loop = running.group.loops[0]
        let monitor = running.group.monitor
        let calls = 1_000
        let looks = try running.onLoop(timeout: 60) { () async -> Int in
            let before = monitor.looks.load(ordering: .relaxed)
            for _ in 0..<calls {
                _ = await loop.blocking { 0 }
                let until = PollLoop.now() + 100_000  // 100 µs of work between calls
                while PollLoop.now() < until {}
            }
            let looks = monitor.looks.load(ordering: .relaxed) - before
            _ = await loop.blocking { usleep(300_000) }
            return looks
        }
        #expect(looks < calls / 2, "the monitor looked \(looks) times for \(calls) short calls")
        #expect(running.group.handOffs >= 1, "the long call after the short ones was not handed off")
        running.finish()
    }
}

extension LoopMonitorTests {
    /// A loop whose previous call outlasted the deadline hands the next one off after 20 µs
    /// (calls on a loop tend to resemble the ones before); with no long call before it, a call
    /// shorter than the deadline keeps its loop.
    @Test func aLoopThatJustMadeALongCallHandsTheNextOffSooner() throws {
        let running = try RunningGroup(handOffAfterNanoseconds: 100_000_000)
        let loop = running.group.loops[0]
        let group = running.group
        let handOffs = try running.onLoop { () async -> [Int] in
            _ = await loop.blocking { usleep(30_000) }
            let afterShort = group.handOffs
            _ = await loop.blocking { usleep(150_000) }
            let afterLong = group.handOffs
            _ = await loop.blocking { usleep(30_000) }
            return [afterShort, afterLong, group.handOffs]
        }
        #expect(handOffs == [0, 1, 2])
        running.finish()
    }
}
