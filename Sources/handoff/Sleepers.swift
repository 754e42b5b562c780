import ArgumentParser
import EchoProtocol
import NetPoller
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// `handoff sleepers`: start n units that each sleep, wait for all, and report what they cost in
/// memory. The article's point: a thread starts with a whole stack mapping (8 MiB of address
/// space, a few pages touched), a goroutine with 2 KiB; here a Swift task is the third column.
struct Sleepers: AsyncParsableCommand {
    enum Units: String, ExpressibleByArgument, CaseIterable, Sendable { case tasks, threads }

    static let configuration = CommandConfiguration(
        abstract: "Start n tasks or pthreads that each sleep; report elapsed, peak RSS and RSS/VmSize per unit.",
        discussion: """
            Threads are detached and get the default stack (RLIMIT_STACK, 8 MiB here). If the \
            machine runs out of threads (pid_max, vm.max_map_count, RLIMIT_NPROC, memory), creation \
            stops, the reason is reported, and the run goes on with the threads it has. Per-unit \
            figures divide the growth over the start of the run (peak RSS: VmHWM; peak VmSize: \
            sampled every 1024 tasks or 256 threads) by the most units alive at once; with a short \
            --sleep, early units may end before the last ones start, so use a longer one to have \
            all n alive together.
            """
    )

    @Option(help: "What to start: tasks (Swift tasks in a task group) or threads (pthreads).")
    var units: Units = .tasks

    @Option(
        name: .short, parsing: .unconditional, help: ArgumentHelp("How many units to start, 1...1000000; 100k = 100000 (default: 100000).", valueName: "n"),
        transform: OptionValue.count("-n", in: 1...1_000_000))
    var n: Int = 100_000

    @Option(
        parsing: .unconditional, help: ArgumentHelp("How long each unit sleeps (e.g. 100ms, 2s), at most 600s (default: 100ms).", valueName: "duration"),
        transform: OptionValue.duration("--sleep"))
    var sleep: Duration = .milliseconds(100)

    @Option(
        parsing: .unconditional, help: """
            Threads only: stop creating threads while fewer than this many PIDs would stay free \
            system-wide (pid_max is shared with every other process). 0: create until pthread_create fails \
            (default: 2000).
            """, transform: OptionValue.count("--keep-free-pids", in: 0...Int.max))
    var keepFreePids: Int = 2000

    @Flag(help: "Print one JSON object instead of lines.")
    var json = false

    func validate() throws {
        guard (1...1_000_000).contains(n) else { throw ValidationError("-n must be 1...1000000, got \(n)") }
        guard sleep >= .zero, sleep <= .seconds(600) else {
            throw ValidationError("--sleep must be 0...600s, got \(DurationText.describe(sleep))")
        }
        guard keepFreePids >= 0 else { throw ValidationError("--keep-free-pids must be at least 0, got \(keepFreePids)") }
    }

    func run() async {
        let report: SleepersReport
        switch units {
        case .tasks: report = await Self.measureTasks(count: n, sleep: sleep)
        case .threads: report = Self.measureThreads(count: n, sleep: sleep, keepFreePids: keepFreePids)
        }
        emit(report, lines: report.lines, json: json)
    }

    static func measureTasks(count: Int, sleep: Duration) async -> SleepersReport {
        // Warm up first, so the executor's worker threads (their stacks, their malloc arenas) are
        // in the baseline and the per-unit figures are what one more task costs.
        await withDiscardingTaskGroup { group in
            for _ in 0..<64 { group.addTask { try? await Task.sleep(for: .milliseconds(1)) } }
        }
        let alive = AliveCount()
        var memory = MemorySampler()
        let stopwatch = Stopwatch()
        await withDiscardingTaskGroup { group in
            for index in 0..<count {
                alive.enter()
                group.addTask {
                    try? await Task.sleep(for: sleep)
                    alive.leave()
                }
                if index % 1024 == 0 { memory.sample() }
            }
            memory.sample()
        }
        let measured = stopwatch.stop()
        return SleepersReport(
            units: .tasks, requested: count, started: count, stopped: nil, sleep: sleep,
            peakAlive: alive.peak, memory: memory, measured: measured)
    }

