#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Synchronization

/// Go's sysmon for a group of netpoller loops: it hands a loop whose thread is stuck in a blocking
/// call to another thread, so the loop's other tasks keep running; and it says when a loop is stuck
/// in a job it cannot hand off.
///
/// The model is Go's (runtime/proc.go): a loop is a P (its run queue, epoll descriptor, descriptor
/// table, scratch buffer), a thread is an M. A task makes a blocking call through
/// `PollLoop.blocking` (Go's `entersyscall`/`exitsyscall`), which marks the loop "in a call since
/// t". If the call lasts longer than its deadline (`deadline(after:)`), the monitor takes the loop from
/// that thread (`retake`) and gives it to a spare thread (`handoffp`), which goes on running it
/// where the first one stopped. When the call returns, its thread finds the loop gone, sends its
/// task back to the loop through the loop's inbox, and becomes a spare itself (Go's `exitsyscall`
/// slow path). A call that ends before the deadline costs two clock reads and three atomic operations.
///
/// Unlike Go's sysmon, which polls on a tick that backs off from 20 µs to 10 ms while nothing
/// happens, this one is told: entering a call wakes it if it dozes, and it then sleeps exactly
/// until that call's deadline (`deadline(after:)`). So a call is handed off at its deadline,
/// however long the monitor had been idle. Being told costs the calling thread a wake-up and the
/// monitor a look per call, which is waste when calls keep ending in time; then it backs off as
/// Go's does (`BackOff`).
///
/// A loop stuck in a job that did not use the bracket (CPU work, an unmarked blocking call) cannot
/// be handed off safely: Swift has no preemption at safe points, and the job holds the loop's
/// state on its thread's stack. The monitor only notices it (the loop's job counter has not moved
/// for `stuckAfterNanoseconds`) and reports it, at most once a second.
public final class LoopMonitor: @unchecked Sendable {
    /// A call longer than this hands its loop to another thread, by default. Go's sysmon's
    /// shortest tick is 20 µs; ours waits longer because a hand-off is not free: about three more
    /// context switches (the monitor's, the spare's, and the returning thread's park), measured at
    /// about 100 µs of server CPU per hand-off on this project's 2-core VM (`--block 1us
    /// --block-every 1`, every call handed off after 20 µs against inline: 2.4x the CPU per
    /// message). Waiting as long as a hand-off costs before paying for one (ski rental, as in
    /// spin-then-block) is never more than twice the better choice in hindsight; and a "1 µs"
    /// nanosleep lasts 60-170 µs here (the default 50 µs timer slack, a virtual timer), so at
    /// 20 µs every such call was handed off. On hardware with cheap switches a shorter deadline
    /// (`echo-tasks --handoff-after`) stalls the loop less.
    public static let defaultHandOffAfterNanoseconds: UInt64 = 200_000
    /// The deadline for a call on a loop whose previous call outlasted the full one: calls on a
    /// loop tend to resemble the ones before (the same code path, the same disk), so a loop that
    /// just made a long call hands the next off after Go's 20 µs rather than wait the ski-rental
    /// time again; the guess is wrong once each time the calls change.
    public static let quickHandOffAfterNanoseconds: UInt64 = 20_000
    /// A loop whose job counter has not moved for this long, outside a marked call, is reported.
    public static let stuckAfterNanoseconds: UInt64 = 10_000_000
    /// How long the monitor dozes when no loop is in a call: the stuck check's resolution.
    static let dozeNanoseconds: UInt64 = 10_000_000
    /// Spare threads kept waiting for a loop; more than that end (Go keeps idle Ms too).
    static let maxIdleSpares = 4

    let loops: [PollLoop]
    /// Where the "stuck" lines go (a server passes its own warning printer).
    private let warn: @Sendable (String) -> Void

