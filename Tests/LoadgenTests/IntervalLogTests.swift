#if canImport(Glibc)
import Glibc
#endif
import EchoProtocol
import Foundation
import Histogram
import Testing

@testable import loadgen

/// `--histogram-log` and `--heatmap` (issue 21): latency per interval, in HdrHistogram's interval log
/// format and as a heat map.
@Suite(.serialized)
struct IntervalLogTests {
    /// The counts-array layout every HdrHistogram port shares: unit resolution below 2 × 10^digits
    /// (rounded up to a power of two), then buckets of doubling width.
    @Test func countsIndexFollowsHdrHistogramsLayout() {
        let layout = CompressedHistogram.Layout(IntervalRecording.emptyHistogram())  // 2 digits: 256 sub-buckets
        #expect(layout.index(of: 0) == 0)
        #expect(layout.index(of: 255) == 255)
        #expect(layout.index(of: 256) == 256)
        #expect(layout.index(of: 257) == 256)  // width 2 from 256 on
        #expect(layout.index(of: 258) == 257)
        #expect(layout.index(of: 512) == 384)  // width 4 from 512 on: 256 + 128
    }

    @Test func encodingIsV2WithRunLengthsInAZlibStream() throws {
        var histogram = IntervalRecording.emptyHistogram()
        histogram.record(3, count: 2)
        histogram.record(1000, count: 5)
        let bytes = CompressedHistogram.compressed(histogram)
        #expect(Array(bytes[0..<4]) == [0x1c, 0x84, 0x93, 0x14])
        let raw = CompressedHistogram.uncompressed(histogram)
        #expect(Array(raw[0..<4]) == [0x1c, 0x84, 0x93, 0x13])
        #expect(raw[15] == 2)  // significant digits
        // Payload: zeros at 0–2 (−3), 2 at index 3, a run of zeros, 5 at 1000's index.
        let payload = CompressedHistogram.payload(histogram)
        let zeros = CompressedHistogram.Layout(histogram).index(of: 1000) - 4
        var expected: [UInt8] = []
        for value: Int64 in [-3, 2, -Int64(zeros), 5] { CompressedHistogram.appendZigZag(value, to: &expected) }
        #expect(payload == expected)
        #expect(Array(raw[40...]) == payload)
        // The zlib stream is one any inflater takes: Python's zlib checks its framing and Adler-32.
        let base64 = CompressedHistogram.base64(histogram)
        let python = Process()
        python.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        python.arguments = ["python3", "-c", "import base64,sys,zlib; d=base64.b64decode(sys.argv[1]); print(len(zlib.decompress(d[8:])))", base64]
        let pipe = Pipe()
        python.standardOutput = pipe
        try python.run()
        python.waitUntilExit()
        let printed = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(python.terminationStatus == 0)
        #expect(printed.trimmingCharacters(in: .whitespacesAndNewlines) == String(raw.count))
    }

    /// A run cut into 200 ms intervals: every interval of the window is there, their counts add up to
    /// the run's messages, and both files are written from them.
    @Test func aRunsIntervalsAddUpAndAreLoggedAndDrawn() throws {
        let server = try TestEchoServer()
        defer { server.stop() }
        var settings = ConnectionSettings(target: server.address, connections: 4)
        settings.connectTimeout = .seconds(2)
        let recording = IntervalRecording(length: .milliseconds(200))
        let result = try LoadRun(connection: settings, rate: 2000, duration: .seconds(1), warmup: .milliseconds(200),
                                 drainTimeout: .seconds(2), intervals: recording).run()
        #expect(result.succeeded)
        let intervals = recording.intervals
        #expect(intervals.count == 5, "\(intervals.map(\.startSeconds))")
        #expect(intervals.reduce(0) { $0 + Int($1.histogram.totalCount) } == result.messages)
        #expect(intervals.allSatisfy { $0.histogram.totalCount > 200 }, "\(intervals.map(\.histogram.totalCount))")
        #expect(abs(recording.startEpochSeconds - Date().timeIntervalSince1970) < 10)

        let log = IntervalLogFile.text(recording)
        let lines = log.split(separator: "\n")
        #expect(lines.contains("#[Histogram log format version 1.3]"))
        let data = lines.filter { !$0.hasPrefix("#") && !$0.hasPrefix("\"") }
        #expect(data.count == 5)
        #expect(data.first?.hasPrefix("0.000,0.200,") == true)
        #expect(data.allSatisfy { $0.split(separator: ",")[3].hasPrefix("HISTF") })  // base64 of the compressed cookie

        let svg = LatencyHeatmap(title: "t", intervals: intervals).render()
        #expect(svg.hasPrefix("<?xml") && svg.hasSuffix("</svg>\n"))
        let cells = svg.components(separatedBy: "messages</title></rect>").count - 1
        #expect(cells >= 5, "\(cells) cells")
    }

    @Test func heatmapRowsAreFifthsOfADecade() {
        #expect(LatencyHeatmap.row(ofNanoseconds: 1_000) == 0)       // 1 µs
        #expect(LatencyHeatmap.row(ofNanoseconds: 10_000) == 5)      // 10 µs
        #expect(LatencyHeatmap.row(ofNanoseconds: 1_000_000) == 15)  // 1 ms
        #expect(LatencyHeatmap.colour(0, maximum: 10) == "#deebf7")
        #expect(LatencyHeatmap.colour(10, maximum: 10) == "#141414")
    }
}

extension IntervalLogTests {
    /// Latencies all within one decade, or none at all, still draw.
    @Test func narrowAndEmptyHeatmapsRender() {
        var narrow = IntervalRecording.emptyHistogram()
        narrow.record(150_000)
        narrow.record(152_000)
        let one = LatencyInterval(startSeconds: 0, lengthSeconds: 1, histogram: narrow)
        #expect(LatencyHeatmap(title: "narrow", intervals: [one]).render().contains("2 messages"))
        let empty = LatencyInterval(startSeconds: 0, lengthSeconds: 1, histogram: IntervalRecording.emptyHistogram())
        #expect(LatencyHeatmap(title: "empty", intervals: [empty]).render().contains("no data"))
        #expect(LatencyHeatmap(title: "none", intervals: []).render().contains("no data"))
    }
}