    static func measureThreads(count: Int, sleep: Duration, keepFreePids: Int) -> SleepersReport {
        // The plan is never freed: the last sleeper may still be inside pthread_mutex_unlock on its
        // mutex when `waitUntilFinished` returns, and a detached thread cannot be waited for.
        let plan = Unmanaged.passRetained(SleeperThreadPlan(sleep: sleep)).takeUnretainedValue()
        let limits = ThreadLimits.read()
        var memory = MemorySampler()
        var started = 0
        var stopped: String?
        let stopwatch = Stopwatch()
        for index in 0..<count {
            if keepFreePids > 0, index % 64 == 0, let system = ThreadLimits.systemThreads(),
                system + 64 > limits.pidMax - keepFreePids
            {
                stopped = "stopped at \(index) threads: \(system) threads system-wide, pid_max \(limits.pidMax), "
                    + "--keep-free-pids \(keepFreePids) (pass 0 to go until pthread_create fails)"
                break
            }
            plan.alive.enter()
            do {
                // Detached, as a thread-per-connection server's threads are: a thread that has
                // ended gives its stack back at once instead of holding it until a join.
                try plan.start().detach()
                started += 1
            } catch {
                plan.alive.leave()
                stopped = "pthread_create failed at \(index) threads: \(error.reason); " + limits.diagnose(error)
            }
            if stopped != nil { break }
            if index % 256 == 0 { memory.sample() }
        }
        memory.sample()
        plan.waitUntilFinished(started)
        let measured = stopwatch.stop()
        return SleepersReport(
            units: .threads, requested: count, started: started, stopped: stopped, sleep: sleep,
            // A unit is counted alive just before pthread_create; a failed create must not count.
            peakAlive: min(plan.alive.peak, started), memory: memory, measured: measured)
    }
}

/// What every sleeper thread shares. A thread only borrows it (no retain, no release, no malloc or
/// free), so it costs its stack and kernel task and nothing else — not even a glibc malloc arena.
/// The object must outlive its threads, so it is never freed.
final class SleeperThreadPlan: @unchecked Sendable {
    // @unchecked is safe: `finished` is read and written only while `mutex` is held; the other
    // stored properties are immutable or atomic; mutex and condition variable sit at fixed addresses.
    let alive = AliveCount()
    private let seconds: Int
    private let nanoseconds: Int
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let changed = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var finished = 0

    init(sleep: Duration) {
        let (seconds, attoseconds) = sleep.components
        self.seconds = Int(seconds)
        nanoseconds = Int(attoseconds / 1_000_000_000)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(changed, nil)
    }

    /// Starts one sleeper thread.
    func start() throws(PosixThread.StartError) -> PosixThread {
        try PosixThread(bare: { raw in
            Unmanaged<SleeperThreadPlan>.fromOpaque(raw!)._withUnsafeGuaranteedRef { $0.sleepOnce() }
            return nil
        }, context: Unmanaged.passUnretained(self).toOpaque(), name: "sleeper")
    }

    /// Returns once `count` sleepers have finished.
    func waitUntilFinished(_ count: Int) {
        pthread_mutex_lock(mutex)
        while finished < count { pthread_cond_wait(changed, mutex) }
        pthread_mutex_unlock(mutex)
    }

    private func sleepOnce() {
        var request = timespec(tv_sec: seconds, tv_nsec: nanoseconds)
        var remaining = timespec()
        while nanosleep(&request, &remaining) == -1 && errno == EINTR { request = remaining }
        alive.leave()
        pthread_mutex_lock(mutex)
        finished += 1
        pthread_cond_signal(changed)
        pthread_mutex_unlock(mutex)
    }
}

/// Units started and not yet finished, and the most there ever were at once.
final class AliveCount: Sendable {
    private let current = Atomic<Int>(0)
    private let highest = Atomic<Int>(0)

