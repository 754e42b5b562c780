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

    public struct Memory: Codable, Sendable, Equatable {
        public var rssKiB: Int
        public var hwmKiB: Int
        public var vmSizeKiB: Int

        public init(rssKiB: Int, hwmKiB: Int, vmSizeKiB: Int) {
            self.rssKiB = rssKiB
            self.hwmKiB = hwmKiB
            self.vmSizeKiB = vmSizeKiB
        }
    }

    public init(
        variant: String, pid: Int32, uptimeSeconds: Double, counters: ConnectionCounts?, usage: ResourceUsage,
        memory: Memory, threads: Int, openFDs: Int
    ) {
        self.variant = variant
        self.pid = pid
        self.uptimeSeconds = uptimeSeconds
        self.counters = counters
        self.usage = usage
        self.memory = memory
        self.threads = threads
        self.openFDs = openFDs
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
            threads: status.threads, openFDs: openFileDescriptorCount() ?? 0)
    }

    /// A foreign process, read from /proc: CPU from /proc/PID/stat, context switches summed over
    /// its threads, memory from its status file. Nil when the process is gone.
    public static func ofProcess(pid: Int32, variant: String = "foreign") -> ServerSnapshot? {
        guard let status = ProcStatus.read(pid: pid), let stat = readText("/proc/\(pid)/stat"),
            let switches = ProcStatus.contextSwitchesOfAllThreads(pid: pid)
        else { return nil }
        // Fields after the command name, which is in parentheses and may contain spaces.
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state): utime is field 14, stime 15, starttime 22.
        guard fields.count > 19, let utime = Double(fields[11]), let stime = Double(fields[12]),
            let start = Double(fields[19])
        else { return nil }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let uptime = (readText("/proc/uptime")?.split(separator: " ").first).flatMap { Double($0) } ?? 0
        return ServerSnapshot(
            variant: variant, pid: pid, uptimeSeconds: max(0, uptime - start / ticks), counters: nil,
            usage: ResourceUsage(
                userSeconds: utime / ticks, systemSeconds: stime / ticks,
                voluntaryContextSwitches: switches.voluntary, involuntaryContextSwitches: switches.involuntary,
                maxRSSKiB: status.vmHWMKiB),
            memory: Memory(rssKiB: status.vmRSSKiB, hwmKiB: status.vmHWMKiB, vmSizeKiB: status.vmSizeKiB),
            threads: status.threads, openFDs: openFileDescriptorCount(pid: pid) ?? 0)
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
