import EchoProtocol
import Foundation
import NIOCore
import Synchronization
import Testing

@testable import echo_tasks

#if canImport(Glibc)
import Glibc
#endif

/// Behaviour particular to echo-tasks (issue 5), beyond the conformance suite.
@Suite(.serialized)
struct TasksTests {
    /// Every way echo-tasks can run: the netpoller with one and two loops, and NIO's two executors.
    static let modes = ["poller-1", "poller-2", "nio-eventloop", "nio-global"]

    private func spec(_ mode: String) -> ServerSpec {
        switch mode {
        case "poller-1": ServerSpec("echo-tasks", ["--io", "poller", "--loops", "1"])
        case "poller-2": ServerSpec("echo-tasks", ["--io", "poller", "--loops", "2"])
        case "nio-global": spec(nio: "global", threads: 2)
        default: spec(nio: "eventloop", threads: 2)
        }
    }

    private func spec(nio executor: String, threads: Int) -> ServerSpec {
        ServerSpec("echo-tasks", ["--io", "nio", "--executor", executor, "--threads", "\(threads)"])
    }

    /// With `--io poller` the loops run the tasks: the process has its loops (loop 0 is the main
    /// thread) plus the loops' monitor (sysmon) and the stats and signal threads, and no Swift
    /// cooperative pool (which a yield by way of the global executor would start).
    @Test(arguments: [1, 3])
    func pollerRunsTasksOnItsLoopsAlone(loops: Int) throws {
        try withServer(ServerSpec("echo-tasks", ["--loops", "\(loops)"])) { server in
            try echoOnTwentyConnections(server)
            #expect(try server.snapshot().threads == loops + 3)
        }
    }

    /// The default loop count follows the CPUs the process may use, as GOMAXPROCS does.
    @Test func pollerLoopsDefaultToTheAffinityMask() throws {
        // The shell pins itself to CPU 0, then execs the server, which inherits the mask.
        let server = try ServerProcess.started(ServerSpec("echo-tasks"), shellPrefix: "taskset -p -c 0 $$ >/dev/null")
        defer { server.stop() }
        try echoOnTwentyConnections(server)
        #expect(try server.snapshot().threads == 1 + 3)
    }

    /// Out of descriptors, the accept task neither spins nor stops the loop serving what it has.
    @Test(arguments: [1, 2])
    func outOfDescriptorsNeitherSpinsNorStopsServing(loops: Int) throws {
        try Conformance.outOfDescriptorsNeitherSpinsNorStopsServing(
            ServerSpec("echo-tasks", ["--io", "poller", "--loops", "\(loops)"]))
    }

    /// With `--executor eventloop` the tasks run on NIO's loops: the process has the loops plus
    /// main, stats and signal threads, and no Swift cooperative pool.
    @Test func eventloopExecutorRunsTasksOnTheLoopsAlone() throws {
        try withServer(spec(nio: "eventloop", threads: 3)) { server in
            try echoOnTwentyConnections(server)
            #expect(try server.snapshot().threads == 3 + 3)
        }
    }

    /// With `--executor global` the tasks run on Swift's cooperative pool, beside the loops.
    @Test func globalExecutorRunsTasksOnSwiftsPool() throws {
        try withServer(spec(nio: "global", threads: 1)) { server in
            try echoOnTwentyConnections(server)
            #expect(try server.snapshot().threads > 1 + 3)
        }
    }

    @Test(arguments: [
        ["--io", "nio", "--threads", "0"], ["--io", "nio", "--threads", "-1"], ["--io", "nio", "--threads", "many"],
        ["--loops", "0"], ["--loops", "2000"], ["--io", "poller", "--threads", "2"], ["--executor", "global"],
        ["--io", "nio", "--loops", "2"], ["--io", "uring"],
    ])
    func unusableOptionsAreAUsageError(_ options: [String]) throws {
        let server = try ServerProcess(ServerSpec("echo-tasks"), extra: options)
        defer { server.stop() }
        guard let status = server.waitForExit(timeout: 10) else {
            throw ConformanceFailure("echo-tasks \(options.joined(separator: " ")) is still running")
        }
        #expect(status == 64, "exit status \(status) for \(options); want 64 (usage error)")
        #expect(server.ready == nil)
    }

