import EchoProtocol
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The behaviours every echo server must show (docs/ARCHITECTURE.md, "EchoProtocol"). Each check throws a
/// `ConformanceFailure` saying what went wrong, so the suite can also prove, against deliberately
/// broken servers, that each check fails when its behaviour is missing.
enum Conformance {
    /// Sends `size` random bytes while reading the echo on another thread; the echo must be identical.
    static func echoesExactly(_ server: ServerProcess, size: Int) throws {
        let payload = randomPayload(size, seed: UInt64(size))
        let socket = try TestSocket(connectingTo: server.address, timeout: 5)
        let writer = BackgroundWork { try socket.send(payload) }
        let echoed: [UInt8]
        do {
            echoed = try socket.receive(exactly: size)
        } catch {
            throw ConformanceFailure("echo of \(size) B: \(error)")
        }
        try writer.join()
        try expectSame(echoed, payload, "echo of \(size) B")
    }

    /// Opens `count` connections first, then sends each a different random size, then reads each back.
    static func servesConcurrentConnections(_ server: ServerProcess, count: Int = 500) throws {
        let sockets = try (0..<count).map { _ in try TestSocket(connectingTo: server.address) }
        var generator = SeededSizes(seed: 42)
        let payloads = (0..<count).map { randomPayload(generator.next(in: 1...16_384), seed: UInt64($0)) }
        for (socket, payload) in zip(sockets, payloads) { try socket.send(payload) }
        for (index, (socket, payload)) in zip(sockets, payloads).enumerated() {
            let echoed = try socket.receive(exactly: payload.count)
            try expectSame(echoed, payload, "connection \(index) of \(count) (\(payload.count) B)")
        }
    }

    /// Half-close: after our FIN the server must send back everything, then close its side.
    /// We start reading only after a pause, so the FIN reaches a server that still holds echoes it
    /// could not send: a server that closes without flushing them loses data here.
    static func halfCloseEchoesPendingThenCloses(_ server: ServerProcess, size: Int = 512 * 1024) throws {
        let payload = randomPayload(size, seed: 7)
        let socket = try TestSocket(connectingTo: server.address)
        let writer = BackgroundWork {
            try socket.send(payload)
            socket.shutdownWrite()
        }
        usleep(300_000)
        let echoed = try socket.receive(exactly: size)
        try writer.join()
        try expectSame(echoed, payload, "echo before half-close")
        socket.setTimeout(3)
        let outcome = socket.readOutcome()
        guard outcome == .endOfFile else {
            throw ConformanceFailure("after a half-close and a full echo the server did not close: \(outcome)")
        }
    }

    /// Clients that reset mid-echo must be closed and freed; the server goes on serving.
    static func survivesResetsMidEcho(_ server: ServerProcess, clients: Int = 200) throws {
        let payload = randomPayload(64 * 1024, seed: 3)
        for _ in 0..<clients {
            let socket = try TestSocket(connectingTo: server.address)
            try socket.send(payload)
            _ = try socket.receive(exactly: 1024)
            socket.reset()
        }
        try echoesExactly(server, size: 4096)
        try waitFor("all \(clients) reset connections freed (active 0)", timeout: 5) {
            try server.snapshot().counters?.active == 0
        }
    }

    /// A client that writes 128 MiB and never reads costs the server one buffer, not 128 MiB;
    /// meanwhile other clients are served.
    static func boundsMemoryOfClientThatNeverReads(_ server: ServerProcess) throws {
        let before = try server.residentKiB()
        let hog = try TestSocket(connectingTo: server.address)
        hog.setTimeout(2)  // a write blocked this long means the server stopped reading: good
        let chunk = randomPayload(1 << 20, seed: 11)
        var written = 0
        for _ in 0..<128 {
            let sent = try hog.sendUpTo(chunk)
            written += sent
            if sent < chunk.count { break }
        }
        try echoesExactly(server, size: 1024)
        let growthKiB = try server.residentKiB() - before
        hog.closeNow()
        guard growthKiB < 64 * 1024 else {
            throw ConformanceFailure(
                "server RSS grew \(growthKiB) KiB while a client wrote \(written >> 20) MiB and never read (limit 64 MiB)")
        }
    }

    /// With `--max-connections 10` the 11th connection is closed at once and counted as refused.
    static func refusesBeyondMaxConnections(_ spec: ServerSpec) throws {
        try withServer(spec, extra: ["--max-connections", "10"]) { server in
            let admitted = try (0..<10).map { _ in try TestSocket(connectingTo: server.address) }
            for socket in admitted {
                try socket.send([1, 2, 3])
                _ = try socket.receive(exactly: 3)
            }
            let eleventh = try TestSocket(connectingTo: server.address, timeout: 3)
            _ = try? eleventh.sendUpTo([4, 5, 6])
            let outcome = eleventh.readOutcome()
            guard outcome == .endOfFile || outcome == .reset else {
                throw ConformanceFailure("the 11th connection was not closed at once: \(outcome)")
            }
            let counters = try server.snapshot().counters
            guard let counters, counters.accepted == 10, counters.refused == 1, counters.active == 10 else {
                throw ConformanceFailure(
                    "expected accepted 10, refused 1, active 10; stats say \(String(describing: counters))")
            }
            // Once they close, room again: the next one is accepted, and nothing was counted twice.
            admitted.forEach { $0.closeNow() }
            try waitFor("active 0 after the admitted connections closed", timeout: 3) {
                try server.snapshot().counters?.active == 0
            }
            let twelfth = try TestSocket(connectingTo: server.address)
            try twelfth.send([7])
            _ = try twelfth.receive(exactly: 1)
            let after = try server.snapshot().counters
            guard let after, after.accepted == 11, after.refused == 1, after.active == 1 else {
                throw ConformanceFailure(
                    "expected accepted 11, refused 1, active 1 after reconnecting; stats say \(String(describing: after))")
            }
        }
    }

