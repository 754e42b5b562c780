import ArgumentParser
import EchoProtocol

/// Option values written the way people write them, each parsed into the value the engine uses.
/// Every parser throws an ArgumentParser `ValidationError` that names the bad text and shows a good one.
enum TextValues {
    /// `500ms`, `10s`, `2m`, `1h`, `1.5s`; a bare number is seconds. Negative values are refused.
    static func duration(_ text: String) throws -> Duration {
        let trimmed = text.lowercased().filter { $0 != " " }
        let units: [(String, Double)] = [("ms", 1e-3), ("us", 1e-6), ("µs", 1e-6), ("s", 1), ("m", 60), ("h", 3600)]
        var number = Substring(trimmed)
        var scale = 1.0
        for (suffix, seconds) in units where trimmed.hasSuffix(suffix) {
            number = number.dropLast(suffix.count)
            scale = seconds
            break
        }
        guard let value = Double(number), value.isFinite, value >= 0, !number.hasPrefix("+") else {
            throw ValidationError("'\(text)' is not a duration; write e.g. 500ms, 10s or 2m")
        }
        let nanoseconds = (value * scale * 1e9).rounded()
        guard nanoseconds < 1e15 else { throw ValidationError("'\(text)' is too long a duration") }
        return .nanoseconds(Int64(nanoseconds))
    }

    /// Source addresses: one address, a range `127.0.0.1-127.0.0.32`, or a comma-separated list of both.
    static func addresses(_ text: String) throws -> [IPv4Address] {
        var result: [IPv4Address] = []
        for part in text.split(separator: ",") {
            let ends = part.split(separator: "-", omittingEmptySubsequences: false)
            guard (1...2).contains(ends.count), let first = IPv4Address(String(ends[0])),
                let last = IPv4Address(String(ends[ends.count - 1]))
            else {
                throw ValidationError(
                    "'\(part)' is not an IPv4 address or range; write e.g. 127.0.0.1-127.0.0.32")
            }
            let low = UInt32(bigEndian: first.networkOrder)
            let high = UInt32(bigEndian: last.networkOrder)
            guard low <= high else { throw ValidationError("range '\(part)' runs backwards") }
            guard high - low < 65536, result.count + Int(high - low) < 65536 else {
                throw ValidationError("'\(text)' names more than 65536 addresses")
            }
            for host in low...high {
                var address = first
                address.networkOrder = host.bigEndian
                result.append(address)
            }
        }
        guard !result.isEmpty else { throw ValidationError("--source-addresses needs at least one address") }
        return result
    }

    /// CPU numbers: `1`, `0,1`, `0-3`, `0,2-3`.
    static func cpus(_ text: String) throws -> [Int] {
        var result: [Int] = []
        for part in text.split(separator: ",") {
            let ends = part.split(separator: "-", omittingEmptySubsequences: false)
            guard (1...2).contains(ends.count), let low = Int(ends[0]), let high = Int(ends[ends.count - 1]),
                low >= 0, low <= high, high < 1024
            else {
                throw ValidationError("'\(part)' is not a CPU number or range; write e.g. 1, 0,1 or 0-3")
            }
            result.append(contentsOf: low...high)
        }
        guard !result.isEmpty else { throw ValidationError("--cpus needs at least one CPU number") }
        return result
    }

    /// A positive count with optional thousands separators (`20000`, `20_000`, `20,000` is refused: comma lists).
    static func positiveCount(_ text: String, name: String) throws -> Int {
        guard let value = Int(text.replacingUnderscores), value >= 1 else {
            throw ValidationError("\(name) must be a whole number of at least 1, got '\(text)'")
        }
        return value
    }

    /// A positive rate, possibly fractional (`2000`, `0.5`).
    static func positiveRate(_ text: String, name: String) throws -> Double {
        guard let value = Double(text.replacingUnderscores), value.isFinite, value > 0 else {
            throw ValidationError("\(name) must be a number above 0, got '\(text)'")
        }
        return value
    }
}

extension String {
    fileprivate var replacingUnderscores: String { String(filter { $0 != "_" }) }
}

extension Duration {
    var nanoseconds: UInt64 {
        let parts = components
        return UInt64(max(0, parts.seconds)) * 1_000_000_000 + UInt64(max(0, parts.attoseconds) / 1_000_000_000)
    }

    var seconds: Double { Double(nanoseconds) / 1e9 }

    /// `500ms`, `10s`, `2m`: the shortest exact spelling, for messages and the table.
    var shortDescription: String {
        let ns = nanoseconds
        if ns % 60_000_000_000 == 0 && ns > 0 { return "\(ns / 60_000_000_000)m" }
        if ns % 1_000_000_000 == 0 { return "\(ns / 1_000_000_000)s" }
        if ns % 1_000_000 == 0 { return "\(ns / 1_000_000)ms" }
        return "\(Double(ns) / 1e9)s"
    }
}
