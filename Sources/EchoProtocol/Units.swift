import ArgumentParser

// The one home for option values written the way people write them, as wrk2's units.c is: sizes,
// durations and CPU lists, for every tool of the package. Each parser throws an ArgumentParser
// `ValidationError` that names the bad text and shows a good spelling.

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

/// Durations: `500ms`, `10s`, `2m`, `1h`, `1.5s`, `250us`, `100ns`; a bare number is seconds, except
/// where an option asks for the unit (`parseWithUnit`: a bare `100` for a sleep is as likely meant
/// as milliseconds).
public enum DurationText {
    public static func parse(_ text: String) throws -> Duration {
        guard let duration = value(of: text) else {
            throw ValidationError("'\(text)' is not a duration; write e.g. 500ms, 10s or 2m")
        }
        return duration
    }

    /// As `parse`, but a number needs its unit (`0` excepted).
    public static func parseWithUnit(_ text: String) throws -> Duration {
        guard let duration = value(of: text, unitRequired: true) else {
            throw ValidationError("'\(text)' is not a duration; write a number with ns, us, ms, s, m or h (e.g. 100ms)")
        }
        return duration
    }

    /// The duration `text` names, or nil (negative, not a number, no unit when one is required, or
    /// beyond about 11 days).
    public static func value(of text: String, unitRequired: Bool = false) -> Duration? {
        let trimmed = text.lowercased().filter { $0 != " " }
        let units: [(String, Double)] = [
            ("ns", 1e-9), ("us", 1e-6), ("µs", 1e-6), ("ms", 1e-3), ("s", 1), ("m", 60), ("h", 3600),
        ]
        var number = Substring(trimmed)
        var scale = 1.0
        var hasUnit = false
        for (suffix, seconds) in units where trimmed.hasSuffix(suffix) {
            number = number.dropLast(suffix.count)
            scale = seconds
            hasUnit = true
            break
        }
        if unitRequired && !hasUnit && trimmed != "0" { return nil }
        guard !number.hasPrefix("+"), let value = Double(number), value.isFinite, value >= 0 else { return nil }
        let nanoseconds = (value * scale * 1e9).rounded()
        guard nanoseconds < 1e15 else { return nil }
        return .nanoseconds(Int64(nanoseconds))
    }

    /// The shortest exact spelling, for messages and tables: `2m`, `10s`, `500ms`, `250us`, `100ns`.
    public static func describe(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        let ns = max(0, seconds) * 1_000_000_000 + max(0, attoseconds) / 1_000_000_000
        if ns > 0 && ns % 60_000_000_000 == 0 { return "\(ns / 60_000_000_000)m" }
        if ns % 1_000_000_000 == 0 { return "\(ns / 1_000_000_000)s" }
        if ns % 1_000_000 == 0 { return "\(ns / 1_000_000)ms" }
        if ns % 1_000 == 0 { return "\(ns / 1_000)us" }
        return "\(ns)ns"
    }
}

/// CPU numbers as `taskset -c` and /proc write them: `1`, `0,1`, `0-3`, `0,2-3` (below 1024).
public enum CPUList {
    public static func parse(_ text: String) throws -> [Int] {
        guard let cpus = value(of: text) else {
            throw ValidationError("'\(text)' is not a CPU list; write e.g. 1, 0,1 or 0-3")
        }
        return cpus
    }

    /// The CPUs `text` names, in the order written, or nil.
    public static func value(of text: String) -> [Int]? {
        var result: [Int] = []
        for part in text.split(separator: ",") {
            let ends = part.split(separator: "-", omittingEmptySubsequences: false)
            guard (1...2).contains(ends.count), let low = Int(ends[0]), let high = Int(ends[ends.count - 1]),
                low >= 0, low <= high, high < 1024
            else { return nil }
            result.append(contentsOf: low...high)
        }
        return result.isEmpty ? nil : result
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
