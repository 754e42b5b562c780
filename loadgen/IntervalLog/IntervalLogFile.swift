import Foundation

/// HdrHistogram's interval log (`.hlog`, format 1.3), as `HistogramLogWriter` writes it and
/// `HistogramLogProcessor` reads it: a header, then one line per interval with its start (seconds after
/// BaseTime), length, maximum (in ms: nanoseconds ÷ 10⁶, the writer's default unit ratio) and the
/// interval's histogram, compressed and base64 encoded.
enum IntervalLogFile {
    static func text(_ recording: IntervalRecording, comment: String? = nil) -> String {
        let start = recording.startEpochSeconds
        var lines: [String] = []
        if let comment { lines.append("#\(comment)") }
        lines.append("#[Histogram log format version 1.3]")
        lines.append("#[StartTime: \(fixed(start)) (seconds since epoch), \(Date(timeIntervalSince1970: start).ISO8601Format())]")
        lines.append("#[BaseTime: \(fixed(start)) (seconds since epoch)]")
        lines.append(#""StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram""#)
        for interval in recording.intervals {
            let max = interval.histogram.totalCount > 0 ? Double(interval.histogram.max) / 1e6 : 0
            lines.append("\(fixed(interval.startSeconds)),\(fixed(interval.lengthSeconds)),\(fixed(max)),\(CompressedHistogram.base64(interval.histogram))")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    private static func fixed(_ value: Double) -> String { String(format: "%.3f", value) }
}
