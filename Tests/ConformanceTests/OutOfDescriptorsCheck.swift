import EchoProtocol
import ForeignProcess
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A check shared by the servers that accept on nonblocking listeners (echo-libev, echo-tasks).
extension Conformance {
    /// Out of descriptors, accept(2) fails with EMFILE but leaves the connection queued, so a naive
    /// level-triggered loop spins at 100% CPU (libev's manual: "The special problem of accept()ing
    /// when you can't"). With RLIMIT_NOFILE at 64 and more connections than that, the server must
    /// stay nearly idle, keep serving the connections it has, and accept again once some close.
    static func outOfDescriptorsNeitherSpinsNorStopsServing(_ spec: ServerSpec) throws {
        // Lifecycle.prepare() raises the soft limit to the hard one, so the hard limit is what counts.
        let server = try ServerProcess.started(spec, shellPrefix: "ulimit -n 64")
        defer { server.stop() }

        // Below the limit: every connection is accepted and echoes.
        let served = try (0..<30).map { _ in try TestSocket(connectingTo: server.address) }
        for (index, socket) in served.enumerated() { try expectEcho(on: socket, "connection \(index) below the limit") }

        // Beyond it: the kernel completes every handshake, the server cannot take them all.
        let beyond = try (0..<70).map { _ in try TestSocket(connectingTo: server.address) }
        try waitFor("the out-of-descriptors warning", timeout: 5) {
            server.stderr.lines.contains { $0.contains("out of file descriptors") }
        }

        // While more connections keep arriving, the server's CPU time must stay under 10%.
        let before = try cpuSeconds(of: server)
        var latecomers: [TestSocket] = []
        for _ in 0..<30 {
            latecomers.append(try TestSocket(connectingTo: server.address))
            usleep(100_000)
        }
        let used = try cpuSeconds(of: server) - before
        #expect(used < 0.3, "server used \(used) s of CPU in 3 s while out of descriptors")

        // Established connections are still served.
        try expectEcho(on: served[0], "an established connection while out of descriptors")

        // Once some close, a new connection is accepted and echoes.
        served[1..<21].forEach { $0.closeNow() }
        beyond.forEach { $0.closeNow() }
        latecomers.forEach { $0.closeNow() }
        try waitForANewConnectionToEcho(server, "once descriptors are free", timeout: 10)
        try expectEcho(on: served[29], "an established connection after the overload")
    }

    private static func expectEcho(on socket: TestSocket, _ what: String) throws {
        let payload = randomPayload(100, seed: 9)
        try socket.send(payload)
        try Conformance.expectSame(try socket.receive(exactly: payload.count), payload, what)
    }

    private static func cpuSeconds(of server: ServerProcess) throws -> Double {
        guard let snapshot = ServerSnapshot.ofProcess(pid: server.pid) else {
            throw ConformanceFailure("server \(server.pid) is gone")
        }
        return snapshot.usage.userSeconds + snapshot.usage.systemSeconds
    }
}
