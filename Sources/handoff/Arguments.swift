import ArgumentParser

/// What every handoff mode takes: the number of round trips (or its 2N baseline) and `--json`.
struct RoundTripArguments: ParsableArguments {
    static let maximum = 100_000_000

    @Argument(help: ArgumentHelp("Round trips (each is 2 handoffs), 1...100000000.", valueName: "N"))
    var roundTrips: Int

    @Flag(help: "Print one JSON object instead of the article's lines.")
    var json = false

    func validate() throws {
        guard (1...Self.maximum).contains(roundTrips) else {
            throw ValidationError("N must be 1...\(Self.maximum), got \(roundTrips)")
        }
    }
}

/// A duration written `100ms`, `1s`, `250us`, `500ns` or `0`.
enum DurationText {
    static func parse(_ text: String) throws -> Duration {
        let units: [(String, (Int) -> Duration)] = [
            ("ns", { .nanoseconds($0) }), ("us", { .microseconds($0) }), ("µs", { .microseconds($0) }),
            ("ms", { .milliseconds($0) }), ("s", { .seconds($0) }),
        ]
        if text == "0" { return .zero }
        for (suffix, make) in units where text.hasSuffix(suffix) {
            let digits = text.dropLast(suffix.count)
            if !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let number = Int(digits) {
                return make(number)
            }
        }
        throw ValidationError("'\(text)' is not a duration; write a whole number with ns, us, ms or s (e.g. 100ms)")
    }

    static func describe(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        let nanoseconds = seconds * 1_000_000_000 + attoseconds / 1_000_000_000
        if nanoseconds % 1_000_000_000 == 0 { return "\(nanoseconds / 1_000_000_000)s" }
        if nanoseconds % 1_000_000 == 0 { return "\(nanoseconds / 1_000_000)ms" }
        if nanoseconds % 1_000 == 0 { return "\(nanoseconds / 1_000)us" }
        return "\(nanoseconds)ns"
    }
}
