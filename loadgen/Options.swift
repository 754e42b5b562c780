import ArgumentParser
import EchoProtocol

/// Where to connect and how: shared by `run` and `idle`.
struct ConnectionOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The echo server, as HOST:PORT: 127.0.0.1:7007, [::1]:7007 or localhost:7007.", valueName: "host:port"))
    var target: String = "127.0.0.1:7007"

    @Option(
        name: [.customShort("c"), .long],
        help: ArgumentHelp("Connections to open (default 50; each needs one open file; see --source-addresses beyond ~28k).", valueName: "n"),
        transform: { try TextValues.positiveCount($0, name: "--connections") })
    var connections: Int = 50

    @Option(
        help: ArgumentHelp("New connections per second, over all threads (default: as fast as the server accepts, at most 256 pending per thread).", valueName: "n"),
        transform: { try TextValues.positiveRate($0, name: "--connect-rate") })
    var connectRate: Double?

    @Option(
        help: ArgumentHelp("How long connecting, and then the first echo, may each take per connection (default 5s).", valueName: "duration"),
        transform: TextValues.duration)
    var connectTimeout: Duration = .seconds(5)

    @Option(
        help: ArgumentHelp(
            "Local addresses to connect from, spread over the connections: 127.0.0.1-127.0.0.32 or a comma list. One address gives ~28k connections to one target; each more adds as many.",
            valueName: "range"),
        transform: TextValues.addresses)
    var sourceAddresses: [SocketAddress]?

    @Option(
        help: ArgumentHelp("Client event loops, one thread each (default 1); connections are dealt to them in turn.", valueName: "n"),
        transform: { try TextValues.positiveCount($0, name: "--threads") })
    var threads: Int = 1

    @Option(
        help: ArgumentHelp("Pin the client to these CPUs (1, 0,1, 0-3): loop i runs on the i-th. E.g. server on 0 (taskset -c 0), --cpus 1.", valueName: "list"),
        transform: TextValues.cpus)
    var cpus: [Int]?

    @Option(
        help: ArgumentHelp("Read the server's figures from its stats endpoint (echo-lab servers print it on their readiness line).", valueName: "host:port"))
    var serverStats: String?

    @Option(
        help: ArgumentHelp("Read the server's figures from /proc/PID (any server). Default: the process listening on --target, if this user can see it.", valueName: "pid"))
    var serverPid: Int32?

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
        if let serverPid, serverPid < 1 { throw ValidationError("--server-pid must be a process id, got \(serverPid)") }
        guard threads <= 256 else { throw ValidationError("--threads must be 1...256, got \(threads)") }
        guard connections <= 10_000_000 else { throw ValidationError("--connections must be at most 10000000") }
    }

    var settings: ConnectionSettings {
        var targets = (try? Self.resolve(target, option: "--target")) ?? []
        if let source = sourceAddresses?.first { targets = targets.filter { $0.family == source.family } }
        var settings = ConnectionSettings(target: Self.firstAnswering(targets), connections: connections)
        settings.connectRate = connectRate
        settings.connectTimeout = connectTimeout
        settings.sourceAddresses = sourceAddresses ?? []
        settings.threads = threads
        settings.cpus = cpus ?? []
        settings.serverStats = serverStats.flatMap { try? Self.resolve($0, option: "--server-stats") }.map(Self.firstAnswering)
        settings.serverPID = serverPid
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

/// How to report: shared by `run` and `idle`.
struct OutputOptions: ParsableArguments {
    @Flag(help: "Print one JSON object on stdout instead of the table (schema: README.md, section loadgen JSON).")
    var json = false

    @Option(help: ArgumentHelp("Append one CSV row per run to this file (a header first when the file is new).", valueName: "file"))
    var csv: String?

    @Flag(help: "No live line on stderr (it is shown only on a terminal anyway).")
    var noProgress = false
}
