import EchoProtocol

/// One figure of two contenders compared over rounds: the median of the per-round ratios (other ÷
/// baseline, each round's pair measured back to back), their range, and a plain verdict.
///
/// The ratio of medians would mix rounds measured minutes apart on a machine that drifts; a per-round
/// ratio compares two runs made under the same conditions, and its spread over rounds is the noise.
struct RatioSummary: Codable, Sendable, Equatable {
    /// `rate`, `server CPU/msg`, …
    var figure: String
    var baseline: String
    var other: String
    /// Each round's other ÷ baseline, in round order (rounds where either run failed are left out).
    var ratios: [Double]
    var median: Double
    var minimum: Double
    var maximum: Double
    /// `within noise`, `higher in every round` or `lower in every round` (`one round: no verdict`).
    var verdict: String

    init?(figure: String, baseline: String, other: String, ratios: [Double]) {
        let usable = ratios.filter { $0.isFinite && $0 > 0 }
        guard !usable.isEmpty else { return nil }
        self.figure = figure
        self.baseline = baseline
        self.other = other
        self.ratios = usable
        median = Self.median(usable)
        minimum = usable.min()!
        maximum = usable.max()!
        verdict = Self.verdict(minimum: minimum, maximum: maximum, rounds: usable.count)
    }

    /// The middle value; the mean of the two middle ones for an even count.
    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }

    /// A range that holds 1.0 says the two differ by less than the rounds differ among themselves.
    static func verdict(minimum: Double, maximum: Double, rounds: Int) -> String {
        if rounds < 2 { return "one round: no verdict" }
        if minimum <= 1 && maximum >= 1 { return "within noise" }
        return minimum > 1 ? "higher in every round" : "lower in every round"
    }

    /// `rate c-threads/threads 1.06× (0.78–1.26, 4 rounds): within noise`
    var line: String {
        "\(figure) \(other)/\(baseline) \(Self.times(median)) (\(Self.times(minimum, sign: false))–\(Self.times(maximum, sign: false)), \(ratios.count) round\(ratios.count == 1 ? "" : "s")): \(verdict)"
    }

    static func times(_ ratio: Double, sign: Bool = true) -> String {
        TextFormat.fixed(ratio, ratio < 0.1 ? 3 : 2) + (sign ? "×" : "")
    }
}
