#if canImport(Glibc)
import Glibc
#endif
import EchoProtocol
import Foundation

// A server that is not ours, read from outside: /proc for its process tree, taskstats for its
// context switches. Only loadgen and the tests read foreign servers, so this lives in a module of
// its own and the servers do not link it (nor the taskstats headers).
extension ServerSnapshot {
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
}

extension ProcStatus {
    /// Context switches summed over every live thread of a process (`/proc/PID/task/*/status`).
    /// The process-level status counts only its main thread; the sum is what the process did,
    /// except for threads that have already exited.
    /// The slow way, one file per thread: the fallback where taskstats (ThreadGroupStats) is not permitted.
    public static func contextSwitchesOfAllThreads(pid: Int32) -> ThreadGroupStats.ContextSwitches? {
        guard let tasks = directoryEntries("/proc/\(pid)/task") else { return nil }
        var total = ThreadGroupStats.ContextSwitches(voluntary: 0, involuntary: 0)
        for tid in tasks {
            guard let text = readText("/proc/\(pid)/task/\(tid)/status") else { continue }
            let status = ProcStatus(parsing: text)
            total.voluntary += status.voluntaryContextSwitches
            total.involuntary += status.involuntaryContextSwitches
        }
        return total
    }
}
