import EchoProtocol
import Foundation

/// Latency against time as an SVG heat map: a column per interval (second), a row per latency bucket
/// on a log scale (five per decade), each cell coloured by how many messages came back in that second
/// with that latency. A stall, a periodic hiccup or a slow drift shows up as a shape; a percentile
/// table hides all three.
struct LatencyHeatmap {
    var title: String
    var intervals: [LatencyInterval]
    var footer: [String] = []
    var width = 820.0
    var height = 480.0
    static let rowsPerDecade = 5.0

    /// The (column, row, count) cells with anything in them, rows counted from `lowestRow`.
    struct Cells {
        var counts: [[Int: UInt64]]  // per column: row → count
        var lowestRow: Int
        var highestRow: Int
        var maximum: UInt64
    }

    /// Row of a latency in nanoseconds: floor(log10(µs) × rowsPerDecade); sub-microsecond latencies share row 0.
    static func row(ofNanoseconds value: UInt64) -> Int {
        let micros = max(Double(value) / 1000, 1)
        return Int((log10(micros) * rowsPerDecade).rounded(.down))
    }

    var cells: Cells {
        var columns: [[Int: UInt64]] = []
        var low = Int.max, high = Int.min
        var maximum: UInt64 = 0
        for interval in intervals {
            var column: [Int: UInt64] = [:]
            for recorded in interval.histogram.recordedValues() where recorded.count > 0 {
                let row = Self.row(ofNanoseconds: recorded.value)
                column[row, default: 0] += recorded.count
            }
            for (row, count) in column {
                low = min(low, row)
                high = max(high, row)
                maximum = max(maximum, count)
            }
            columns.append(column)
        }
        if low > high { (low, high) = (0, Int(Self.rowsPerDecade)) }
        return Cells(counts: columns, lowestRow: low, highestRow: high, maximum: maximum)
    }

