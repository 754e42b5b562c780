/// What a completion is for, packed in the 64 bits of user_data that the kernel hands back
/// untouched: the operation, the connection's fd and its generation.
///
/// The generation is why a late completion cannot be mistaken for another connection's: a
/// connection's fd is closed only once none of its requests is in flight, but the number is reused
/// by the next accept at once, and the slot's generation moves on when it is freed. A completion
/// whose generation is not the slot's belongs to a connection that is gone.
struct UserData {
    enum Operation: UInt8 {
        case accept = 1
        case recv
        case send
        /// An IORING_OP_ASYNC_CANCEL's own completion: nothing to do, the target's completion says it all.
        case cancel
        /// The loop's eventfd was written: a stop request or finished offloaded calls.
        case wake
        /// The pause in accepting after running out of descriptors is over.
        case acceptPause
    }

    let raw: UInt64

    init(_ operation: Operation, fd: Int32 = 0, generation: UInt32 = 0) {
        raw = UInt64(operation.rawValue) << 56 | UInt64(generation & 0xFF_FFFF) << 32 | UInt64(UInt32(bitPattern: fd))
    }

    init(raw: UInt64) { self.raw = raw }

    var operation: Operation? { Operation(rawValue: UInt8(truncatingIfNeeded: raw >> 56)) }
    var fd: Int32 { Int32(bitPattern: UInt32(truncatingIfNeeded: raw)) }
    /// 24 bits: a slot would have to be reused 16 million times while one completion is late.
    var generation: UInt32 { UInt32(truncatingIfNeeded: raw >> 32) & 0xFF_FFFF }
}
