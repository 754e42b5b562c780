import EchoProtocol

/// One side of `loadgen ab`: a server loadgen starts fresh for each run (one of this package's, or any
/// command with `{port}`), or an address something else keeps serving.
struct ABContender: Sendable, Equatable {
    enum Source: Sendable, Equatable {
        case started(SweptServer)
        case address(SocketAddress)
    }

    var name: String
    var source: Source

    /// How it is started or reached, for the report.
    var origin: String {
        switch source {
        case .started(let server): server.commandLine
        case .address(let address): address.description
        }
    }

    /// `NAME=HOST:PORT` or `HOST:PORT` (then named by the address).
    init?(target text: String) {
        var name = text
        var addressText = text
        if let equals = text.firstIndex(of: "="), equals != text.startIndex {
            name = String(text[..<equals])
            addressText = String(text[text.index(after: equals)...])
        }
        guard let address = try? SocketAddress.resolve(hostAndPort: addressText).first, address.port != 0 else { return nil }
        self.init(name: name, source: .address(address))
    }

    init(name: String, source: Source) {
        self.name = name
        self.source = source
    }

    /// Round r's order: as given in even rounds, reversed in odd ones (A B, B A, A B, …), so neither
    /// side always runs first, on a machine that warms up or drifts within a round.
    static func order(of contenders: [ABContender], round: Int) -> [ABContender] {
        round % 2 == 0 ? contenders : contenders.reversed()
    }
}
