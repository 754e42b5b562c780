import EchoProtocol
import Foundation
import Testing

@testable import loadgen

/// Issue 21: an open loop records how late the client sent each message, apart from the latency,
/// and flags a run whose latency is largely the client's; `--spin` keeps the client loops awake.
@Suite(.serialized)
struct SendLatenessTests {
    static func run(_ server: TestEchoServer, connections: Int, depth: Int? = nil, rate: Double?,
                    duration: Duration = .milliseconds(600), spin: Bool = false) throws -> LoadResult {
        var settings = ConnectionSettings(target: server.address, connections: connections)
        settings.connectTimeout = .seconds(2)
        return try LoadRun(connection: settings, depth: depth, rate: rate, duration: duration,
                           warmup: .milliseconds(200), drainTimeout: .seconds(2), spin: spin).run()
    }

    @Test func anOpenLoopRecordsEverySendsLatenessAClosedLoopNone() throws {
        let server = try TestEchoServer()
        defer { server.stop() }
        let open = try Self.run(server, connections: 4, rate: 2000)
        #expect(open.succeeded, "\(Report.table(open))")
        let lateness = try #require(open.sendLatenessMicroseconds)
        // One entry per message sent in the measured window: 2,000/s × 0.6 s.
        #expect(lateness.count >= 1000 && lateness.count <= 1260, "\(lateness.count) sends recorded")
        #expect(open.sendLatenessHistogram?.totalCount == UInt64(lateness.count))
        // A message is sent before it comes back, so lateness is part of its latency. Only the
        // middle is compared: the two are counted over different messages at the window's end (a
        // send made late in the window is counted, its answer after the window is not), so when the
        // client thread is stalled there by a loaded machine the largest lateness can exceed the
        // largest latency (266 ms against 55 ms once).
        #expect(lateness.p50 <= open.latencyMicroseconds.p50, "\(Report.table(open))")
        #expect(Report.table(open).contains("lateness     p50 "))
        let json = Report.jsonText(open)
        #expect(json.contains("\"sendLatenessMicroseconds\""))
        let decoded = try JSONDecoder().decode(LoadResult.self, from: Data(json.utf8))
        #expect(decoded.sendLatenessMicroseconds == open.sendLatenessMicroseconds)

        let closed = try Self.run(server, connections: 4, rate: nil, duration: .milliseconds(300))
        #expect(closed.sendLatenessMicroseconds == nil && closed.clientWasLate == nil)
        #expect(!Report.table(closed).contains("lateness"))
    }

    /// One connection may hold one message, and the server takes 2 ms to answer it: at 2,000 msgs/s the
    /// schedule waits for every answer, each send is later than the one before, and the latency is
    /// mostly that lateness. The run is flagged.
    @Test func aScheduleHeldUpAtTheClientIsFlagged() throws {
        let server = try TestEchoServer(.slow(microsecondsPer64Bytes: 2000))
        defer { server.stop() }
        let result = try Self.run(server, connections: 1, depth: 1, rate: 2000, duration: .milliseconds(500))
        let lateness = try #require(result.sendLatenessMicroseconds)
        #expect(lateness.p99 > 10_000, "\(Report.table(result))")
        #expect(result.clientWasLate == true)
        #expect(SendLateness.note(result)?.contains("the client was late") == true)
        #expect(Report.table(result).contains("the client was late"))
        // The rule itself: a quarter of the latency p99.
        let latency = LatencyFigures(count: 10, mean: 100, p50: 100, p90: 100, p99: 400, p999: 400, max: 400)
        var small = latency
        small.p99 = 100
        #expect(!SendLateness.isLate(lateness: small, latency: latency))
        small.p99 = 101
        #expect(SendLateness.isLate(lateness: small, latency: latency))
    }

    /// A spinning client loop keeps its thread on the CPU even at 500 msgs/s; a sleeping one does not.
    /// (The loop thread's own CPU: the process's includes the other suites running in it.)
    @Test func spinKeepsTheClientBusy() throws {
        let server = try TestEchoServer()
        defer { server.stop() }
        let spinning = try Self.run(server, connections: 2, rate: 500, duration: .milliseconds(400), spin: true)
        let sleeping = try Self.run(server, connections: 2, rate: 500, duration: .milliseconds(400))
        #expect(spinning.succeeded && sleeping.succeeded)
        #expect(spinning.settings.spin == true && sleeping.settings.spin == nil)
        let (spun, slept) = (try #require(spinning.client.busiestLoopPercent), try #require(sleeping.client.busiestLoopPercent))
        #expect(spun > 30, "spinning loop thread \(spun)% of a core")
        #expect(spun > 3 * slept, "spinning \(spun)% vs sleeping \(slept)%")
        #expect(try Loadgen.Run.parse(["--rate", "1000", "--spin"]).spinning.spin)
        #expect(try Loadgen.Curve.parse(["--rates", "1000", "--spin"]).spinning.spin)
    }
}
