import ArgumentParser

/// The options every echo server shares. Variant options (`--stack-size`, `--loops`, `--executor`)
/// stay in their own executable; so does `OffloadOption`, which only an event-loop server can use.
public struct ServerOptions: ParsableArguments, Sendable {
    @Option(
        parsing: .unconditional, help: "Address to listen on: 127.0.0.1, ::1, :: (every address), 0.0.0.0, or a name such as localhost.")
    public var host: String = "127.0.0.1"

    @Option(
        parsing: .unconditional, help: ArgumentHelp("TCP port to listen on; 0 lets the kernel pick one, announced on the readiness line (default: 7007).", valueName: "port"),
        transform: OptionValue.count("--port", in: 0...65535))
    public var port: Int = 7007

    @Option(
        parsing: .unconditional, help: ArgumentHelp("Listen backlog: connections the kernel queues before the server accepts them (default: 4096).", valueName: "n"),
        transform: OptionValue.count("--backlog", in: 1...1_000_000))
    public var backlog: Int = 4096

    @Option(
        parsing: .unconditional, help: ArgumentHelp(
            "Most unsent bytes one connection may hold (e.g. 16K, 1M; K, M are powers of 1024); while it holds any, it is not read (default: 16K).",
            valueName: "bytes"),
        transform: OptionValue.size("--buffer-size", maximum: ByteCount.maxBufferSize))
    public var bufferSize: Int = 16 * 1024

    @Option(
        parsing: .unconditional, help: ArgumentHelp("Most connections open at once (10k = 10000); beyond it a new connection is closed at once and counted as refused (default: 1000000).", valueName: "n"),
        transform: OptionValue.count("--max-connections"))
    public var maxConnections: Int = 1_000_000

    @Option(
        parsing: .unconditional, help: ArgumentHelp("Port of the stats endpoint (one JSON snapshot per connection); 0 lets the kernel pick (default: 0).", valueName: "port"),
        transform: OptionValue.count("--stats-port", in: 0...65535))
    public var statsPort: Int = 0

    @Option(
        parsing: .unconditional, help: ArgumentHelp(
            "Address of the stats endpoint, which tells the server's pid, memory and counters (default: loopback, 127.0.0.1, or ::1 when --host has only IPv6 addresses, whatever --host is).",
            valueName: "host"))
    public var statsHost: String?

    /// Where the stats endpoint listens: `--stats-host`, else loopback in --host's family. The
    /// snapshot tells anyone who connects the pid, memory and counters, so `--host 0.0.0.0` (serving
    /// remote clients) must not carry it onto the network too.
    public var statsListenHost: String {
        if let statsHost { return statsHost }
        let first = try? SocketAddress.resolve(host, port: 0).first
        return first?.isIPv4 == false ? "::1" : "127.0.0.1"
    }

    @Option(
        parsing: .unconditional, help: ArgumentHelp("CPU-bound work per message, after its read and before its echo: spinning, not a sleep (e.g. 20us; above 0, at most 1s).", valueName: "duration"),
        transform: OptionValue.positiveDuration("--work"))
    public var work: Duration?

    @Option(
        parsing: .unconditional, help: ArgumentHelp("A blocking call (nanosleep) of this length every --block-every messages, on the thread that handles the message (e.g. 5ms; above 0, at most 10s).", valueName: "duration"),
        transform: OptionValue.positiveDuration("--block"))
    public var block: Duration?

    @Option(
        parsing: .unconditional, help: ArgumentHelp("How often --block happens: every Nth message (default: 1).", valueName: "n"),
        transform: OptionValue.count("--block-every"))
    public var blockEvery: Int?

    /// `--work`, `--block`, `--block-every` together.
    public var messageCost: MessageCost { MessageCost(work: work, block: block, blockEvery: blockEvery ?? 1) }

    public init() {}

    /// Every server's usage line, one form for all (ArgumentParser would spell out some servers'
    /// options and shorten others' to `<options>`, by their count): the options are listed below it.
    public static func usage(_ server: String) -> String {
        "\(server) [--host <host>] [--port <port>] [<options>]"
    }

    public func validate() throws {
        do {
            _ = try SocketAddress.resolve(host, port: 0)
        } catch {
            throw ValidationError("--host: \(error)")
        }
        if let statsHost {
            do {
                _ = try SocketAddress.resolve(statsHost, port: 0)
            } catch {
                throw ValidationError("--stats-host: \(error)")
            }
        }
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0...65535, got \(port)") }
        guard (0...65535).contains(statsPort) else {
            throw ValidationError("--stats-port must be 0...65535, got \(statsPort)")
        }
        guard port == 0 || statsPort != port else {
            throw ValidationError("--stats-port must differ from --port (both are \(port))")
        }
        guard (1...1_000_000).contains(backlog) else {
            throw ValidationError("--backlog must be 1...1000000, got \(backlog)")
        }
        guard (1...ByteCount.maxBufferSize).contains(bufferSize) else {
            throw ValidationError("--buffer-size must be 1 B...64 MiB, got \(bufferSize)")
        }
        if let work, !(work > .zero && work <= .seconds(1)) {
            throw ValidationError("--work must be above 0 and at most 1s, got \(DurationText.describe(work))")
        }
        if let block, !(block > .zero && block <= .seconds(10)) {
            throw ValidationError("--block must be above 0 and at most 10s, got \(DurationText.describe(block))")
        }
        if let blockEvery {
            guard block != nil else { throw ValidationError("--block-every needs --block") }
            guard blockEvery >= 1 else { throw ValidationError("--block-every must be at least 1, got \(blockEvery)") }
        }
        guard maxConnections >= 1 else {
            throw ValidationError("--max-connections must be at least 1, got \(maxConnections)")
        }
    }
}

/// `--offload N`: the servers whose loops serve many connections per thread (echo-libev, echo-tasks,
/// echo-uring)
/// can move `--block`'s call to a pool; a thread per connection has nothing to move it from, so
/// echo-threads does not offer it.
public struct OffloadOption: ParsableArguments, Sendable {
    @Option(
        parsing: .unconditional, help: ArgumentHelp("Run --block on a pool of N threads instead (1...1024); the connection is not read meanwhile.", valueName: "n"),
        transform: OptionValue.count("--offload", in: 1...1024))
    public var offload: Int?

    public init() {}

    /// `--offload` runs the blocking call elsewhere: it needs `--block`.
    public func validate(with server: ServerOptions) throws {
        if offload != nil, server.block == nil {
            throw ValidationError("--offload needs --block (it runs the blocking call elsewhere)")
        }
    }
}