    private let wakeUp = DispatchSemaphore(value: 0)
    /// True while the monitor sleeps its long doze: a call that starts then must wake it.
    private let dozing = Atomic<Bool>(false)
    private let shuttingDown = Atomic<Bool>(false)
    private let spares = Mutex(Spares())
    /// Tasks whose call returned after their loop was handed off, by thread: each is resumed (sent
    /// back to its loop) by its thread once the job it ran in has returned (`resumeTaskAfterLoss`).
    private let lost = Mutex<[UInt: UnsafeContinuation<Void, Never>]>([:])
    /// Times the monitor handed a loop to another thread (for tests and the final report).
    let handOffs = Atomic<Int>(0)
    /// Times the monitor woke and looked at the loops (for tests: what the back-off saves).
    let looks = Atomic<Int>(0)

    private struct Spares {
        /// Threads waiting for a loop, each with the slot it will find its loop in.
        var idle: [SpareSlot] = []
        /// Every thread the monitor started, so the group can join them at the end.
        var started: [PosixThread] = []
        var stoppedLoops = 0
        var shutDown = false
    }

    /// Where a waiting spare thread is handed its loop (nil: end the thread).
    final class SpareSlot: @unchecked Sendable {
        let ready = DispatchSemaphore(value: 0)
        var loop: PollLoop?
    }

    /// The timer slack of the thread that made the group (the process's own, 50 µs by default).
    /// The monitor's thread runs with 1 ns, and a thread inherits its creator's slack; so every
    /// spare it starts is set back to this one, or a blocking call handed to a spare would sleep
    /// more precisely (and more cheaply) than on the loop's own thread, flattering the hand-off.
    private let processTimerSlack: UInt
    /// A marked call longer than this is handed off.
    let handOffAfterNanoseconds: UInt64
    /// The deadline after a long call: Go's 20 µs, or the full one if that is shorter.
    let afterLongCallNanoseconds: UInt64

