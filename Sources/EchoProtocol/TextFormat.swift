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

    /// RFC 4180: a field that holds a comma, a quote or a line break is quoted, its quotes doubled.
    public static func csvField(_ text: String) -> String {
        // By scalar: "\r\n" is one Character in Swift, equal to neither "\r" nor "\n".
        guard text.unicodeScalars.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else {
            return text
        }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
