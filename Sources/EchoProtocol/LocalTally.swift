/// Byte counts one thread (an event loop) keeps without atomics and publishes to the shared
/// `ServerCounters` now and then, e.g. once per loop iteration. With one shared atomic per message,
/// every core would write the same cache line; here each loop's counts sit on a line of their own.
///
/// Touch it only from its one thread; `publish` too. `@unchecked Sendable` so a task that runs on
/// that thread (a connection on its loop) can carry it.
public struct LocalTally: @unchecked Sendable {
    private let counts: UnsafeMutablePointer<Counts>
    private static let cacheLine = 64

    private struct Counts {
        var received = 0
        var sent = 0
        /// Messages the loop handled, for `--block-every` (MessageCost); never published.
        var messages = 0
    }

    /// A zeroed tally on a cache line of its own, never freed (it lives as long as its loop).
    public static func allocate() -> LocalTally {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: cacheLine, alignment: cacheLine)
        let counts = raw.bindMemory(to: Counts.self, capacity: 1)
        counts.initialize(to: Counts())
        return LocalTally(counts: counts)
    }

    @inline(__always)
    public func received(_ count: Int) { counts.pointee.received &+= count }

    @inline(__always)
    public func sent(_ count: Int) { counts.pointee.sent &+= count }

    /// Adds what was counted since the last call to `counters`.
    public func publish(to counters: ServerCounters) {
        if counts.pointee.received > 0 { counters.received(counts.pointee.received) }
        if counts.pointee.sent > 0 { counters.sent(counts.pointee.sent) }
        counts.pointee.received = 0
        counts.pointee.sent = 0
    }

    /// Counts a message on this loop and says whether `cost` makes it block (`--block-every`).
    @inline(__always)
    public func blocks(_ cost: MessageCost) -> Bool { cost.blocks(&counts.pointee.messages) }
}
