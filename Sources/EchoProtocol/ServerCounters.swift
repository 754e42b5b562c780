import Synchronization

/// The connection counters a server keeps, safe to update from any thread.
/// Relaxed atomics: each counter is a tally read by the stats endpoint, never a synchronisation point.
/// The byte counts, bumped on every message, are spread over one cache line per CPU (`PerCPUCount`),
/// so threads on different cores never write the same line; the connection counts change once a
/// connection and stay plain.
public final class ServerCounters: Sendable {
    private let active = Atomic<Int>(0)
    private let accepted = Atomic<Int>(0)
    private let refused = Atomic<Int>(0)
    private let bytesIn = PerCPUCount()
    private let bytesOut = PerCPUCount()

    public init() {}

    /// Counts an accepted connection and says whether it may stay: false when `limit` connections
    /// are already open, in which case it is counted as refused instead and the caller closes it.
    @inline(__always)
    public func admit(limit: Int) -> Bool {
        let now = active.wrappingAdd(1, ordering: .relaxed).newValue
        if now > limit {
            active.wrappingSubtract(1, ordering: .relaxed)
            refused.wrappingAdd(1, ordering: .relaxed)
            return false
        }
        accepted.wrappingAdd(1, ordering: .relaxed)
        return true
    }

    /// Counts a connection the server could not take on for lack of resources (a thread, a descriptor).
    /// Call after `admit` succeeded for it; it is then neither active nor accepted.
    @inline(__always)
    public func refuseAdmitted() {
        active.wrappingSubtract(1, ordering: .relaxed)
        accepted.wrappingSubtract(1, ordering: .relaxed)
        refused.wrappingAdd(1, ordering: .relaxed)
    }

    @inline(__always)
    public func refuse() { refused.wrappingAdd(1, ordering: .relaxed) }

    @inline(__always)
    public func closed() { active.wrappingSubtract(1, ordering: .relaxed) }

    @inline(__always)
    public func received(_ count: Int) { bytesIn.add(count) }

    @inline(__always)
    public func sent(_ count: Int) { bytesOut.add(count) }

    public var snapshot: ConnectionCounts {
        ConnectionCounts(
            active: active.load(ordering: .relaxed), accepted: accepted.load(ordering: .relaxed),
            refused: refused.load(ordering: .relaxed), bytesIn: bytesIn.total, bytesOut: bytesOut.total)
    }
}

/// What the counters held at one moment.
public struct ConnectionCounts: Codable, Sendable, Equatable {
    public var active: Int
    public var accepted: Int
    public var refused: Int
    public var bytesIn: Int
    public var bytesOut: Int

    public init(active: Int, accepted: Int, refused: Int, bytesIn: Int, bytesOut: Int) {
        self.active = active
        self.accepted = accepted
        self.refused = refused
        self.bytesIn = bytesIn
        self.bytesOut = bytesOut
    }
}
