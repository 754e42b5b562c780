import ArgumentParser
import EchoProtocol
import Foundation

/// `--histogram-log` and `--heatmap`: the measured phase's latency second by second, for `run`.
struct LatencyOverTimeOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: ArgumentHelp("Write the latency of each second as HdrHistogram's interval log (.hlog: a compressed histogram per interval, in ns; HistogramLogProcessor reads it).", valueName: "file"))
    var histogramLog: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("Draw latency against time as an SVG heat map: a column per second, rows per latency bucket (log scale), colour by count.", valueName: "file.svg"))
    var heatmap: String?

    /// A recording to hand the run when either file was asked for.
    func recording() -> IntervalRecording? {
        histogramLog == nil && heatmap == nil ? nil : IntervalRecording()
    }

    /// Writes the asked-for files; a file that cannot be written is one line on stderr and exit status 1.
    func write(_ recording: IntervalRecording?, title: String, footer: [String]) -> Bool {
        guard let recording else { return true }
        var ok = true
        if let histogramLog {
            ok = Self.write(IntervalLogFile.text(recording, comment: title), to: histogramLog) && ok
        }
        if let heatmap {
            let svg = LatencyHeatmap(title: title, intervals: recording.intervals, footer: footer).render()
            ok = Self.write(svg, to: heatmap) && ok
        }
        return ok
    }

    static func write(_ text: String, to path: String) -> Bool {
        do {
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            return true
        } catch {
            writeAll(STDERR_FILENO, Array("loadgen: cannot write \(path): \(error.localizedDescription)\n".utf8))
            return false
        }
    }
}
