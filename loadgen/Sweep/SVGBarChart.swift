import Foundation

/// Grouped bars: one group per category (a sweep's scenarios), one bar per series (its servers) in
/// each, in the colours `SVGChart` gives the same series. Or, `stacked`, one bar per category made of
/// the series laid on each other (a server's memory as user + kernel). Shares `SVGChart`'s axis,
/// ticks and palette, so the two kinds of chart read alike.
struct SVGBarChart: Sendable {
    var title: String
    var y: SVGChart.Axis
    var categories: [String]
    /// Per series, one value per category (nil: no figure, e.g. the step failed; drawn as "✕").
    var series: [(name: String, values: [Double?])] = []
    /// One bar per category, the series stacked from the bottom in order (linear scale; a negative
    /// part is drawn as zero and its exact value kept in the tooltip).
    var stacked = false
    var footer: [String] = []
    var width = 820.0
    var height = 500.0

    private var left: Double { 84 }
    private var right: Double { width - 170 }
    private var top: Double { 56 }
    private var bottom: Double { height - 62 - 15 * Double(footer.count) }

    func render() -> String {
        let values = stacked
            ? categories.indices.map { index in series.reduce(0) { $0 + max(0, Self.value($1.values, index) ?? 0) } }
            : series.flatMap { $0.values.compactMap { $0 } }
        let yRange = SVGChart.range(of: values, scale: y.scale, includeZero: y.scale == .linear)
        let mapY = SVGChart.Mapping(range: yRange, scale: y.scale, from: bottom, to: top)
        let base = y.scale == .log ? bottom : mapY(max(yRange.lowerBound, 0))
        let groupWidth = (right - left) / Double(max(categories.count, 1))
        let barWidth = stacked ? groupWidth * 0.5 : groupWidth * 0.8 / Double(max(series.count, 1))
        var stackTops = [Double](repeating: 0, count: categories.count)  // stacked: the value reached so far

        var svg: [String] = [
            ##"<?xml version="1.0" encoding="UTF-8"?>"##,
            ##"<svg xmlns="http://www.w3.org/2000/svg" width="\##(SVGChart.coordinate(width))" height="\##(SVGChart.coordinate(height))" "##
                + ##"viewBox="0 0 \##(SVGChart.coordinate(width)) \##(SVGChart.coordinate(height))" font-family="Helvetica, Arial, sans-serif" font-size="12">"##,
            "<title>\(title.xmlEscaped)</title>",
            ##"<rect width="100%" height="100%" fill="#ffffff"/>"##,
            ##"<text x="\##(SVGChart.coordinate(width / 2))" y="28" text-anchor="middle" font-size="17" font-weight="bold">\##(title.xmlEscaped)</text>"##,
            ##"<g class="grid" stroke="#e3e3e3" stroke-width="1">"##,
        ]
        let ticks = SVGChart.ticks(in: yRange, scale: y.scale)
        for tick in ticks {
            svg.append(##"<line x1="\##(SVGChart.coordinate(left))" y1="\##(SVGChart.coordinate(mapY(tick)))" x2="\##(SVGChart.coordinate(right))" y2="\##(SVGChart.coordinate(mapY(tick)))"/>"##)
        }
        svg.append("</g>")
        svg.append(##"<g class="ticks" fill="#333333">"##)
        for tick in ticks {
            svg.append(##"<text x="\##(SVGChart.coordinate(left - 8))" y="\##(SVGChart.coordinate(mapY(tick) + 4))" text-anchor="end">\##(SVGChart.label(tick))</text>"##)
        }
        for (index, category) in categories.enumerated() {
            let cx = left + groupWidth * (Double(index) + 0.5)
            svg.append(##"<text x="\##(SVGChart.coordinate(cx))" y="\##(SVGChart.coordinate(bottom + 17))" text-anchor="middle">\##(category.xmlEscaped)</text>"##)
        }
        svg.append("</g>")
        svg.append(
            ##"<path class="axes" d="M\##(SVGChart.coordinate(left)),\##(SVGChart.coordinate(top)) V\##(SVGChart.coordinate(bottom)) H\##(SVGChart.coordinate(right))" fill="none" stroke="#333333" stroke-width="1.2"/>"##)
        let yTitle = y.title + (y.scale == .log ? ", log scale" : "")
        let yMid = (top + bottom) / 2
        svg.append(
            ##"<text x="22" y="\##(SVGChart.coordinate(yMid))" text-anchor="middle" font-size="13" transform="rotate(-90 22 \##(SVGChart.coordinate(yMid)))">\##(yTitle.xmlEscaped)</text>"##)

        for (seriesIndex, entry) in series.enumerated() {
            let colour = SVGChart.palette[seriesIndex % SVGChart.palette.count]
            svg.append(##"<g class="series" data-series="\##(entry.name.xmlEscaped)" fill="\##(colour)">"##)
            for (index, value) in entry.values.enumerated() where index < categories.count {
                let x = stacked
                    ? left + groupWidth * (Double(index) + 0.25)
                    : left + groupWidth * (Double(index) + 0.1) + barWidth * Double(seriesIndex)
                if stacked {
                    guard let value, value.isFinite else { continue }
                    let from = stackTops[index]
                    stackTops[index] += max(0, value)
                    let (yLow, yHigh) = (mapY(from), mapY(stackTops[index]))
                    svg.append(
                        ##"<rect x="\##(SVGChart.coordinate(x))" y="\##(SVGChart.coordinate(yHigh))" width="\##(SVGChart.coordinate(barWidth))" height="\##(SVGChart.coordinate(yLow - yHigh))">"##
                            + "<title>\(entry.name.xmlEscaped), \(categories[index].xmlEscaped): \(SVGChart.exact(value))</title></rect>")
                    continue
                }
                guard let value, value.isFinite, y.scale == .linear || value > 0 else {
                    svg.append(
                        ##"<text x="\##(SVGChart.coordinate(x + barWidth / 2))" y="\##(SVGChart.coordinate(bottom - 4))" text-anchor="middle" fill="\##(colour)">✕<title>\##(entry.name.xmlEscaped), \##(categories[index].xmlEscaped): no figure</title></text>"##)
                    continue
                }
                let yTop = mapY(value)
                svg.append(
                    ##"<rect x="\##(SVGChart.coordinate(x))" y="\##(SVGChart.coordinate(min(yTop, base)))" width="\##(SVGChart.coordinate(barWidth * 0.92))" height="\##(SVGChart.coordinate(abs(base - yTop)))">"##
                        + "<title>\(entry.name.xmlEscaped), \(categories[index].xmlEscaped): \(SVGChart.exact(value))</title></rect>")
            }
            svg.append("</g>")
        }

        if stacked {  // each bar's total above it
            svg.append(##"<g class="totals" fill="#333333" text-anchor="middle">"##)
            for (index, total) in stackTops.enumerated() where series.contains(where: { Self.value($0.values, index) != nil }) {
                let cx = left + groupWidth * (Double(index) + 0.5)
                svg.append(##"<text x="\##(SVGChart.coordinate(cx))" y="\##(SVGChart.coordinate(mapY(total) - 6))">\##(SVGChart.label(total))</text>"##)
            }
            svg.append("</g>")
        }
        svg.append(##"<g class="legend">"##)
        for (index, entry) in series.enumerated() {
            let colour = SVGChart.palette[index % SVGChart.palette.count]
            let ly = top + 8 + 22 * Double(index)
            svg.append(##"<rect x="\##(SVGChart.coordinate(right + 18))" y="\##(SVGChart.coordinate(ly - 6))" width="24" height="12" fill="\##(colour)"/>"##)
            svg.append(##"<text x="\##(SVGChart.coordinate(right + 50))" y="\##(SVGChart.coordinate(ly + 4))">\##(entry.name.xmlEscaped)</text>"##)
        }
        svg.append("</g>")
        svg += SVGChart.footerAndEnd(footer, height: height)
        return svg.joined(separator: "\n") + "\n"
    }

    private static func value(_ values: [Double?], _ index: Int) -> Double? { index < values.count ? values[index] : nil }
}
