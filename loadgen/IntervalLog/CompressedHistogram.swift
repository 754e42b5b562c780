import Foundation
import Histogram

/// A histogram in HdrHistogram's V2 compressed encoding: what one line of an interval log (`.hlog`)
/// carries, base64 encoded, and what `HistogramLogProcessor` and every HdrHistogram port decode.
/// hdrhistogram-swift 0.2.0 has no encoder, so this is it, from the format's definition:
///
///     compressed:  int32 cookie 0x1c849314 · int32 length · zlib(uncompressed)
///     uncompressed: int32 cookie 0x1c849313 · int32 payload length · int32 normalizing offset (0)
///                   · int32 significant digits · int64 lowest discernible · int64 highest trackable
///                   · float64 integer-to-double ratio (1.0) · payload
///     payload:     the counts array up to the max value's index, each count as a ZigZag LEB128 varint,
///                  a run of k > 1 zero counts as the single varint −k
///
/// All integers big-endian. The zlib stream uses stored (uncompressed) deflate blocks: valid for any
/// inflater, with no zlib to link; the run-length payload is already small.
enum CompressedHistogram {
    static let encodingCookie: UInt32 = 0x1c84_9313
    static let compressedEncodingCookie: UInt32 = 0x1c84_9314

    static func base64(_ histogram: Histogram<UInt64>) -> String {
        Data(compressed(histogram)).base64EncodedString()
    }

    static func compressed(_ histogram: Histogram<UInt64>) -> [UInt8] {
        let zlib = Self.zlibStored(uncompressed(histogram))
        var bytes: [UInt8] = []
        append32(compressedEncodingCookie, to: &bytes)
        append32(UInt32(zlib.count), to: &bytes)
        return bytes + zlib
    }

    static func uncompressed(_ histogram: Histogram<UInt64>) -> [UInt8] {
        let payload = payload(histogram)
        var bytes: [UInt8] = []
        append32(encodingCookie, to: &bytes)
        append32(UInt32(payload.count), to: &bytes)
        append32(0, to: &bytes)
        append32(UInt32(histogram.numberOfSignificantValueDigits.rawValue), to: &bytes)
        append64(histogram.lowestDiscernibleValue, to: &bytes)
        append64(histogram.highestTrackableValue, to: &bytes)
        append64((1.0).bitPattern, to: &bytes)
        return bytes + payload
    }

    /// The counts, in counts-array order, run-length encoded.
    static func payload(_ histogram: Histogram<UInt64>) -> [UInt8] {
        let layout = Layout(histogram)
        var counts: [Int: UInt64] = [:]
        for recorded in histogram.recordedValues() where recorded.count > 0 {
            counts[layout.index(of: recorded.value), default: 0] += recorded.count
        }
        guard let last = counts.keys.max() else { return [] }
        var bytes: [UInt8] = []
        var index = 0
        while index <= last {
            if let count = counts[index] {
                appendZigZag(Int64(count), to: &bytes)
                index += 1
                continue
            }
            var zeros = 0
            while index <= last && counts[index] == nil {
                zeros += 1
                index += 1
            }
            appendZigZag(zeros > 1 ? -Int64(zeros) : 0, to: &bytes)
        }
        return bytes
    }

    /// Where a value sits in HdrHistogram's counts array (the same in every port).
    struct Layout {
        let unitMagnitude: Int
        let subBucketHalfCountMagnitude: Int
        let subBucketMask: UInt64

        init(_ histogram: Histogram<UInt64>) {
            unitMagnitude = Int(Double.log2(Double(histogram.lowestDiscernibleValue)))
            let largestWithSingleUnitResolution = 2 * Double.pow(10, Int(histogram.numberOfSignificantValueDigits.rawValue))
            let subBucketCountMagnitude = Int(Double.log2(largestWithSingleUnitResolution).rounded(.up))
            subBucketHalfCountMagnitude = max(subBucketCountMagnitude, 1) - 1
            subBucketMask = UInt64((1 << subBucketCountMagnitude) - 1) << UInt64(unitMagnitude)
        }

        func index(of value: UInt64) -> Int {
            let leadingZeroCountBase = 64 - unitMagnitude - subBucketHalfCountMagnitude - 1
            let bucket = leadingZeroCountBase - (value | subBucketMask).leadingZeroBitCount
            let subBucket = Int(value >> UInt64(bucket + unitMagnitude))
            return ((bucket + 1) << subBucketHalfCountMagnitude) + (subBucket - (1 << subBucketHalfCountMagnitude))
        }
    }

    // MARK: Bytes

    static func append32(_ value: UInt32, to bytes: inout [UInt8]) {
        for shift in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
    }

    static func append64(_ value: UInt64, to bytes: inout [UInt8]) {
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }

    /// HdrHistogram's ZigZag LEB128: 7 bits a byte, low first; a ninth byte, if reached, takes 8 bits.
    static func appendZigZag(_ value: Int64, to bytes: inout [UInt8]) {
        var rest = UInt64(bitPattern: (value << 1) ^ (value >> 63))
        for _ in 0..<8 {
            if rest < 0x80 {
                bytes.append(UInt8(rest))
                return
            }
            bytes.append(UInt8(rest & 0x7f) | 0x80)
            rest >>= 7
        }
        bytes.append(UInt8(truncatingIfNeeded: rest))
    }

    /// A zlib stream (RFC 1950) of stored deflate blocks (RFC 1951, BTYPE 00), with its Adler-32.
    static func zlibStored(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0x78, 0x01]
        var offset = 0
        repeat {
            let length = min(65_535, data.count - offset)
            let final = offset + length == data.count
            out.append(final ? 1 : 0)
            out += [UInt8(length & 0xff), UInt8(length >> 8), UInt8(~length & 0xff), UInt8((~length >> 8) & 0xff)]
            out += data[offset..<offset + length]
            offset += length
        } while offset < data.count
        append32(adler32(data), to: &out)
        return out
    }

    static func adler32(_ data: [UInt8]) -> UInt32 {
        var a: UInt32 = 1
        var b: UInt32 = 0
        for byte in data {
            a = (a + UInt32(byte)) % 65_521
            b = (b + a) % 65_521
        }
        return b << 16 | a
    }
}
