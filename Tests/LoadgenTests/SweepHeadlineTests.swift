import Foundation
import Testing

@testable import loadgen

/// index.html leads with the answer: a headline row and a sentence per server at its largest
/// completed count, before any chart; the wide table scrolls in a box of its own.
struct SweepHeadlineTests {
    static func idle(_ connections: Int, rssKiB: Int, kernelKiB: Int) -> SweepStep.IdleFigures {
        var figures = SweepStep.IdleFigures(
            open: connections, baselineRSSKiB: 1000, rssKiB: rssKiB,
            rssPerConnectionKiB: Double(rssKiB - 1000) / Double(connections), baselineVmSizeKiB: 1, vmSizeKiB: 1,
            threads: 1, openFDs: 1, openSeconds: 1)
        let before = KernelMemory(kernelStackKiB: 0, pageTablesKiB: 0, slabUnreclaimableKiB: 0, tcpMemKiB: 0)
        let after = KernelMemory(
            kernelStackKiB: kernelKiB * connections, pageTablesKiB: 0, slabUnreclaimableKiB: 0, tcpMemKiB: 0)
        figures.kernelPerConnection = KernelPerConnection(before: before, after: after, connections: connections)
        return figures
    }

    static func loaded(rate: Double, p99: Double, switches: Double) -> SweepStep.LoadedFigures {
        SweepStep.LoadedFigures(
            active: 100, idle: 0, measuredSeconds: 1, messages: Int(rate), messagesPerSecond: rate, p50Microseconds: 1,
            p99Microseconds: p99, serverCPUPercent: 50, serverContextSwitchesPerMessage: switches, serverRSSKiB: 1,
            clientCPUPercent: 40, clientContextSwitchesPerMessage: 0.1, fairness: 1, errors: 0, run: nil)
    }

    static func churn(_ microseconds: Double) -> SweepStep.ChurnFigures {
        SweepStep.ChurnFigures(
            concurrency: 64, lives: 1000, livesPerSecond: 1000, p99Microseconds: 100,
            serverCPUMicrosecondsPerConnection: microseconds, serverContextSwitchesPerConnection: 0.5,
            clientCPUMicrosecondsPerConnection: 40, clientWasTheBottleneck: false, errors: 0)
    }

    /// threads: 12 KiB a connection above a 10 MiB fixed cost (so 100 connections read as 114 KiB
    /// each, the slope 12); libev completed 100 only, its 1,000 failed in the idle phase.
    static func results() -> SweepResults {
        var results = SweepResults(
            machine: .current(),
            settings: SweepSettings(
                servers: [.init(name: "threads", command: "echo-threads"), .init(name: "libev", command: "echo-libev")],
                connections: [100, 1000], active: 100, messageSize: 64, depth: 1, durationSeconds: 1,
                warmupSeconds: 1, pinning: SweepPinning(server: nil, client: nil), commandLine: "loadgen sweep"))
        results.steps = [
            SweepStep(
                server: "threads", connections: 100, idle: idle(100, rssKiB: 1000 + 10_240 + 1200, kernelKiB: 40),
                loaded: loaded(rate: 50_000, p99: 900, switches: 1), churn: churn(95)),
            SweepStep(
                server: "threads", connections: 1000, idle: idle(1000, rssKiB: 1000 + 10_240 + 12_000, kernelKiB: 44),
                loaded: loaded(rate: 95_000, p99: 4300, switches: 1.002), churn: churn(92)),
            SweepStep(
                server: "libev", connections: 100, idle: idle(100, rssKiB: 1016, kernelKiB: 6),
                loaded: loaded(rate: 134_000, p99: 700, switches: 0.003), churn: churn(39)),
            SweepStep(server: "libev", connections: 1000, idle: idle(600, rssKiB: 1100, kernelKiB: 6))
                .failing("600 of 1000 open", in: .idle, stopped: false),
        ]
        results.updateSlopes()
        return results
    }

