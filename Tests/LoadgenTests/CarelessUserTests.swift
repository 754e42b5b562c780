#if canImport(Glibc)
import Glibc
#endif
import EchoProtocol
import Foundation
import Testing

@testable import loadgen

/// Commands as a careless user types them, each with the one line it must answer and its exit status
/// (64: bad usage, before anything runs). The first line of stderr is the whole story.
@Suite(.serialized)
struct CarelessUserTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var tool: String
        var arguments: [String]
        var firstLine: String
        var status: Int32 = 64

        var testDescription: String { ([tool] + arguments).joined(separator: " ") }
    }

    /// A CPU this process may not run on: the affinity mask's highest plus one.
    static let outsideCPU = (CPUList.allowed().max() ?? 0) + 1
    static let allowedCPUs = CPUList.describe(CPUList.allowed())
    static let unitHint = "write a number with ns, us, ms, s, m or h (e.g. 100ms, 10s)"

    static let cases: [Case] = [
        // A value that is given, but negative, names itself instead of "Missing value".
        Case(tool: "loadgen", arguments: ["run", "--rate", "-1"], firstLine: "Error: --rate must be a number above 0, got -1"),
        Case(tool: "loadgen", arguments: ["run", "-c", "-5"], firstLine: "Error: --connections must be 1...10000000, got -5"),
        Case(tool: "loadgen", arguments: ["run", "--duration", "-1s"], firstLine: "Error: --duration must not be negative, got -1s"),
        Case(tool: "echo-libev", arguments: ["--port", "-1"], firstLine: "Error: --port must be 0...65535, got -1"),
        Case(tool: "echo-tasks", arguments: ["--work", "-1us"], firstLine: "Error: --work must not be negative, got -1us"),
        Case(tool: "echo-uring", arguments: ["--loops", "-1"], firstLine: "Error: --loops must be 1...256, got -1"),
        // Every duration needs its unit, in every executable.
        Case(tool: "loadgen", arguments: ["run", "--duration", "5"], firstLine: "Error: --duration needs a unit: \(unitHint), got '5'"),
        Case(tool: "loadgen", arguments: ["idle", "--hold", "2"], firstLine: "Error: --hold needs a unit: \(unitHint), got '2'"),
        Case(tool: "loadgen", arguments: ["curve", "--p99-limit", "10"], firstLine: "Error: --p99-limit needs a unit: \(unitHint), got '10'"),
        Case(tool: "echo-threads", arguments: ["--block", "5"], firstLine: "Error: --block needs a unit: \(unitHint), got '5'"),
        Case(tool: "handoff", arguments: ["sleepers", "--sleep", "5"], firstLine: "Error: --sleep needs a unit: \(unitHint), got '5'"),
        // CPUs outside the affinity mask cannot be pinned to.
        Case(tool: "loadgen", arguments: ["run", "--cpus", "\(outsideCPU)"],
             firstLine: "Error: --cpus: CPU \(outsideCPU) is not one this process may run on (\(allowedCPUs)), got \(outsideCPU)"),
        Case(tool: "loadgen", arguments: ["sweep", "--server-cpus", "\(outsideCPU)"],
             firstLine: "Error: --server-cpus: CPU \(outsideCPU) is not one this process may run on (\(allowedCPUs)), got \(outsideCPU)"),
        // Options a command would ignore are not offered.
        Case(tool: "loadgen", arguments: ["churn", "-c", "3"], firstLine: "Error: Unknown option '-c'"),
        Case(tool: "loadgen", arguments: ["churn", "--connect-rate", "10"], firstLine: "Error: Unknown option '--connect-rate'"),
        Case(tool: "loadgen", arguments: ["churn", "--threads", "2"], firstLine: "Error: Unknown option '--threads'"),
        Case(tool: "echo-threads", arguments: ["--offload", "2"], firstLine: "Error: Unknown option '--offload'"),
        // Sizes and counts take the same suffixes everywhere.
        Case(tool: "loadgen", arguments: ["run", "--size", "65M"], firstLine: "Error: --size must be 1 B...64 MiB, got 65M"),
        Case(tool: "loadgen", arguments: ["run", "-c", "1.5"], firstLine: "Error: --connections must be a whole number, got 1.5"),
    ]

    @Test(arguments: cases)
    func answersInOneLine(_ test: Case) throws {
        let outcome = try CommandLineTests.tool(test.tool, test.arguments)
        #expect(outcome.status == test.status, "\(outcome.stderr)")
        #expect(outcome.stderr.split(separator: "\n").first.map(String.init) == test.firstLine, "\(outcome.stderr)")
    }

    @Test func countsAreDecimalAndSizesBinaryEverywhere() throws {
        let run = try #require(try Loadgen.parseAsRoot(["run", "--rate", "10k", "--size", "1K", "-c", "2k"]) as? Loadgen.Run)
        #expect(run.rate == 10_000 && run.size == 1024 && run.connection.connections == 2000)
        let curve = try #require(try Loadgen.parseAsRoot(["curve", "--rates", "10k,1.5M", "--size", "64KB"]) as? Loadgen.Curve)
        #expect(try curve.parsedRates() == [10_000, 1_500_000] && curve.size == 65_536)
        #expect(try ServerOptions.parse(["--max-connections", "10k", "--buffer-size", "64KiB"]).maxConnections == 10_000)
    }

    @Test(arguments: ["loadgen", "echo-threads", "echo-libev", "echo-tasks", "echo-uring", "handoff"])
    func everyExecutableSaysItsVersionAndCommit(_ tool: String) throws {
        let outcome = try CommandLineTests.tool(tool, ["--version"])
        #expect(outcome.status == 0)
        #expect(outcome.stdout.hasPrefix(BuildVersion.package), "\(outcome.stdout)")
        // The tests run in a checkout: the commit must be found, as provenance finds it.
        #expect(outcome.stdout.contains("(git "), "\(outcome.stdout)")
    }

    /// Output paths are checked before the first connection: the target here does not even exist,
    /// and the answer is still about the path.
    @Test func outputPathsAreCheckedBeforeTheFirstConnection() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("careless-\(getpid())-\(UUID())").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let idleRows = folder + "/idle.csv"
        try (Report.idleCSVHeader.joined(separator: ",") + "\n").write(toFile: idleRows, atomically: true, encoding: .utf8)
        let aFile = folder + "/results"
        try "".write(toFile: aFile, atomically: true, encoding: .utf8)
        let nowhere = "127.0.0.1:1"
        let cases: [([String], String)] = [
            (["run", "--target", nowhere, "--csv", idleRows],
             "Error: --csv \(idleRows) holds rows of another kind than run (its header differs); give another file"),
            (["run", "--target", nowhere, "--csv", "/nonexistent/dir/x.csv"],
             "Error: --csv /nonexistent/dir/x.csv: the folder /nonexistent/dir does not exist"),
            (["run", "--target", nowhere, "--percentiles", "/nonexistent/x.hgrm"],
             "Error: --percentiles /nonexistent/x.hgrm: the folder /nonexistent does not exist"),
            (["churn", "--target", nowhere, "--csv", folder], "Error: --csv \(folder) is a folder; give a file"),
            (["sweep", "--out", aFile], "Error: --out \(aFile) is a file, not a folder; give a folder"),
        ]
        for (arguments, firstLine) in cases {
            let outcome = try CommandLineTests.loadgen(arguments)
            #expect(outcome.status == 64, "\(arguments): \(outcome.stderr)")
            #expect(outcome.stderr.split(separator: "\n").first.map(String.init) == firstLine, "\(arguments): \(outcome.stderr)")
        }
    }

    /// Every server's --help lists the options it takes, and only those.
    @Test(arguments: [
        ("echo-threads", ["--stack-size"], ["--offload", "--loops"]),
        ("echo-libev", ["--loops", "--offload"], ["--stack-size"]),
        ("echo-tasks", ["--io", "--loops", "--executor", "--threads", "--read-until-eagain", "--offload"], ["--stack-size"]),
        ("echo-uring", ["--loops", "--ring-buffers", "--recv", "--plain-ring"], ["--stack-size"]),
    ])
    func everyServerListsItsOptions(_ server: String, _ own: [String], _ others: [String]) throws {
        let help = try CommandLineTests.tool(server, ["--help"])
        #expect(help.status == 0)
        let shared = ["--host", "--port", "--backlog", "--buffer-size", "--max-connections", "--stats-port", "--stats-host", "--work", "--block",
                      "--block-every", "--version"]
        #expect(help.stdout.contains("USAGE: \(server) [--host <host>] [--port <port>] [<options>]\n"), "\(help.stdout)")
        for option in shared + own { #expect(help.stdout.contains("  \(option) "), "\(server) --help lacks \(option)") }
        for option in others { #expect(!help.stdout.contains("  \(option) "), "\(server) --help offers \(option)") }
    }

    /// Defaults read one way everywhere, `(default: X)`, once per option.
    @Test(arguments: [
        ("loadgen", ["run"]), ("loadgen", ["idle"]), ("loadgen", ["churn"]), ("loadgen", ["curve"]), ("loadgen", ["sweep"]),
        ("loadgen", ["merge"]), ("echo-threads", []), ("echo-libev", []), ("echo-tasks", []), ("echo-uring", []),
        ("handoff", ["sleepers"]),
    ])
    func defaultsAreWrittenOneWay(_ tool: String, _ subcommand: [String]) throws {
        let help = try CommandLineTests.tool(tool, subcommand + ["--help"])
        #expect(help.status == 0)
        #expect(!help.stdout.contains("(default "), "\(help.stdout)")
        // One option's help is the lines from its name to the next option's.
        let options = help.stdout.components(separatedBy: "\n  -").dropFirst()
        for option in options {
            let flat = option.split(whereSeparator: \.isWhitespace).joined(separator: " ")
            #expect(flat.components(separatedBy: "default:").count <= 2, "default given twice: \(flat)")
        }
    }

    /// A port that cannot be bound is named, and so is the stats port.
    @Test func bindErrorsNameThePortAndWhetherItIsTheStatsPort() throws {
        let taken = try Listener.open(host: "127.0.0.1", port: 0, backlog: 1, nonBlocking: false)[0]
        defer { close(taken) }
        let port = try #require(Listener.boundAddress(of: taken)).port
        let stats = try CommandLineTests.tool("echo-libev", ["--port", "0", "--stats-port", "\(port)"])
        #expect(stats.status == 1)
        #expect(stats.stderr == "echo-libev: the stats port (--stats-port \(port)): cannot bind 127.0.0.1:\(port): Address already in use\n")
        let echo = try CommandLineTests.tool("echo-threads", ["--port", "\(port)"])
        #expect(echo.status == 1)
        #expect(echo.stderr == "echo-threads: cannot bind 127.0.0.1:\(port): Address already in use\n")
    }
}
