#if canImport(Glibc)
import Glibc
#endif

/// What one connection is doing, as flags: which of its requests are in the kernel, and why it
/// is not being read.
struct ConnectionState: OptionSet {
    let rawValue: UInt16

    static let open = ConnectionState(rawValue: 1 << 0)
    /// A recv (multishot or single) is in the kernel.
    static let recvArmed = ConnectionState(rawValue: 1 << 1)
    /// Its recv has been asked to stop (backpressure or closing); the final completion is due.
    static let recvCancelled = ConnectionState(rawValue: 1 << 2)
    /// A send is in the kernel (never more than one: sends on one socket must not overtake each other).
    static let sendInFlight = ConnectionState(rawValue: 1 << 3)
    /// That send goes out of a ring buffer (`ringBuffer`), not out of the backlog.
    static let sendFromRing = ConnectionState(rawValue: 1 << 4)
    /// The peer half-closed: send what is pending, then close.
    static let endOfStream = ConnectionState(rawValue: 1 << 5)
    /// Being closed: the fd is closed once no request of it is in the kernel.
    static let closing = ConnectionState(rawValue: 1 << 6)
    /// `--offload`: a blocking call for its message runs on the pool.
    static let offloaded = ConnectionState(rawValue: 1 << 7)
    /// Its recv ended with ENOBUFS; it waits in the loop's list for buffers to come back.
    static let starved = ConnectionState(rawValue: 1 << 8)
    /// Its multishot recv's latest completion said bytes were still queued; if no completion for
    /// them follows in the same pass, the recv is re-armed (see `rearmWhereBytesWereLeft`).
    static let bytesLeft = ConnectionState(rawValue: 1 << 9)
}

/// One connection: 32 bytes in the loop's table, no allocation of its own unless a send was partial.
struct Connection {
    var generation: UInt32 = 0
    var state: ConnectionState = []
    /// The ring buffer the in-flight send goes out of.
    var ringBuffer: UInt16 = 0
    /// The byte count of the in-flight send.
    var sendCount: Int32 = 0
    var backlog: Backlog?
}

/// The loop's connections indexed by fd, as redis indexes its file events: one array sized for the
/// open-files limit, reserved but not touched (MAP_NORESERVE), so its memory grows with the highest
/// fd in use and an entry costs 32 bytes. No lookup, no allocation per connection.
struct ConnectionTable {
    let slots: UnsafeMutablePointer<Connection>
    let capacity: Int
    /// One past the highest fd ever stored: how far `stop` walks.
    private(set) var highWater = 0

    init() {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        capacity = Int(clamping: min(limit.rlim_cur, 1 << 24))
        let bytes = capacity * MemoryLayout<Connection>.stride
        let memory = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let memory, memory != MAP_FAILED else { fatalError("cannot reserve the connection table") }
        // Zeroed pages are valid `Connection`s: generation 0, no state, no backlog.
        slots = memory.bindMemory(to: Connection.self, capacity: capacity)
    }

    @inline(__always)
    subscript(fd: Int32) -> UnsafeMutablePointer<Connection> { slots + Int(fd) }

    /// The slot of `fd` if it holds the connection that `generation` names.
    @inline(__always)
    func live(_ fd: Int32, generation: UInt32) -> UnsafeMutablePointer<Connection>? {
        guard fd >= 0, Int(fd) < capacity else { return nil }
        let slot = slots + Int(fd)
        guard slot.pointee.state.contains(.open), slot.pointee.generation & 0xFF_FFFF == generation else { return nil }
        return slot
    }

    mutating func noteInUse(_ fd: Int32) { highWater = max(highWater, Int(fd) + 1) }
}
