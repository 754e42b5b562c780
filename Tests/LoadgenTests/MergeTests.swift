import EchoProtocol
import Foundation
import Histogram
import Testing

@testable import loadgen

/// `.hgrm` files and `loadgen merge` (issue 14): the distribution on disk is the one in the JSON,
/// and merging adds histograms and counts exactly.
@Suite(.serialized)
struct MergeTests {
    @Test func percentileFileHoldsTheRunsDistribution() throws {
        let server = try TestEchoServer()
        defer { server.stop() }
        let result = try LoadRunTests.run(server, connections: 4)
        let histogram = try #require(result.latencyHistogram)
        #expect(Int(histogram.totalCount) == result.messages)
        let text = PercentileFile.text(histogram)
        let rows = text.split(separator: "\n").map { $0.split(separator: " ").compactMap { Double($0) } }
            .filter { $0.count == 4 || $0.count == 3 }
        #expect(rows.count > 10, "\(text)")
        // The JSON's p99 lies between the rows just below and at the 99th percentile (values in µs).
        let at = try #require(rows.firstIndex { $0[1] >= 0.99 })
        let p99 = result.latencyMicroseconds.p99
        #expect(at > 0 && rows[at - 1][0] <= p99 + 0.01 && p99 <= rows[at][0] + 0.01,
                "hgrm \(rows[max(at - 1, 0)][0])...\(rows[at][0]) µs, JSON p99 \(p99) µs")
        #expect(Int(rows.last![2]) == result.messages)
        for trailer in ["#[Mean", "#[Max", "#[Buckets"] { #expect(text.contains(trailer)) }
    }

    /// The JSON's per-second series: one entry a second of the measured phase, with its rate.
    @Test func runCarriesAPerSecondSeriesAndProvenance() throws {
        let server = try TestEchoServer()
        defer { server.stop() }
        let result = try LoadRunTests.run(server, connections: 2, duration: .milliseconds(2500))
        let series = try #require(result.perSecond)
        // Two full seconds, then the last half second, marked partial.
        #expect(series.count == 3, "\(series)")
        #expect(series.map(\.partial) == [false, false, true], "\(series)")
        #expect(series.allSatisfy { $0.messagesPerSecond > 0 && $0.p99Microseconds > 0 })
        #expect(zip(series, series.dropFirst()).allSatisfy { $0.second < $1.second })
        #expect(result.provenance?.loadgen.hasPrefix("echo-lab loadgen") == true)
        #expect(result.provenance?.kernel.hasPrefix("Linux") == true)
    }

    @Test func mergingTwoRunsAddsTheirCountsExactly() throws {
        let server = try TestEchoServer()
        defer { server.stop() }
        let a = try LoadRunTests.run(server, connections: 4)
        let b = try LoadRunTests.run(server, connections: 6)
        let merged = try RunMerge.merge([("a.json", a), ("b.json", b)])
        #expect(merged.messages == a.messages + b.messages)
        #expect(merged.latencyHistogram?.totalCount == a.latencyHistogram!.totalCount + b.latencyHistogram!.totalCount)
        #expect(merged.latencyMicroseconds.count == a.messages + b.messages)
        #expect(merged.settings.connections == 10 && merged.connections.established == 10)
        #expect(merged.fairness.connections == 10)
        #expect(merged.fairness.sum == Double(a.messages + b.messages))
        #expect(merged.fairness.minimum == min(a.fairness.minimum, b.fairness.minimum))
        #expect(merged.messagesPerSecond == a.messagesPerSecond + b.messagesPerSecond)
        #expect(merged.server == a.server)  // the server's figures, once
        // The JSON round trip keeps the histogram, so files from other machines merge the same way.
        let decoded = try JSONDecoder().decode(LoadResult.self, from: try JSONEncoder().encode(a))
        #expect(decoded.latencyHistogram?.totalCount == a.latencyHistogram?.totalCount)
        #expect(decoded.latencyHistogram.map(LatencyFigures.init) == a.latencyMicroseconds)
    }

    @Test func mergeRefusesInputsThatDoNotBelongTogether() throws {
        let server = try TestEchoServer()
        defer { server.stop() }
        let a = try LoadRunTests.run(server, connections: 2)
        var otherSize = a
        otherSize.settings.messageSize = 128
        var otherTarget = a
        otherTarget.target = "127.0.0.9:1"
        var old = a
        old.latencyHistogram = nil
        for (bad, expected) in [(otherSize, "differ"), (otherTarget, "measured"), (old, "no latency histogram")] {
            do {
                _ = try RunMerge.merge([("a.json", a), ("b.json", bad)])
                Issue.record("merged inputs that should be refused (\(expected))")
            } catch {
                #expect(error.description.contains(expected), "\(error)")
                #expect(!error.description.contains("\n"))
            }
        }
    }

    /// `run --percentiles FILE` and `merge --percentiles FILE` write .hgrm files whose last row counts
    /// every message; merging two saved runs through the command line adds them.
    @Test func percentilesFilesFromTheCommandLine() throws {
        let server = try TestEchoServer()
        defer { server.stop() }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("hgrm-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var results: [LoadResult] = []
        for name in ["a", "b"] {
            let hgrm = directory.appendingPathComponent("\(name).hgrm").path
            let outcome = try CommandLineTests.loadgen([
                "run", "--target", server.address.description, "-c", "2", "--duration", "300ms", "--warmup", "0s",
                "--json", "--percentiles", hgrm,
            ])
            #expect(outcome.status == 0, "\(outcome.stderr)")
            try outcome.stdout.write(toFile: directory.appendingPathComponent("\(name).json").path, atomically: true, encoding: .utf8)
            results.append(try JSONDecoder().decode(LoadResult.self, from: Data(outcome.stdout.utf8)))
            #expect(try String(contentsOfFile: hgrm, encoding: .utf8).contains("#[Max"))
        }
        let merged = directory.appendingPathComponent("all.hgrm").path
        let outcome = try CommandLineTests.loadgen([
            "merge", directory.appendingPathComponent("a.json").path, directory.appendingPathComponent("b.json").path,
            "--json", "--percentiles", merged,
        ])
        #expect(outcome.status == 0, "\(outcome.stderr)")
        let result = try JSONDecoder().decode(LoadResult.self, from: Data(outcome.stdout.utf8))
        #expect(result.messages == results[0].messages + results[1].messages)
        let lastRow = try String(contentsOfFile: merged, encoding: .utf8).split(separator: "\n")
            .map { $0.split(separator: " ").compactMap { Double($0) } }.filter { $0.count >= 3 }.last
        #expect(lastRow.map { Int($0[2]) } == result.messages)
    }

    @Test func mergeOfFilesThatAreNotResultsIsOneLine() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("merge-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("x.json").path
        try "not json".write(toFile: path, atomically: true, encoding: .utf8)
        let outcome = try CommandLineTests.loadgen(["merge", path, path])
        #expect(outcome.status == 1)
        #expect(outcome.stderr == "loadgen: \(path) is not the JSON of `loadgen run --json`\n")
    }
}