    func enter() {
        let now = current.wrappingAdd(1, ordering: .relaxed).newValue
        var seen = highest.load(ordering: .relaxed)
        while now > seen {
            let (exchanged, original) = highest.weakCompareExchange(
                expected: seen, desired: now, ordering: .relaxed)
            if exchanged { break }
            seen = original
        }
    }

    func leave() { current.wrappingSubtract(1, ordering: .relaxed) }

    var peak: Int { highest.load(ordering: .relaxed) }
}

/// /proc/self/status at the start, and the highest thread count and VmSize seen while units start
/// (sampled every 1024 units and once all have started). Peak RSS is the kernel's own high-water
/// mark, VmHWM; VmPeak cannot serve for VmSize, as it may date from before the baseline.
struct MemorySampler {
    let baseline: ProcStatus
    private(set) var peakThreads: Int
    private(set) var peakVmSizeKiB: Int

    init() {
        baseline = ProcStatus.read() ?? ProcStatus()
        peakThreads = baseline.threads
        peakVmSizeKiB = baseline.vmSizeKiB
    }

    mutating func sample() {
        guard let status = ProcStatus.read() else { return }
        peakThreads = max(peakThreads, status.threads)
        peakVmSizeKiB = max(peakVmSizeKiB, status.vmSizeKiB)
    }
}

/// The system limits that decide how many threads can exist.
struct ThreadLimits {
    var pidMax: Int
    var threadsMax: Int
    var maxMapCount: Int
    var processLimit: Int  // RLIMIT_NPROC soft limit (counts every thread of the user; not for root)
    var addressSpaceLimit: Int  // RLIMIT_AS soft limit, bytes (`ulimit -v`)
    var stackSize: Int  // RLIMIT_STACK soft limit, bytes: glibc's default thread stack size

    static func read() -> ThreadLimits {
        func softLimit(_ resource: UInt32) -> Int {
            var limit = rlimit()
            guard getrlimit(Int32(resource), &limit) == 0 else { return Int.max }
            return Int(clamping: limit.rlim_cur)
        }
        // RLIMIT_NPROC and RLIMIT_STACK are macros Swift cannot see; the enum values behind them it can.
        return ThreadLimits(
            pidMax: number(in: "/proc/sys/kernel/pid_max") ?? 32768,
            threadsMax: number(in: "/proc/sys/kernel/threads-max") ?? Int.max,
            maxMapCount: number(in: "/proc/sys/vm/max_map_count") ?? Int.max,
            processLimit: softLimit(__RLIMIT_NPROC.rawValue),
            addressSpaceLimit: softLimit(RLIMIT_AS.rawValue),
            stackSize: softLimit(RLIMIT_STACK.rawValue))
    }

    /// Threads on the whole machine: the denominator of /proc/loadavg's fourth field.
    static func systemThreads() -> Int? {
        guard let text = readText("/proc/loadavg") else { return nil }
        let fields = text.split(separator: " ")
        guard fields.count >= 4, let slash = fields[3].firstIndex(of: "/") else { return nil }
        return Int(fields[3][fields[3].index(after: slash)...])
    }

    /// Which limit a failed pthread_create most likely hit, with the numbers to judge by.
    /// glibc reports both a failed clone (no PID left) and a failed stack mmap as EAGAIN.
    func diagnose(_ error: PosixThread.StartError) -> String {
        let system = Self.systemThreads() ?? 0
        let maps = readText("/proc/self/maps").map { $0.utf8.lazy.filter { $0 == UInt8(ascii: "\n") }.count } ?? 0
        let addressSpace = (ProcStatus.read()?.vmSizeKiB ?? 0) * 1024
        let likely: String
        if addressSpaceLimit != Int.max, addressSpace.addingReportingOverflow(stackSize).partialValue > addressSpaceLimit {
            likely = "RLIMIT_AS (ulimit -v \(addressSpaceLimit / 1024) KiB; one more stack would pass it)"
        } else if maps >= maxMapCount - 8 {
            likely = "vm.max_map_count (each thread stack is two mappings: stack and guard page)"
        } else if system >= pidMax - 400 {
            likely = "pid_max (every thread takes a PID)"
        } else if system >= threadsMax - 8 {
            likely = "kernel.threads-max"
        } else if error.code == EAGAIN {
            likely = "RLIMIT_NPROC or memory for the stack (RLIMIT_NPROC \(processLimit), does not bind root)"
        } else {
            likely = "memory"
        }
        return "likely limit: \(likely); system threads \(system) of pid_max \(pidMax) and threads-max \(threadsMax), "
            + "this process's mappings \(maps) of vm.max_map_count \(maxMapCount)"
    }

