import ArgumentParser

/// Sizes written the way people write them: `4096`, `64K`, `64KiB`, `1M`, `8MiB`, `1G` (powers of 1024).
public enum ByteCount {
    public static let maxBufferSize = 64 * 1024 * 1024

    /// Parses a size; throws an ArgumentParser `ValidationError` naming the bad text.
    public static func parse(_ text: String) throws -> Int {
        guard let value = value(of: text) else {
            throw ValidationError("'\(text)' is not a size; use a byte count or a number with K, M or G (e.g. 64K)")
        }
        return value
    }

    /// The byte count `text` names, or nil if it is not a size.
    public static func value(of text: String) -> Int? {
        var digits = Substring(text.trimmingCharacters(in: " "))
        let suffixes: [(String, Int)] = [
            ("kib", 1 << 10), ("mib", 1 << 20), ("gib", 1 << 30),
            ("kb", 1 << 10), ("mb", 1 << 20), ("gb", 1 << 30),
            ("k", 1 << 10), ("m", 1 << 20), ("g", 1 << 30), ("b", 1),
        ]
        var multiplier = 1
        let lower = digits.lowercased()
        for (suffix, scale) in suffixes where lower.hasSuffix(suffix) {
            digits = digits.dropLast(suffix.count)
            multiplier = scale
            break
        }
        guard !digits.isEmpty, digits.allSatisfy(\.isASCIIDigit), let number = Int(digits) else { return nil }
        let (product, overflow) = number.multipliedReportingOverflow(by: multiplier)
        return overflow ? nil : product
    }

    /// `16384` → `16 KiB`, for messages people read.
    public static func describe(_ bytes: Int) -> String {
        if bytes >= 1 << 20, bytes % (1 << 20) == 0 { return "\(bytes >> 20) MiB" }
        if bytes >= 1 << 10, bytes % (1 << 10) == 0 { return "\(bytes >> 10) KiB" }
        return "\(bytes) B"
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}

extension String {
    fileprivate func trimmingCharacters(in set: Character) -> String {
        String(drop(while: { $0 == set }).reversed().drop(while: { $0 == set }).reversed())
    }
}
