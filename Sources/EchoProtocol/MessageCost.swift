#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// What a server does to each message beyond echoing it, to show where each model breaks (the
/// article's "a single blocking call can stall the event loop"): `--work`, CPU-bound work on every
/// message; `--block` every `--block-every`th message, a blocking call (`nanosleep`) on the thread
/// that handles it, as naive code would. Every server applies it in the same place: after a read,
/// before its echo. A "message" is one read. The count that decides which message blocks is kept
/// per event loop (echo-libev, echo-tasks) or for the whole server (echo-threads), never per
/// connection: connections in a closed loop move in step, and per-connection counts would make
/// them all block at once.
public struct MessageCost: Sendable {
    /// Nanoseconds of spinning per message; 0 for none.
    public let workNanoseconds: UInt64
    /// Nanoseconds of blocking per blocked message; 0 for none.
    public let blockNanoseconds: UInt64
    public let blockEvery: Int

    public init(work: Duration?, block: Duration?, blockEvery: Int) {
        workNanoseconds = work.map(DurationText.nanoseconds) ?? 0
        blockNanoseconds = block.map(DurationText.nanoseconds) ?? 0
        self.blockEvery = max(blockEvery, 1)
    }

    public static let none = MessageCost(work: nil, block: nil, blockEvery: 1)

    public var isNone: Bool { workNanoseconds == 0 && blockNanoseconds == 0 }

    /// Spins on the clock for `--work` (CPU time, not a sleep: the thread stays runnable).
    @inline(__always)
    public func work() {
        guard workNanoseconds > 0 else { return }
        let end = Self.now() &+ workNanoseconds
        while Self.now() < end {}
    }

    /// Counts a message and says whether it is one that blocks.
    @inline(__always)
    public func blocks(_ count: inout Int) -> Bool {
        guard blockNanoseconds > 0 else { return false }
        count &+= 1
        if count < blockEvery { return false }
        count = 0
        return true
    }

    /// A count shared by threads (echo-threads' connection threads).
    public final class SharedCount: Sendable {
        fileprivate let value = Atomic<Int>(0)
        public init() {}
    }

    /// As `blocks(_:)`, on a count shared by threads.
    @inline(__always)
    public func blocks(_ shared: SharedCount) -> Bool {
        guard blockNanoseconds > 0 else { return false }
        return shared.value.wrappingAdd(1, ordering: .relaxed).newValue % blockEvery == 0
    }

    /// The blocking call itself, on the calling thread.
    public func blockingCall() {
        var request = timespec(
            tv_sec: Int(blockNanoseconds / 1_000_000_000), tv_nsec: Int(blockNanoseconds % 1_000_000_000))
        var remaining = timespec()
        while nanosleep(&request, &remaining) == -1 && errno == EINTR { request = remaining }
    }


    @inline(__always)
    private static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) &* 1_000_000_000 &+ UInt64(time.tv_nsec)
    }
}
