import NIOCore

/// Receive-buffer sizing for the connections: NIO's adaptive policy (start small, double when a read
/// fills the buffer, halve after two reads that would have fit in half), in a struct that fits inline
/// in the channel's `RecvByteBufferAllocator` existential.
///
/// Why not NIO's `AdaptiveRecvByteBufferAllocator`: it is 33 bytes, more than an existential's three
/// inline words, so every channel boxes a private copy on the heap (49 B per connection, plus a
/// uniqueness check on every read). This one is 13 bytes.
struct ReceiveAllocator: RecvByteBufferAllocator {
    private var nextSize: UInt32
    private let minimum: UInt32
    private let maximum: UInt32
    private var decreaseNow = false

    /// Sizes are powers of two: `initial` and `maximum` are rounded down to one, `maximum` to at least `minimum`.
    init(minimum: Int, initial: Int, maximum: Int) {
        func powerOfTwo(atMost value: Int) -> UInt32 {
            UInt32(1 << (Int.bitWidth - 1 - max(value, 1).leadingZeroBitCount))
        }
        self.minimum = powerOfTwo(atMost: minimum)
        self.maximum = max(powerOfTwo(atMost: min(maximum, 1 << 30)), self.minimum)
        self.nextSize = min(max(powerOfTwo(atMost: initial), self.minimum), self.maximum)
    }

    func buffer(allocator: ByteBufferAllocator) -> ByteBuffer {
        allocator.buffer(capacity: Int(nextSize))
    }

    func nextBufferSize() -> Int? {
        Int(nextSize)
    }

    /// Returns true when the next buffer will be larger.
    mutating func record(actualReadBytes: Int) -> Bool {
        let half = nextSize >> 1
        if actualReadBytes <= Int(half) && half >= minimum {
            if decreaseNow { nextSize = half }
            decreaseNow.toggle()
            return false
        }
        decreaseNow = false
        if actualReadBytes >= Int(nextSize) && nextSize < maximum {
            nextSize <<= 1
            return true
        }
        return false
    }
}
