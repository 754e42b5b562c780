import Foundation
import Synchronization
import Testing

@testable import NetPoller

#if canImport(Glibc)
import Glibc
#endif

/// A task that never has to wait must not own its loop: its loop-mates, the loop's inbox and
/// epoll still get their turn (Tokio's coop budget; Go's preemption).
@Suite(.serialized) struct FairnessTests {
    /// An eventfd in semaphore mode with a huge count is readable for 2^60 reads in a row, 8 bytes
    /// each: a connection whose every read finds data and fills the buffer, so without a budget
    /// its task would never suspend. Meanwhile a second task on the same loop parks on a socket,
    /// and the test writes to it: the parked task must be resumed (by a loop that went back to
    /// epoll), and a job posted from this thread (the loop's inbox) must run. Bounds are seconds,
    /// where a fair loop takes about a millisecond and an unfair one never.
    @Test func busyReaderDoesNotStarveItsLoopMates() throws {
        let running = try RunningLoop()
        defer { running.finish() }
        let alwaysReadable = c_eventfd(0, Epoll.closeOnExec | Epoll.nonBlocking | 1)  // EFD_SEMAPHORE
        try #require(alwaysReadable >= 0)
        var plenty: UInt64 = 1 << 60
        _ = write(alwaysReadable, &plenty, 8)
        let busy = try running.onLoop { try running.loop.register(alwaysReadable) }
        let reads = Counter()
        let (busyTask, busyOutcome) = running.start { () async throws -> Int in
            let connection = PollConnection(busy)
            defer { connection.close() }
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 8, alignment: 8)
            defer { buffer.deallocate() }
            while try await connection.read(into: buffer) != nil { reads.add(1) }
            return reads.count
        }
        defer { busyTask.cancel() }
        let pair = try SocketPair()
        let quiet = try running.onLoop(timeout: 10) { try running.loop.register(pair.near) }
        let (_, pinged) = running.start { () async throws -> [UInt8] in
            let connection = PollConnection(quiet)
            defer { connection.close() }
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 8, alignment: 1)
            defer { buffer.deallocate() }
            let count = try await connection.read(into: buffer) ?? 0
            return Array(buffer[..<count])
        }
        try running.waitUntil("the quiet reader to park", timeout: 10) { quiet.isWaiting(.read) }
        #expect(reads.count > 0, "the busy reader never ran")
        _ = write(pair.farBlocking(), [42], 1)
        #expect(try pinged.wait(timeout: 10).get() == [42], "the parked task was never resumed")
        busyTask.cancel()
        #expect(throws: CancellationError.self) { try busyOutcome.wait(timeout: 10).get() }
        close(pair.far)
    }

    /// The budget itself: a job may spend `budgetPerJob` units, no more, and the next job gets a
    /// fresh one (a task that yielded comes back with a full budget).
    @Test func budgetIsPerJobAndRefilled() throws {
        let running = try RunningLoop()
        defer { running.finish() }
        let spent = try running.onLoop { () async -> [Int] in
            var granted = 0
            while running.loop.spendBudget() { granted += 1 }
            await running.loop.yieldTurn()
            var again = 0
            while running.loop.spendBudget() { again += 1 }
            return [granted, again]
        }
        #expect(spent == [PollLoop.budgetPerJob, PollLoop.budgetPerJob])
    }
}
