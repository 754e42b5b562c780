/// `--scenario NAME=SERVER-OPTIONS`: the same servers started with extra options, e.g.
/// `block='--block 5ms --block-every 1000'`, so one sweep shows every server under every scenario.
struct SweepScenario: Codable, Sendable, Equatable {
    var name: String
    /// Added at the end of each server's command line (split at spaces; no quoting), a foreign
    /// server's too: go-echo takes them; the C peers refuse them, so their step fails.
    var options: [String]

    /// Parses `NAME=OPTIONS` (OPTIONS may be empty: `base=`); nil for anything else.
    init?(_ text: String) {
        guard let equals = text.firstIndex(of: "="), equals != text.startIndex else { return nil }
        let name = String(text[..<equals])
        guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else { return nil }
        self.name = name
        options = text[text.index(after: equals)...].split(separator: " ").map(String.init)
    }
}
