import Foundation

/// A self-contained SVG line chart: title, two labelled axes, one coloured line per series, a legend
/// and a footer. No scripts, no external fonts or styles: the file opens anywhere, and a text diff of
/// two charts shows what changed.
///
/// ```
/// var chart = SVGChart(title: "Server RSS vs connections",
///                      x: .init(label: "connections", scale: .log),
///                      y: .init(label: "server RSS", unit: "MiB"))
/// chart.series = [.init(name: "libev", points: [(100, 2.1), (1000, 3.4)])]
/// chart.footer = ["2 CPUs, Linux 6.1"]
/// try chart.render().write(toFile: "rss.svg", atomically: true, encoding: .utf8)
/// ```
struct SVGChart: Sendable {
    enum Scale: Sendable { case linear, log }

    struct Axis: Sendable {
        var label: String
        var unit: String? = nil
        var scale: Scale = .linear

        /// `server RSS (MiB)`.
        var title: String { unit.map { "\(label) (\($0))" } ?? label }
    }

    struct Point: Sendable, Equatable {
        var x: Double
        var y: Double
    }

    struct Series: Sendable {
        var name: String
        var points: [Point]
        /// x values where this series has no point because the step failed; drawn as a cross on the
        /// x axis, with the reason as a tooltip, so a missing point is never silently missing.
        var failures: [(x: Double, reason: String)] = []
        /// Repeated measurements (`sweep --rounds`): the range of the rounds at x, drawn as an error bar
        /// through the point (the median).
        var ranges: [(x: Double, low: Double, high: Double)] = []
        /// A level drawn as a dashed line across the plot, with what it is as a tooltip: on a
        /// per-connection chart, the fitted slope that the points approach once N is large enough
        /// for a fixed cost to stop counting.
        var level: (y: Double, note: String)? = nil

        init(name: String, points: [(Double, Double)], failures: [(x: Double, reason: String)] = [],
             ranges: [(x: Double, low: Double, high: Double)] = [], level: (y: Double, note: String)? = nil) {
            self.name = name
            self.points = points.map { Point(x: $0.0, y: $0.1) }
            self.failures = failures
            self.ranges = ranges
            self.level = level
        }
    }

    var title: String
    var x: Axis
    var y: Axis
    var series: [Series] = []
    /// Small grey lines under the plot: machine, date, pinning, how to reproduce.
    var footer: [String] = []
    var width = 820.0
    var height = 500.0

