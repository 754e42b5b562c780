#if canImport(Glibc)
import Glibc
#endif

/// Bytes read from a peer that its socket has not taken back yet, copied out of the buffer ring
/// so the ring's buffer can go back to the kernel at once: a client that does not read holds
/// malloc'd memory of its own, never a buffer the loop's other connections need. One block: the
/// range still to send and the capacity, then the bytes. It exists only while a send was partial
/// (or an offloaded call holds the message); the connection is not read meanwhile.
struct Backlog {
    private let block: UnsafeMutableRawPointer
    private static let headerSize = 3 * MemoryLayout<Int>.stride

    /// A block holding `front` then `back`, with room for at least `capacity` bytes; nil when
    /// memory is exhausted.
    init?(
        _ front: UnsafeRawBufferPointer, then back: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0),
        capacity: Int = 0
    ) {
        let capacity = max(capacity, front.count + back.count)
        guard let block = malloc(Self.headerSize + capacity) else { return nil }
        self.block = block
        start = 0
        end = 0
        self.capacity = capacity
        guard append(front), append(back) else { return nil }
    }

    /// The bytes still to send.
    var unsent: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: block + Self.headerSize + start, count: end - start)
    }

    var isEmpty: Bool { start == end }

    /// Marks `count` more bytes as sent.
    func consume(_ count: Int) { start += count }

    /// Adds bytes at the end, growing the block (doubling, so a burst of appends copies each byte
    /// a bounded number of times) when needed; false when memory is exhausted.
    @discardableResult
    mutating func appendGrowing(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if append(bytes) { return true }
        guard let grown = Backlog(unsent, then: bytes, capacity: 2 * capacity) else { return false }
        free()
        self = grown
        return true
    }

    /// Copies `bytes` in when they fit.
    private func append(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count > 0 else { return true }
        if end + bytes.count > capacity {
            guard start > 0, end - start + bytes.count <= capacity else { return false }
            // Slide what is still unsent to the front, as a ring would.
            let base = block + Self.headerSize
            memmove(base, base + start, end - start)
            end -= start
            start = 0
        }
        (block + Self.headerSize + end).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        end += bytes.count
        return true
    }

    func free() { Glibc.free(block) }

    private var start: Int {
        get { block.load(as: Int.self) }
        nonmutating set { block.storeBytes(of: newValue, as: Int.self) }
    }

    private var end: Int {
        get { block.load(fromByteOffset: MemoryLayout<Int>.stride, as: Int.self) }
        nonmutating set { block.storeBytes(of: newValue, toByteOffset: MemoryLayout<Int>.stride, as: Int.self) }
    }

    private var capacity: Int {
        get { block.load(fromByteOffset: 2 * MemoryLayout<Int>.stride, as: Int.self) }
        nonmutating set { block.storeBytes(of: newValue, toByteOffset: 2 * MemoryLayout<Int>.stride, as: Int.self) }
    }
}