    /// Half-close while the server's writes are backed up: with a 32 MiB --buffer-size the server
    /// keeps reading while the client, not reading, lets 16 MiB pile up in the server's channel; so
    /// when the server reads the FIN it still holds megabytes unsent. They must all arrive before the
    /// server closes (NIO's close drops queued writes; `executeThenClose` alone would lose them).
    /// NIO's modes only: the netpoller, like echo-libev, stops reading while it holds any unsent
    /// bytes, so it never piles megabytes up (the conformance suite's half-close check covers it).
    @Test(arguments: ["nio-eventloop", "nio-global"])
    func halfCloseWhileWritesAreBackedUpSendsThemAll(_ mode: String) throws {
        try withServer(spec(mode), extra: ["--buffer-size", "32M"]) { server in
            let payload = randomPayload(16 << 20, seed: 17)
            let socket = try TestSocket(connectingTo: server.address)
            let writer = BackgroundWork {
                try socket.send(payload)
                socket.shutdownWrite()
            }
            try writer.join(timeout: 20)  // everything sent while nobody reads the echo
            usleep(200_000)  // and the server has read the FIN
            let echoed = try socket.receive(exactly: payload.count)
            try Conformance.expectSame(echoed, payload, "echo of 16 MiB sent before reading, then half-closed")
            socket.setTimeout(3)
            #expect(socket.readOutcome() == .endOfFile)
        }
    }

    /// SIGTERM while a connection's task is suspended in a write the client never reads: the
    /// cancellation reaches it through the task tree and the server exits 0 with its final stats.
    @Test(arguments: modes)
    func sigtermWhileAWriteIsBlockedExitsZero(_ mode: String) throws {
        let server = try ServerProcess.started(spec(mode))
        defer { server.stop() }
        let hog = try TestSocket(connectingTo: server.address)
        hog.setTimeout(1)
        let chunk = randomPayload(1 << 20, seed: 23)
        for _ in 0..<64 {
            if try hog.sendUpTo(chunk) < chunk.count { break }  // blocked: the server stopped reading
        }
        kill(server.pid, SIGTERM)
        guard let status = server.waitForExit(timeout: 2) else {
            throw ConformanceFailure("echo-tasks \(mode) still running 2 s after SIGTERM")
        }
        #expect(status == 0)
        _ = server.stdout.waitForEnd(timeout: 2)
        #expect(server.stdout.lines.contains { $0.hasPrefix("final-stats ") })
    }

    /// SIGTERM while connections' channels still hold megabytes their clients do not read (a 32 MiB
    /// --buffer-size keeps them writable): one task waits for input, the other has seen its
    /// client's FIN and waits for the unread bytes to drain. Stopping must wait for neither.
    @Test(arguments: modes)
    func sigtermWithUnreadPendingWritesExitsZero(_ mode: String) throws {
        let server = try ServerProcess.started(spec(mode), extra: ["--buffer-size", "32M"])
        defer { server.stop() }
        let waitingForInput = try TestSocket(connectingTo: server.address)
        try waitingForInput.send(randomPayload(8 << 20, seed: 29))
        let halfClosed = try TestSocket(connectingTo: server.address)
        try halfClosed.send(randomPayload(8 << 20, seed: 31))
        halfClosed.shutdownWrite()
        usleep(300_000)  // the server has read it all and queued what the kernel would not take
        kill(server.pid, SIGTERM)
        guard let status = server.waitForExit(timeout: 2) else {
            throw ConformanceFailure("echo-tasks \(mode) still running 2 s after SIGTERM")
        }
        #expect(status == 0)
    }