    /// Okabe–Ito colours, distinguishable with the common colour-vision deficiencies.
    /// Series i gets colour i, so a sweep that lists its servers in one order colours them alike in every chart.
    static let palette = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]

    // Layout: margins around the plot area, in SVG user units.
    private var left: Double { 84 }
    private var right: Double { width - 170 }  // the legend sits right of the plot
    private var top: Double { 56 }
    private var bottom: Double { height - 62 - 15 * Double(footer.count) }

    func render() -> String {
        let xRange = Self.range(of: allX, scale: x.scale)
        let yRange = Self.range(of: allY, scale: y.scale, includeZero: y.scale == .linear)
        let xTicks = Self.ticks(in: xRange, scale: x.scale)
        let yTicks = Self.ticks(in: yRange, scale: y.scale)
        let place = Placement(
            x: Mapping(range: xRange, scale: x.scale, from: left, to: right),
            y: Mapping(range: yRange, scale: y.scale, from: bottom, to: top))

        var svg: [String] = []
        svg.append(##"<?xml version="1.0" encoding="UTF-8"?>"##)
        svg.append(
            ##"<svg xmlns="http://www.w3.org/2000/svg" width="\##(SVGChart.coordinate(width))" height="\##(SVGChart.coordinate(height))" "##
                + ##"viewBox="0 0 \##(SVGChart.coordinate(width)) \##(SVGChart.coordinate(height))" font-family="Helvetica, Arial, sans-serif" font-size="12">"##)
        svg.append("<title>\(title.xmlEscaped)</title>")
        svg.append(##"<rect width="100%" height="100%" fill="#ffffff"/>"##)
        svg.append(##"<text x="\##(SVGChart.coordinate(width / 2))" y="28" text-anchor="middle" font-size="17" font-weight="bold">\##(title.xmlEscaped)</text>"##)

        // Grid lines and tick labels.
        svg.append(##"<g class="grid" stroke="#e3e3e3" stroke-width="1">"##)
        for tick in xTicks {
            let px = place.x(tick)
            svg.append(##"<line x1="\##(SVGChart.coordinate(px))" y1="\##(SVGChart.coordinate(top))" x2="\##(SVGChart.coordinate(px))" y2="\##(SVGChart.coordinate(bottom))"/>"##)
        }
        for tick in yTicks {
            let py = place.y(tick)
            svg.append(##"<line x1="\##(SVGChart.coordinate(left))" y1="\##(SVGChart.coordinate(py))" x2="\##(SVGChart.coordinate(right))" y2="\##(SVGChart.coordinate(py))"/>"##)
        }
        svg.append("</g>")
        svg.append(##"<g class="ticks" fill="#333333">"##)
        for tick in xTicks {
            svg.append(
                ##"<text x="\##(SVGChart.coordinate(place.x(tick)))" y="\##(SVGChart.coordinate(bottom + 17))" text-anchor="middle">\##(Self.label(tick))</text>"##)
        }
        for tick in yTicks {
            svg.append(
                ##"<text x="\##(SVGChart.coordinate(left - 8))" y="\##(SVGChart.coordinate(place.y(tick) + 4))" text-anchor="end">\##(Self.label(tick))</text>"##)
        }
        svg.append("</g>")

        // Axes and their titles.
        svg.append(
            ##"<path class="axes" d="M\##(SVGChart.coordinate(left)),\##(SVGChart.coordinate(top)) V\##(SVGChart.coordinate(bottom)) H\##(SVGChart.coordinate(right))" fill="none" stroke="#333333" stroke-width="1.2"/>"##)
        let xTitle = x.title + (x.scale == .log ? ", log scale" : "")
        let yTitle = y.title + (y.scale == .log ? ", log scale" : "")
        svg.append(
            ##"<text x="\##(SVGChart.coordinate((left + right) / 2))" y="\##(SVGChart.coordinate(bottom + 40))" text-anchor="middle" font-size="13">\##(xTitle.xmlEscaped)</text>"##)
        let yMid = (top + bottom) / 2
        svg.append(
            ##"<text x="22" y="\##(SVGChart.coordinate(yMid))" text-anchor="middle" font-size="13" transform="rotate(-90 22 \##(SVGChart.coordinate(yMid)))">\##(yTitle.xmlEscaped)</text>"##)

        // One group per series: the line, its points (with exact values as tooltips), its failures.
        for (index, series) in series.enumerated() {
            let colour = Self.palette[index % Self.palette.count]
            svg.append(##"<g class="series" data-series="\##(series.name.xmlEscaped)" stroke="\##(colour)" fill="\##(colour)">"##)
            let points = series.points.sorted { $0.x < $1.x }.filter { place.canShow($0) }
            if points.count > 1 {
                let path = points.map { "\(SVGChart.coordinate(place.x($0.x))),\(SVGChart.coordinate(place.y($0.y)))" }.joined(separator: " ")
                svg.append(##"<polyline points="\##(path)" fill="none" stroke-width="2.2" stroke-linejoin="round"/>"##)
            }
            for point in points {
                svg.append(
                    ##"<circle cx="\##(SVGChart.coordinate(place.x(point.x)))" cy="\##(SVGChart.coordinate(place.y(point.y)))" r="3.6">"##
                        + "<title>\(series.name.xmlEscaped): \(Self.label(point.x)) → \(Self.exact(point.y))</title></circle>")
            }
            for range in series.ranges where place.canShow(Point(x: range.x, y: range.low)) && range.high > range.low {
                let px = place.x(range.x), low = place.y(range.low), high = place.y(range.high)
                svg.append(
                    ##"<path class="range" d="M\##(SVGChart.coordinate(px)),\##(SVGChart.coordinate(low)) V\##(SVGChart.coordinate(high)) M\##(SVGChart.coordinate(px - 4)),\##(SVGChart.coordinate(low)) H\##(SVGChart.coordinate(px + 4)) M\##(SVGChart.coordinate(px - 4)),\##(SVGChart.coordinate(high)) H\##(SVGChart.coordinate(px + 4))" stroke-width="1.4" fill="none">"##
                        + "<title>\(series.name.xmlEscaped): \(Self.label(range.x)) → \(Self.exact(range.low))–\(Self.exact(range.high)) over the rounds</title></path>")
            }
            if let level = series.level, place.canShow(Point(x: xRange.lowerBound, y: level.y)) {
                let py = SVGChart.coordinate(place.y(level.y))
                svg.append(
                    ##"<line class="level" x1="\##(SVGChart.coordinate(left))" y1="\##(py)" x2="\##(SVGChart.coordinate(right))" y2="\##(py)" stroke-width="1.6" stroke-dasharray="7 5">"##
                        + "<title>\(series.name.xmlEscaped): \(level.note.xmlEscaped)</title></line>")
            }
            for failure in series.failures where xRange.contains(failure.x) {
                let px = place.x(failure.x), py = bottom - 9 - 7 * Double(index)
                svg.append(
                    ##"<path d="M\##(SVGChart.coordinate(px - 4)),\##(SVGChart.coordinate(py - 4)) L\##(SVGChart.coordinate(px + 4)),\##(SVGChart.coordinate(py + 4)) M\##(SVGChart.coordinate(px - 4)),\##(SVGChart.coordinate(py + 4)) L\##(SVGChart.coordinate(px + 4)),\##(SVGChart.coordinate(py - 4))" stroke-width="2" fill="none">"##
                        + "<title>\(series.name.xmlEscaped) failed at \(Self.label(failure.x)): \(failure.reason.xmlEscaped)</title></path>")
            }
            svg.append("</g>")
        }

        // Legend, right of the plot.
        svg.append(##"<g class="legend">"##)
        for (index, series) in series.enumerated() {
            let colour = Self.palette[index % Self.palette.count]
            let ly = top + 8 + 22 * Double(index)
            svg.append(
                ##"<line x1="\##(SVGChart.coordinate(right + 18))" y1="\##(SVGChart.coordinate(ly))" x2="\##(SVGChart.coordinate(right + 42))" y2="\##(SVGChart.coordinate(ly))" stroke="\##(colour)" stroke-width="2.5"/>"##)
            svg.append(##"<circle cx="\##(SVGChart.coordinate(right + 30))" cy="\##(SVGChart.coordinate(ly))" r="3.6" fill="\##(colour)"/>"##)
            let note = series.failures.isEmpty ? "" : " (✕ failed)"
            svg.append(##"<text x="\##(SVGChart.coordinate(right + 50))" y="\##(SVGChart.coordinate(ly + 4))">\##((series.name + note).xmlEscaped)</text>"##)
        }
        if series.isEmpty || series.allSatisfy({ $0.points.isEmpty }) {
            svg.append(
                ##"<text x="\##(SVGChart.coordinate((left + right) / 2))" y="\##(SVGChart.coordinate((top + bottom) / 2))" text-anchor="middle" fill="#999999">no data</text>"##)
        }
        svg.append("</g>")

        // Footer.
        svg += Self.footerAndEnd(footer, height: height)
        return svg.joined(separator: "\n") + "\n"
    }

    /// The grey footer lines under a chart, and the document's end (shared with `SVGBarChart`).
    static func footerAndEnd(_ footer: [String], height: Double) -> [String] {
        var svg = [##"<g class="footer" fill="#666666" font-size="11">"##]
        for (index, line) in footer.enumerated() {
            svg.append(##"<text x="12" y="\##(SVGChart.coordinate(height - 12 - 15 * Double(footer.count - 1 - index)))">\##(line.xmlEscaped)</text>"##)
        }
        return svg + ["</g>", "</svg>"]
    }

    private var allX: [Double] { series.flatMap { $0.points.map(\.x) + $0.failures.map(\.x) } }
    private var allY: [Double] {
        series.flatMap { $0.points.map(\.y) + $0.ranges.flatMap { [$0.low, $0.high] } + ($0.level.map { [$0.y] } ?? []) }
    }

    // MARK: Scales and ticks

    /// Maps data values to one pixel axis.
    struct Mapping {
        var range: ClosedRange<Double>
        var scale: Scale
        var from: Double
        var to: Double

        func callAsFunction(_ value: Double) -> Double {
            let (low, high, v) =
                scale == .log
                ? (log10(range.lowerBound), log10(range.upperBound), log10(value))
                : (range.lowerBound, range.upperBound, value)
            let fraction = high > low ? (v - low) / (high - low) : 0.5
            return from + fraction * (to - from)
        }
    }

    struct Placement {
        var x: Mapping
        var y: Mapping
        /// A log axis cannot show zero or negative values; such points are left out.
        func canShow(_ point: Point) -> Bool {
            point.x.isFinite && point.y.isFinite && (x.scale == .linear || point.x > 0)
                && (y.scale == .linear || point.y > 0)
        }
    }

    /// The data's range, widened to whole decades on a log axis and to a nice round top on a linear one.
    static func range(of values: [Double], scale: Scale, includeZero: Bool = false) -> ClosedRange<Double> {
        let usable = values.filter { $0.isFinite && (scale == .linear || $0 > 0) }
        guard var low = usable.min(), var high = usable.max() else { return scale == .log ? 1...10 : 0...1 }
        switch scale {
        case .log:
            // Round outwards to 1, 2 or 5 times a power of ten, so the axis is neither cramped nor empty.
            low = niceLogFloor(low)
            high = niceLogCeiling(high)
            if low == high { (low, high) = (low / 10, high * 10) }
        case .linear:
            if includeZero { low = min(0, low) }
            if low == high { (low, high) = (low - 1, high + 1) }
            let step = niceStep((high - low) / Self.mostIntervals)
            low = (low / step).rounded(.down) * step
            high = (high / step).rounded(.up) * step
        }
        return low...high
    }

    /// A linear axis has at most this many intervals between ticks (and at least about a third of it).
    static let mostIntervals = 7.0

    /// Ticks: 1-2-5 steps on a linear axis; decades on a log axis, plus 2 and 5 when it spans few decades.
    static func ticks(in range: ClosedRange<Double>, scale: Scale) -> [Double] {
        switch scale {
        case .linear:
            let step = niceStep((range.upperBound - range.lowerBound) / Self.mostIntervals)
            var ticks: [Double] = []
            var value = range.lowerBound
            while value <= range.upperBound + step / 1000 {
                ticks.append(abs(value) < step / 1000 ? 0 : value)
                value += step
            }
            return ticks
        case .log:
            let decades = log10(range.upperBound) - log10(range.lowerBound)
            let multiples: [Double] = decades <= 3.5 ? [1, 2, 5] : [1]
            var ticks: [Double] = []
            var power = pow(10, (log10(range.lowerBound)).rounded(.down))
            while power <= range.upperBound * 1.0001 {
                for m in multiples where (range.lowerBound * 0.9999...range.upperBound * 1.0001).contains(m * power) {
                    ticks.append(m * power)
                }
                power *= 10
            }
            return ticks
        }
    }

    /// 1, 2 or 5 times a power of ten, at least `rough`.
    static func niceStep(_ rough: Double) -> Double {
        guard rough > 0, rough.isFinite else { return 1 }
        let power = pow(10, log10(rough).rounded(.down))
        for m in [1.0, 2, 5, 10] where m * power >= rough * 0.9999 { return m * power }
        return 10 * power
    }

    private static func niceLogFloor(_ value: Double) -> Double {
        let power = pow(10, log10(value).rounded(.down))
        for m in [5.0, 2, 1] where m * power <= value * 1.0001 { return m * power }
        return power
    }

    private static func niceLogCeiling(_ value: Double) -> Double {
        let power = pow(10, log10(value).rounded(.down))
        for m in [1.0, 2, 5, 10] where m * power >= value * 0.9999 { return m * power }
        return 10 * power
    }

    // MARK: Text

    /// Tick label: `0.05`, `250`, `10k`, `2M`.
    static func label(_ value: Double) -> String {
        let magnitude = abs(value)
        if magnitude >= 1_000_000 { return trimmed(value / 1_000_000) + "M" }
        if magnitude >= 10_000 || (magnitude >= 1000 && (value / 1000).rounded() == value / 1000) {
            return trimmed(value / 1000) + "k"
        }
        return trimmed(value)
    }

    /// A value for a tooltip: three significant digits.
    static func exact(_ value: Double) -> String {
        if value == 0 { return "0" }
        if abs(value) >= 100 { return String(Int(value.rounded())) }
        return String(format: "%.3g", value)
    }

    private static func trimmed(_ value: Double) -> String {
        if value == value.rounded() && abs(value) < 1e15 { return String(Int(value)) }
        var text = String(format: "%.4g", value)
        if text.contains("."), !text.contains("e") {
            while text.hasSuffix("0") { text.removeLast() }
            if text.hasSuffix(".") { text.removeLast() }
        }
        return text
    }
}

extension String {
    /// This text escaped for XML content and attribute values (SVG, HTML).
    var xmlEscaped: String {
        var result = ""
        result.reserveCapacity(count)
        for character in self {
        switch character {
        case "&": result += "&amp;"
        case "<": result += "&lt;"
        case ">": result += "&gt;"
        case "\"": result += "&quot;"
        case "'": result += "&apos;"
        default: result.append(character)
        }
        }
        return result
    }
}

extension SVGChart {
    /// A coordinate with at most one decimal: short files, stable diffs (every chart of the sweep).
    static func coordinate(_ value: Double) -> String {
        let rounded = (value * 10).rounded() / 10
        return rounded == rounded.rounded() ? String(Int(rounded)) : String(rounded)
    }
}
