import Foundation
import Testing

#if canImport(FoundationXML)
import FoundationXML
#endif

@testable import loadgen

/// What an SVG file holds, read back with a real XML parser: a chart that does not parse is a chart
/// no browser shows.
struct ParsedSVG {
    var rootName = ""
    /// `data-series` of every `<g class="series">`, in document order.
    var series: [String] = []
    /// All text content of `<text>` elements.
    var texts: [String] = []
    /// `<title>` texts (the chart's, and the tooltips of points and failures).
    var titles: [String] = []
    var circles = 0

    /// Parses `svg`; throws if it is not well-formed XML.
    init(_ svg: String) throws {
        let delegate = Collector()
        let parser = XMLParser(data: Data(svg.utf8))
        parser.delegate = delegate
        guard parser.parse() else {
            throw ParseFailure(description: "not well-formed XML: \(parser.parserError.map { "\($0)" } ?? "?")")
        }
        rootName = delegate.rootName ?? ""
        series = delegate.series
        texts = delegate.texts
        titles = delegate.titles
        circles = delegate.circles
    }

    struct ParseFailure: Error, CustomStringConvertible { var description: String }

    private final class Collector: NSObject, XMLParserDelegate {
        var rootName: String?
        var series: [String] = []
        var texts: [String] = []
        var titles: [String] = []
        var circles = 0
        private var open: [String] = []
        private var text = ""

        func parser(
            _ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
            attributes: [String: String]
        ) {
            if rootName == nil { rootName = name }
            if name == "g", attributes["class"] == "series" { series.append(attributes["data-series"] ?? "") }
            if name == "circle" && open.contains(where: { $0 == "series" }) { circles += 1 }
            open.append(name == "g" ? (attributes["class"] ?? "g") : name)
            text = ""
        }

        func parser(_ parser: XMLParser, foundCharacters string: String) { text += string }

        func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
            if name == "text" { texts.append(text) }
            if name == "title" { titles.append(text) }
            open.removeLast()
            text = ""
        }
    }
}

@Suite struct SVGChartTests {
    static func sample() -> SVGChart {
        var chart = SVGChart(
            title: "Server RSS vs connections", x: .init(label: "connections open", scale: .log),
            y: .init(label: "server RSS", unit: "MiB"))
        chart.series = [
            .init(name: "threads", points: [(100, 3), (1000, 14), (10000, 130)]),
            .init(name: "libev", points: [(100, 2), (1000, 2.2), (10000, 4)]),
            .init(name: "tasks", points: [(100, 9), (1000, 12)], failures: [(10000, "out of memory")]),
        ]
        chart.footer = ["2 CPUs · Linux 6.1 · 2025-01-01T00:00:00Z", "server pinned to CPU 0, client to CPU 1"]
        return chart
    }

    @Test func chartIsWellFormedSVGWithOneSeriesGroupPerServer() throws {
        let svg = try ParsedSVG(Self.sample().render())
        #expect(svg.rootName == "svg")
        #expect(svg.series == ["threads", "libev", "tasks"])
        #expect(svg.circles == 8)  // one per point
    }

    @Test func chartNamesTitleAxesWithUnitsLegendAndFooter() throws {
        let svg = try ParsedSVG(Self.sample().render())
        #expect(svg.titles.first == "Server RSS vs connections")
        #expect(svg.texts.contains("Server RSS vs connections"))
        #expect(svg.texts.contains("server RSS (MiB)"))
        #expect(svg.texts.contains("connections open, log scale"))
        #expect(svg.texts.contains("threads") && svg.texts.contains("libev"))
        #expect(svg.texts.contains("tasks (✕ failed)"))
        #expect(svg.texts.contains("server pinned to CPU 0, client to CPU 1"))
    }

    @Test func failedStepIsDrawnWithItsReason() throws {
        let svg = try ParsedSVG(Self.sample().render())
        #expect(svg.titles.contains("tasks failed at 10k: out of memory"))
    }

    @Test func textIsEscaped() throws {
        var chart = Self.sample()
        chart.title = #"a < b & "c" > 'd'"#
        chart.series[0].name = "<script>&"
        chart.footer = ["x & y"]
        let svg = try ParsedSVG(chart.render())
        #expect(svg.titles.first == #"a < b & "c" > 'd'"#)
        #expect(svg.series.first == "<script>&")
    }

    @Test func emptyChartStillParsesAndSaysNoData() throws {
        let chart = SVGChart(title: "nothing", x: .init(label: "x", scale: .log), y: .init(label: "y"))
        let svg = try ParsedSVG(chart.render())
        #expect(svg.series.isEmpty)
        #expect(svg.texts.contains("no data"))
    }

    @Test func logAxisTicksAreDecadesWithTwosAndFives() {
        let range = SVGChart.range(of: [100, 1000, 19000], scale: .log)
        #expect(range == 100...20000)
        #expect(SVGChart.ticks(in: range, scale: .log) == [100, 200, 500, 1000, 2000, 5000, 10000, 20000])
        // Many decades: decades only.
        #expect(SVGChart.ticks(in: 1...1_000_000, scale: .log) == [1, 10, 100, 1000, 10000, 100_000, 1_000_000])
    }

    @Test func linearAxisStartsAtZeroWithRoundSteps() {
        let range = SVGChart.range(of: [3, 130], scale: .linear, includeZero: true)
        #expect(range == 0...140)
        #expect(SVGChart.ticks(in: range, scale: .linear) == [0, 20, 40, 60, 80, 100, 120, 140])
    }

    @Test func pointsThatALogAxisCannotShowAreLeftOut() throws {
        var chart = SVGChart(title: "t", x: .init(label: "x", scale: .log), y: .init(label: "y", scale: .log))
        chart.series = [.init(name: "s", points: [(0, 1), (10, 0), (10, 5), (100, 7)])]
        let svg = try ParsedSVG(chart.render())
        #expect(svg.circles == 2)
    }

    @Test func tickLabelsAreShort() {
        #expect(SVGChart.label(0) == "0")
        #expect(SVGChart.label(0.05) == "0.05")
        #expect(SVGChart.label(250) == "250")
        #expect(SVGChart.label(1000) == "1k")
        #expect(SVGChart.label(1500) == "1500")
        #expect(SVGChart.label(20000) == "20k")
        #expect(SVGChart.label(2_000_000) == "2M")
    }
}
