/// The kinds of failure one command counts, in a fixed order: each with its JSON key (the raw
/// value), its words in the table and its `kind` label in /metrics.
protocol ErrorKind: RawRepresentable<String>, CaseIterable, Hashable, Sendable where AllCases == [Self] {
    var words: String { get }
    var metricName: String { get }
}

/// Failures counted by kind, and the first one in words. Any of them makes the exit status non-zero.
///
/// Encoded flat: a count under each kind's key, `firstError`, and `total`, which is written for
/// readers of the JSON and ignored when decoding (it is always the sum).
struct ErrorTally<Kind: ErrorKind>: Codable, Sendable, Equatable {
    private var counts = [Int](repeating: 0, count: Kind.allCases.count)
    /// The first failure seen, in words, e.g. `connection 3: stream byte 1000 was 0x00, expected 0x2a`.
    private(set) var firstError: String?

    init() {}

    subscript(kind: Kind) -> Int { counts[Self.index(kind)] }

    var total: Int { counts.reduce(0, +) }

    mutating func count(_ kind: Kind, _ message: @autoclosure () -> String) {
        counts[Self.index(kind)] += 1
        if firstError == nil { firstError = message() }
    }

    mutating func add(_ other: ErrorTally) {
        for index in counts.indices { counts[index] += other.counts[index] }
        if firstError == nil { firstError = other.firstError }
    }

    /// `none`, or `2 (mismatch 1, short stream 1)`: the kinds that happened.
    var summary: String {
        let kinds = Kind.allCases.filter { self[$0] > 0 }
        guard !kinds.isEmpty else { return "none" }
        return "\(total) (" + kinds.map { "\($0.words) \(self[$0])" }.joined(separator: ", ") + ")"
    }

    /// `2 (refused 0, reset 2, ...)`: every kind, zero or not.
    var everyKind: String {
        "\(total) (" + Kind.allCases.map { "\($0.words) \(self[$0])" }.joined(separator: ", ") + ")"
    }

    /// `3 errors; the first: ...`, or nil when there were none.
    var failureLine: String? {
        firstError.map { "\(total) error\(total == 1 ? "" : "s"); the first: \($0)" }
    }

    /// The counts under their metric names (the `kind` label; every kind, zero or not).
    var byMetricName: [String: Int] {
        Dictionary(uniqueKeysWithValues: Kind.allCases.map { ($0.metricName, self[$0]) })
    }

    private static func index(_ kind: Kind) -> Int { Kind.allCases.firstIndex(of: kind)! }

    private struct Key: CodingKey {
        let stringValue: String
        init(_ name: String) { stringValue = name }
        init?(stringValue: String) { self.stringValue = stringValue }
        var intValue: Int? { nil }
        init?(intValue: Int) { nil }
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        counts = try Kind.allCases.map { try container.decode(Int.self, forKey: Key($0.rawValue)) }
        firstError = try container.decodeIfPresent(String.self, forKey: Key("firstError"))
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(total, forKey: Key("total"))
        for kind in Kind.allCases { try container.encode(self[kind], forKey: Key(kind.rawValue)) }
        try container.encode(firstError, forKey: Key("firstError"))
    }
}

/// The ways a connection of `run` or `idle` can go wrong.
enum ConnectionFailure: String, ErrorKind {
    /// An echoed byte differed from the byte sent at that position of the stream.
    case mismatch
    /// The stream came back short: the connection ended (closed, reset, failed read or write) with bytes
    /// still owed, or they never came back before the drain time ran out.
    case shortStream
    /// The connection ended the same ways while it owed nothing.
    case unexpectedClose
    /// More bytes came back than were sent.
    case extraBytes
    /// A connection could not be established (refused, timed out, out of ports or descriptors), or its
    /// first message did not come back within the connect timeout.
    case connectFailed

    var words: String {
        switch self {
        case .mismatch: "mismatch"
        case .shortStream: "short stream"
        case .unexpectedClose: "unexpected close"
        case .extraBytes: "extra bytes"
        case .connectFailed: "connect failed"
        }
    }

    var metricName: String {
        switch self {
        case .mismatch: "mismatch"
        case .shortStream: "short_stream"
        case .unexpectedClose: "unexpected_close"
        case .extraBytes: "extra_bytes"
        case .connectFailed: "connect_failed"
        }
    }
}

/// `run`'s and `idle`'s tally.
typealias ErrorCounts = ErrorTally<ConnectionFailure>
