#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import EchoProtocol
import Foundation

/// `loadgen sweep`: starts each server itself, measures it idle and loaded at each connection count,
/// and writes results.csv, results.json, SVG charts and index.html.
struct Sweep: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start each server, measure it at each connection count, and chart connections against memory.",
        discussion: """
            For each server and each connection count N, a fresh server is started
            (--port 0; its readiness line gives the ports) and measured in three phases:
              idle    N connections open, one echo each, then silent. RSS per
                      connection = (RSS with N idle - RSS before the first) / N;
                      also VmSize, threads and open files.
              loaded  the N stay open, --active of them send closed loop for
                      --duration after --warmup: msgs/s, p50/p99, server and
                      client CPU, context switches per message, fairness.
              churn   the N still open, --churn-concurrency lives (connect, one
                      echo, close) in flight: lives/s, server CPU per connection
                      (--no-churn skips it).
            With --curve, a latency curve at one count; with --rounds N, each step N
            times, the servers alternating. Then the server gets SIGTERM and must exit 0 before the next starts. A
            step that cannot run (e.g. a server out of threads) is recorded as failed
            with its reason, and the sweep goes on. Results are rewritten after every
            step; Ctrl-C ends the server, stops the sweep and keeps what it measured.

            The server is pinned to the first half of the CPUs and the client to the
            rest (on 2 CPUs: server 0, client 1) unless --no-pin; charts say so.

            Examples:
              loadgen sweep --connections 100,1000,5000,10000,19000 --out results
              loadgen sweep --servers libev \\
                --server c-epoll='.build-peers/c-epoll-echo {port} 1' --out results
            """)

    @Option(
        parsing: .unconditional, help: ArgumentHelp(
            "This package's servers to sweep (echo-NAME beside loadgen), comma-separated; '' for none.",
            valueName: "names"))
    var servers: String = "threads,libev,tasks"

    @Option(
        name: .customLong("server"),
        help: ArgumentHelp(
            "Add any other server: NAME='COMMAND {port}'; {port} becomes a free port. Repeatable. Its figures come from /proc.",
            valueName: "name=command"))
    var foreignServers: [String] = []

    @Option(
        name: .customLong("scenario"),
        help: ArgumentHelp(
            "Run every server under a scenario: NAME='SERVER-OPTIONS', e.g. block='--block 5ms --block-every 1000' (base= for none), the options appended to each server's command (--server's too: go-echo takes them). Repeatable; charted as grouped bars per scenario.",
            valueName: "name=options"))
    var scenarios: [String] = []

    @Option(parsing: .unconditional, help: ArgumentHelp("Lives in flight in each step's churn phase (connect, one echo, close) after the loaded one (default: 64).", valueName: "k"),
            transform: OptionValue.count("--churn-concurrency", in: 1...16384))
    var churnConcurrency: Int = 64

    @Flag(help: "No churn phase.")
    var noChurn = false

    @Flag(help: "Also run a latency curve (as loadgen curve --rates auto) after the loaded phase at --curve-at connections.")
    var curve = false

    @Option(parsing: .unconditional, help: ArgumentHelp("The connection count whose step runs the curve (default: the largest count up to 1000, else the smallest).", valueName: "n"),
            transform: OptionValue.count("--curve-at"))
    var curveAt: Int?

    @Option(parsing: .unconditional, help: ArgumentHelp("The curve's latency bound (default: 10ms).", valueName: "duration"),
            transform: OptionValue.positiveDuration("--p99-limit"))
    var p99Limit: Duration = .milliseconds(10)

    @Option(
        parsing: .unconditional, help: ArgumentHelp("Connection counts, comma-separated; 10k = 10000 (default: 100,1000,5000,10000,19000).", valueName: "list"),
        transform: Sweep.counts)
    var connections: [Int] = [100, 1000, 5000, 10000, 19000]

    @Option(
        parsing: .unconditional, help: ArgumentHelp("Connections that send in the loaded phase; the rest of the N stay idle (default: 100).", valueName: "n"),
        transform: OptionValue.count("--active"))
    var active: Int = 100

    @Option(parsing: .unconditional, help: ArgumentHelp("Message size (64, 1K, ...; K = 1024) (default: 64).", valueName: "bytes"),
            transform: OptionValue.size("--size", maximum: ByteCount.maxBufferSize))
    var size: Int = 64

    @Option(
        parsing: .unconditional, help: ArgumentHelp("Messages in flight per active connection, closed loop (default: 1).", valueName: "n"),
        transform: OptionValue.count("--depth", in: 1...LoadRun.maxDepth))
    var depth: Int = 1

    @Option(parsing: .unconditional, help: ArgumentHelp("Measured time of each loaded phase (default: 5s).", valueName: "duration"),
            transform: OptionValue.positiveDuration("--duration"))
    var duration: Duration = .seconds(5)

    @Option(parsing: .unconditional, help: ArgumentHelp("Unmeasured load before each measured phase (default: 1s).", valueName: "duration"),
            transform: OptionValue.duration("--warmup"))
    var warmup: Duration = .seconds(1)

    @Option(
        parsing: .unconditional, help: ArgumentHelp("How long the idle connections are held before the server's memory is read (default: 1s).", valueName: "duration"),
        transform: OptionValue.duration("--hold"))
    var hold: Duration = .seconds(1)

    @Option(
        parsing: .unconditional, help: ArgumentHelp("Client event loops in the loaded phase (default: 1).", valueName: "n"),
        transform: OptionValue.count("--threads", in: 1...256))
    var threads: Int = 1

    @Option(parsing: .unconditional, help: ArgumentHelp("Pin the servers to these CPUs (0, 0-1, 0,2; only CPUs this process may run on) (default: the first half).", valueName: "list"),
            transform: OptionValue.cpus("--server-cpus"))
    var serverCpus: [Int]?

    @Option(parsing: .unconditional, help: ArgumentHelp("Pin the client to these CPUs (default: the rest).", valueName: "list"),
            transform: OptionValue.cpus("--client-cpus"))
    var clientCpus: [Int]?

    @Flag(help: "Pin nothing.")
    var noPin = false

    @Option(parsing: .unconditional, help: ArgumentHelp("Folder for results.csv, results.json, the SVG charts and index.html.", valueName: "dir"))
    var out: String = "results"

    @Flag(help: "No live line on stderr (it is shown only on a terminal anyway).")
    var noProgress = false

    @Option(
        parsing: .unconditional,
        help: ArgumentHelp("Run every step this many times, the servers interleaved (A B, B A, …) at each count; report each figure's median with its min–max (table, summary.csv, results.json's summary, error bars in the charts). (default: 1)", valueName: "n"),
        transform: OptionValue.count("--rounds", in: 1...100))
    var rounds: Int = 1

    static func counts(_ text: String) throws -> [Int] {
        let counts = try text.split(separator: ",").map { try OptionValue.count("--connections", in: 1...10_000_000)(String($0)) }
        guard !counts.isEmpty else { throw ValidationError("--connections needs at least one count, e.g. 100,1000") }
        return Array(Set(counts)).sorted()
    }

    func validate() throws {
        _ = try sweptServers(in: URL(fileURLWithPath: "/"))
        try OutputPaths.checkFolder(out, option: "--out")
        if let curveAt {
            guard curve else { throw ValidationError("--curve-at needs --curve") }
            guard connections.contains(curveAt) else {
                throw ValidationError("--curve-at must be one of --connections (\(connections.map(String.init).joined(separator: ","))), got \(curveAt)")
            }
        }
        if noPin && (serverCpus != nil || clientCpus != nil) {
            throw ValidationError("--no-pin cannot be combined with --server-cpus or --client-cpus")
        }
        // Counts beyond this machine's limits become failed steps (see SweepRunner.limitProblem), so a
        // default sweep still runs where the open-files limit is low; refuse only a sweep with nothing to run.
        let smallest = connections.min() ?? 0
        if let problem = SweepRunner.limitProblem(connections: smallest) { throw ValidationError(problem) }
    }

    /// The servers to sweep, in order: the named variants, then the foreign ones.
    func sweptServers(in directory: URL) throws -> [SweptServer] {
        var result: [SweptServer] = []
        for name in servers.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !name.isEmpty {
            guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
                throw ValidationError("--servers takes names such as threads,libev,tasks,uring; got '\(name)'")
            }
            let known = Self.packageServers(in: SweptServer.productsDirectory)
            guard known.contains(name) else {
                throw ValidationError(
                    "--servers: no echo-\(name) beside loadgen; this build has \(known.isEmpty ? "none" : known.joined(separator: ", ")) (add any other server with --server NAME='COMMAND {port}')")
            }
            result.append(.variant(name, in: directory))
        }
        for text in foreignServers {
            guard let server = SweptServer(foreign: text) else {
                throw ValidationError("--server must be NAME='COMMAND {port}' (with {port} in the command), got '\(text)'")
            }
            result.append(server)
        }
        guard !result.isEmpty else { throw ValidationError("nothing to sweep: give --servers or --server") }
        let parsed = try parsedScenarios()
        if !parsed.isEmpty {
            // Scenario by scenario, each server in turn: a scenario's bars come from steps run close together.
            result = parsed.flatMap { scenario in result.map { $0.under(scenario) } }
        }
        let names = result.map(\.name)
        guard Set(names).count == names.count else {
            throw ValidationError("server names must differ; got \(names.joined(separator: ", "))")
        }
        return result
    }

    /// This package's servers built beside loadgen: `echo-threads` → `threads`.
    static func packageServers(in directory: URL) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { name in
            // Executables only: the build folder also holds echo-labPackageTests.product and the like.
            var isDirectory: ObjCBool = false
            let path = directory.appendingPathComponent(name).path
            return name.hasPrefix("echo-") && !name.contains(".")
                && FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && !isDirectory.boolValue
                && FileManager.default.isExecutableFile(atPath: path)
        }.map { String($0.dropFirst("echo-".count)) }.sorted()
    }

    /// The count whose step runs the curve, or nil without --curve.
    var curveConnections: Int? {
        guard curve else { return nil }
        return curveAt ?? connections.filter { $0 <= 1000 }.max() ?? connections.min()
    }

    func parsedScenarios() throws -> [SweepScenario] {
        var parsed: [SweepScenario] = []
        for text in scenarios {
            guard let scenario = SweepScenario(text) else {
                throw ValidationError("--scenario must be NAME='SERVER-OPTIONS' (NAME of letters, digits, - or _), got '\(text)'")
            }
            parsed.append(scenario)
        }
        guard Set(parsed.map(\.name)).count == parsed.count else {
            throw ValidationError("scenario names must differ; got \(parsed.map(\.name).joined(separator: ", "))")
        }
        return parsed
    }

    func pinning() -> SweepPinning {
        if noPin { return SweepPinning(server: nil, client: nil) }
        var pinning = SweepPinning.split(CPUSet.available())
        if let serverCpus { pinning.server = CPUSet(serverCpus) }
        if let clientCpus { pinning.client = CPUSet(clientCpus) }
        return pinning
    }

    func run() throws {
        Lifecycle.prepare()
        let plan = SweepPlan(
            servers: try sweptServers(in: SweptServer.productsDirectory), connections: connections, active: active,
            messageSize: size, depth: depth, duration: duration, warmup: warmup, hold: hold, threads: threads,
            pinning: pinning(), output: URL(fileURLWithPath: out),
            commandLine: (["loadgen"] + CommandLine.arguments.dropFirst()).map(Self.shellQuoted).joined(separator: " "),
            scenarios: try parsedScenarios(), curveAt: curveConnections,
            p99LimitMicroseconds: Double(p99Limit.nanoseconds) / 1000, churnConcurrency: noChurn ? nil : churnConcurrency,
            rounds: rounds)
        let stop = StopRequest()
        Lifecycle.onStopSignal {
            // Stop between steps and phases; end the server now so nothing waits on it.
            stop.request()
            StartedProcesses.shared.signalAll(SIGTERM)
        }
        let runner = SweepRunner(
            plan: plan, stop: stop, progress: SweepProgress(live: !noProgress && isatty(STDERR_FILENO) == 1, stepLines: true))
        writeAll(STDERR_FILENO, Array("sweep: \(plan.servers.map(\.name).joined(separator: ", ")) at \(connections.map(String.init).joined(separator: ", ")) connections; \(plan.pinning.summary); writing \(plan.output.path)\n".utf8))
        let results: SweepResults
        do {
            results = try runner.run()
        } catch {
            StartedProcesses.shared.signalAll(SIGKILL)
            Lifecycle.fail(tool: "loadgen", message: "cannot write the results into \(out): \(error)")
        }
        print(SweepReport.table(results))
        print("charts: \(plan.output.appendingPathComponent(SweepReport.indexFile).path)")
        let failed = results.steps.filter { $0.status == .failed }
        try ExitStatus.finish(
            succeeded: failed.isEmpty, interrupted: !results.complete,
            why: failed.first.map {
                "\(failed.count) of \(results.steps.count) steps failed; the first, \($0.server) at \($0.connections): \($0.reason ?? "no reason given")"
            })
    }

    /// `it's` → `'it'\''s'`; plain words stay as they are.
    static func shellQuoted(_ word: String) -> String {
        let plain = word.allSatisfy { $0.isLetter || $0.isNumber || "-_./=:,@%+".contains($0) }
        return plain && !word.isEmpty ? word : "'" + word.replacingOccurrences(of: "'", with: #"'\''"#) + "'"
    }
}