    /// The stats endpoint's counters match what the test did.
    static func statsMatchTraffic(_ server: ServerProcess) throws {
        for index in 0..<3 {
            let socket = try TestSocket(connectingTo: server.address)
            let payload = randomPayload(1000, seed: UInt64(index))
            try socket.send(payload)
            try expectSame(try socket.receive(exactly: 1000), payload, "echo \(index)")
        }
        try waitFor("active 0 after the test's connections closed", timeout: 3) {
            try server.snapshot().counters?.active == 0
        }
        let snapshot = try server.snapshot()
        let expected = ConnectionCounts(active: 0, accepted: 3, refused: 0, bytesIn: 3000, bytesOut: 3000)
        guard snapshot.counters == expected, snapshot.pid == server.pid, snapshot.variant == server.ready?.variant
        else {
            throw ConformanceFailure(
                "stats \(snapshot.jsonLine()) do not match \(expected) pid \(server.pid) variant \(server.ready?.variant ?? "?")")
        }
        guard snapshot.memory.rssKiB > 0, snapshot.threads > 0, snapshot.openFDs > 0 else {
            throw ConformanceFailure("stats lack process figures: \(snapshot.jsonLine())")
        }
    }

    /// SIGTERM with open connections: the connections close, a final stats line, exit 0 within 2 s.
    static func stopsOnSigtermWithOpenConnections(_ server: ServerProcess) throws {
        let sockets = try (0..<20).map { _ in try TestSocket(connectingTo: server.address, timeout: 3) }
        for socket in sockets {
            try socket.send([9])
            _ = try socket.receive(exactly: 1)
        }
        kill(server.pid, SIGTERM)
        guard let status = server.waitForExit(timeout: 2) else {
            throw ConformanceFailure("server still running 2 s after SIGTERM with 20 open connections")
        }
        guard status == 0, server.process.terminationReason == .exit else {
            throw ConformanceFailure("server exited with status \(status) (\(server.process.terminationReason)) after SIGTERM")
        }
        _ = server.stdout.waitForEnd(timeout: 2)
        guard server.stdout.lines.contains(where: { $0.hasPrefix("final-stats ") }) else {
            throw ConformanceFailure("no final-stats line after SIGTERM; stdout: \(server.stdout.lines)")
        }
        for socket in sockets {
            let outcome = socket.readOutcome()
            guard outcome == .endOfFile || outcome == .reset else {
                throw ConformanceFailure("a connection stayed open after the server exited: \(outcome)")
            }
        }
    }

    /// A second server on a port in use exits non-zero with one line naming the port.
    static func secondServerOnSamePortFails(_ spec: ServerSpec) throws {
        try withServer(spec) { first in
            let port = first.address.port
            let second = try ServerProcess(spec, extra: ["--port", "\(port)"])
            defer { second.stop() }
            guard let status = second.waitForExit(timeout: 10) else {
                throw ConformanceFailure("a second server on port \(port) is still running")
            }
            _ = second.stderr.waitForEnd(timeout: 2)
            let errors = second.stderr.lines.filter { !$0.isEmpty }
            guard status != 0, errors.count == 1, errors[0].contains(":\(port)") else {
                throw ConformanceFailure(
                    "second server on port \(port): status \(status), stderr \(errors); want non-zero and one line naming the port")
            }
        }
    }

    // MARK: - Helpers

    static func expectSame(_ actual: [UInt8], _ expected: [UInt8], _ what: String) throws {
        guard actual != expected else { return }
        let index = zip(actual, expected).enumerated().first(where: { $0.element.0 != $0.element.1 })?.offset
            ?? min(actual.count, expected.count)
        throw ConformanceFailure(
            "\(what): \(actual.count) B back for \(expected.count) B sent, first difference at byte \(index)")
    }

    /// Waits until a new connection to `server` echoes a byte (each try connects, sends and reads
    /// within 2 s), up to `timeout` seconds: how a test sees a server serve again after a shortage.
    static func waitForANewConnectionToEcho(_ server: ServerProcess, _ when: String, timeout: Double) throws {
        try waitFor("a new connection to echo \(when)", timeout: timeout) {
            let socket = try TestSocket(connectingTo: server.address, timeout: 2)
            try socket.send([42])
            return socket.readOutcome() == .data(1)
        }
    }

    /// Polls `condition` every 20 ms until it holds or `timeout` seconds pass.
    static func waitFor(_ what: String, timeout: Double, _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if try condition() { return }
            if Date() > deadline { throw ConformanceFailure("timed out after \(timeout) s waiting for \(what)") }
            usleep(20_000)
        }
    }
}

/// Reproducible sizes for the concurrent-connections check.
struct SeededSizes {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next(in range: ClosedRange<Int>) -> Int {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return range.lowerBound + Int((state >> 33) % UInt64(range.count))
    }
}
