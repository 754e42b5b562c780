#if canImport(Glibc)
import Glibc
#endif
import EchoProtocol
import Foundation
import NetPoller
import Testing

@testable import loadgen

/// The built `loadgen` binary, spawned: exit statuses, one-line errors, JSON and CSV on disk.
@Suite(.serialized)
struct CommandLineTests {
    struct Outcome {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// The loadgen executable next to this test bundle (`swift test` builds it in the same folder).
    static var binary: URL { executable("loadgen") }

    /// One of the package's executables (loadgen, echo-threads, echo-libev, echo-tasks, handoff),
    /// next to this test bundle.
    static func executable(_ name: String) -> URL {
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent(name)
        if FileManager.default.isExecutableFile(atPath: beside.path) { return beside }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(".build/debug/\(name)")
    }

    /// Runs loadgen with `arguments`, at most `timeout`; always reaped (SIGKILL past the timeout).
    static func loadgen(_ arguments: [String], timeout: Duration = .seconds(20)) throws -> Outcome {
        try tool("loadgen", arguments, timeout: timeout)
    }

    /// Runs executable `name` with `arguments`, at most `timeout`; always reaped (SIGKILL past the timeout).
    /// With `interruptAfter`, it gets SIGINT (a user's Ctrl-C) once that time has passed.
    static func tool(_ name: String, _ arguments: [String], timeout: Duration = .seconds(20),
                     interruptAfter: Duration? = nil) throws -> Outcome {
        let process = Process()
        process.executableURL = executable(name)
        process.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Read both pipes on other threads so a full pipe never blocks the child.
        let outData = try Reader(out.fileHandleForReading)
        let errData = try Reader(err.fileHandleForReading)
        let deadline = ContinuousClock.now + timeout
        let interruptAt = interruptAfter.map { ContinuousClock.now + $0 }
        var interrupted = false
        while process.isRunning && ContinuousClock.now < deadline {
            if let interruptAt, !interrupted, ContinuousClock.now >= interruptAt {
                kill(process.processIdentifier, SIGINT)
                interrupted = true
            }
            usleep(20_000)
        }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        #expect(ContinuousClock.now < deadline, "loadgen \(arguments) did not finish within \(timeout)")
        return Outcome(status: process.terminationStatus, stdout: outData.text(), stderr: errData.text())
    }

    /// Collects everything a pipe delivers, on a joinable thread.
    final class Reader: @unchecked Sendable {
        // @unchecked Sendable: `data` is written only by the reading thread and read after join().
        private var data = Data()
        private var thread: PosixThread?

        init(_ handle: FileHandle) throws {
            thread = try PosixThread(name: "test-reader") { [self] in data = handle.readDataToEndOfFile() }
        }

        func text() -> String {
            thread?.join()
            thread = nil
            return String(decoding: data, as: UTF8.self)
        }
    }

    @Test func runPrintsJSONAndExitsZero() throws {
        let server = try TestEchoServer()
        defer { server.stop() }
        let outcome = try Self.loadgen([
            "run", "--target", server.address.description, "-c", "4", "--duration", "300ms", "--warmup", "0s", "--json",
        ])
        #expect(outcome.status == 0, "\(outcome.stderr)")
        let result = try JSONDecoder().decode(LoadResult.self, from: Data(outcome.stdout.utf8))
        #expect(result.errors.total == 0 && result.messages > 0 && result.connections.established == 4)
    }

    /// `--target` as people type it: a name, or IPv6 in brackets; the run reaches the server.
    @Test(arguments: [("localhost", "127.0.0.1"), ("[::1]", "::1")])
    func targetsAsPeopleTypeThemAreReached(target: String, serverHost: String) throws {
        let server = try TestEchoServer(host: serverHost)
        defer { server.stop() }
        let outcome = try Self.loadgen([
            "run", "--target", "\(target):\(server.address.port)", "-c", "2", "--duration", "200ms", "--warmup", "0s",
            "--json",
        ])
        #expect(outcome.status == 0, "\(outcome.stderr)")
        let result = try JSONDecoder().decode(LoadResult.self, from: Data(outcome.stdout.utf8))
        #expect(result.connections.established == 2 && result.errors.total == 0)
        #expect(result.target == SocketAddress(serverHost, port: server.address.port)!.description)
    }