    private static func number(in path: String) -> Int? {
        readText(path).flatMap { Int($0.split(separator: "\n").first ?? "") }
    }
}

/// One run of `sleepers`.
struct SleepersReport: Codable {
    var mode = "sleepers"
    var units: String
    var requested: Int
    var started: Int
    /// Why fewer than `requested` units started, if they did.
    var stopped: String?
    var sleepMilliseconds: Double
    var peakAlive: Int
    var elapsedMilliseconds: Double
    var baselineRSSKiB: Int
    var peakRSSKiB: Int
    var rssPerUnitKiB: Double
    var baselineVmSizeKiB: Int
    var peakVmSizeKiB: Int
    var vmSizePerUnitKiB: Double
    var threadsUsed: Int
    var voluntaryContextSwitches: Int
    var involuntaryContextSwitches: Int
    var userSeconds: Double
    var systemSeconds: Double

    init(
        units: Sleepers.Units, requested: Int, started: Int, stopped: String?, sleep: Duration, peakAlive: Int,
        memory: MemorySampler, measured: Measured
    ) {
        // VmHWM read after every unit has ended is the peak RSS of the whole run.
        let end = ProcStatus.read() ?? memory.baseline
        self.units = units.rawValue
        self.requested = requested
        self.started = started
        self.stopped = stopped
        let (seconds, attoseconds) = sleep.components
        sleepMilliseconds = Double(seconds) * 1000 + Double(attoseconds) / 1e15
        self.peakAlive = peakAlive
        elapsedMilliseconds = Double(measured.nanoseconds) / 1e6
        baselineRSSKiB = memory.baseline.vmRSSKiB
        peakRSSKiB = end.vmHWMKiB
        rssPerUnitKiB = Double(peakRSSKiB - baselineRSSKiB) / Double(max(peakAlive, 1))
        baselineVmSizeKiB = memory.baseline.vmSizeKiB
        peakVmSizeKiB = memory.peakVmSizeKiB
        vmSizePerUnitKiB = Double(peakVmSizeKiB - baselineVmSizeKiB) / Double(max(peakAlive, 1))
        threadsUsed = memory.peakThreads
        voluntaryContextSwitches = measured.usage.voluntaryContextSwitches
        involuntaryContextSwitches = measured.usage.involuntaryContextSwitches
        userSeconds = measured.usage.userSeconds
        systemSeconds = measured.usage.systemSeconds
    }

    var lines: [String] {
        var lines = [
            "mode: sleepers",
            "units: \(units)",
            "requested: \(requested)",
            "started: \(started)",
        ]
        if let stopped { lines.append("stopped: \(stopped)") }
        lines += [
            "sleep: \(TextFormat.fixed(sleepMilliseconds, 0)) ms",
            "peak alive: \(peakAlive)",
            "elapsed: \(TextFormat.fixed(elapsedMilliseconds, 3)) ms",
            "peak RSS (VmHWM): \(peakRSSKiB) KiB (before: \(baselineRSSKiB) KiB)",
            "RSS per unit: \(TextFormat.fixed(rssPerUnitKiB, 2)) KiB",
            "VmSize per unit: \(TextFormat.fixed(vmSizePerUnitKiB, 2)) KiB (peak VmSize \(peakVmSizeKiB) KiB)",
            "threads used: \(threadsUsed)",
            "voluntary context switches: \(voluntaryContextSwitches)",
            "involuntary context switches: \(involuntaryContextSwitches)",
        ]
        return lines
    }
}
