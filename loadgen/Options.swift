import ArgumentParser
import EchoProtocol

/// Where to connect and how to read the server: every command that talks to one target.
struct TargetOptions: ParsableArguments {
    @Option(
        parsing: .unconditional, help: ArgumentHelp("The echo server, as HOST:PORT: 127.0.0.1:7007, [::1]:7007 or localhost:7007.", valueName: "host:port"))
    var target: String = "127.0.0.1:7007"

    @Option(
        parsing: .unconditional, help: ArgumentHelp("How long connecting, and then the first echo, may each take per connection (default: 5s).", valueName: "duration"),
        transform: OptionValue.positiveDuration("--connect-timeout"))
    var connectTimeout: Duration = .seconds(5)

    @Option(
        parsing: .unconditional, help: ArgumentHelp(
            "Local addresses to connect from, spread over the connections: 127.0.0.1-127.0.0.32 or a comma list. One address gives ~28k connections to one target; each more adds as many.",
            valueName: "range"),
        transform: TextValues.addresses)
    var sourceAddresses: [SocketAddress]?

    @Option(
        parsing: .unconditional, help: ArgumentHelp("Pin the client to these CPUs (1, 0,1, 0-3; only CPUs this process may run on): loop i runs on the i-th. E.g. server on 0 (taskset -c 0), --cpus 1.", valueName: "list"),
        transform: OptionValue.cpus("--cpus"))
    var cpus: [Int]?

    @Option(
        parsing: .unconditional, help: ArgumentHelp("Read the server's figures from its stats endpoint (echo-lab servers print it on their readiness line).", valueName: "host:port"))
    var serverStats: String?

    @Option(
        parsing: .unconditional, help: ArgumentHelp("Read the server's figures from /proc/PID (any server). Default: the process listening on --target, if this user can see it.", valueName: "pid"),
        transform: OptionValue.count("--server-pid", in: 1...Int(Int32.max)))
    var serverPid: Int?

    func validate() throws {
        let targets = try Self.resolve(target, option: "--target")
        guard targets[0].port != 0 else { throw ValidationError("--target needs a port 1...65535, got '\(target)'") }
        if let serverStats { _ = try Self.resolve(serverStats, option: "--server-stats") }
        if let source = sourceAddresses?.first, !targets.contains(where: { $0.family == source.family }) {
            throw ValidationError("--source-addresses are IPv\(source.isIPv4 ? 4 : 6) but --target '\(target)' is not")
        }
        if serverStats != nil && serverPid != nil {
            throw ValidationError("give --server-stats or --server-pid, not both")
        }
    }

    /// The settings for `connections` connections (churn: its lives in flight).
    func settings(connections: Int) -> ConnectionSettings {
        var targets = (try? Self.resolve(target, option: "--target")) ?? []
        if let source = sourceAddresses?.first { targets = targets.filter { $0.family == source.family } }
        var settings = ConnectionSettings(target: Self.firstAnswering(targets), connections: connections)
        settings.connectTimeout = connectTimeout
        settings.sourceAddresses = sourceAddresses ?? []
        settings.cpus = cpus ?? []
        settings.serverStats = serverStats.flatMap { try? Self.resolve($0, option: "--server-stats") }.map(Self.firstAnswering)
        settings.serverPID = serverPid.map { Int32($0) }
        return settings
    }

    /// `HOST:PORT` resolved, or a one-line usage error naming the option.
    static func resolve(_ text: String, option: String) throws -> [SocketAddress] {
        do {
            return try SocketAddress.resolve(hostAndPort: text)
        } catch {
            throw ValidationError("\(option): \(error)")
        }
    }

    /// Of the addresses a name resolved to (`localhost`: 127.0.0.1 and ::1), the first that accepts a
    /// connection within a second; the first of all if none does (the connect phase then says why).
    static func firstAnswering(_ addresses: [SocketAddress]) -> SocketAddress {
        guard addresses.count > 1 else { return addresses.first ?? SocketAddress("127.0.0.1", port: 7007)! }
        for address in addresses {
            var settings = ConnectionSettings(target: address, connections: 1)
            settings.connectTimeout = .seconds(1)
            if (try? Preflight.checkReachable(settings)) != nil { return address }
        }
        return addresses[0]
    }
}

/// A population of connections to one target: `run`, `idle` and `curve` (churn has lives instead).
struct ConnectionOptions: ParsableArguments {
    @OptionGroup var endpoint: TargetOptions

    @Option(
        name: [.customShort("c"), .long],
        parsing: .unconditional, help: ArgumentHelp("Connections to open (10k = 10000; each needs one open file; see --source-addresses beyond ~28k) (default: 50).", valueName: "n"),
        transform: OptionValue.count("--connections", in: 1...10_000_000))
    var connections: Int = 50

    @Option(
        parsing: .unconditional, help: ArgumentHelp("New connections per second, over all threads (default: as fast as the server accepts, at most 256 pending per thread).", valueName: "n"),
        transform: OptionValue.rate("--connect-rate"))
    var connectRate: Double?

    @Option(
        parsing: .unconditional, help: ArgumentHelp("Client event loops, one thread each; connections are dealt to them in turn (default: 1).", valueName: "n"),
        transform: OptionValue.count("--threads", in: 1...256))
    var threads: Int = 1

    var target: String { endpoint.target }

    var settings: ConnectionSettings {
        var settings = endpoint.settings(connections: connections)
        settings.connectRate = connectRate
        settings.threads = threads
        return settings
    }
}

/// How to report: shared by `run`, `idle` and `merge`.
struct OutputOptions: ParsableArguments {
    @Flag(help: "Print one JSON object on stdout instead of the table (schema: docs/loadgen.md).")
    var json = false

    @Option(
        parsing: .unconditional, help: ArgumentHelp("Append one CSV row per run to this file (a header first when the file is new).", valueName: "file"))
    var csv: String?
}

/// The live line: every command that runs for a while.
struct ProgressOption: ParsableArguments {
    @Flag(help: "No live line on stderr (it is shown only on a terminal anyway).")
    var noProgress = false
}
