import EchoProtocol
import Foundation
import Testing

@testable import loadgen

/// `loadgen ab` (issue 21): alternating rounds, per-round ratios, their median, range and verdict.
@Suite(.serialized)
struct ABTests {
    @Test func ratiosGiveMedianRangeAndVerdict() throws {
        let noisy = try #require(RatioSummary(figure: "rate", baseline: "a", other: "b", ratios: [1.26, 0.78, 1.02, 1.10]))
        #expect(noisy.median == 1.06)
        #expect(noisy.minimum == 0.78 && noisy.maximum == 1.26)
        #expect(noisy.verdict == "within noise")
        #expect(noisy.line == "rate b/a 1.06× (0.78–1.26, 4 rounds): within noise")
        #expect(RatioSummary(figure: "p99", baseline: "a", other: "b", ratios: [1.2, 1.4, 1.3])?.verdict == "higher in every round")
        #expect(RatioSummary(figure: "p99", baseline: "a", other: "b", ratios: [0.5, 0.9])?.verdict == "lower in every round")
        #expect(RatioSummary(figure: "p99", baseline: "a", other: "b", ratios: [0.5])?.verdict == "one round: no verdict")
        // Rounds where a figure is missing or zero are not ratios.
        #expect(RatioSummary(figure: "p99", baseline: "a", other: "b", ratios: [.nan, 0]) == nil)
    }

    @Test func roundsAlternateTheOrder() {
        let a = ABContender(name: "a", source: .address(SocketAddress("127.0.0.1", port: 1)!))
        let b = ABContender(name: "b", source: .address(SocketAddress("127.0.0.1", port: 2)!))
        #expect((0..<4).map { ABContender.order(of: [a, b], round: $0).map(\.name).joined() } == ["ab", "ba", "ab", "ba"])
    }

    /// A server that sleeps 300 µs per message against a plain one: every round's rate ratio is far
    /// below 1, so the verdict is not noise; the order alternates and every run is in the result.
    @Test func aSlowerServerIsLowerInEveryRound() throws {
        let fast = try TestEchoServer()
        defer { fast.stop() }
        let slow = try TestEchoServer(.slow(microsecondsPer64Bytes: 300))
        defer { slow.stop() }
        var settings = ConnectionSettings(target: fast.address, connections: 2)
        settings.connectTimeout = .seconds(2)
        let runner = ABRunner(
            contenders: [ABContender(name: "fast", source: .address(fast.address)),
                         ABContender(name: "slow", source: .address(slow.address))],
            rounds: 2,
            load: LoadRun(connection: settings, duration: .milliseconds(300), warmup: .milliseconds(100), drainTimeout: .seconds(2)))
        let result = runner.run()
        #expect(result.complete, "\(result.table)")
        #expect(result.rounds.map(\.order) == [["fast", "slow"], ["slow", "fast"]])
        #expect(result.rounds.allSatisfy { $0.runs.count == 2 })
        let rate = try #require(result.comparisons.first { $0.figure == "rate" }, "\(result.table)")
        #expect(rate.ratios.count == 2)
        #expect(rate.maximum < 0.7, "\(result.table)")
        #expect(rate.verdict == "lower in every round")
        #expect(result.table.contains("rate slow/fast"))
        let decoded = try JSONDecoder().decode(ABResult.self, from: Data(Report.jsonText(result).utf8))
        #expect(decoded == result)
    }

    @Test func commandLineNeedsTwoDistinctContenders() throws {
        #expect(throws: (any Error).self) { try Loadgen.AB.parse(["--target", "127.0.0.1:7007"]) }
        #expect(throws: (any Error).self) { try Loadgen.AB.parse(["--target", "a=127.0.0.1:7007", "--target", "a=127.0.0.1:7008"]) }
        #expect(throws: (any Error).self) { try Loadgen.AB.parse(["--servers", "threads", "--server", "x=no-port-here"]) }
        let command = try Loadgen.AB.parse(["--servers", "threads", "--server", "c=prog {port}", "--target", "127.0.0.1:7007", "--rounds", "3"])
        #expect(try command.contenders(in: URL(fileURLWithPath: "/bin")).map(\.name) == ["threads", "c", "127.0.0.1:7007"])
        #expect(command.rounds == 3)
    }
}

/// In SweepTests' suite: it starts servers, and that suite checks none is left running.
extension SweepTests {
    /// Started servers: each run gets a fresh one, read through its stats port; a command that cannot
    /// start fails its runs, and the comparison says it is incomplete.
    @Test func abStartsServersFreshPerRunAndReportsFailures() throws {
        var settings = ConnectionSettings(target: SocketAddress("127.0.0.1", port: 7)!, connections: 2)
        settings.connectTimeout = .seconds(2)
        let load = LoadRun(connection: settings, duration: .milliseconds(300), warmup: .milliseconds(100), drainTimeout: .seconds(2))
        var started: [String] = []
        var runner = ABRunner(
            contenders: ["threads", "libev"].map { ABContender(name: $0, source: .started(.variant($0, in: SweptServer.productsDirectory))) },
            rounds: 2, load: load)
        runner.idleConnections = 20
        runner.progress = { line in if line.hasSuffix("idle connections") { started.append(line) } }
        let result = runner.run()
        #expect(result.complete, "\(result.table)")
        #expect(started.count == 4, "\(started)")
        #expect(result.rounds.flatMap(\.runs).allSatisfy { $0.serverCPUMicrosecondsPerMessage != nil && $0.messagesPerSecond > 0 })
        #expect(result.comparisons.map(\.figure).contains("server CPU/msg"))
        #expect(result.settings.idleConnections == 20)

        let broken = ABRunner(
            contenders: [ABContender(name: "libev", source: .started(.variant("libev", in: SweptServer.productsDirectory))),
                         ABContender(name: "none", source: .started(SweptServer(foreign: "none=/nonexistent/echo {port}")!))],
            rounds: 1, load: load).run()
        #expect(!broken.complete)
        #expect(broken.failures.count == 1 && broken.failures[0].contains("none"), "\(broken.failures)")
        #expect(broken.comparisons.isEmpty)
        #expect(broken.table.contains("failed"))
    }
}
