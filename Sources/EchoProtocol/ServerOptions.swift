import ArgumentParser

/// The options every echo server shares. Variant options (`--stack-size`, `--loops`, `--executor`)
/// stay in their own executable.
public struct ServerOptions: ParsableArguments, Sendable {
    @Option(help: "Address to listen on: 127.0.0.1, ::1, :: (every address), 0.0.0.0, or a name such as localhost.")
    public var host: String = "127.0.0.1"

    @Option(help: "TCP port to listen on; 0 lets the kernel pick one (announced on the readiness line).")
    public var port: Int = 7007

    @Option(help: "Listen backlog: connections the kernel queues before the server accepts them.")
    public var backlog: Int = 4096

    @Option(
        help: ArgumentHelp(
            "Most unsent bytes one connection may hold (e.g. 16K, 1M; default 16K); while it holds any, it is not read.",
            valueName: "bytes"),
        transform: ByteCount.parse)
    public var bufferSize: Int = 16 * 1024

    @Option(help: "Most connections open at once; beyond it a new connection is closed at once and counted as refused.")
    public var maxConnections: Int = 1_000_000

    @Option(help: "Port of the stats endpoint (one JSON snapshot per connection); 0 lets the kernel pick.")
    public var statsPort: Int = 0

    @Option(
        help: ArgumentHelp("CPU-bound work per message, after its read and before its echo: spinning, not a sleep (e.g. 20us).", valueName: "duration"),
        transform: DurationText.parseWithUnit)
    public var work: Duration?

    @Option(
        help: ArgumentHelp("A blocking call (nanosleep) of this length every --block-every messages, on the thread that handles the message (e.g. 5ms).", valueName: "duration"),
        transform: DurationText.parseWithUnit)
    public var block: Duration?

    @Option(help: ArgumentHelp("How often --block happens: every Nth message (default 1).", valueName: "n"))
    public var blockEvery: Int?

    @Option(help: ArgumentHelp("Run --block on a pool of N threads instead (echo-libev, echo-tasks); the connection is not read meanwhile.", valueName: "n"))
    public var offload: Int?

    /// `--work`, `--block`, `--block-every` together.
    public var messageCost: MessageCost { MessageCost(work: work, block: block, blockEvery: blockEvery ?? 1) }

    public init() {}

    public func validate() throws {
        do {
            _ = try SocketAddress.resolve(host, port: 0)
        } catch {
            throw ValidationError("--host: \(error)")
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
        if let offload {
            guard block != nil else { throw ValidationError("--offload needs --block (it runs the blocking call elsewhere)") }
            guard (1...1024).contains(offload) else { throw ValidationError("--offload must be 1...1024, got \(offload)") }
        }
        guard maxConnections >= 1 else {
            throw ValidationError("--max-connections must be at least 1, got \(maxConnections)")
        }
    }
}
