#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import EchoProtocol
import Foundation

extension Loadgen {
    /// `loadgen ab`: is B different from A, or is it noise? Alternating rounds, per-round ratios.
    struct AB: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ab",
            abstract: "Compare two or more servers in alternating rounds: the median of per-round ratios, with their range and a verdict.",
            discussion: """
                Each round runs every contender once with the same load (as `loadgen run`), in the order given \
                in odd rounds and reversed in even ones (A B, B A, A B, …). A server given with --servers or \
                --server is started fresh for every run (--port 0 or a free {port}), pinned, and stopped after \
                it. Per figure (rate, server CPU per message, p99, server context switches per message, client \
                CPU per message) each contender is compared with the first: the median of its per-round ratios, \
                their range, and a verdict: `within noise` when the range holds 1.0. On a shared or virtual \
                machine one run of each proves little; use at least 4 rounds.
                Contenders, in this order (the first is the baseline A): --servers, then each --server, then \
                each --target. Examples:
                  loadgen ab --servers threads,libev --rounds 4
                  loadgen ab --servers threads --server c-threads='.build-peers/c-threads-echo {port}' \\
                    -c 100 --idle 14900 --rounds 4
                  loadgen ab --target a=127.0.0.1:7007 --target b=127.0.0.1:7008 --no-pin
                Exit status: 0 when every run succeeded; 1 otherwise, with one line saying why; 130 when interrupted.
                """)

        @Option(help: ArgumentHelp("This package's servers (echo-NAME beside loadgen), comma-separated: threads,libev,tasks.", valueName: "names"))
        var servers: String = ""

        @Option(
            name: .customLong("server"),
            help: ArgumentHelp("Any other server, started for each run: NAME='COMMAND {port}'; {port} becomes a free port. Repeatable.", valueName: "name=command"))
        var foreignServers: [String] = []

        @Option(
            name: .customLong("target"),
            help: ArgumentHelp("A server already running: [NAME=]HOST:PORT. Repeatable. Not restarted between runs.", valueName: "name=host:port"))
        var targets: [String] = []

        @Option(parsing: .unconditional, help: ArgumentHelp("Rounds; each runs every contender once. (default: 4)", valueName: "n"),
                transform: OptionValue.count("--rounds"))
        var rounds: Int = 4

        @Option(name: [.customShort("c"), .long], parsing: .unconditional, help: ArgumentHelp("Connections that send. (default: 50)", valueName: "n"),
                transform: OptionValue.count("--connections"))
        var connections: Int = 50

        @Option(parsing: .unconditional, help: ArgumentHelp("Idle connections opened first and held beside the sending ones (e.g. -c 100 --idle 14900 for 15,000 open). (default: 0)", valueName: "n"),
                transform: OptionValue.count("--idle"))
        var idle: Int?

        @Option(parsing: .unconditional, help: ArgumentHelp("Bytes per message. (default: 64)", valueName: "bytes"), transform: OptionValue.size("--size", maximum: ByteCount.maxBufferSize))
        var size: Int = 64

        @Option(parsing: .unconditional, help: ArgumentHelp("Messages in flight per connection, closed loop (default: 1); with --rate, the most one may hold.", valueName: "n"),
                transform: OptionValue.count("--depth"))
        var depth: Int?

        @Option(parsing: .unconditional, help: ArgumentHelp("Total messages per second: an open loop instead of a closed one.", valueName: "msgs/s"),
                transform: OptionValue.rate("--rate"))
        var rate: Double?

        @Option(parsing: .unconditional, help: ArgumentHelp("Measured time of each run. (default: 5s)", valueName: "duration"), transform: OptionValue.positiveDuration("--duration"))
        var duration: Duration = .seconds(5)

        @Option(parsing: .unconditional, help: ArgumentHelp("Unmeasured load before each run's measured phase. (default: 1s)", valueName: "duration"),
                transform: OptionValue.duration("--warmup"))
        var warmup: Duration = .seconds(1)

        @Option(parsing: .unconditional, help: ArgumentHelp("Client event loops. (default: 1)", valueName: "n"),
                transform: OptionValue.count("--threads"))
        var threads: Int = 1

        @OptionGroup(title: "Open loop") var spinning: SpinOption

        @Option(help: ArgumentHelp("Pin the started servers to these CPUs. (default: the first half)", valueName: "list"))
        var serverCpus: String?

        @Option(help: ArgumentHelp("Pin the client to these CPUs. (default: the rest)", valueName: "list"))
        var clientCpus: String?

        @Flag(help: "Pin nothing.")
        var noPin = false

        @Flag(help: "Print one JSON object on stdout instead of the table.")
        var json = false

        @Flag(help: "No progress lines on stderr.")
        var noProgress = false

        func validate() throws {
            let all = try contenders(in: URL(fileURLWithPath: "/"))
            guard all.count >= 2 else { throw ValidationError("ab compares two or more: give --servers, --server or --target (\(all.count) given)") }
            guard Set(all.map(\.name)).count == all.count else {
                throw ValidationError("contender names must differ; got \(all.map(\.name).joined(separator: ", "))")
            }
            if let serverCpus { _ = try OptionValue.cpus("--server-cpus")(serverCpus) }
            if let clientCpus { _ = try OptionValue.cpus("--client-cpus")(clientCpus) }
            if noPin && (serverCpus != nil || clientCpus != nil) {
                throw ValidationError("--no-pin cannot be combined with --server-cpus or --client-cpus")
            }
            guard (1...ByteCount.maxBufferSize).contains(size) else { throw ValidationError("--size must be 1 B...64 MiB") }
            if let depth, depth > LoadRun.maxDepth { throw ValidationError("--depth must be 1...\(LoadRun.maxDepth), got \(depth)") }
            guard duration > .zero else { throw ValidationError("--duration must be above 0") }
            guard threads <= 256 else { throw ValidationError("--threads must be 1...256, got \(threads)") }
        }

        /// --servers, then --server, then --target: the first is the baseline.
        func contenders(in directory: URL) throws -> [ABContender] {
            var result: [ABContender] = []
            for name in servers.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !name.isEmpty {
                guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
                    throw ValidationError("--servers takes names such as threads,libev,tasks; got '\(name)'")
                }
                result.append(ABContender(name: name, source: .started(.variant(name, in: directory))))
            }
            for text in foreignServers {
                guard let server = SweptServer(foreign: text) else {
                    throw ValidationError("--server must be NAME='COMMAND {port}' (with {port} in the command), got '\(text)'")
                }
                result.append(ABContender(name: server.name, source: .started(server)))
            }
            for text in targets {
                guard let target = ABContender(target: text) else {
                    throw ValidationError("--target must be [NAME=]HOST:PORT, got '\(text)'")
                }
                result.append(target)
            }
            return result
        }

        func pinning() -> SweepPinning {
            if noPin { return SweepPinning(server: nil, client: nil) }
            var pinning = SweepPinning.split(CPUSet.available())
            if let serverCpus { pinning.server = CPUSet(parsing: serverCpus) }
            if let clientCpus { pinning.client = CPUSet(parsing: clientCpus) }
            return pinning
        }

        func run() throws {
            Lifecycle.prepare()
            let stop = StopRequest()
            Lifecycle.onStopSignal {
                stop.request()
                StartedProcesses.shared.signalAll(SIGTERM)
            }
            let pinning = pinning()
            if let client = pinning.client { pinCurrentThread(to: client.cpus) }
            var settings = ConnectionSettings(target: SocketAddress("127.0.0.1", port: 7)!, connections: connections)
            settings.threads = threads
            settings.cpus = pinning.client?.cpus ?? []
            var runner = ABRunner(
                contenders: try contenders(in: SweptServer.productsDirectory), rounds: rounds,
                load: LoadRun(connection: settings, messageSize: size, depth: depth, rate: rate, duration: duration,
                              warmup: warmup, spin: spinning.spin))
            runner.idleConnections = idle ?? 0
            runner.serverCPUs = pinning.server
            runner.pinningSummary = pinning.summary
            if !noProgress {
                runner.progress = { line in writeAll(STDERR_FILENO, Array("ab: \(line)\n".utf8)) }
            }
            let result = runner.run(stop: stop)
            Lifecycle.printLine(json ? Report.jsonText(result) : result.table)
            try ExitStatus.finish(
                succeeded: result.complete, interrupted: stop.isRequested,
                why: result.failures.first.map { "\(result.failures.count) run\(result.failures.count == 1 ? "" : "s") failed; the first: \($0)" })
        }
    }
}