    @Test func eachServerAtItsLargestCompletedCountWithTheSlope() throws {
        let rows = SweepHeadline.rows(Self.results())
        #expect(rows.map(\.server) == ["threads", "libev"])
        let threads = rows[0]
        #expect(threads.connections == 1000)
        #expect(abs(try #require(threads.rssSlopeKiB) - 12) < 0.01)  // not the 114 KiB of the first count
        #expect(threads.kernelKiB == 44)
        #expect(threads.messagesPerSecond == 95_000)
        #expect(threads.p99Microseconds == 4300)
        #expect(threads.switchesPerMessage == 1.002)
        #expect(threads.churnMicroseconds == 92)
        #expect(threads.sentence == "threads at 1,000 connections: 12.00 KiB of RSS and 44.00 KiB of the kernel's memory "
            + "(machine-wide) per connection; 100 sending, 95,000 msgs/s with p99 4,300.0 µs and 1.002 context "
            + "switches per message; a new connection cost 92.0 µs of server CPU.")
        let libev = rows[1]
        #expect(libev.connections == 100)
        #expect(libev.rssSlopeKiB == nil)  // one completed count: no line to fit
        #expect(libev.sentence.hasPrefix("libev at 100 connections: 0.16 KiB of RSS (one count: no slope)"))
    }

    @Test func roundsGiveTheMedianAtTheLargestCount() {
        var results = Self.results()
        results.steps = results.steps.filter { $0.server == "threads" && $0.connections == 1000 }
        var other = results.steps[0]
        other.loaded?.messagesPerSecond = 85_000
        var third = other
        third.loaded?.messagesPerSecond = 70_000
        results.steps += [other, third]
        #expect(SweepHeadline.rows(results).first?.messagesPerSecond == 85_000)
    }

    /// The per-connection RSS chart draws each server's fitted slope as a dashed level across the
    /// plot: at 100 connections the fixed cost makes a threads connection read as 114 KiB, at 1,000
    /// as 22 KiB; what one more connection adds is the 12 KiB the points approach.
    @Test func perConnectionChartDrawsTheSlopeAsALevel() throws {
        let definition = try #require(SweepCharts.definitions.first { $0.file == "rss-per-connection.svg" })
        let lines = SweepCharts.chart(definition, Self.results()).render().split(separator: "\n").map(String.init)
        let levels = lines.filter { $0.contains(#"class="level""#) }
        #expect(levels.count == 1)  // libev completed one count: no slope to draw
        let level = try #require(levels.first)
        #expect(level.contains("<title>threads: slope 12 KiB per connection"))
        func number(_ attribute: String, in line: String) throws -> Double {
            let start = try #require(line.range(of: "\(attribute)=\""))
            return try #require(Double(line[start.upperBound...].prefix { $0 != "\"" }))
        }
        let atThousand = try #require(lines.first { $0.contains("<title>threads: 1k → 22.2</title>") })
        let atHundred = try #require(lines.first { $0.contains("<title>threads: 100 → 114</title>") })
        // Pixel y grows downwards: the level lies below both points, at a value under 22 KiB.
        #expect(try number("y1", in: level) > number("cy", in: atThousand))
        #expect(try number("cy", in: atThousand) > number("cy", in: atHundred))
    }

    @Test func indexLeadsWithTheAnswerAndTheWideTableScrolls() throws {
        let html = SweepReport.html(Self.results(), charts: [(file: "rss-vs-connections.svg", title: "RSS")])
        let answer = try #require(html.range(of: "<h2>The answer: what a connection costs</h2>"))
        let firstChart = try #require(html.range(of: "<img "))
        #expect(answer.upperBound < firstChart.lowerBound)
        #expect(html.contains("<li>threads at 1,000 connections: 12.00 KiB of RSS"))
        let results = try #require(html.range(of: "<h2>Results</h2>"))
        #expect(html[results.upperBound...].hasPrefix("\n<div class=\"wide\"><table>"))
        #expect(html.contains("div.wide { overflow-x: auto;"))
    }
}
