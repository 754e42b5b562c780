#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser

// The one home for option values written the way people write them, as wrk2's units.c is: sizes,
// durations and CPU lists, for every tool of the package. Each parser throws an ArgumentParser
// `ValidationError` that names the bad text and shows a good spelling.

/// Sizes written the way people write them: `4096`, `64K`, `64KB`, `64KiB`, `1M`, `8MiB`, `1G`: powers of
/// 1024 whichever way the suffix is written (k or K, B or iB), as buffer and page sizes are counted.
public enum ByteCount {
    public static let maxBufferSize = 64 * 1024 * 1024
    public static let grammar = "a byte count, optionally with K, M or G (powers of 1024: 1K = 1024)"

    /// Parses a size; throws an ArgumentParser `ValidationError` naming the bad text.
    public static func parse(_ text: String) throws -> Int {
        guard let value = value(of: text) else {
            throw ValidationError("'\(text)' is not a size; write \(grammar)")
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

/// Durations: `500ms`, `10s`, `2m`, `1h`, `1.5s`, `250us`, `100ns`. Every duration needs its unit (only
/// `0` stands alone): a bare `10` is seconds to one reader and milliseconds to the next.
public enum DurationText {
    public static let grammar = "a number with ns, us, ms, s, m or h (e.g. 100ms, 10s)"

    public static func parse(_ text: String) throws -> Duration {
        guard let duration = value(of: text) else {
            throw ValidationError("'\(text)' is not a duration; write \(grammar)")
        }
        return duration
    }

    /// The same as `parse`: kept for the callers that said so before every duration needed its unit.
    public static func parseWithUnit(_ text: String) throws -> Duration { try parse(text) }

    /// The duration `text` names, or nil (negative, not a number, no unit, or beyond about 11 days).
    public static func value(of text: String) -> Duration? {
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
        if !hasUnit && trimmed != "0" { return nil }
        guard !number.hasPrefix("+"), let value = Double(number), value.isFinite, value >= 0 else { return nil }
        let nanoseconds = (value * scale * 1e9).rounded()
        guard nanoseconds < 1e15 else { return nil }
        return .nanoseconds(Int64(nanoseconds))
    }

    /// Whole nanoseconds of `duration` (0 for a negative one), for the clock and the kernel.
    public static func nanoseconds(_ duration: Duration) -> UInt64 {
        let (seconds, attoseconds) = duration.components
        return UInt64(max(0, seconds)) * 1_000_000_000 + UInt64(max(0, attoseconds) / 1_000_000_000)
    }

    /// The shortest exact spelling, for messages and tables: `2m`, `10s`, `500ms`, `250us`, `100ns`.
    public static func describe(_ duration: Duration) -> String {
        let ns = nanoseconds(duration)
        if ns > 0 && ns % 60_000_000_000 == 0 { return "\(ns / 60_000_000_000)m" }
        if ns % 1_000_000_000 == 0 { return "\(ns / 1_000_000_000)s" }
        if ns % 1_000_000 == 0 { return "\(ns / 1_000_000)ms" }
        if ns % 1_000 == 0 { return "\(ns / 1_000)us" }
        return "\(ns)ns"
    }
}

/// Counts and rates: `100`, `20_000`, `10k`, `1.5M`, `1G` (powers of 1000, `k` or `K` alike: these are
/// numbers of things, not bytes).
public enum CountText {
    public static let grammar = "a number, optionally with k, M or G (powers of 1000: 10k = 10000)"

    /// The number `text` names (possibly fractional or negative: the caller's range check names
    /// those), or nil if it is not a number.
    public static func value(of text: String) -> Double? {
        var digits = Substring(text.filter { $0 != "_" && $0 != " " })
        var scale = 1.0
        if let last = digits.last, let power = ["k": 1e3, "K": 1e3, "m": 1e6, "M": 1e6, "g": 1e9, "G": 1e9][last] {
            digits = digits.dropLast()
            scale = power
        }
        guard !digits.isEmpty, !digits.hasPrefix("+"), digits.allSatisfy({ $0.isASCIIDigit || $0 == "." || $0 == "-" }),
            let number = Double(digits), number.isFinite
        else { return nil }
        return number * scale
    }
}

/// Option values parsed and range-checked in one place, each error one line that starts with the
/// option's name and ends with what was given: `--rate must be a number above 0, got -1`.
/// Use as an `@Option`'s `transform:`, with `parsing: .unconditional` so that a negative value reaches
/// the check instead of being taken for an option (`OptionParsing.value`).
public enum OptionValue {
    public static func duration(_ option: String) -> @Sendable (String) throws -> Duration {
        { text in
            guard let value = DurationText.value(of: text) else {
                if let number = Double(text.filter { $0 != " " }), number != 0 {
                    throw ValidationError("\(option) needs a unit: write \(DurationText.grammar), got '\(text)'")
                }
                if text.hasPrefix("-") { throw ValidationError("\(option) must not be negative, got \(text)") }
                throw ValidationError("\(option) must be \(DurationText.grammar), got '\(text)'")
            }
            return value
        }
    }

    /// A duration above 0.
    public static func positiveDuration(_ option: String) -> @Sendable (String) throws -> Duration {
        { text in
            let value = try duration(option)(text)
            guard value > .zero else { throw ValidationError("\(option) must be above 0, got \(text)") }
            return value
        }
    }

    /// A size in bytes, at least `minimum` (powers of 1024, see `ByteCount`).
    public static func size(_ option: String, minimum: Int = 1, maximum: Int = Int.max) -> @Sendable (String) throws -> Int {
        { text in
            guard let value = ByteCount.value(of: text) else {
                if CountText.value(of: text).map({ $0 < 0 }) == true {
                    throw ValidationError("\(option) must be a size of at least \(ByteCount.describe(minimum)), got \(text)")
                }
                throw ValidationError("\(option) must be \(ByteCount.grammar), got '\(text)'")
            }
            guard value >= minimum, value <= maximum else {
                throw ValidationError("\(option) must be \(ByteCount.describe(minimum))...\(ByteCount.describe(maximum)), got \(text)")
            }
            return value
        }
    }

    /// A whole count in `range` (`10k` = 10000).
    public static func count(_ option: String, in range: ClosedRange<Int> = 1...Int.max) -> @Sendable (String) throws -> Int {
        { text in
            guard let number = CountText.value(of: text) else {
                throw ValidationError("\(option) must be \(CountText.grammar), got '\(text)'")
            }
            guard number == number.rounded(), let value = Int(exactly: number) else {
                throw ValidationError("\(option) must be a whole number, got \(text)")
            }
            guard range.contains(value) else { throw ValidationError("\(option) must be \(describe(range)), got \(text)") }
            return value
        }
    }

    /// A rate above 0, possibly fractional (`0.5`, `10k`, `1.5M`).
    public static func rate(_ option: String) -> @Sendable (String) throws -> Double {
        { text in
            guard let value = CountText.value(of: text) else {
                throw ValidationError("\(option) must be \(CountText.grammar), got '\(text)'")
            }
            guard value > 0 else { throw ValidationError("\(option) must be a number above 0, got \(text)") }
            return value
        }
    }

    /// A CPU list (`CPUList`) whose every CPU is in this process's affinity mask: a CPU outside it
    /// cannot be pinned to, and the run would report a pinning that never happened.
    public static func cpus(_ option: String) -> @Sendable (String) throws -> [Int] {
        { text in
            guard let cpus = CPUList.value(of: text) else {
                throw ValidationError("\(option) must be a CPU list such as 1, 0,1 or 0-3, got '\(text)'")
            }
            let allowed = CPUList.allowed()
            if let outside = cpus.first(where: { !allowed.contains($0) }) {
                throw ValidationError(
                    "\(option): CPU \(outside) is not one this process may run on (\(CPUList.describe(allowed))), got \(text)")
            }
            return cpus
        }
    }

    /// `1...65535` → `1...65535`; `1...Int.max` → `at least 1`.
    static func describe(_ range: ClosedRange<Int>) -> String {
        range.upperBound == Int.max ? "at least \(range.lowerBound)" : "\(range.lowerBound)...\(range.upperBound)"
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

    /// The CPUs this process may run on: the affinity mask (`taskset`), or every online CPU if the
    /// kernel will not say.
    public static func allowed() -> [Int] {
        if let cpus = affinity(), !cpus.isEmpty { return cpus }
        return Array(0..<max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }

    /// The calling thread's affinity mask (`taskset`, `sched_setaffinity`) as CPU numbers; nil if the
    /// kernel would not say. The one home of `sched_getaffinity` in the package.
    public static func affinity() -> [Int]? {
        var set = cpu_set_t()
        return withUnsafeMutableBytes(of: &set) { bytes in
            guard units_sched_getaffinity(0, bytes.count, bytes.baseAddress!) == 0 else { return nil }
            let words = bytes.bindMemory(to: UInt.self)
            return (0..<words.count * UInt.bitWidth).filter { words[$0 / UInt.bitWidth] & (1 << UInt($0 % UInt.bitWidth)) != 0 }
        }
    }

    /// `[0, 1, 2, 5]` → `0-2,5`.
    public static func describe(_ cpus: [Int]) -> String {
        let sorted = Array(Set(cpus)).sorted()
        var parts: [String] = []
        var index = 0
        while index < sorted.count {
            var end = index
            while end + 1 < sorted.count && sorted[end + 1] == sorted[end] + 1 { end += 1 }
            parts.append(end == index ? "\(sorted[index])" : "\(sorted[index])-\(sorted[end])")
            index = end + 1
        }
        return parts.joined(separator: ",")
    }
}

// Glibc's module hides sched_getaffinity behind _GNU_SOURCE; the symbol is always there.
@_silgen_name("sched_getaffinity")
private func units_sched_getaffinity(_ pid: Int32, _ size: Int, _ mask: UnsafeMutableRawPointer) -> Int32

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}

extension String {
    fileprivate func trimmingCharacters(in set: Character) -> String {
        String(drop(while: { $0 == set }).reversed().drop(while: { $0 == set }).reversed())
    }
}
