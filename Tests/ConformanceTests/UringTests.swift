import EchoProtocol
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Behaviour particular to echo-uring (issue 20), beyond the conformance suite: the races and
/// shortages of a completion ring, each provoked on purpose.
@Suite(.serialized)
struct UringTests {
    /// Out of descriptors, the multishot accept ends with EMFILE and the connection stays queued;
    /// arming it again at once would spin (see `Conformance.outOfDescriptorsNeitherSpinsNorStopsServing`).
    @Test(arguments: [1, 2])
    func outOfDescriptorsNeitherSpinsNorStopsServing(loops: Int) throws {
        try Conformance.outOfDescriptorsNeitherSpinsNorStopsServing(ServerSpec("echo-uring", ["--loops", "\(loops)"]))
    }

    /// With a buffer ring of 2 buffers and 100 connections echoing at once, recvs end with ENOBUFS
    /// all the time; each must be armed again when buffers come back, and every byte still echo.
    @Test(arguments: ["multishot", "single"])
    func runningOutOfRingBuffersRearmsEveryConnection(recv: String) throws {
        try withServer(ServerSpec("echo-uring", ["--ring-buffers", "2", "--recv", recv])) { server in
            try Conformance.servesConcurrentConnections(server, count: 100)
            try Conformance.echoesExactly(server, size: 1 << 20)
        }
    }

    /// Clients that never read must not keep the loop's ring buffers: with 4 buffers, 8 such
    /// clients writing until their sockets are full would starve everyone else if a waiting send
    /// held its buffer. A newcomer still echoes 256 KiB.
    @Test func clientsThatNeverReadHoldNoRingBuffer() throws {
        try withServer(ServerSpec("echo-uring", ["--ring-buffers", "4"])) { server in
            let hogs = try (0..<8).map { _ in try TestSocket(connectingTo: server.address) }
            let chunk = randomPayload(1 << 20, seed: 5)
            for hog in hogs {
                hog.setTimeout(1)  // a write blocked this long: the server stopped reading it
                try Self.writeUntilBlocked(hog, chunk, atMost: 64)
            }
            try Conformance.echoesExactly(server, size: 256 * 1024)
        }
    }

    /// A connection reset while its send waits in the kernel (the peer never read): the server
    /// must cancel that send before closing the fd, because the next accept reuses the number at
    /// once and a late completion must not touch the new connection. Fifty newcomers, which get
    /// those numbers, echo exactly, and the server ends with no connection open.
    @Test(arguments: [1, 2])
    func resetWhileASendWaitsThenFdReused(loops: Int) throws {
        try withServer(ServerSpec("echo-uring", ["--loops", "\(loops)"])) { server in
            for round in 0..<3 {
                let hogs = try (0..<10).map { _ in try TestSocket(connectingTo: server.address) }
                let chunk = randomPayload(1 << 20, seed: UInt64(round))
                for hog in hogs {
                    hog.setTimeout(0.5)
                    try Self.writeUntilBlocked(hog, chunk, atMost: 32)
                }
                hogs.forEach { $0.reset() }
                let workers = (0..<50).map { index in
                    BackgroundWork {
                        let socket = try TestSocket(connectingTo: server.address)
                        let payload = randomPayload(100_000, seed: UInt64(round * 100 + index))
                        let reader = BackgroundWork {
                            try Conformance.expectSame(
                                try socket.receive(exactly: payload.count), payload, "newcomer \(index) of round \(round)")
                        }
                        try socket.send(payload)
                        try reader.join()
                    }
                }
                for worker in workers { try worker.join() }
            }
            try Conformance.waitFor("every connection to be closed", timeout: 10) {
                try server.snapshot().counters?.active == 0
            }
        }
    }

    /// What each set-up switch changes still echoes: a recv armed per message, and rings without
    /// SINGLE_ISSUER/DEFER_TASKRUN/COOP_TASKRUN (the measurements switch them off one at a time).
    @Test(arguments: [["--recv", "single"], ["--plain-ring"]])
    func setUpSwitchesKeepTheProtocol(_ options: [String]) throws {
        try withServer(ServerSpec("echo-uring", options)) { server in
            try Conformance.echoesExactly(server, size: 8 << 20)
            try Conformance.halfCloseEchoesPendingThenCloses(server)
            try Conformance.survivesResetsMidEcho(server, clients: 50)
        }
        try withServer(ServerSpec("echo-uring", options)) { server in
            try Conformance.boundsMemoryOfClientThatNeverReads(server)
        }
    }

    /// The readiness line is followed by one line naming the ring set-up actually in use.
    @Test func announcesItsRingSetUp() throws {
        try withServer(ServerSpec("echo-uring")) { server in
            let line = server.stdout.waitForLine(timeout: 5) { $0.hasPrefix("ring-setup ") }
            #expect(line?.contains("recv multishot") == true, "\(server.stdout.lines)")
        }
    }

    /// Where io_uring is refused, the server says so in one line and exits 1, before announcing
    /// anything. `refuse-io-uring` (Tests/RefuseIOURing) makes the kernel refuse io_uring_setup
    /// with a seccomp filter, as a kernel without io_uring (ENOSYS) or a container profile (EPERM) does.
    @Test(arguments: [
        ("ENOSYS", "Function not implemented"),
        ("EPERM", "Operation not permitted (kernel.io_uring_disabled = "),
    ])
    func refusedIOURingIsOneLineAndExit1(code: String, reason: String) throws {
        let server = productsDirectory.appendingPathComponent("echo-uring").path
        let refused = try ServerProcess(ServerSpec("refuse-io-uring", [code, server]))
        defer { refused.stop() }
        #expect(refused.waitForExit(timeout: 20) == 1, "stderr: \(refused.stderr.lines)")
        #expect(refused.stderr.waitForEnd(timeout: 5) && refused.stdout.waitForEnd(timeout: 5))
        let expected = "echo-uring: io_uring is unavailable: io_uring_setup failed: \(reason)"
        #expect(refused.stderr.lines.count == 1, "\(refused.stderr.lines)")
        #expect(refused.stderr.lines.first?.hasPrefix(expected) == true, "\(refused.stderr.lines)")
        #expect(refused.stdout.lines.isEmpty, "announced despite the refusal: \(refused.stdout.lines)")
    }

    @Test(arguments: [["--ring-buffers", "3"], ["--ring-buffers", "0"], ["--recv", "twice"], ["--loops", "0"]])
    func badValuesAreUsageErrors(_ options: [String]) throws {
        let server = try ServerProcess(ServerSpec("echo-uring"), extra: options)
        defer { server.stop() }
        #expect(server.waitForExit(timeout: 10) == 64, "\(options): \(server.stderr.lines)")
    }

    /// Writes `chunk` until a write blocks past the socket's timeout (the server stopped reading).
    static func writeUntilBlocked(_ socket: TestSocket, _ chunk: [UInt8], atMost times: Int) throws {
        for _ in 0..<times {
            if try socket.sendUpTo(chunk) < chunk.count { return }
        }
    }
}