    @Test(arguments: [["--target", "nosuch.invalid:7007"], ["--target", "::1:7007"], ["--server-stats", "nosuch.invalid:1"]])
    func unusableAddressesAreOneLineUsageErrors(_ arguments: [String]) throws {
        let outcome = try Self.loadgen(["run"] + arguments)
        #expect(outcome.status == 64)
        let lines = outcome.stderr.split(separator: "\n").filter { !$0.isEmpty && !$0.hasPrefix("Usage") && !$0.hasPrefix("  See") }
        #expect(lines.count == 1, "\(outcome.stderr)")
        #expect(outcome.stderr.contains(arguments[0]), "\(outcome.stderr)")
    }

    @Test func usageErrorsExit64() throws {
        let outcome = try Self.loadgen(["run", "-c", "0"])
        #expect(outcome.status == 64)
        #expect(outcome.stderr.hasPrefix("Error: --connections must be 1...10000000, got 0\n"))
    }

    @Test func unreachableTargetIsOneLineAndExit1() throws {
        let fd = try Listener.open(host: "127.0.0.1", port: 0, backlog: 1, nonBlocking: false)[0]
        let address = Listener.boundAddress(of: fd)!
        close(fd)
        let outcome = try Self.loadgen(["run", "--target", address.description, "--duration", "1s"], timeout: .seconds(6))
        #expect(outcome.status == 1)
        #expect(outcome.stderr == "loadgen: cannot connect to \(address): Connection refused\n")
    }

    @Test func tooManyConnectionsIsOneLineWithTheFix() throws {
        let server = try TestEchoServer()
        defer { server.stop() }
        let outcome = try Self.loadgen(["run", "--target", server.address.description, "-c", "2000000"])
        #expect(outcome.status == 1)
        #expect(outcome.stderr.hasPrefix("loadgen: 2000000 connections need"))
        #expect(outcome.stderr.contains("ulimit -n") && outcome.stderr.filter { $0 == "\n" }.count == 1)
    }

    @Test func serverDyingGivesPartialResultsAndExit1() throws {
        let server = try TestEchoServer(.dieAfter(totalBytes: 100_000))
        defer { server.stop() }
        let outcome = try Self.loadgen([
            "run", "--target", server.address.description, "-c", "4", "--duration", "30s", "--warmup", "0s",
        ], timeout: .seconds(10))
        #expect(outcome.status == 1)
        #expect(outcome.stdout.contains("stopped      every connection was lost"))
        #expect(outcome.stdout.contains("throughput"))
    }

    @Test func csvAppendsOneRowPerRunAfterOneHeader() throws {
        let server = try TestEchoServer()
        defer { server.stop() }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("loadgen-\(getpid())-\(UUID()).csv").path
        defer { unlink(path) }
        for _ in 0..<2 {
            let outcome = try Self.loadgen([
                "run", "--target", server.address.description, "-c", "2", "--duration", "200ms", "--warmup", "0s",
                "--csv", path,
            ])
            #expect(outcome.status == 0, "\(outcome.stderr)")
        }
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 3)
        #expect(lines.first.map(String.init) == Report.runCSVHeader.joined(separator: ","))
        #expect(lines.dropFirst().allSatisfy { $0.split(separator: ",", omittingEmptySubsequences: false).count == Report.runCSVHeader.count })
        // An idle row does not go into a file of run rows.
        let idle = try Self.loadgen(["idle", "--target", server.address.description, "-c", "2", "--hold", "0s", "--csv", path])
        #expect(idle.status == 64)
        #expect(idle.stderr.hasPrefix("Error: --csv \(path) holds rows of another kind than idle"), "\(idle.stderr)")
    }

    @Test func idleReportsRSSPerConnection() throws {
        let server = try TestEchoServer()
        defer { server.stop() }
        let outcome = try Self.loadgen([
            "idle", "--target", server.address.description, "-c", "10", "--hold", "0s", "--server-pid", "\(getpid())",
        ])
        #expect(outcome.status == 0, "\(outcome.stderr)")
        #expect(outcome.stdout.contains("KiB per connection"))
        #expect(outcome.stdout.contains("10 echoed"))
    }
}