    /// White through blue to near black, by the count's share of the largest on a log scale, so one
    /// message in a bucket is still visible beside thousands in the next.
    static func colour(_ count: UInt64, maximum: UInt64) -> String {
        let t = maximum > 0 ? log1p(Double(count)) / log1p(Double(maximum)) : 0
        let stops: [(Double, Double, Double)] = [(222, 235, 247), (66, 146, 198), (8, 48, 107), (20, 20, 20)]
        let position = t * Double(stops.count - 1)
        let index = min(Int(position), stops.count - 2)
        let f = position - Double(index)
        let (a, b) = (stops[index], stops[index + 1])
        func mix(_ x: Double, _ y: Double) -> Int { Int((x + (y - x) * f).rounded()) }
        return String(format: "#%02x%02x%02x", mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
    }

    func render() -> String {
        let cells = self.cells
        let left = 84.0, right = width - 110, top = 56.0, bottom = height - 62 - 15 * Double(footer.count)
        let columns = max(cells.counts.count, 1)
        let rows = cells.highestRow - cells.lowestRow + 1
        let cellWidth = (right - left) / Double(columns)
        let cellHeight = (bottom - top) / Double(rows)
        func n(_ v: Double) -> String { String(format: "%.1f", v) }
        func y(ofRow row: Int) -> Double { bottom - Double(row - cells.lowestRow + 1) * cellHeight }

        var svg = [
            ##"<?xml version="1.0" encoding="UTF-8"?>"##,
            ##"<svg xmlns="http://www.w3.org/2000/svg" width="\##(n(width))" height="\##(n(height))" viewBox="0 0 \##(n(width)) \##(n(height))" font-family="Helvetica, Arial, sans-serif" font-size="12">"##,
            "<title>\(title.xmlEscaped)</title>",
            ##"<rect width="100%" height="100%" fill="#ffffff"/>"##,
            ##"<text x="\##(n(width / 2))" y="28" text-anchor="middle" font-size="17" font-weight="bold">\##(title.xmlEscaped)</text>"##,
            ##"<g class="cells" stroke="none">"##,
        ]
        for (column, counts) in cells.counts.enumerated() {
            let start = intervals[column].startSeconds
            for (row, count) in counts.sorted(by: { $0.key < $1.key }) {
                let low = pow(10, Double(row) / Self.rowsPerDecade), high = pow(10, Double(row + 1) / Self.rowsPerDecade)
                svg.append(
                    ##"<rect x="\##(n(left + Double(column) * cellWidth))" y="\##(n(y(ofRow: row)))" width="\##(n(cellWidth + 0.3))" height="\##(n(cellHeight + 0.3))" fill="\##(Self.colour(count, maximum: cells.maximum))">"##
                        + "<title>\(TextFormat.fixed(start, 0))–\(TextFormat.fixed(start + intervals[column].lengthSeconds, 0)) s, \(TextFormat.fixed(low, 0))–\(TextFormat.fixed(high, 0)) µs: \(count) messages</title></rect>")
            }
        }
        svg.append("</g>")
        // Axes: decades of latency on the left, seconds along the bottom.
        svg.append(##"<g class="ticks" fill="#333333">"##)
        // The decades inside the rows drawn (none when they span less than one).
        let firstDecade = Int((Double(cells.lowestRow) / Self.rowsPerDecade).rounded(.up))
        let lastDecade = Int((Double(cells.highestRow + 1) / Self.rowsPerDecade).rounded(.down))
        for decade in stride(from: firstDecade, through: lastDecade, by: 1) {
            let py = bottom - (Double(decade) * Self.rowsPerDecade - Double(cells.lowestRow)) * cellHeight
            svg.append(##"<line x1="\##(n(left - 5))" y1="\##(n(py))" x2="\##(n(left))" y2="\##(n(py))" stroke="#333333"/>"##)
            svg.append(##"<text x="\##(n(left - 8))" y="\##(n(py + 4))" text-anchor="end">\##(TextFormat.grouped(Int(pow(10, Double(decade)))))</text>"##)
        }
        let step = max(1, columns / 10)
        for column in stride(from: 0, through: columns, by: step) {
            let px = left + Double(column) * cellWidth
            let seconds = column < intervals.count ? intervals[column].startSeconds : (intervals.last.map { $0.startSeconds + $0.lengthSeconds } ?? 0)
            svg.append(##"<text x="\##(n(px))" y="\##(n(bottom + 17))" text-anchor="middle">\##(TextFormat.fixed(seconds, 0))</text>"##)
        }
        svg.append("</g>")
        svg.append(##"<path d="M\##(n(left)),\##(n(top)) V\##(n(bottom)) H\##(n(right))" fill="none" stroke="#333333" stroke-width="1.2"/>"##)
        svg.append(##"<text x="\##(n((left + right) / 2))" y="\##(n(bottom + 40))" text-anchor="middle" font-size="13">seconds into the measured phase</text>"##)
        let yMid = (top + bottom) / 2
        svg.append(##"<text x="22" y="\##(n(yMid))" text-anchor="middle" font-size="13" transform="rotate(-90 22 \##(n(yMid)))">round-trip latency (µs), log scale</text>"##)
        // The colour scale, right of the plot.
        svg.append(##"<g class="legend">"##)
        svg.append(##"<text x="\##(n(right + 20))" y="\##(n(top + 4))">messages</text>"##)
        for index in 0..<8 {
            let count = UInt64((pow(Double(max(cells.maximum, 1)) + 1, Double(7 - index) / 7) - 1).rounded())
            let ly = top + 14 + Double(index) * 18
            svg.append(##"<rect x="\##(n(right + 20))" y="\##(n(ly))" width="16" height="16" fill="\##(Self.colour(count, maximum: cells.maximum))" stroke="#cccccc"/>"##)
            svg.append(##"<text x="\##(n(right + 42))" y="\##(n(ly + 12))">\##(TextFormat.grouped(Int(count)))</text>"##)
        }
        svg.append("</g>")
        if cells.maximum == 0 {
            svg.append(##"<text x="\##(n((left + right) / 2))" y="\##(n((top + bottom) / 2))" text-anchor="middle" fill="#999999">no data</text>"##)
        }
        svg += SVGChart.footerAndEnd(footer, height: height)
        return svg.joined(separator: "\n") + "\n"
    }
}
