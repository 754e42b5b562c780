#if canImport(Glibc)
import Glibc
#endif
import EchoProtocol
import Foundation
import Testing

@testable import loadgen

/// Exit statuses that never lie (docs/loadgen.md, "Exit status"): 0 only when the command measured
/// what it was asked and every byte came back right; 1 with one line saying why; 130 when interrupted,
/// with the partial results labelled partial.
@Suite(.serialized)
struct ExitStatusTests {
    static func temporaryPath(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("exit-\(getpid())-\(UUID())-\(name)").path
    }

    @Test func churnAgainstASilentServerIsAnErrorSayingWhy() throws {
        let server = try TestEchoServer(.silent)
        defer { server.stop() }
        let outcome = try CommandLineTests.loadgen([
            "churn", "--target", server.address.description, "--duration", "1s", "--warmup", "0s", "--concurrency", "4",
        ])
        #expect(outcome.status == 1)
        #expect(outcome.stderr.hasPrefix("loadgen: no life completed in the "), "\(outcome.stderr)")
        #expect(outcome.stderr.contains("connected, but no echo came back"), "\(outcome.stderr)")
        #expect(outcome.stderr.filter { $0 == "\n" }.count == 1, "\(outcome.stderr)")
    }

    /// churn's --connect-timeout bounds a life, as it bounds run's connections and first echoes.
    @Test func churnTimesALifeOutAtTheConnectTimeout() throws {
        let server = try TestEchoServer(.silent)
        defer { server.stop() }
        let outcome = try CommandLineTests.loadgen([
            "churn", "--target", server.address.description, "--duration", "1500ms", "--warmup", "0s", "--concurrency", "2",
            "--connect-timeout", "300ms",
        ])
        #expect(outcome.status == 1)
        #expect(outcome.stderr.hasPrefix("loadgen: no life completed in the "), "\(outcome.stderr)")
        #expect(outcome.stderr.contains("a life got no answer within 300ms"), "\(outcome.stderr)")
    }

    @Test func runAgainstAnHTTPServerSaysItIsNotAnEchoServer() throws {
        let server = try TestEchoServer(.http)
        defer { server.stop() }
        let outcome = try CommandLineTests.loadgen(["run", "--target", server.address.description, "-c", "2", "--duration", "1s"])
        #expect(outcome.status == 1)
        #expect(outcome.stderr.hasPrefix("loadgen: not an echo server: connection "), "\(outcome.stderr)")
        #expect(outcome.stderr.filter { $0 == "\n" }.count == 1, "\(outcome.stderr)")
    }

    @Test func idleAgainstAnHTTPServerSaysItIsNotAnEchoServer() throws {
        let server = try TestEchoServer(.http)
        defer { server.stop() }
        let outcome = try CommandLineTests.loadgen(["idle", "--target", server.address.description, "-c", "5", "--hold", "0s"])
        #expect(outcome.status == 1)
        #expect(outcome.stderr.hasPrefix("loadgen: not an echo server: connection "), "\(outcome.stderr)")
        #expect(outcome.stdout.isEmpty, "\(outcome.stdout)")
    }

    @Test func churnAgainstAnHTTPServerSaysItIsNotAnEchoServer() throws {
        let server = try TestEchoServer(.http)
        defer { server.stop() }
        let outcome = try CommandLineTests.loadgen([
            "churn", "--target", server.address.description, "--duration", "500ms", "--warmup", "0s", "--concurrency", "2",
        ])
        #expect(outcome.status == 1)
        #expect(outcome.stderr.contains("not an echo server"), "\(outcome.stderr)")
    }

    @Test func messagesTooLargeForTheDurationAreAnErrorSayingWhy() throws {
        // Each message needs many round trips of the slow server's reads: none can come back in 100ms.
        let server = try TestEchoServer(.slow(microsecondsPer64Bytes: 200))
        defer { server.stop() }
        let outcome = try CommandLineTests.loadgen([
            "run", "--target", server.address.description, "-c", "1", "--size", "256K", "--duration", "100ms",
            "--warmup", "0s", "--connect-timeout", "30s",
        ], timeout: .seconds(60))
        #expect(outcome.status == 1, "\(outcome.stdout) \(outcome.stderr)")
        #expect(outcome.stderr.hasPrefix("loadgen: no message came back in the 0.1 s measured phase"), "\(outcome.stderr)")
        #expect(outcome.stderr.contains("give a longer --duration or a smaller --size"), "\(outcome.stderr)")
    }

    @Test func mergingOneRunTwiceIsRefused() throws {
        let server = try TestEchoServer()
        defer { server.stop() }
        let first = Self.temporaryPath("h1.json")
        let copy = Self.temporaryPath("h2.json")
        defer { unlink(first); unlink(copy) }
        let run = try CommandLineTests.loadgen([
            "run", "--target", server.address.description, "-c", "2", "--duration", "200ms", "--warmup", "0s", "--json",
        ])
        #expect(run.status == 0, "\(run.stderr)")
        try run.stdout.write(toFile: first, atomically: true, encoding: .utf8)
        try run.stdout.write(toFile: copy, atomically: true, encoding: .utf8)

        let twice = try CommandLineTests.loadgen(["merge", first, first])
        #expect(twice.status == 1)
        #expect(twice.stderr == "loadgen: \(first) is given twice (as \(first)); merge each run once\n")
        let copied = try CommandLineTests.loadgen(["merge", first, copy])
        #expect(copied.status == 1)
        #expect(copied.stderr == "loadgen: \(copy) and \(first) hold the same run; merge each run once\n")
    }

