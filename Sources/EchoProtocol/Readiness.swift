/// The one line a server prints on stdout once it listens:
/// `listening HOST:PORT stats=HOST:PORT pid=PID variant=NAME`. Tests and the load generator wait for it.
public struct ReadinessLine: Sendable, Equatable, CustomStringConvertible {
    public var listening: SocketAddress
    public var stats: SocketAddress
    public var pid: Int32
    public var variant: String

    public init(listening: SocketAddress, stats: SocketAddress, pid: Int32, variant: String) {
        self.listening = listening
        self.stats = stats
        self.pid = pid
        self.variant = variant
    }

    public var description: String {
        "listening \(listening) stats=\(stats) pid=\(pid) variant=\(variant)"
    }

    /// Parses a line printed by `description`; nil for any other line.
    public init?(parsing line: some StringProtocol) {
        let words = String(line).split(separator: " ")
        guard words.count >= 5, words[0] == "listening",
            let listening = SocketAddress(hostAndPort: String(words[1]))
        else { return nil }
        var fields: [Substring: Substring] = [:]
        for word in words.dropFirst(2) {
            guard let equals = word.firstIndex(of: "=") else { continue }
            fields[word[..<equals]] = word[word.index(after: equals)...]
        }
        guard let stats = fields["stats"].flatMap({ SocketAddress(hostAndPort: String($0)) }),
            let pid = fields["pid"].flatMap({ Int32($0) }), let variant = fields["variant"]
        else { return nil }
        self.init(listening: listening, stats: stats, pid: pid, variant: String(variant))
    }
}
