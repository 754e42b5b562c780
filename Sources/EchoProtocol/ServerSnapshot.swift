#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Everything a server reports about itself at one moment: served as JSON on its stats port and
/// decoded by the load generator. For a foreign server (read from /proc) `counters` is nil.
public struct ServerSnapshot: Codable, Sendable, Equatable {
    public static let schemaVersion = 1

    public var schemaVersion: Int = ServerSnapshot.schemaVersion
    public var variant: String
    public var pid: Int32
    /// Seconds since the server started.
    public var uptimeSeconds: Double
    public var counters: ConnectionCounts?
    public var usage: ResourceUsage
    public var memory: Memory
    public var threads: Int
    public var openFDs: Int
    /// How `usage`'s context switches were counted. Absent from older snapshots.
    public var contextSwitchesFrom: SwitchCounting?

    public enum SwitchCounting: String, Codable, Sendable {
        /// A server's own snapshot: every thread, exited ones too.
        case getrusage
        /// A foreign server: one request for its thread group (see ThreadGroupStats).
        case taskstats
        /// A foreign server where taskstats is not permitted: a /proc status file per thread.
        case procThreads = "proc-threads"
    }

    public struct Memory: Codable, Sendable, Equatable {
        public var rssKiB: Int
        public var hwmKiB: Int
        public var vmSizeKiB: Int
        /// When asked for, a foreign server's proportional set size summed over its process tree
        /// (/proc/PID/smaps_rollup), which counts a page shared by k processes as 1/k in each; for a
        /// server that forks, summed RSS counts the shared interpreter or libc once per process.
        /// Nil in a server's own snapshot.
        public var pssKiB: Int?

        public init(rssKiB: Int, hwmKiB: Int, vmSizeKiB: Int, pssKiB: Int? = nil) {
            self.rssKiB = rssKiB
            self.hwmKiB = hwmKiB
            self.vmSizeKiB = vmSizeKiB
            self.pssKiB = pssKiB
        }
    }

    public init(
        variant: String, pid: Int32, uptimeSeconds: Double, counters: ConnectionCounts?, usage: ResourceUsage,
        memory: Memory, threads: Int, openFDs: Int, contextSwitchesFrom: SwitchCounting? = nil
    ) {
        self.variant = variant
        self.pid = pid
        self.uptimeSeconds = uptimeSeconds
        self.counters = counters
        self.usage = usage
        self.memory = memory
        self.threads = threads
        self.openFDs = openFDs
        self.contextSwitchesFrom = contextSwitchesFrom
    }

    /// This process, now: counters plus getrusage, /proc/self/status and the open-fd count.
    public static func ofSelf(variant: String, counters: ServerCounters, startedAt: ContinuousClock.Instant)
        -> ServerSnapshot
    {
        let status = ProcStatus.read() ?? ProcStatus()
        let uptime = startedAt.duration(to: .now)
        return ServerSnapshot(
            variant: variant, pid: getpid(),
            uptimeSeconds: Double(uptime.components.seconds) + Double(uptime.components.attoseconds) / 1e18,
            counters: counters.snapshot, usage: .ofSelf(),
            memory: Memory(rssKiB: status.vmRSSKiB, hwmKiB: status.vmHWMKiB, vmSizeKiB: status.vmSizeKiB),
            threads: status.threads, openFDs: openFileDescriptorCount() ?? 0, contextSwitchesFrom: .getrusage)
    }

    /// One line of JSON with stable key order.
    public func jsonLine() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    public static func decode(_ data: some Collection<UInt8>) throws -> ServerSnapshot {
        try JSONDecoder().decode(ServerSnapshot.self, from: Data(data))
    }
}
