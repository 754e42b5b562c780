import EchoProtocol
import Foundation
import Testing

@testable import loadgen

/// `loadgen curve` (issue 14): latency against offered load finds where a server saturates.
@Suite(.serialized)
struct CurveTests {
    /// A server that spends 200 µs per message saturates near 5,000 msgs/s: doubling from 1,000
    /// meets the bound at first, misses it by 8,000 (it cannot achieve 95% of that), and the
    /// bisection ends between. The p99 bound is generous: other suites load the machine meanwhile,
    /// so it is the achieved rate that finds the saturation.
    @Test func autoFindsTheSaturationOfASlowServer() throws {
        let server = try TestEchoServer(.slow(microsecondsPer64Bytes: 200))
        defer { server.stop() }
        var settings = ConnectionSettings(target: server.address, connections: 4)
        settings.connectTimeout = .seconds(2)
        var curve = Curve(connection: settings)
        curve.duration = .milliseconds(600)
        curve.warmup = .milliseconds(200)
        curve.startRate = 1000
        curve.p99LimitMicroseconds = 200_000
        curve.bisections = 3
        let result = try curve.run()
        #expect(result.complete, "\(result.stopReason ?? "")")
        let offered = result.steps.map(\.offered)
        #expect(offered.first == 1000, "\(offered)")
        #expect(result.steps.contains { !$0.metBound }, "no step missed the bound: \(result.table)")
        let best = try #require(result.highestRateWithinBound, "\(result.table)")
        #expect(best >= 1000 && best < 8000, "\(result.table)")
        // The bisection probed between the last rate that met the bound and the first that missed.
        #expect(offered.count >= 3, "\(offered)")
    }

    @Test func fixedRatesRunInOrderAndAreParsed() throws {
        let server = try TestEchoServer()
        defer { server.stop() }
        var settings = ConnectionSettings(target: server.address, connections: 2)
        settings.connectTimeout = .seconds(2)
        var curve = Curve(connection: settings)
        curve.duration = .milliseconds(300)
        curve.warmup = .zero
        curve.rates = [500, 1000]
        // Generous, as above: on a loaded machine a 10 ms p99 is missed by the client's own lateness.
        curve.p99LimitMicroseconds = 200_000
        let result = try curve.run()
        #expect(result.steps.map(\.offered) == [500, 1000])
        #expect(result.steps.allSatisfy { $0.metBound && $0.errors == 0 }, "\(result.table)")
        #expect(result.highestRateWithinBound == 1000)
        #expect(try Loadgen.Curve.parse(["--rates", "10k,1.5M,200"]).parsedRates() == [10_000, 1_500_000, 200])
        #expect(throws: (any Error).self) { try Loadgen.Curve.parse(["--rates", "fast"]) }
        #expect(Loadgen.Curve.path("out/curve.hgrm", rate: 20000) == "out/curve-20000.hgrm")
    }
}
