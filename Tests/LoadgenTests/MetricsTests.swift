#if canImport(Glibc)
import Glibc
#endif
import EchoProtocol
import Foundation
import Testing

@testable import loadgen

/// `--metrics-port` (issue 21): Prometheus' text format at /metrics while a run, idle or churn goes
/// on, scraped by a real HTTP client (Python's http.client).
@Suite(.serialized)
struct MetricsTests {
    /// GET http://ADDRESS/PATH with Python's HTTP client: (status, body).
    static func fetch(_ address: SocketAddress, _ path: String = "/metrics") throws -> (Int, String) {
        let python = Process()
        python.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        python.arguments = ["python3", "-c", """
            import http.client, sys
            c = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=5)
            c.request("GET", sys.argv[3])
            r = c.getresponse()
            sys.stdout.write(str(r.status) + "\\n" + r.getheader("Content-Type", "") + "\\n" + r.read().decode())
            """, address.host, String(address.port), path]
        let pipe = Pipe()
        python.standardOutput = pipe
        try python.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        python.waitUntilExit()
        let lines = output.split(separator: "\n", maxSplits: 2, omittingEmptySubsequences: false)
        guard lines.count == 3, let status = Int(lines[0]) else { throw StartupError("python3 printed \(output)") }
        if status == 200 { #expect(lines[1].hasPrefix("text/plain; version=0.0.4")) }
        return (status, String(lines[2]))
    }

    /// `name{labels} value` → value, for the first line of `name` whose labels contain `having`.
    static func value(_ body: String, _ name: String, having: String = "") -> Double? {
        for line in body.split(separator: "\n") where line.hasPrefix(name + "{") && (having.isEmpty || line.contains(having)) {
            return line.split(separator: " ").last.flatMap { Double($0) }
        }
        return nil
    }

    @Test func aRunIsScrapedWhileItGoesOn() throws {
        let server = try TestEchoServer()
        defer { server.stop() }
        let metrics = LiveMetrics(mode: "run")
        let endpoint = try MetricsServer(host: "127.0.0.1", port: 0, metrics: metrics)
        defer { endpoint.stop() }
        var settings = ConnectionSettings(target: server.address, connections: 6)
        settings.connectTimeout = .seconds(2)
        let load = LoadRun(connection: settings, duration: .milliseconds(1500), warmup: .milliseconds(100),
                           drainTimeout: .seconds(2), metrics: metrics)
        let finished = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: LoadResult?
        let thread = Thread { result = try? load.run(); finished.signal() }
        thread.start()
        // Scrape while it runs: connections open, messages rising.
        var first: (Int, String) = (0, "")
        for _ in 0..<40 {
            usleep(100_000)
            first = try Self.fetch(endpoint.address)
            if (Self.value(first.1, "loadgen_messages_total") ?? 0) > 0 { break }
        }
        #expect(first.0 == 200)
        #expect(Self.value(first.1, "loadgen_connections_open") == 6, "status \(first.0): \(first.1)")
        usleep(300_000)
        let second = try Self.fetch(endpoint.address)
        #expect((Self.value(second.1, "loadgen_messages_total") ?? 0) > (Self.value(first.1, "loadgen_messages_total") ?? 0))
        finished.wait()
        let run = try #require(result)
        usleep(200_000)
        let last = try Self.fetch(endpoint.address).1
        // After the run every message is counted, once, in the counter and in the histogram.
        let messages = try #require(Self.value(last, "loadgen_messages_total"))
        #expect(Int(messages) == run.totals.messagesCompleted, "\(run.totals.messagesCompleted)")
        #expect(Self.value(last, "loadgen_latency_seconds_count") == messages)
        #expect(Self.value(last, "loadgen_latency_seconds_bucket", having: #"le="+Inf""#) == messages)
        #expect(Self.value(last, "loadgen_bytes_total") == messages * 64)
        #expect(Self.value(last, "loadgen_errors_total", having: #"kind="mismatch""#) == 0)
        #expect(Self.value(last, "loadgen_connections_open") == 0)
        // Buckets are cumulative.
        let buckets = last.split(separator: "\n").filter { $0.hasPrefix("loadgen_latency_seconds_bucket") }
            .compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }
        #expect(buckets.count == LiveMetrics.bucketBounds.count + 1 && buckets == buckets.sorted())
        #expect(try Self.fetch(endpoint.address, "/other").0 == 404)
    }

    @Test func churnAndIdlePublishToo() throws {
        let server = try TestEchoServer()
        defer { server.stop() }
        var settings = ConnectionSettings(target: server.address, connections: 5)
        settings.connectTimeout = .seconds(2)
        let idleMetrics = LiveMetrics(mode: "idle")
        _ = try IdleRun(connection: settings, hold: .milliseconds(300), metrics: idleMetrics).run()
        #expect(idleMetrics.total.messages == 5)
        #expect(idleMetrics.exposition().contains(#"loadgen_messages_total{mode="idle"} 5"#))

        let churnMetrics = LiveMetrics(mode: "churn")
        var churn = ChurnRun(connection: ConnectionSettings(target: server.address, connections: 1))
        churn.concurrency = 4
        churn.duration = .milliseconds(300)
        churn.warmup = .zero
        churn.metrics = churnMetrics
        let result = try churn.run()
        #expect(churnMetrics.total.messages >= result.lives && result.lives > 0)
        #expect(churnMetrics.exposition().contains(#"loadgen_errors_total{mode="churn",kind="refused"} 0"#))
    }

    @Test func optionsDefaultToLoopbackAndNeedAPort() throws {
        #expect(throws: (any Error).self) { try Loadgen.Run.parse(["--metrics-host", "0.0.0.0"]) }
        #expect(try Loadgen.Run.parse(["--metrics-port", "9100"]).metricsOptions.metricsPort == 9100)
        #expect(try Loadgen.Idle.parse(["--metrics-port", "0"]).metricsOptions.metricsHost == nil)
        #expect(LiveMetrics.number(0.00005) == "0.00005" && LiveMetrics.number(10) == "10")
    }
}
