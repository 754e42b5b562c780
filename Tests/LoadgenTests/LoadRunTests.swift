#if canImport(Glibc)
import Glibc
#endif
import EchoProtocol
import Foundation
import Testing

@testable import loadgen

/// The engine against in-test echo servers. Serialized: the rate test wants the CPU to itself.
@Suite(.serialized)
struct LoadRunTests {
    static func run(_ server: TestEchoServer, connections: Int = 8, depth: Int? = nil, rate: Double? = nil,
                    size: Int = 64, duration: Duration = .milliseconds(800), warmup: Duration = .milliseconds(200),
                    configure: (inout ConnectionSettings) -> Void = { _ in }) throws -> LoadResult {
        var settings = ConnectionSettings(target: server.address, connections: connections)
        settings.connectTimeout = .seconds(2)
        configure(&settings)
        let load = LoadRun(connection: settings, messageSize: size, depth: depth, rate: rate, duration: duration,
                           warmup: warmup, drainTimeout: .seconds(2))
        return try load.run()
    }

    @Test func countsAddUp() throws {
        let server = try TestEchoServer()
        defer { server.stop() }
        let result = try Self.run(server, connections: 8, depth: 4, configure: { $0.threads = 2 })
        let record = server.stop()
        #expect(result.errors.total == 0)
        #expect(result.complete)
        #expect(result.connections.established == 8)
        #expect(result.messages > 0)
        #expect(result.messages == result.latencyMicroseconds.count)
        #expect(result.messages <= result.totals.messagesCompleted)
        // Every byte sent came back, and the server echoed exactly those (plus nothing).
        #expect(result.totals.bytesSent == result.totals.messagesCompleted * 64)
        #expect(result.totals.bytesReceived == result.totals.bytesSent)
        #expect(record.bytesEchoed == result.totals.bytesSent)
        #expect(result.fairness.minimum <= result.fairness.median && result.fairness.median <= result.fairness.maximum)
        #expect(result.fairness.maximum * 8 >= result.messages)
        #expect(result.messagesPerSecond > 0 && result.measuredSeconds > 0.7)
    }

    @Test func corruptedByteIsCaughtAsMismatch() throws {
        let server = try TestEchoServer(.corruptByte(at: 1000))
        defer { server.stop() }
        let result = try Self.run(server, connections: 4)
        #expect(result.errors[.mismatch] == 1)
        #expect(result.errors.total == 1)
        #expect(result.errors.firstError?.contains("echoed byte 1000 was") == true)
        #expect(!result.succeeded)
    }

    @Test func earlyCloseIsReportedAsShortStream() throws {
        let server = try TestEchoServer(.closeFirstAfter(bytes: 640))
        defer { server.stop() }
        let result = try Self.run(server, connections: 4)
        #expect(result.errors[.shortStream] == 1)
        #expect(result.errors.total == 1)
        // An end of stream or a reset (the server closed with our next message unread), after 640 bytes.
        #expect(result.errors.firstError?.contains("after echoing 640 of") == true, "\(result.errors)")
        #expect(result.complete)  // the other connections carried on
        #expect(!result.succeeded)
    }

    @Test func serverDyingMidRunGivesPartialResultsWithoutHanging() throws {
        let server = try TestEchoServer(.dieAfter(totalBytes: 200_000))
        defer { server.stop() }
        let began = ContinuousClock.now
        let result = try Self.run(server, connections: 6, duration: .seconds(20), warmup: .zero)
        #expect(ContinuousClock.now - began < .seconds(5))
        #expect(!result.complete)
        #expect(result.stopReason?.contains("every connection was lost") == true)
        #expect(result.errors.total == 6)
        #expect(result.messages > 0)
        #expect(!result.succeeded)
    }

    @Test func ratePacesWithinFivePercentOverTwoSeconds() throws {
        let server = try TestEchoServer()
        defer { server.stop() }
        let result = try Self.run(server, connections: 10, rate: 2000, duration: .seconds(2), warmup: .milliseconds(300))
        #expect(result.errors.total == 0)
        #expect(abs(result.messagesPerSecond - 2000) / 2000 < 0.05, "paced at \(result.messagesPerSecond) msgs/s: \(result.messages) in \(result.measuredSeconds) s, complete \(result.complete), \(result.totals)")
        #expect(result.settings.rate == 2000)
    }

    @Test func sourceAddressesAreUsed() throws {
        let server = try TestEchoServer()
        defer { server.stop() }
        let result = try Self.run(server, connections: 8, duration: .milliseconds(300), warmup: .zero) {
            $0.sourceAddresses = try! TextValues.addresses("127.0.0.2-127.0.0.5")
        }
        let record = server.stop()
        #expect(result.errors.total == 0)
        // The server saw each connection from the address loadgen bound it to (getpeername of the
        // accepted socket is the client's getsockname); the first extra one is the reachability probe.
        let hosts = Dictionary(grouping: record.peers.map(\.host), by: { $0 }).mapValues(\.count)
        #expect(hosts == ["127.0.0.2": 3, "127.0.0.3": 2, "127.0.0.4": 2, "127.0.0.5": 2])
    }

    @Test func serverFiguresComeFromTheStatsEndpoint() throws {
        let server = try TestEchoServer(statsEndpoint: true)
        defer { server.stop() }
        let result = try Self.run(server, duration: .milliseconds(300)) { $0.serverStats = server.statsAddress }
        let figures = try #require(result.server)
        #expect(figures.source == "stats-endpoint")
        #expect(figures.pid == getpid())
        #expect(figures.variant == "test")
        #expect(figures.rssKiB > 0)
        let record = server.stop()
        #expect(record.statsServed == 3)  // checked at start, measured phase start and end
        // The server is read at the end while it still holds every connection: closing them first would
        // let a thread-per-connection server's threads exit and take their context switches along.
        #expect(record.openAtStats.last == 8)
    }