    init(loops: [PollLoop], handOffAfterNanoseconds: UInt64, warn: @escaping @Sendable (String) -> Void) {
        self.loops = loops
        self.handOffAfterNanoseconds = handOffAfterNanoseconds
        afterLongCallNanoseconds = min(Self.quickHandOffAfterNanoseconds, handOffAfterNanoseconds)
        self.warn = warn
        let slack = c_prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0)
        processTimerSlack = slack > 0 ? UInt(slack) : 50_000
    }

    // MARK: Threads (Ms)

    /// The life of a thread that runs loops: run `first` until it stops or is handed off, then wait
    /// as a spare for another loop, until the group shuts down. Every loop thread, the server's main
    /// thread included, and every spare the monitor starts, runs this.
    func runThread(startingWith first: PollLoop?) {
        var next = first
        while let loop = next {
            loop.adopt()
            switch loop.drive() {
            case .stopped: loopStopped()
            case .handedOff: break
            }
            next = waitForLoop()
        }
    }

    /// Waits until the monitor hands this thread a loop; nil when the group has shut down or
    /// enough spares wait already.
    private func waitForLoop() -> PollLoop? {
        let slot = SpareSlot()
        let parked = spares.withLock { spares -> Bool in
            guard !spares.shutDown, spares.idle.count < Self.maxIdleSpares else { return false }
            spares.idle.append(slot)
            return true
        }
        guard parked else { return nil }
        slot.ready.wait()
        return slot.loop
    }

    /// A loop ran out of work after its stop was requested; when the last has, every spare and
    /// the monitor end.
    private func loopStopped() {
        let waiting = spares.withLock { spares -> [SpareSlot] in
            spares.stoppedLoops += 1
            guard spares.stoppedLoops == loops.count else { return [] }
            spares.shutDown = true
            defer { spares.idle = [] }
            return spares.idle
        }
        guard spares.withLock({ $0.shutDown }) else { return }
        for slot in waiting { slot.ready.signal() }  // with no loop: the thread ends
        shuttingDown.store(true, ordering: .sequentiallyConsistent)
        wakeUp.signal()
    }

    /// Joins every thread the monitor started (the monitor's own and the spares), after the
    /// loops have stopped.
    func joinThreads() {
        var joined = 0
        while true {
            let threads = spares.withLock { Array($0.started.dropFirst(joined)) }
            if threads.isEmpty { return }
            threads.forEach { $0.join() }
            joined += threads.count
        }
    }

    // MARK: Blocking calls

    /// Called by `PollLoop.blocking` after it marked its loop "in a call": wakes the monitor if
    /// it dozes. The loop's mark is stored before `dozing` is read, and the monitor stores `dozing`
    /// before it looks at the marks again: one of the two sees the other, so no call goes unseen.
    @inline(__always)
    func callStarted() {
        if dozing.load(ordering: .sequentiallyConsistent), dozing.exchange(false, ordering: .sequentiallyConsistent) {
            wakeUp.signal()
        }
    }

    /// The task on `thread` found its loop handed off when its call returned: it parks here until
    /// its thread has left the job (`resumeTaskAfterLoss`), so it never runs on two threads.
    func parkTaskAfterLoss(_ continuation: UnsafeContinuation<Void, Never>, thread: UInt) {
        lost.withLock { $0[thread] = continuation }
    }

    /// On the thread that lost its loop, once the job has returned: the task goes back to its loop
    /// (resuming it enqueues it on its executor preference, the loop, through the loop's inbox).
    func resumeTaskAfterLoss(thread: UInt) {
        lost.withLock { $0.removeValue(forKey: thread) }?.resume()
    }

    // MARK: The monitor's own thread

    func start() throws(PosixThread.StartError) {
        let thread = try PosixThread(name: "poller-sysmon") { [self] in watch() }
        spares.withLock { $0.started.append(thread) }
    }

    private func watch() {
        // The deadlines are 20-200 µs; the default timer slack (50 µs) would stretch them by a lot.
        _ = c_prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0)
        var lastProgress = loops.map { _ in (count: UInt(0), since: PollLoop.now()) }
        var lastWarning: UInt64 = 0
        var lastCallSeen = loops.map { $0.lastCallStart }
        var backOff = BackOff(first: handOffAfterNanoseconds, longest: Self.dozeNanoseconds)
        while !shuttingDown.load(ordering: .sequentiallyConsistent) {
            let now = PollLoop.now()
            looks.add(1, ordering: .relaxed)
            var nextDeadline: UInt64? = nil
            var handedOff = false
            var callsMade = false
            for (index, loop) in loops.enumerated() where loop.isRunning {
                let lastCall = loop.lastCallStart
                if lastCall != lastCallSeen[index] { callsMade = true }
                lastCallSeen[index] = lastCall
                if let started = loop.callStartedAt() {
                    let deadline = started &+ deadline(after: loop.previousCallNanoseconds)
                    if now >= deadline {
                        handOff(loop)
                        handedOff = true
                    } else {
                        nextDeadline = min(nextDeadline ?? deadline, deadline)
                    }
                    lastProgress[index] = (loop.jobsRun, now)
                    continue
                }
                let count = loop.jobsRun
                if count != lastProgress[index].count || loop.isWaitingForEvents {
                    lastProgress[index] = (count, now)
                } else if now &- lastProgress[index].since >= Self.stuckAfterNanoseconds,
                    now &- lastWarning >= 1_000_000_000
                {
                    lastWarning = now
                    let stuck = (now &- lastProgress[index].since) / 1_000_000
                    warn("loop \(loop.index) has been stuck in one job for \(stuck) ms (CPU work or a blocking call not made through PollLoop.blocking); its other tasks wait")
                }
            }
            backOff.record(handedOff: handedOff, callsMade: callsMade)
            if let pause = backOff.pause {
                sleep(nanoseconds: pause)  // not dozing: calls do not wake the monitor meanwhile
            } else if let nextDeadline {
                sleep(nanoseconds: nextDeadline &- min(now, nextDeadline))
            } else {
                doze()
            }
        }
    }

    /// How long a call may last before its loop is handed off, given how long the loop's previous
    /// call lasted.
    func deadline(after previousCall: UInt64) -> UInt64 {
        previousCall > handOffAfterNanoseconds ? afterLongCallNanoseconds : handOffAfterNanoseconds
    }

    /// When the monitor stops following each call's deadline. Go's sysmon looks every 20 µs and,
    /// after 50 looks in a row that found nothing to retake, doubles its sleep up to 10 ms. Ours is
    /// woken by a call's start and looks again at its deadline, which costs a context switch or
    /// two per call: nothing next to a call that is handed off, but as much as the call itself
    /// when calls keep ending before their deadline. So after `patience` looks in a row that saw
    /// calls made and none to hand off, it looks every `pause` instead, doubling from the deadline
    /// up to `longest`, and calls do not wake it meanwhile; a long call among short ones is then
    /// handed off up to `pause` late, as Go's would be. A hand-off ends the pause, and so does a
    /// whole `longest` without a call (calls have stopped: the next one wakes the monitor again).
    struct BackOff {
        static let patience = 50
        let first: UInt64
        let longest: UInt64
        private var quietLooks = 0
        private(set) var pause: UInt64? = nil

        init(first: UInt64, longest: UInt64) {
            self.first = first
            self.longest = longest
        }

        mutating func record(handedOff: Bool, callsMade: Bool) {
            if handedOff || (!callsMade && (pause == nil || pause == longest)) {
                quietLooks = 0
                pause = nil
                return
            }
            quietLooks += 1
            guard quietLooks >= Self.patience else { return }
            pause = min(pause.map { $0 &* 2 } ?? first, longest)
        }
    }

    /// Sleeps up to `dozeNanoseconds`, or until a call starts.
    private func doze() {
        dozing.store(true, ordering: .sequentiallyConsistent)
        if loops.contains(where: { $0.callStartedAt() != nil }) {
            dozing.store(false, ordering: .sequentiallyConsistent)
            return
        }
        _ = wakeUp.wait(timeout: .now() + .nanoseconds(Int(Self.dozeNanoseconds)))
        dozing.store(false, ordering: .sequentiallyConsistent)
    }

    private func sleep(nanoseconds: UInt64) {
        var request = timespec(tv_sec: 0, tv_nsec: Int(max(nanoseconds, 1_000)))
        _ = nanosleep(&request, nil)
    }

    /// Takes `loop` from the thread stuck in its call and gives it to a spare thread (an idle one,
    /// or a new one). The spare is had first: if none can be, the loop stays where it is.
    private func handOff(_ loop: PollLoop) {
        guard let slot = spares.withLock({ $0.shutDown ? nil : $0.idle.popLast() }) ?? startSpare(for: loop) else {
            return
        }
        guard loop.release() else {
            // The call returned meanwhile: the spare waits for the next one (or ends).
            let kept = spares.withLock { spares -> Bool in
                guard !spares.shutDown, spares.idle.count < Self.maxIdleSpares else { return false }
                spares.idle.append(slot)
                return true
            }
            if !kept { slot.ready.signal() }
            return
        }
        handOffs.add(1, ordering: .relaxed)
        slot.loop = loop
        slot.ready.signal()
    }

    /// A new thread that waits in a slot for its first loop; nil, with a warning, if no thread can
    /// be had (pid_max, RLIMIT_NPROC): then the loop waits for its call like an event loop would.
    private func startSpare(for loop: PollLoop) -> SpareSlot? {
        let slot = SpareSlot()
        do {
            let slack = processTimerSlack
            let thread = try PosixThread(name: "poller-spare") { [self] in
                _ = c_prctl(PR_SET_TIMERSLACK, slack, 0, 0, 0)
                slot.ready.wait()
                runThread(startingWith: slot.loop)
            }
            spares.withLock { $0.started.append(thread) }
            return slot
        } catch {
            warn("cannot start a thread to take over loop \(loop.index) from a blocking call: \(error)")
            return nil
        }
    }
}

@_silgen_name("prctl")
private func c_prctl(_ option: Int32, _ arg2: UInt, _ arg3: UInt, _ arg4: UInt, _ arg5: UInt) -> Int32

private let PR_SET_TIMERSLACK: Int32 = 29
private let PR_GET_TIMERSLACK: Int32 = 30
