import Foundation

/// The one home for numbers and fields written for people and for spreadsheets, so every table,
/// report line and CSV file of the package spells them the same way.
public enum TextFormat {
    /// Exactly `places` decimals: `fixed(3.14159, 2)` → `3.14`; "-" for NaN or infinity.
    public static func fixed(_ value: Double, _ places: Int) -> String {
        guard value.isFinite else { return "-" }
        return String(format: "%.\(places)f", value)
    }

    /// Up to 4 decimals, no trailing zeros, for machine-read files: `0.0312`, `152340.5`, `12`;
    /// empty for NaN or infinity.
    public static func trimmed(_ value: Double) -> String {
        guard value.isFinite else { return "" }
        var text = String(format: "%.4f", value)
        while text.hasSuffix("0") { text.removeLast() }
        if text.hasSuffix(".") { text.removeLast() }
        return text == "-0" ? "0" : text
    }

    /// Thousands separated: `1234567` → `1,234,567`.
    public static func grouped(_ value: Int) -> String {
        let digits = String(value.magnitude)
        var out = ""
        for (index, digit) in digits.enumerated() {
            if index > 0 && (digits.count - index) % 3 == 0 { out.append(",") }
            out.append(digit)
        }
        return (value < 0 ? "-" : "") + out
    }

    /// A latency for people, from microseconds: µs below 10 ms, ms from there, thousands separated:
    /// `95.4 µs`, `9,876.5 µs`, `12.35 ms`, `1,706.03 ms`; "-" for NaN or infinity.
    public static func latency(microseconds value: Double) -> String {
        guard value.isFinite else { return "-" }
        if value < 10_000 { return groupedFixed(value, 1) + " µs" }
        return groupedFixed(value / 1000, 2) + " ms"
    }

    /// `fixed` with the whole part thousands separated: `1234567.891, 2` → `1,234,567.89`.
    public static func groupedFixed(_ value: Double, _ places: Int) -> String {
        let text = fixed(value, places)
        guard text != "-" else { return text }
        let negative = text.hasPrefix("-")
        let unsigned = negative ? String(text.dropFirst()) : text
        let parts = unsigned.split(separator: ".", maxSplits: 1)
        let whole = parts[0]
        var grouped = ""
        for (index, digit) in whole.enumerated() {
            if index > 0 && (whole.count - index) % 3 == 0 { grouped.append(",") }
            grouped.append(digit)
        }
        return (negative ? "-" : "") + grouped + (parts.count > 1 ? "." + parts[1] : "")
    }

    /// RFC 4180: a field that holds a comma, a quote or a line break is quoted, its quotes doubled.
    public static func csvField(_ text: String) -> String {
        // By scalar: "\r\n" is one Character in Swift, equal to neither "\r" nor "\n".
        guard text.unicodeScalars.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else {
            return text
        }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
