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

    /// A foreign process, read from /proc: CPU from /proc/PID/stat, context switches of all its
    /// threads (taskstats, or a sum over /proc/PID/task), memory from its status file. Nil when the process is gone.
    /// `proportional` adds the tree's PSS (`memory.pssKiB`), which costs a walk of every mapping: about
    /// 20 ms of kernel time for a server with 5,000 thread stacks, so only `idle` asks for it.
    public static func ofProcess(pid: Int32, variant: String = "foreign", proportional: Bool = false) -> ServerSnapshot? {
        // A server made of several processes (one that forks per connection, an inetd) is its whole
        // tree: memory, threads, descriptors, CPU and switches are summed over the live descendants,
        // and the CPU of children already reaped comes from the root's cutime/cstime.
        guard let root = ProcessFigures.read(pid: pid, proportional: proportional) else { return nil }
        var total = root
        for child in descendants(of: pid) {
            if let figures = ProcessFigures.read(pid: child, proportional: proportional) { total.add(figures) }
        }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let uptime = (readText("/proc/uptime")?.split(separator: " ").first).flatMap { Double($0) } ?? 0
        return ServerSnapshot(
            variant: variant, pid: pid, uptimeSeconds: max(0, uptime - root.startTicks / ticks), counters: nil,
            usage: ResourceUsage(
                userSeconds: (total.utimeTicks + root.reapedUtimeTicks) / ticks,
                systemSeconds: (total.stimeTicks + root.reapedStimeTicks) / ticks,
                voluntaryContextSwitches: total.voluntary, involuntaryContextSwitches: total.involuntary,
                maxRSSKiB: total.hwmKiB),
            memory: Memory(rssKiB: total.rssKiB, hwmKiB: total.hwmKiB, vmSizeKiB: total.vmSizeKiB, pssKiB: total.pssKiB),
            threads: total.threads, openFDs: total.openFDs, contextSwitchesFrom: total.switchesFrom)
    }

    /// A process's `Pss:` from /proc/PID/smaps_rollup, KiB; nil when it is gone or unreadable.
    static func proportionalSetKiB(pid: Int32) -> Int? {
        guard let text = readText("/proc/\(pid)/smaps_rollup"),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("Pss:") })
        else { return nil }
        return line.split(separator: " ").dropFirst().first.flatMap { Int($0) }
    }

    /// Every live process below `pid`, found by walking /proc's parent links.
    public static func descendants(of pid: Int32) -> [Int32] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        var children: [Int32: [Int32]] = [:]
        for name in names {
            guard let process = Int32(name), let stat = readText("/proc/\(name)/stat"),
                let close = stat.lastIndex(of: ")")
            else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 1, let parent = Int32(fields[1]) { children[parent, default: []].append(process) }
        }
        var found: [Int32] = []
        var queue = children[pid] ?? []
        while let next = queue.popLast() {
            found.append(next)
            queue += children[next] ?? []
        }
        return found
    }

    /// One process's figures from /proc, in the units /proc gives (clock ticks, KiB).
    struct ProcessFigures {
        var rssKiB: Int
        var hwmKiB: Int
        var vmSizeKiB: Int
        var threads: Int
        var openFDs: Int
        var utimeTicks: Double
        var stimeTicks: Double
        var reapedUtimeTicks: Double
        var reapedStimeTicks: Double
        var startTicks: Double
        var voluntary: Int
        var involuntary: Int
        /// `.procThreads` when any process of the tree had to be read a file per thread.
        var switchesFrom: SwitchCounting
        /// Asked for (`proportional`) only.
        var pssKiB: Int?

        static func read(pid: Int32, proportional: Bool) -> ProcessFigures? {
            // Taskstats sums the switches of every thread in one request; the per-thread /proc sum is the
            // fallback where it is not permitted, and takes a file per thread (see ThreadGroupStats).
            let counted = ThreadGroupStats.contextSwitches(ofThreadGroup: pid)
            guard let status = ProcStatus.read(pid: pid), let stat = readText("/proc/\(pid)/stat"),
                let switches = counted ?? ProcStatus.contextSwitchesOfAllThreads(pid: pid)
            else { return nil }
            // Fields after the command name, which is in parentheses and may contain spaces.
            guard let close = stat.lastIndex(of: ")") else { return nil }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            // fields[0] is field 3 (state): utime is field 14, stime 15, cutime 16, cstime 17, starttime 22.
            guard fields.count > 19, let utime = Double(fields[11]), let stime = Double(fields[12]),
                let cutime = Double(fields[13]), let cstime = Double(fields[14]), let start = Double(fields[19])
            else { return nil }
            return ProcessFigures(
                rssKiB: status.vmRSSKiB, hwmKiB: status.vmHWMKiB, vmSizeKiB: status.vmSizeKiB, threads: status.threads,
                openFDs: openFileDescriptorCount(pid: pid) ?? 0, utimeTicks: utime, stimeTicks: stime,
                reapedUtimeTicks: cutime, reapedStimeTicks: cstime, startTicks: start,
                voluntary: switches.voluntary, involuntary: switches.involuntary,
                switchesFrom: counted == nil ? .procThreads : .taskstats,
                pssKiB: proportional ? proportionalSetKiB(pid: pid) : nil)
        }

        /// Adds a descendant's live figures (its reaped children are counted by their own parent).
        mutating func add(_ other: ProcessFigures) {
            rssKiB += other.rssKiB
            hwmKiB += other.hwmKiB
            vmSizeKiB += other.vmSizeKiB
            threads += other.threads
            openFDs += other.openFDs
            utimeTicks += other.utimeTicks + other.reapedUtimeTicks
            stimeTicks += other.stimeTicks + other.reapedStimeTicks
            voluntary += other.voluntary
            involuntary += other.involuntary
            if other.switchesFrom == .procThreads { switchesFrom = .procThreads }
            if let pss = pssKiB { pssKiB = pss + (other.pssKiB ?? 0) }
        }
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
