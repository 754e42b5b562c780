import Foundation
import Synchronization
import Testing

@testable import NetPoller

#if canImport(Glibc)
import Glibc
#endif

/// The netpoller's promises, each aimed at the race that would break it.
/// Serialized: two tests free a descriptor number and take it back on purpose.
@Suite(.serialized) struct PollLoopTests {
    /// A read on an empty socket parks (the task does not spin or return), and the loop resumes it
    /// when the peer writes.
    @Test func suspendedReadResumesWhenDataArrives() throws {
        let running = try RunningLoop()
        defer { running.finish() }
        let pair = try SocketPair()
        let descriptor = try running.onLoop { try running.loop.register(pair.near) }
        defer { _ = try? running.onLoop { descriptor.close() } }
        let (_, outcome) = running.start { () async throws -> [UInt8] in
            let connection = PollConnection(descriptor)
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 1)
            defer { buffer.deallocate() }
            guard let count = try await connection.read(into: buffer) else { return [] }
            return Array(buffer[..<count])
        }
        try running.waitUntil("the reader to park") { descriptor.isWaiting(.read) }
        #expect(outcome.count == 0)
        let bytes: [UInt8] = [7, 8, 9]
        _ = write(pair.farBlocking(), bytes, 3)
        let received = try outcome.wait(timeout: 5).get()
        #expect(received == [7, 8, 9])
        close(pair.far)
    }

    /// Bytes and the peer's FIN that arrive together make one event; the read that takes the bytes
    /// is short, but must not count as "drained": the end of stream behind them gets no event of its
    /// own, so the next read must still see it.
    @Test(arguments: [true, false])
    func endOfStreamBehindAShortReadIsSeen(shortReadDrains: Bool) throws {
        let running = try RunningLoop(shortReadDrains: shortReadDrains)
        defer { running.finish() }
        let pair = try SocketPair()
        let descriptor = try running.onLoop { try running.loop.register(pair.near) }
        let (_, outcome) = running.start { () async throws -> [Int?] in
            let connection = PollConnection(descriptor)
            defer { connection.close() }
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 1)
            defer { buffer.deallocate() }
            return [try await connection.read(into: buffer), try await connection.read(into: buffer)]
        }
        try running.waitUntil("the reader to park") { descriptor.isWaiting(.read) }
        // Both in one job on the loop's thread, so epoll sees them in one wait: one event.
        let far = pair.far
        _ = try running.onLoop {
            let bytes: [UInt8] = [1, 2, 3]
            _ = write(far, bytes, 3)
            shutdown(far, Int32(SHUT_WR))
        }
        #expect(try outcome.wait(timeout: 5).get() == [3, nil])
        close(far)
    }

    /// A parked task that is cancelled from another thread is resumed by its loop with
    /// CancellationError, once; a cancellation racing an event for the same wait still resumes
    /// it once (whichever comes first), and the other finds the slot empty.
    @Test func cancelledWaiterIsResumedExactlyOnce() throws {
        let running = try RunningLoop()
        defer { running.finish() }
        for round in 0..<200 {
            let pair = try SocketPair()
            let descriptor = try running.onLoop { try running.loop.register(pair.near) }
            let (task, outcome) = running.start { () async throws -> Int in
                try await descriptor.waitAfterEAGAIN(.read)
                return 1
            }
            try running.waitUntil("the reader to park") { descriptor.isWaiting(.read) }
            // Half the rounds race an input event against the cancellation.
            if round % 2 == 1 { _ = write(pair.far, [UInt8(1)], 1) }
            task.cancel()
            let result = try outcome.wait(timeout: 5)
            if round % 2 == 0 {
                #expect(throws: CancellationError.self) { try result.get() }
            }
            usleep(1_000)  // time for a second, wrong resumption to show
            #expect(outcome.count == 1, "round \(round): resumed \(outcome.count) times")
            #expect(try running.onLoop { !descriptor.isWaiting(.read) })
            _ = try running.onLoop { descriptor.close() }
            close(pair.far)
        }
    }

    /// A task cancelled before it parks calls the cancellation handler at once, before its
    /// continuation is stored: the request must still resume it, not find nothing and be lost.
    @Test func taskCancelledBeforeParkingIsStillResumed() throws {
        let running = try RunningLoop()
        defer { running.finish() }
        let pair = try SocketPair()
        let descriptor = try running.onLoop { try running.loop.register(pair.near) }
        let (_, outcome) = running.start { () async throws -> Int in
            withUnsafeCurrentTask { $0?.cancel() }
            try await descriptor.waitAfterEAGAIN(.read)
            return 1
        }
        #expect(throws: CancellationError.self) { try outcome.wait(timeout: 5).get() }
        _ = try running.onLoop { descriptor.close() }
        close(pair.far)
    }

    /// An event whose token names a closed descriptor is dropped, even when a new descriptor has
    /// the same fd number: the generation tag differs. Then the new one's own event resumes it.
    @Test func eventForClosedAndReusedFdIsIgnored() throws {
        let running = try RunningLoop()
        defer { running.finish() }
        try Self.closeAndReuseANumber(on: running)
    }

    /// Freeing a number and taking it back touches no descriptor of another thread: the other suites
    /// run in parallel in this process. (It once took the number back with dup2 onto the lowest free
    /// one, which by then could be another thread's: dup2 closed it under its owner, and full runs saw
    /// EBADF on a conformance check's fresh socket and from Process.run.)
    @Test func reusingANumberLeavesOtherThreadsDescriptorsAlone() throws {
        let running = try RunningLoop()
        defer { running.finish() }
        let stop = Counter()
        let harmed = Counter()
        let rounds = Counter()
        // Another thread opening and closing pipes all the while, as the other suites do: each
        // must stay the one it opened (same inode) until it closes it, and its close must succeed.
        let other = try PosixThread(name: "descriptor-churn") {
            while stop.count == 0 {
                var fds: [Int32] = [-1, -1]
                guard c_pipe2(&fds, O_CLOEXEC) == 0 else { continue }
                var opened = [stat(), stat()]
                for index in 0..<2 { fstat(fds[index], &opened[index]) }
                for _ in 0..<20 { sched_yield() }
                for index in 0..<2 {
                    var now = stat()
                    if fstat(fds[index], &now) != 0 || now.st_ino != opened[index].st_ino { harmed.add(1) }
                    if close(fds[index]) != 0 { harmed.add(1) }
                }
                rounds.add(1)
                for _ in 0..<20 { sched_yield() }  // and let the numbers go to others a moment
            }
        }
        do {
            defer {
                stop.add(1)
                other.join()
            }
            for _ in 0..<200 { try Self.closeAndReuseANumber(on: running) }
        }
        #expect(rounds.count > 0)
        #expect(harmed.count == 0, "\(harmed.count) of another thread's descriptors were replaced or closed under it")
    }

    /// Registers a descriptor, closes it, registers a new one under the same fd number, and checks
    /// that an event with the old token does not reach the new descriptor, and its own event does.
    static func closeAndReuseANumber(on running: RunningLoop) throws {
        let first = try SocketPair()
        defer { close(first.far) }
        // The number is a high one, which no other thread's socket() or open() gets while lower
        // numbers are free: the kernel hands out the lowest.
        let number = try HighDescriptor.move(first.near)
        let old = try running.onLoop { try running.loop.register(number) }
        let oldToken = old.token
        _ = try running.onLoop { old.close() }
        let second = try SocketPair()
        defer { close(second.far) }
        let again = try HighDescriptor.move(second.near, atLeast: number)
        guard again == number else {
            close(again)
            Issue.record("fd \(number) was taken by another thread before it could be reused (got \(again))")
            return
        }
        let reused = try running.onLoop { try running.loop.register(number) }
        defer { _ = try? running.onLoop { reused.close() } }
        #expect(reused.fd == old.fd)
        #expect(reused.token != oldToken)

        let (_, outcome) = running.start { () async throws -> Int in
            try await reused.waitAfterEAGAIN(.read)
            return 1
        }
        try running.waitUntil("the reader to park") { reused.isWaiting(.read) }
        let (staleBefore, stillParked, staleAfter) = try running.onLoop {
            let before = running.loop.staleEvents
            running.loop.deliver(Epoll.input, token: oldToken)
            return (before, reused.isWaiting(.read), running.loop.staleEvents)
        }
        #expect(stillParked, "an event for the closed fd resumed the reader of its successor")
        #expect(staleAfter == staleBefore + 1)
        _ = try running.onLoop { running.loop.deliver(Epoll.input, token: reused.token) }
        #expect(try outcome.wait(timeout: 5).get() == 1)
    }

    /// Jobs enqueued from other threads while the loop sleeps in epoll_wait all run, on the loop's
    /// thread: none is lost between "inbox taken" and "wake pending cleared".
    @Test func jobsEnqueuedFromOtherThreadsRunOnTheLoop() throws {
        let running = try RunningLoop()
        defer { running.finish() }
        let perThread = 2_000
        let ranOnLoop = Counter()
        let done = DispatchSemaphore(value: 0)
        let loop = running.loop
        let posters = try (0..<4).map { _ in
            try PosixThread(name: "poster") {
                for index in 0..<perThread {
                    Task(executorPreference: loop) {
                        if loop.isCurrent { ranOnLoop.add(1) }
                        done.signal()
                    }
                    if index % 64 == 0 { usleep(100) }  // let the loop fall asleep now and then
                }
            }
        }
        posters.forEach { $0.join() }
        for _ in 0..<(4 * perThread) {
            guard done.wait(timeout: .now() + 5) == .success else {
                Issue.record("only \(ranOnLoop.count) of \(4 * perThread) jobs ran")
                return
            }
        }
        #expect(ranOnLoop.count == 4 * perThread)
    }

    /// A write the peer will not take parks its task with the rest copied aside: the connection is
    /// not read meanwhile, another connection on the same loop (reusing the scratch buffer) goes
    /// on echoing, and when the peer reads, every byte arrives in order.
    @Test(arguments: [true, false])
    func partialWriteSuspendsTheReaderUntilTheRestIsSent(shortReadDrains: Bool) throws {
        let running = try RunningLoop(shortReadDrains: shortReadDrains)
        defer { running.finish() }
        let blocked = try SocketPair(sendBuffer: 4096)
        let flowing = try SocketPair()
        let blockedDescriptor = try running.onLoop { try running.loop.register(blocked.near) }
        let flowingDescriptor = try running.onLoop { try running.loop.register(flowing.near) }
        let bytesRead = Counter()
        let echo: @Sendable (PollDescriptor) async throws -> Int = { descriptor in
            let connection = PollConnection(descriptor)
            let buffer = descriptor.loop.scratch
            defer { connection.close() }
            var total = 0
            while let count = try await connection.read(into: buffer) {
                if descriptor === blockedDescriptor { bytesRead.add(count) }
                total += count
                try await connection.write(all: UnsafeRawBufferPointer(rebasing: buffer[..<count]))
            }
            return total
        }
        let (_, blockedOutcome) = running.start { try await echo(blockedDescriptor) }
        let (_, flowingOutcome) = running.start { try await echo(flowingDescriptor) }

        // Send far more than the socket buffers hold, reading nothing back.
        let payload = pattern(2 << 20, seed: 3)
        let far = blocked.far
        var sent = 0
        var refusals = 0
        while sent < payload.count && refusals < 200 {  // until the socket has refused for ~0.2 s
            let n = payload.withUnsafeBytes { write(far, $0.baseAddress! + sent, payload.count - sent) }
            if n > 0 {
                sent += n
                refusals = 0
            } else {
                refusals += 1
                usleep(1_000)
            }
        }
        try running.waitUntil("the echo's write to park") { blockedDescriptor.isWaiting(.write) }
        let readWhileParked = bytesRead.count
        #expect(sent < payload.count, "the server kept reading while its echo could not be sent")

        // Meanwhile the other connection echoes through the same scratch buffer.
        let other = pattern(10_000, seed: 99)
        let flowingFar = flowing.farBlocking()
        _ = other.withUnsafeBytes { write(flowingFar, $0.baseAddress!, $0.count) }
        #expect(try receive(flowingFar, exactly: other.count) == other)
        usleep(20_000)
        #expect(bytesRead.count == readWhileParked, "the parked connection was read")

        // Now read the echo while sending the rest: all of it, in order.
        let farBlocking = blocked.farBlocking()
        let rest = Array(payload[sent...])
        let sender = try PosixThread(name: "sender") {
            _ = rest.withUnsafeBytes { write(farBlocking, $0.baseAddress!, $0.count) }
            shutdown(farBlocking, Int32(SHUT_WR))
        }
        let echoed = try receive(farBlocking, exactly: payload.count, timeout: 10)
        sender.join()
        #expect(echoed == payload)
        #expect(try blockedOutcome.wait(timeout: 5).get() == payload.count)
        shutdown(flowingFar, Int32(SHUT_WR))
        #expect(try flowingOutcome.wait(timeout: 5).get() == other.count)
        close(farBlocking)
        close(flowingFar)
    }

    /// A timer sleep parks and resumes after about its delay; cancelled, it ends at once.
    @Test func timerSleepsAndIsCancellable() throws {
        let running = try RunningLoop()
        defer { running.finish() }
        let elapsed = try running.onLoop { () async throws -> Double in
            let timer = try PollTimer(on: running.loop)
            defer { timer.close() }
            let start = Date()
            try await timer.sleep(nanoseconds: 50_000_000)
            return Date().timeIntervalSince(start)
        }
        #expect(elapsed >= 0.045 && elapsed < 2)
        let (task, outcome) = running.start { () async throws -> Int in
            let timer = try PollTimer(on: running.loop)
            defer { timer.close() }
            try await timer.sleep(nanoseconds: 60_000_000_000)
            return 1
        }
        usleep(50_000)
        task.cancel()
        #expect(throws: CancellationError.self) { try outcome.wait(timeout: 5).get() }
    }
}

/// pipe2(2), which Glibc's module map leaves out: a pipe that is close-on-exec from the start.
@_silgen_name("pipe2")
private func c_pipe2(_ fds: UnsafeMutablePointer<Int32>, _ flags: Int32) -> Int32
