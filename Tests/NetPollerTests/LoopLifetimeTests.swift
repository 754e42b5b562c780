import Foundation
import Testing

@testable import NetPoller

#if canImport(Glibc)
import Glibc
#endif

/// What a loop holds of the process ends with it.
@Suite(.serialized) struct LoopLifetimeTests {
    /// A loop that was run, stopped and dropped is freed (its deinit closes its epoll descriptor
    /// and eventfd), and so are a group's loops and monitor: nothing keeps them in a cycle (the
    /// loops' link to their monitor is weak; a strong one would keep the group alive).
    /// (Weak references rather than a count of open descriptors: other suites open and close
    /// descriptors in parallel.)
    @Test func endedLoopsAreFreed() throws {
        weak var loop: PollLoop?
        do {
            let running = try RunningLoop()
            loop = running.loop
            _ = try running.onLoop { 1 }
            running.finish()
        }
        #expect(loop == nil, "a stopped loop is still referenced")
        weak var groupLoop: PollLoop?
        weak var monitor: LoopMonitor?
        do {
            let group = try PollLoopGroup(count: 2, scratchBytes: 64)
            groupLoop = group.loops[1]
            monitor = group.monitor
            let others = try group.startOtherLoops()
            let main = try PosixThread(name: "test-group") { group.run(joining: others) }
            group.stop()
            main.join()
        }
        #expect(groupLoop == nil, "a stopped group's loop is still referenced")
        #expect(monitor == nil, "a stopped group's monitor is still referenced")
    }

    /// A timer whose descriptor fails (here: another file put behind its number) throws instead of
    /// parking forever: when it is set, and when it is read after being set.
    @Test func timerWithABrokenDescriptorThrows() throws {
        let running = try RunningLoop()
        defer { running.finish() }
        let outcomes = try running.onLoop { () async -> [String] in
            let timer = try! PollTimer(on: running.loop)
            defer { timer.close() }
            timer.breakDescriptor()
            var outcomes: [String] = []
            do {
                try await timer.sleep(nanoseconds: 1_000_000)
                outcomes.append("slept")
            } catch {
                outcomes.append("\(error)")
            }
            do {
                try await timer.waitForExpiry()
                outcomes.append("expired")
            } catch {
                outcomes.append("\(error)")
            }
            return outcomes
        }
        #expect(outcomes == ["timerfd_settime: Invalid argument", "read timerfd: Bad file descriptor"], "\(outcomes)")
    }
}