    @Test func serverFiguresComeFromTheListeningSocketsOwner() throws {
        let server = try TestEchoServer()
        defer { server.stop() }
        #expect(ListeningSocketOwner.find(server.address) == getpid())
        let result = try Self.run(server, duration: .milliseconds(300))
        #expect(result.server?.source == "listening-socket")
        #expect(result.server?.pid == getpid())
        #expect(result.server?.threads ?? 0 >= 2)
    }

    @Test func unreachableTargetFailsWithOneLineNamingIt() throws {
        let fd = try Listener.open(host: "127.0.0.1", port: 0, backlog: 1, nonBlocking: false)[0]
        let address = Listener.boundAddress(of: fd)!
        close(fd)  // nothing listens there now
        let began = ContinuousClock.now
        var settings = ConnectionSettings(target: address, connections: 10)
        settings.connectTimeout = .seconds(2)
        #expect {
            _ = try LoadRun(connection: settings, duration: .seconds(1)).run()
        } throws: { error in
            (error as? StartupError)?.message == "cannot connect to \(address): Connection refused"
        }
        #expect(ContinuousClock.now - began < .seconds(2))
    }

    @Test func connectionsCountOnlyOnceTheirFirstEchoCameBack() throws {
        let server = try TestEchoServer(.silent)
        defer { server.stop() }
        var settings = ConnectionSettings(target: server.address, connections: 3)
        settings.connectTimeout = .milliseconds(500)
        settings.serverPID = getpid()  // no /proc-wide search for the listener: this test times the greeting
        let began = ContinuousClock.now
        #expect {
            _ = try LoadRun(connection: settings, duration: .seconds(1)).run()
        } throws: { error in
            (error as? StartupError)?.message.contains("connected, but its first echo did not come back within 500ms") == true
        }
        #expect(ContinuousClock.now - began < .seconds(2))
    }

    @Test func moreConnectionsThanTheFileLimitNamesTheFix() throws {
        let server = try TestEchoServer()
        defer { server.stop() }
        let settings = ConnectionSettings(target: server.address, connections: 2_000_000)
        #expect {
            _ = try LoadRun(connection: settings).run()
        } throws: { error in
            let message = (error as? StartupError)?.message ?? ""
            return message.contains("RLIMIT_NOFILE") && message.contains("ulimit -n")
                && message.contains("--source-addresses") && !message.contains("\n")
        }
        #expect(server.stop().peers.isEmpty)  // refused before connecting anywhere
    }

    @Test func resultRoundTripsThroughJSON() throws {
        let server = try TestEchoServer()
        defer { server.stop() }
        let result = try Self.run(server, duration: .milliseconds(300))
        let text = Report.jsonText(result)
        #expect(try JSONDecoder().decode(LoadResult.self, from: Data(text.utf8)) == result)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        for key in ["schemaVersion", "messagesPerSecond", "errors", "latencyMicroseconds", "server", "client"] {
            #expect(object[key] != nil, "missing \(key)")
        }
        #expect(object["schemaVersion"] as? Int == LoadResult.currentSchemaVersion)
        let latency = try #require(object["latencyMicroseconds"] as? [String: Any])
        #expect(Set(latency.keys) == ["count", "mean", "p50", "p90", "p99", "p999", "max"])
        let errors = try #require(object["errors"] as? [String: Any])
        #expect(errors["total"] as? Int == 0)
    }

    /// A server read is flagged when it cost loadgen over 1% of the window's CPU, and only then.
    @Test func aCostlyServerReadIsNoted() {
        var note: String? = "earlier note"
        ServerReadCost(wallSeconds: 0.5, cpuSeconds: 0.02).note(window: 3, countedBy: .taskstats, into: &note)
        #expect(note == "earlier note")  // 20 ms of 3 s; half a second waiting costs the load nothing
        ServerReadCost(wallSeconds: 0.4, cpuSeconds: 0.4).note(window: 3, countedBy: .procThreads, into: &note)
        #expect(note?.hasPrefix("earlier note; reading the server took 400 ms of CPU (proc-threads)") == true)
        var none: String? = nil
        ServerReadCost(cpuSeconds: 0.1).note(window: 3, countedBy: nil, into: &none)
        #expect(none?.hasPrefix("reading the server took 100 ms") == true)
    }

    /// The server is a process of its own (echo-threads), not the in-test server: this process's
    /// descriptors come and go with the suites that run beside this one, so its count before and
    /// after says nothing certain about 20 connections.
    @Test func idleReportsServerMemoryPerConnection() throws {
        let server = try RunningServer(SweptServer.variant("threads", in: SweptServer.productsDirectory), pinTo: nil)
        defer { _ = server.stop() }
        var settings = ConnectionSettings(target: server.address, connections: 20)
        settings.serverPID = server.pid
        let result = try IdleRun(connection: settings, hold: .zero).run()
        #expect(result.echoed == 20)
        #expect(result.heldOpen == 20)
        #expect(result.errors.total == 0)
        #expect(result.succeeded)
        let figures = try #require(result.server)
        #expect(figures.source == "pid")
        #expect(figures.pid == server.pid)
        // The server's end of each connection held; one fewer if the server still held the
        // reachability probe's connection at the first reading. (Not an exact count: the server may
        // still be opening descriptors of its own, such as its spare, after its readiness line.)
        let added = figures.after.openFDs - figures.before.openFDs
        #expect(added >= 19, "\(figures.before.openFDs) descriptors before, \(figures.after.openFDs) after")
        let text = Report.jsonText(result)
        #expect(try JSONDecoder().decode(IdleResult.self, from: Data(text.utf8)) == result)
    }
}