    @Test func anInterruptedRunExits130WithItsPartialResults() throws {
        let server = try TestEchoServer()
        defer { server.stop() }
        let outcome = try CommandLineTests.tool(
            "loadgen", ["run", "--target", server.address.description, "-c", "2", "--duration", "30s", "--warmup", "0s"],
            interruptAfter: .seconds(2))
        #expect(outcome.status == 130, "\(outcome.stderr)")
        #expect(outcome.stdout.contains("(partial)"), "\(outcome.stdout)")
        #expect(outcome.stdout.contains("stopped      interrupted: partial results"), "\(outcome.stdout)")
    }

    @Test func anIdleInterruptedSaysHowLongItHeld() throws {
        let server = try TestEchoServer()
        defer { server.stop() }
        let outcome = try CommandLineTests.tool(
            "loadgen", ["idle", "--target", server.address.description, "-c", "2", "--hold", "30s", "--json"],
            interruptAfter: .seconds(2))
        #expect(outcome.status == 130, "\(outcome.stderr)")
        let result = try JSONDecoder().decode(IdleResult.self, from: Data(outcome.stdout.utf8))
        let held = try #require(result.heldSeconds)
        #expect(held < 5 && result.settings.holdSeconds == 30 && result.stopReason == "interrupted")
    }

    @Test func anInterruptedCurveMarksItsCutStepInterrupted() throws {
        let server = try TestEchoServer()
        defer { server.stop() }
        let outcome = try CommandLineTests.tool(
            "loadgen", ["curve", "--target", server.address.description, "-c", "2", "--rates", "200,400",
                        "--duration", "20s", "--warmup", "0s", "--json"],
            interruptAfter: .seconds(2))
        #expect(outcome.status == 130, "\(outcome.stderr)")
        let result = try JSONDecoder().decode(CurveResult.self, from: Data(outcome.stdout.utf8))
        #expect(result.steps.map(\.status) == ["interrupted"], "\(outcome.stdout)")
        #expect(!result.complete && result.stopReason == "interrupted")
    }

    @Test func sweepOfAnUnknownServerIsAUsageError() throws {
        let outcome = try CommandLineTests.loadgen(["sweep", "--servers", "bogus"])
        #expect(outcome.status == 64)
        let first = outcome.stderr.split(separator: "\n").first.map(String.init) ?? ""
        #expect(first.hasPrefix("Error: --servers: no echo-bogus beside loadgen; this build has "), "\(outcome.stderr)")
        // It names the servers that are there, and nothing else of the build folder.
        #expect(first.contains("libev, tasks, threads") && !first.contains("Package"), "\(first)")
    }

    @Test func sweepWithFailedStepsExits1WithTheServersOwnLine() throws {
        let out = Self.temporaryPath("sweep")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let outcome = try CommandLineTests.loadgen([
            "sweep", "--servers", "threads", "--scenario", "x=--bogus-option", "--connections", "10", "--duration", "200ms",
            "--warmup", "0s", "--hold", "0s", "--no-churn", "--no-pin", "--out", out,
        ], timeout: .seconds(60))
        #expect(outcome.status == 1, "\(outcome.stderr)")
        let last = outcome.stderr.split(separator: "\n").last.map(String.init) ?? ""
        #expect(last.hasPrefix("loadgen: 1 of 1 steps failed; the first, threads/x at 10: "), "\(outcome.stderr)")
        #expect(last.contains("Error: Unknown option '--bogus-option'"), "\(outcome.stderr)")
    }

    /// Ctrl-C in the middle of a step: 130, and the step is "interrupted", not blamed on the resets
    /// and the server exit that the interruption itself caused.
    @Test func anInterruptedSweepExits130AndBlamesNoServer() throws {
        let out = Self.temporaryPath("sweep-cut")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let outcome = try CommandLineTests.tool("loadgen", [
            "sweep", "--servers", "threads", "--connections", "10,20", "--duration", "20s", "--warmup", "0s", "--hold", "0s",
            "--no-churn", "--no-pin", "--out", out,
        ], timeout: .seconds(60), interruptAfter: .seconds(3))
        #expect(outcome.status == 130, "\(outcome.stderr)")
        let results = try SweepResults.decode(Data(contentsOf: URL(fileURLWithPath: out + "/results.json")))
        #expect(!results.complete)
        #expect(results.steps.map(\.status) == [.interrupted], "\(results.steps.map(\.reason))")
        #expect(results.steps.first?.reason == "interrupted (Ctrl-C)")
    }
}
