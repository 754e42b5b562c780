/// The ways a connection can go wrong, counted by kind. Any of them makes the exit status non-zero.
struct ErrorCounts: Codable, Sendable, Equatable {
    /// An echoed byte differed from the byte sent at that position of the stream.
    var mismatch = 0
    /// The stream came back short: the connection ended (closed, reset, failed read or write) with bytes
    /// still owed, or they never came back before the drain time ran out.
    var shortStream = 0
    /// The connection ended the same ways while it owed nothing.
    var unexpectedClose = 0
    /// More bytes came back than were sent.
    var extraBytes = 0
    /// A connection could not be established (refused, timed out, out of ports or descriptors), or its
    /// first message did not come back within the connect timeout.
    var connectFailed = 0
    /// The first error seen, in words, e.g. `connection 3: stream byte 1000 was 0x00, expected 0x2a`.
    var firstError: String?

    enum Kind { case mismatch, shortStream, unexpectedClose, extraBytes, connectFailed }

    var total: Int { mismatch + shortStream + unexpectedClose + extraBytes + connectFailed }

    mutating func count(_ kind: Kind, _ message: @autoclosure () -> String) {
        switch kind {
        case .mismatch: mismatch += 1
        case .shortStream: shortStream += 1
        case .unexpectedClose: unexpectedClose += 1
        case .extraBytes: extraBytes += 1
        case .connectFailed: connectFailed += 1
        }
        if firstError == nil { firstError = message() }
    }

    mutating func add(_ other: ErrorCounts) {
        mismatch += other.mismatch
        shortStream += other.shortStream
        unexpectedClose += other.unexpectedClose
        extraBytes += other.extraBytes
        connectFailed += other.connectFailed
        if firstError == nil { firstError = other.firstError }
    }

    /// `none`, or `2 (mismatch 1, short stream 1)`, for the table.
    var summary: String {
        let kinds = [
            ("mismatch", mismatch), ("short stream", shortStream), ("unexpected close", unexpectedClose),
            ("extra bytes", extraBytes), ("connect failed", connectFailed),
        ].filter { $0.1 > 0 }
        guard !kinds.isEmpty else { return "none" }
        return "\(total) (" + kinds.map { "\($0.0) \($0.1)" }.joined(separator: ", ") + ")"
    }

    // `total` is written for readers of the JSON and ignored when decoding: it is always the sum.
    private enum CodingKeys: String, CodingKey {
        case total, mismatch, shortStream, unexpectedClose, extraBytes, connectFailed, firstError
    }

    init() {}

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        mismatch = try container.decode(Int.self, forKey: .mismatch)
        shortStream = try container.decode(Int.self, forKey: .shortStream)
        unexpectedClose = try container.decode(Int.self, forKey: .unexpectedClose)
        extraBytes = try container.decode(Int.self, forKey: .extraBytes)
        connectFailed = try container.decode(Int.self, forKey: .connectFailed)
        firstError = try container.decodeIfPresent(String.self, forKey: .firstError)
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(total, forKey: .total)
        try container.encode(mismatch, forKey: .mismatch)
        try container.encode(shortStream, forKey: .shortStream)
        try container.encode(unexpectedClose, forKey: .unexpectedClose)
        try container.encode(extraBytes, forKey: .extraBytes)
        try container.encode(connectFailed, forKey: .connectFailed)
        try container.encode(firstError, forKey: .firstError)
    }
}
