import ArgumentParser
import EchoProtocol

/// Option values written the way people write them, each parsed into the value the engine uses.
/// Every parser throws an ArgumentParser `ValidationError` that names the bad text and shows a good one.
enum TextValues {
    /// See `DurationText` (EchoProtocol's Units.swift): every duration needs its unit.
    static func duration(_ text: String) throws -> Duration { try DurationText.parse(text) }

    /// Source addresses: one address, a range `127.0.0.1-127.0.0.32`, or a comma-separated list of both.
    static func addresses(_ text: String) throws -> [SocketAddress] {
        var result: [SocketAddress] = []
        for part in text.split(separator: ",") {
            let ends = part.split(separator: "-", omittingEmptySubsequences: false)
            guard (1...2).contains(ends.count), let first = SocketAddress(String(ends[0])),
                let last = SocketAddress(String(ends[ends.count - 1]))
            else {
                throw ValidationError(
                    "'\(part)' is not an IP address or an IPv4 range; write e.g. 127.0.0.1-127.0.0.32 or ::1")
            }
            guard let firstValue = first.ipv4NetworkOrder, let lastValue = last.ipv4NetworkOrder else {
                guard ends.count == 1 else { throw ValidationError("'\(part)': ranges are IPv4 only; list IPv6 addresses one by one") }
                result.append(first)
                continue
            }
            let low = UInt32(bigEndian: firstValue)
            let high = UInt32(bigEndian: lastValue)
            guard low <= high else { throw ValidationError("range '\(part)' runs backwards") }
            guard high - low < 65536, result.count + Int(high - low) < 65536 else {
                throw ValidationError("'\(text)' names more than 65536 addresses")
            }
            for host in low...high {
                result.append(SocketAddress(ipv4NetworkOrder: host.bigEndian))
            }
        }
        guard !result.isEmpty else { throw ValidationError("--source-addresses needs at least one address") }
        return result
    }

    /// See `CPUList` (EchoProtocol's Units.swift).
    static func cpus(_ text: String) throws -> [Int] { try CPUList.parse(text) }
}

extension Duration {
    var nanoseconds: UInt64 {
        let parts = components
        return UInt64(max(0, parts.seconds)) * 1_000_000_000 + UInt64(max(0, parts.attoseconds) / 1_000_000_000)
    }

    var seconds: Double { Double(nanoseconds) / 1e9 }

    /// `500ms`, `10s`, `2m`: the shortest exact spelling, for messages and the table.
    var shortDescription: String { DurationText.describe(self) }
}
