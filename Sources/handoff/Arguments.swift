import ArgumentParser
import EchoProtocol

/// What every handoff mode takes: the number of round trips (or its 2N baseline) and `--json`.
struct RoundTripArguments: ParsableArguments {
    static let maximum = 100_000_000

    @Argument(
        help: ArgumentHelp("Round trips (each is 2 handoffs), 1...100000000; 1M = 1000000.", valueName: "N"),
        transform: OptionValue.count("N", in: 1...RoundTripArguments.maximum))
    var roundTrips: Int

    @Flag(help: "Print one JSON object instead of the article's lines.")
    var json = false

    func validate() throws {
        guard (1...Self.maximum).contains(roundTrips) else {
            throw ValidationError("N must be 1...\(Self.maximum), got \(roundTrips)")
        }
    }
}