    /// SIGTERM while clients keep connecting: a connection accepted as cancellation spreads through
    /// the task tree must still be closed and counted, never dropped on the floor. Eight threads
    /// connect and close in a loop; SIGTERM comes partway; `final-stats` must show no connection
    /// still active (every accepted one closed). Rounds, because the window is narrow.
    @Test(arguments: ["poller-1", "poller-2"])
    func connectionsAcceptedWhileStoppingAreClosedAndCounted(_ mode: String) throws {
        for round in 0..<8 {
            let server = try ServerProcess.started(spec(mode))
            defer { server.stop() }
            let address = server.address
            let stop = Atomic<Bool>(false)
            let connectors = (0..<8).map { _ in
                BackgroundWork {
                    // Bounded: ends when told, when the server is gone, or after 20,000 connections.
                    for _ in 0..<20_000 where !stop.load(ordering: .relaxed) {
                        guard let socket = try? TestSocket(connectingTo: address, timeout: 1) else { break }
                        socket.closeNow()
                    }
                }
            }
            usleep(UInt32(50_000 + 20_000 * round))
            kill(server.pid, SIGTERM)
            let status = server.waitForExit(timeout: 5)
            stop.store(true, ordering: .relaxed)
            for connector in connectors { try connector.join(timeout: 10) }
            #expect(status == 0, "round \(round): echo-tasks \(mode) did not exit 0 within 5 s of SIGTERM")
            _ = server.stdout.waitForEnd(timeout: 2)
            let final = server.stdout.lines.last { $0.hasPrefix("final-stats ") }
            let snapshot = final.flatMap { try? ServerSnapshot.decode(Array($0.dropFirst("final-stats ".count).utf8)) }
            #expect(snapshot?.counters?.active == 0, "round \(round): \(final ?? "no final-stats line")")
            #expect((snapshot?.counters?.accepted ?? 0) > 0, "round \(round): no connection was accepted")
        }
    }

    private func echoOnTwentyConnections(_ server: ServerProcess) throws {
        let sockets = try (0..<20).map { _ in try TestSocket(connectingTo: server.address) }
        for (index, socket) in sockets.enumerated() {
            let payload = randomPayload(100, seed: UInt64(index))
            try socket.send(payload)
            try Conformance.expectSame(try socket.receive(exactly: payload.count), payload, "connection \(index)")
        }
    }
}

/// The receive-buffer sizing of echo-tasks (`ReceiveAllocator`), unit by unit.
struct ReceiveAllocatorTests {
    /// It exists to sit inline in NIO's `RecvByteBufferAllocator` existential (three words), instead
    /// of a heap box per channel as NIO's 33-byte `AdaptiveRecvByteBufferAllocator` needs.
    @Test func fitsInlineInAnExistential() {
        #expect(MemoryLayout<ReceiveAllocator>.size <= 3 * MemoryLayout<Int>.size)
        #expect(MemoryLayout<AdaptiveRecvByteBufferAllocator>.size > 3 * MemoryLayout<Int>.size)
    }

    @Test func startsSmallDoublesOnFullReadsAndStopsAtTheMaximum() {
        var allocator = ReceiveAllocator(minimum: 64, initial: 64, maximum: 16 * 1024)
        #expect(allocator.nextBufferSize() == 64)
        var sizes: [Int] = []
        for _ in 0..<12 {
            _ = allocator.record(actualReadBytes: allocator.nextBufferSize()!)
            sizes.append(allocator.nextBufferSize()!)
        }
        #expect(sizes == [128, 256, 512, 1024, 2048, 4096, 8192, 16384, 16384, 16384, 16384, 16384])
    }

    @Test func halvesAfterTwoReadsThatFitInHalfButNotBelowTheMinimum() {
        var allocator = ReceiveAllocator(minimum: 64, initial: 256, maximum: 1024)
        #expect(allocator.record(actualReadBytes: 10) == false)
        #expect(allocator.nextBufferSize() == 256)
        _ = allocator.record(actualReadBytes: 10)
        #expect(allocator.nextBufferSize() == 128)
        for _ in 0..<10 { _ = allocator.record(actualReadBytes: 10) }
        #expect(allocator.nextBufferSize() == 64)
    }

    @Test func maximumIsTheLargestPowerOfTwoWithinTheBufferSize() {
        var allocator = ReceiveAllocator(minimum: 64, initial: 64, maximum: 10_000)
        for _ in 0..<20 { _ = allocator.record(actualReadBytes: allocator.nextBufferSize()!) }
        #expect(allocator.nextBufferSize() == 8192)
    }
}
