#if canImport(Glibc)
import Glibc
#endif
import EchoProtocol
import Foundation
import Testing

@testable import loadgen

/// `sweep --rounds` (issue 21): every step N times, servers interleaved, medians with ranges.
/// In SweepTests' suite: they start servers, and that suite checks none is left running.
extension SweepTests {
    @Test func spreadIsMedianAndRange() throws {
        let spread = try #require(Spread([3, 1, 2, 10]))
        #expect(spread.median == 2.5 && spread.minimum == 1 && spread.maximum == 10 && spread.count == 4)
        #expect(spread.text { TextFormat.fixed($0, 1) } == "2.5 (1.0–10.0)")
        #expect(Spread([.nan]) == nil)
        #expect(Spread([7])?.text { TextFormat.fixed($0, 0) } == "7")
    }

    @Test func chartsDrawARangeAsAnErrorBar() {
        var chart = SVGChart(title: "t", x: .init(label: "x"), y: .init(label: "y"))
        chart.series = [.init(name: "a", points: [(1, 5), (2, 6)], ranges: [(1, 4, 9)])]
        let svg = chart.render()
        #expect(svg.components(separatedBy: #"class="range""#).count == 2)
        #expect(svg.contains("4–9 over the rounds"))
    }

    /// Two servers, one count, two rounds: the order alternates, each (server, count) has a summary
    /// row whose figures lie within their rounds, and the files carry it.
    @Test func roundsAlternateAndAreSummarised() throws {
        let output = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: output) }
        var plan = Self.plan(Self.variants, connections: [10], output: output)
        plan.rounds = 2
        plan.churnConcurrency = nil
        let results = try SweepRunner(plan: plan).run()
        #expect(results.complete, "\(SweepReport.table(results))")
        #expect(results.steps.map { "\($0.server)#\($0.round ?? 0)" } == ["threads#1", "libev#1", "libev#2", "threads#2"])
        let summary = try #require(results.summary)
        #expect(summary.map(\.server) == ["threads", "libev"])
        for row in summary {
            #expect(row.rounds == 2 && row.completedRounds == 2)
            let rate = try #require(row.figures["msgs_per_second"])
            let rounds = results.steps.filter { $0.server == row.server }.compactMap { $0.loaded?.messagesPerSecond }
            #expect(rate.minimum == rounds.min() && rate.maximum == rounds.max())
            #expect(rate.median == (rounds[0] + rounds[1]) / 2)
            #expect(row.figures["server_cpu_us_per_msg"] != nil)
        }
        #expect(SweepReport.table(results).contains("median (min–max) over the rounds"))
        let csv = try String(contentsOf: output.appendingPathComponent("summary.csv"), encoding: .utf8)
        #expect(csv.hasPrefix("server,scenario,connections,rounds,completed_rounds,idle_rss_kib_median"))
        #expect(csv.split(separator: "\n").count == 3)
        let results_csv = try String(contentsOf: output.appendingPathComponent("results.csv"), encoding: .utf8)
        #expect(results_csv.split(separator: "\n").first?.hasSuffix(",round") == true)
        let throughput = try String(contentsOf: output.appendingPathComponent("throughput.svg"), encoding: .utf8)
        #expect(throughput.contains(#"class="range""#))
        let decoded = try SweepResults.decode(Data(contentsOf: output.appendingPathComponent("results.json")))
        #expect(decoded.summary == results.summary && decoded.settings.rounds == 2)
    }
}

extension SweepTests {
    /// Every loaded phase leaves a heat map of its latency over time; index.html shows one per server.
    @Test func loadedPhasesDrawHeatmapsIntoIndex() throws {
        let output = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: output) }
        var plan = Self.plan([SweptServer.variant("libev", in: SweptServer.productsDirectory)], connections: [10, 20], output: output)
        plan.churnConcurrency = nil
        plan.duration = .seconds(1)
        let results = try SweepRunner(plan: plan).run()
        #expect(results.complete, "\(SweepReport.table(results))")
        #expect(results.steps.map(\.heatmap) == ["heatmap-libev-10.svg", "heatmap-libev-20.svg"])
        let svg = try String(contentsOf: output.appendingPathComponent("heatmap-libev-20.svg"), encoding: .utf8)
        #expect(svg.contains("messages</title></rect>"))
        let index = try String(contentsOf: output.appendingPathComponent("index.html"), encoding: .utf8)
        #expect(index.contains(#"<img src="heatmap-libev-20.svg""#) && !index.contains(#"<img src="heatmap-libev-10.svg""#))
    }
}
