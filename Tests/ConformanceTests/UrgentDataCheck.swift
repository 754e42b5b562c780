import EchoProtocol
import Foundation

#if canImport(Glibc)
import Glibc
#endif

extension Conformance {
    /// A client sends urgent data (`MSG_OOB`) and plain bytes in one segment: the server must still
    /// echo every in-band byte. Linux stops a read at the urgent mark once it has copied something,
    /// so the server's read comes back short with bytes still queued; a server that takes a short
    /// read as "drained" and waits for the next edge stalls that connection for good.
    ///
    /// Per connection: cork, `send("AAAA", MSG_OOB)` (the last A is the out-of-band byte), `send("BBBB")`,
    /// uncork, then expect the seven in-band bytes "AAABBBB" back within `timeout`. In `rounds`
    /// rounds of fresh connections, each accepted before the server is stopped.
    static func urgentDataDoesNotStallTheEcho(
        _ server: ServerProcess, connections: Int = 40, rounds: Int = 3, timeout: Double = 3
    ) throws {
        for round in 0..<rounds {
            try urgentDataRound(server, connections: connections, timeout: timeout, round: round)
        }
    }

    private static func urgentDataRound(_ server: ServerProcess, connections: Int, timeout: Double, round: Int) throws {
        let sockets = try (0..<connections).map { _ in try TestSocket(connectingTo: server.address, timeout: timeout) }
        // Accepted and waiting for bytes first: then the bytes land while the server is being
        // stopped, which is when io_uring's multishot recv was seen to stop at the mark and wait
        // for a wake-up that never came (see echo-uring's `rearmWhereBytesWereLeft`).
        try waitFor("\(connections) connections to be accepted", timeout: 10) {
            (try server.snapshot().counters?.active ?? 0) >= connections
        }
        // With the server stopped, every connection's bytes are queued before it reads any: the
        // case where the read stops at the mark with bytes behind it. (Sent while the server runs,
        // its read often takes the first segment alone, and the stall shows only by chance.)
        kill(server.pid, SIGSTOP)
        defer { kill(server.pid, SIGCONT) }
        for socket in sockets { try sendUrgentThenPlainInOneSegment(socket.fd) }
        usleep(20_000)
        kill(server.pid, SIGCONT)
        let expected = Array("AAABBBB".utf8)
        var stalled: [Int] = []
        let deadline = Date().addingTimeInterval(timeout)
        for (index, socket) in sockets.enumerated() {
            socket.setTimeout(max(0.05, deadline.timeIntervalSinceNow))  // one deadline for all
            guard let echoed = try? socket.receive(exactly: expected.count), echoed == expected else {
                stalled.append(index)
                continue
            }
        }
        sockets.forEach { $0.closeNow() }
        guard stalled.isEmpty else {
            throw ConformanceFailure(
                "round \(round + 1): \(stalled.count) of \(connections) connections that sent urgent data did not "
                    + "get their \(expected.count) in-band bytes back within \(timeout) s")
        }
        try waitFor("the round's connections to be closed", timeout: 10) {
            try server.snapshot().counters?.active == 0
        }
    }

    private static func sendUrgentThenPlainInOneSegment(_ fd: Int32) throws {
        var on: Int32 = 1
        var off: Int32 = 0
        let size = socklen_t(MemoryLayout<Int32>.size)
        guard setsockopt(fd, Int32(IPPROTO_TCP), TCP_CORK, &on, size) == 0 else {
            throw ConformanceFailure("TCP_CORK: \(errnoDescription(errno))")
        }
        let urgent = Array("AAAA".utf8)
        let plain = Array("BBBB".utf8)
        guard send(fd, urgent, urgent.count, Int32(MSG_OOB)) == urgent.count,
            send(fd, plain, plain.count, 0) == plain.count
        else { throw ConformanceFailure("send: \(errnoDescription(errno))") }
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_CORK, &off, size)
    }
}
