import Foundation
import Testing

@testable import loadgen

/// memory-per-connection.svg: one bar per server, user (RSS) and the kernel's parts stacked.
struct MemoryStackChartTests {
    /// (series, category, value, y, height) of every bar in an SVGBarChart's output.
    static func bars(_ svg: String) throws -> [(series: String, category: String, value: Double, y: Double, height: Double)] {
        let pattern = try NSRegularExpression(
            pattern: #"<rect x="[^"]+" y="([^"]+)" width="[^"]+" height="([^"]+)"><title>([^,]+), ([^:]+): ([^<]+)</title>"#)
        let text = svg as NSString
        return pattern.matches(in: svg, range: NSRange(location: 0, length: text.length)).compactMap { match in
            let group = { (index: Int) in text.substring(with: match.range(at: index)) }
            guard let y = Double(group(1)), let height = Double(group(2)), let value = Double(group(5)) else { return nil }
            return (group(3), group(4), value, y, height)
        }
    }

    @Test func layersSitOnEachOtherInProportion() throws {
        var chart = SVGBarChart(title: "m", y: .init(label: "KiB"), categories: ["threads", "libev"])
        chart.stacked = true
        chart.series = [(name: "user", values: [12, 0.5]), (name: "kernel", values: [24, 2])]
        let svg = chart.render()
        _ = try ParsedSVG(svg)
        let bars = try Self.bars(svg)
        #expect(bars.count == 4)
        let user = try #require(bars.first { $0.series == "user" && $0.category == "threads" })
        let kernel = try #require(bars.first { $0.series == "kernel" && $0.category == "threads" })
        #expect(abs(kernel.y + kernel.height - user.y) < 0.1)  // kernel starts where user ends
        #expect(abs(kernel.height / user.height - 2) < 0.01)
        #expect(svg.contains(">36<"))  // the bar's total, above it
    }

    @Test func eachServerIsShownAtTheLargestCountItsIdlePhaseCompleted() throws {
        func idle(_ open: Int, rss: Double, kernelKiB: Int) -> SweepStep.IdleFigures {
            var figures = SweepStep.IdleFigures(
                open: open, baselineRSSKiB: 1000, rssKiB: 2000, rssPerConnectionKiB: rss, baselineVmSizeKiB: 1,
                vmSizeKiB: 1, threads: 1, openFDs: 1, openSeconds: 1)
            let before = KernelMemory(kernelStackKiB: 0, pageTablesKiB: 0, slabUnreclaimableKiB: 0, tcpMemKiB: 0)
            let after = KernelMemory(kernelStackKiB: kernelKiB * open, pageTablesKiB: 0, slabUnreclaimableKiB: 0, tcpMemKiB: 0)
            figures.kernelPerConnection = KernelPerConnection(before: before, after: after, connections: open)
            return figures
        }
        var results = SweepResults(
            machine: .current(),
            settings: SweepSettings(
                servers: [.init(name: "a", command: "a"), .init(name: "b", command: "b")], connections: [100, 1000],
                active: 10, messageSize: 64, depth: 1, durationSeconds: 1, warmupSeconds: 1,
                pinning: SweepPinning(server: nil, client: nil), commandLine: "loadgen sweep"))
        results.steps = [
            SweepStep(server: "a", connections: 100, idle: idle(100, rss: 20, kernelKiB: 30)),
            SweepStep(server: "a", connections: 1000, idle: idle(1000, rss: 12, kernelKiB: 16)),
            SweepStep(server: "b", connections: 100, idle: idle(100, rss: 1, kernelKiB: 2)),
            SweepStep(server: "b", connections: 1000, idle: idle(600, rss: 9, kernelKiB: 9))
                .failing("600 of 1000 open", in: .idle, stopped: false),
        ]
        let chart = SweepCharts.memoryStackChart(results)
        #expect(chart.categories == ["a · 1,000", "b · 100"])
        #expect(chart.series.map(\.name) == ["user: RSS", "KernelStack", "PageTables", "SUnreclaim (slab)", "TCP mem"])
        #expect(chart.series[0].values == [12, 1])
        #expect(chart.series[1].values == [16, 2])
        #expect(SweepCharts.render(results).contains { $0.file == "memory-per-connection.svg" })
    }
}
