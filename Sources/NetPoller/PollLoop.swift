#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// One netpoller loop: a thread that runs Swift jobs and waits on epoll, as Go's scheduler runs
/// goroutines and calls `netpoll` between them. It is a `TaskExecutor` (SE-0417): a task started
/// with `addTask(executorPreference: loop)` or `Task(executorPreference: loop)`, and every child it
/// creates, runs its nonisolated code on this loop's thread, so a socket it waits on is always
/// serviced by the thread it runs on, and a message costs one job, not a hop between threads.
///
/// Why a task executor and not the global one: Swift 6.3 has no public way to replace the global
/// executor, so the server opts its tasks in by preference; tasks that do not (none in echo-tasks)
/// would run on Swift's default pool.
///
/// One iteration, top to bottom (`run`):
/// 1. run the jobs that are ready, batch after batch (jobs they enqueue form the next batch), until
///    none is left, `batchesPerPoll` batches have run or `pollIntervalNanoseconds` have passed; each
///    job gets a budget of `budgetPerJob` operations before its task yields (fairness);
/// 2. call `epoll_wait`, blocking only if no job is ready;
/// 3. deliver its events to the descriptors, which resume their waiters (enqueueing jobs);
/// 4. if woken, take what other threads posted: jobs and cancellation requests.
///
/// Threading: `enqueue` and `requestCancellation` may be called from any thread; work from another
/// thread goes into a locked inbox and wakes the loop with one eventfd write, guarded by a
/// "wake pending" flag so a burst costs one write. Everything else belongs to the loop's thread.
public final class PollLoop: TaskExecutor, @unchecked Sendable {
    public let index: Int

    /// A buffer every task on this loop may use between two suspension points (e.g. a connection's
    /// read and its echo), so an idle connection owns no buffer. Never hold it across an `await`.
    public let scratch: UnsafeMutableRawBufferPointer

    /// Treat a read shorter than the buffer as "drained" and wait for the next event instead of
    /// reading again to see EAGAIN (Tokio does; Go does not). Safe with edge-triggered epoll: any
    /// byte that arrives after the read makes a new event; the two cases where bytes are left behind
    /// a short read with no event to come (end of stream, urgent data) turn it off per descriptor
    /// (`PollDescriptor.shortReadShowsDrained`). Set before the loop runs.
    public let shortReadDrains: Bool

    /// Called on the loop's thread at the end of every iteration, e.g. to publish per-loop tallies.
    /// Set before the loop runs.
    public var iterationEnded: (() -> Void)?

    private let epollFD: Int32
    private let wakeFD: Int32
    private let events: UnsafeMutableRawPointer
    private static let maxEvents = 256
    /// Batches of jobs run between two looks at epoll when jobs keep making jobs (tasks handing
    /// work to each other): a syscall per handoff would cost more than the handoff, and never
    /// looking would starve the sockets. Go's scheduler strikes the same balance with its
    /// every-61st-schedule check of the global queue.
    private static let batchesPerPoll = 64
    /// However many batches that is, the loop looks at epoll, its inbox and cancellation requests at
    /// least this often while jobs keep coming (one clock read per batch). A job that runs longer
    /// cannot be interrupted; `budgetPerJob` bounds the ones that keep finding data.
    static let pollIntervalNanoseconds: UInt64 = 500_000
    /// Operations that find data (reads that need not wait) one job may make before its task yields
    /// the loop: Tokio's coop budget (128 per task poll), Go's preemption after 10 ms. Without it a
    /// connection whose every read fills the buffer and whose every write fits never suspends, and
    /// its loop never looks at epoll or at anyone else. At 16 KiB a read, 128 is about a millisecond
    /// of one busy connection before the others get a turn; at 64 B, a yield per 128 messages costs
    /// nothing measurable.
    public static let budgetPerJob = 128
    private static let wakeToken: UInt64 = 0

    /// Who runs the loop: its thread's id (`pthread_self`), with bit 0 set while that thread is in a
    /// blocking call made through `blocking`; 0 while no thread runs it (not started, stopped, or
    /// being handed to another thread). How `enqueue` tells "from my own thread". One word, so that
    /// "the call returned, the loop is still mine" and "the monitor took the loop" cannot both win.
    private let state = Atomic<UInt>(0)
    private static let inCallBit: UInt = 1
    /// When the current marked call began (valid while `state` has the in-call bit).
    private let callStarted = Atomic<UInt64>(0)
    /// How long the loop's previous marked call lasted: the monitor's guess at the next one's.
    private let previousCallLasted = Atomic<UInt64>(0)
    /// Jobs run so far (one writer, the loop's thread): the monitor's sign of life.
    private let jobCount = Atomic<UInt>(0)
    /// True while the loop's thread waits in `epoll_wait` with nothing to run (not stuck: idle).
    private let waitingForEvents = Atomic<Bool>(false)
    /// The group's monitor, which hands the loop to another thread during a long blocking call;
    /// nil (a loop of its own, as in tests) runs `blocking` calls inline. Set before the loop runs.
    /// Weak: the monitor holds its loops.
    weak var monitor: LoopMonitor?
    private let wakePending = Atomic<Bool>(false)
    private let stopRequested = Atomic<Bool>(false)
    private let inbox = Mutex(Inbox())

    private struct Inbox {
        var jobs: [UnownedJob] = []
        var cancellations: [(PollDescriptor, PollDescriptor.Direction)] = []
    }

    // The loop thread's own state. Only the thread that owns the loop touches it (other threads
    // post to the inbox), so the dynamic exclusivity check Swift makes on every access to a class's
    // stored `var` has nothing to find here; it costs a thread-local lookup each time, several per
    // job (over a quarter of a task-to-task handoff: 0.29 → 0.21 µs), hence `@exclusivity(unchecked)`.
    /// What is left of the running job's `budgetPerJob`.
    @exclusivity(unchecked) private var budget = 0
    @exclusivity(unchecked) private var ready: [UnownedJob] = []
    /// Tasks that yielded their turn (`yieldTurn`), resumed at the start of the next batch.
    @exclusivity(unchecked) private var yielded: [UnsafeContinuation<Void, Never>] = []
    @exclusivity(unchecked) private var resuming: [UnsafeContinuation<Void, Never>] = []
    @exclusivity(unchecked) private var running: [UnownedJob] = []
    /// The next job of `running` to run: a thread that loses the loop mid-batch leaves the rest of
    /// the batch to the thread that takes it over.
    @exclusivity(unchecked) private var runningIndex = 0
    /// Registered descriptors by fd number, as redis indexes its file events: 8 bytes a slot.
    private var descriptors: [PollDescriptor?] = []
    private var generation: UInt32 = 0
    /// Events whose token matched no registered descriptor (a closed, perhaps reused, fd).
    private(set) var staleEvents = 0

    public init(index: Int = 0, scratchBytes: Int = 16 * 1024, shortReadDrains: Bool = true) throws(SocketError) {
        self.index = index
        self.shortReadDrains = shortReadDrains
        epollFD = c_epoll_create1(Epoll.closeOnExec)
        guard epollFD >= 0 else { throw SocketError(code: errno, operation: "epoll_create1") }
        wakeFD = c_eventfd(0, Epoll.closeOnExec | Epoll.nonBlocking)
        guard wakeFD >= 0 else {
            let code = errno
            Glibc.close(epollFD)
            throw SocketError(code: code, operation: "eventfd")
        }
        // Level-triggered: a wake-up written while the loop runs jobs is still there at the next wait.
        Epoll.control(epollFD, Epoll.add, wakeFD, events: Epoll.input, token: Self.wakeToken)
        scratch = .allocate(byteCount: max(scratchBytes, 1), alignment: 64)
        events = .allocate(byteCount: Self.maxEvents * Epoll.eventSize, alignment: 16)
    }

    /// A loop that has ended and is no longer referenced gives back its epoll descriptor, its
    /// eventfd and its buffers (a process that makes loops again and again, like `handoff`'s
    /// rounds or the tests, must not leak them). Registered sockets are their owners' to close.
    deinit {
        Glibc.close(epollFD)
        Glibc.close(wakeFD)
        scratch.deallocate()
        events.deallocate()
    }

    /// True on the loop's own thread while it runs.
    @inline(__always)
    public var isCurrent: Bool {
        state.load(ordering: .relaxed) & ~Self.inCallBit == UInt(pthread_self())
    }

    // MARK: Jobs

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        if isCurrent {
            ready.append(job)  // a task resumed by this loop, or spawned here: no lock, no wake-up
        } else {
            inbox.withLock { $0.jobs.append(job) }
            wake()
        }
    }

    /// Posts a request, from any thread, to resume the task parked on `descriptor` in `direction`
    /// with `CancellationError`. The loop does it, on its thread, if that task is still parked.
    func requestCancellation(of descriptor: PollDescriptor, _ direction: PollDescriptor.Direction) {
        inbox.withLock { $0.cancellations.append((descriptor, direction)) }
        wake()
    }

    /// Makes `run` leave once no job is ready. Any thread. Tasks still parked on the loop are not
    /// resumed: request a stop only when every task on the loop has ended (a server stops its loops
    /// after its root task returns).
    public func requestStop() {
        stopRequested.store(true, ordering: .sequentiallyConsistent)
        wake()
    }

    /// One eventfd write per burst: only the poster that turns the flag on writes.
    private func wake() {
        guard !wakePending.exchange(true, ordering: .sequentiallyConsistent) else { return }
        var one: UInt64 = 1
        _ = Glibc.write(wakeFD, &one, 8)
    }

    // MARK: The loop

    /// Runs jobs and waits for events on the calling thread until `requestStop` (a loop of its
    /// own; a group's loops run through their monitor, which may move them between threads).
    public func run() {
        adopt()
        _ = drive()
    }

    /// Makes the calling thread the loop's owner.
    func adopt() {
        state.store(UInt(pthread_self()), ordering: .sequentiallyConsistent)
    }

    enum DriveOutcome { case stopped, handedOff }

    /// The loop itself, on the thread that owns it: returns `.stopped` after `requestStop` once no
    /// job is ready, or `.handedOff` as soon as a job returns on a thread that lost the loop to
    /// the monitor during a blocking call (another thread runs it by then: touch nothing of it).
    func drive() -> DriveOutcome {
        while true {
            var batches = 0
            let started = Self.now()
            repeat {
                guard runReadyJobs() else { return .handedOff }
                batches += 1
            } while !(ready.isEmpty && yielded.isEmpty) && batches < Self.batchesPerPoll
                && Self.now() &- started < Self.pollIntervalNanoseconds
            iterationEnded?()
            let idle = ready.isEmpty && yielded.isEmpty
            if idle && stopRequested.load(ordering: .sequentiallyConsistent) {
                state.store(0, ordering: .sequentiallyConsistent)
                return .stopped
            }
            poll(blocking: idle)
        }
    }

    /// Runs a batch, or the rest of one a thread that lost the loop left behind. False when this
    /// thread lost the loop during a job.
    private func runReadyJobs() -> Bool {
        if runningIndex == 0 {
            resumeYielded()
            swap(&ready, &running)
        }
        let executor = asUnownedTaskExecutor()
        let me = UInt(pthread_self())
        while runningIndex < running.count {
            let job = running[runningIndex]
            runningIndex += 1
            budget = Self.budgetPerJob
            job.runSynchronously(on: executor)
            jobCount.store(jobCount.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
            if state.load(ordering: .sequentiallyConsistent) != me {
                // Handed off during a blocking call in that job: the task waits for this thread
                // to have left the job before it goes back to its loop.
                monitor?.resumeTaskAfterLoss(thread: me)
                return false
            }
        }
        running.removeAll(keepingCapacity: true)
        runningIndex = 0
        return true
    }

    // MARK: Blocking calls

    /// Runs `call`, a blocking call (a sleep, a file read, a lock), so that the loop's other tasks
    /// need not wait for it: Go's `entersyscall`/`exitsyscall`. The loop is marked "in a call";
    /// if the call outlasts the monitor's deadline (200 µs by default), the monitor hands the loop to
    /// another thread, which runs the other tasks meanwhile, and when the call returns this task
    /// goes back to its loop as any resumed task does. A shorter call costs two clock reads and
    /// three atomic operations.
    ///
    /// `call` must not touch the loop's state (its scratch buffer, its descriptors, its tallies):
    /// another thread may be running the loop meanwhile. Copy what it needs out of the scratch
    /// buffer first. On a loop without a monitor, `call` simply runs.
    public func blocking<Result>(_ call: () -> Result) async -> Result {
        guard let monitor else { return call() }
        let me = UInt(pthread_self())
        precondition(state.load(ordering: .relaxed) == me, "blocking(_:) called off loop \(index)'s thread")
        let start = Self.now()
        callStarted.store(start, ordering: .relaxed)
        state.store(me | Self.inCallBit, ordering: .sequentiallyConsistent)
        monitor.callStarted()
        let result = call()
        previousCallLasted.store(Self.now() &- start, ordering: .relaxed)
        if state.compareExchange(expected: me | Self.inCallBit, desired: me, ordering: .sequentiallyConsistent).exchanged {
            return result  // not handed off: the loop is still this thread's
        }
        // The monitor gave the loop to another thread. Park until this thread has left the job;
        // then the task is resumed onto the loop, wherever it runs now.
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            monitor.parkTaskAfterLoss(continuation, thread: me)
        }
        return result
    }

    /// When the loop's current marked call began; nil if its thread is not in one.
    func callStartedAt() -> UInt64? {
        guard state.load(ordering: .sequentiallyConsistent) & Self.inCallBit != 0 else { return nil }
        return callStarted.load(ordering: .relaxed)
    }

    var previousCallNanoseconds: UInt64 { previousCallLasted.load(ordering: .relaxed) }

    /// When the loop's latest marked call began, over or not (0: none yet): the monitor's sign
    /// that calls are being made.
    var lastCallStart: UInt64 { callStarted.load(ordering: .relaxed) }

    /// The monitor takes the loop from a thread in a marked call; false if the call has returned.
    func release() -> Bool {
        let current = state.load(ordering: .sequentiallyConsistent)
        guard current & Self.inCallBit != 0 else { return false }
        return state.compareExchange(expected: current, desired: 0, ordering: .sequentiallyConsistent).exchanged
    }

    var jobsRun: UInt { jobCount.load(ordering: .relaxed) }
    /// A thread runs the loop (or is in a call on it): not before it starts, not after it stops.
    var isRunning: Bool { state.load(ordering: .relaxed) != 0 }
    var isWaitingForEvents: Bool { waitingForEvents.load(ordering: .relaxed) }

    // MARK: Fairness

    /// Spends one unit of the running job's budget; false once it is spent, when the caller should
    /// `yieldTurn()` before going on. On the loop's thread.
    @inline(__always)
    public func spendBudget() -> Bool {
        budget &-= 1
        return budget >= 0
    }

    /// Puts the calling task at the back of the loop's queue, behind the jobs already ready, and
    /// lets the loop get to epoll first if its interval is up. On the loop's thread.
    ///
    /// Not `Task.yield()`: what that enqueues on is the runtime's choice, and a yield that went by
    /// way of the global pool would wake a thread of Swift's own. The task parks a continuation
    /// that the loop resumes when it starts its next batch (`resumeYielded`), which appends the
    /// task to this loop's queue (its executor preference), after everything already there.
    @inline(never)
    public func yieldTurn() async {
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            yielded.append(continuation)
        }
    }

    /// Resumes the tasks that yielded during the last batch: they join the end of `ready`.
    @inline(__always)
    private func resumeYielded() {
        guard !yielded.isEmpty else { return }
        swap(&yielded, &resuming)
        for continuation in resuming { continuation.resume() }
        resuming.removeAll(keepingCapacity: true)
    }

    @inline(__always)
    static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) &* 1_000_000_000 &+ UInt64(time.tv_nsec)
    }

    private func poll(blocking: Bool) {
        if blocking { waitingForEvents.store(true, ordering: .relaxed) }
        let count = c_epoll_wait(epollFD, events, Int32(Self.maxEvents), blocking ? -1 : 0)
        if blocking { waitingForEvents.store(false, ordering: .relaxed) }
        guard count >= 0 else {
            precondition(errno == EINTR, "epoll_wait failed: \(String(cString: strerror(errno)))")
            return
        }
        var woken = false
        for index in 0..<Int(count) {
            let (flags, token) = Epoll.event(index, in: events)
            if token == Self.wakeToken {
                woken = true
            } else {
                deliver(flags, token: token)
            }
        }
        if woken { takeInbox() }
    }

    /// Takes what other threads posted. The flag is cleared before the inbox is emptied, so a post
    /// that comes after the emptying finds it clear and writes the eventfd again: none is lost.
    private func takeInbox() {
        var count: UInt64 = 0
        _ = Glibc.read(wakeFD, &count, 8)
        wakePending.store(false, ordering: .sequentiallyConsistent)
        let posted = inbox.withLock { inbox in
            defer { inbox = Inbox() }
            return inbox
        }
        ready.append(contentsOf: posted.jobs)
        for (descriptor, direction) in posted.cancellations {
            descriptor.resume(direction, with: CancellationError())
        }
    }

    /// An event for `token`: delivered to its descriptor if the token is still current, else dropped.
    func deliver(_ flags: UInt32, token: UInt64) {
        let slot = Int(token & 0xFFFF_FFFF)
        guard slot < descriptors.count, let descriptor = descriptors[slot], descriptor.token == token else {
            staleEvents += 1
            return
        }
        descriptor.deliver(flags)
    }

    // MARK: Registration

    /// Registers `fd` (nonblocking) for its whole life, on the loop's thread. On failure the fd is
    /// left open for the caller to close.
    public func register(_ fd: Int32) throws(SocketError) -> PollDescriptor {
        assert(isCurrent || state.load(ordering: .relaxed) == 0, "register fd \(fd) on its loop's thread")
        generation &+= 1
        if generation == 0 { generation = 1 }  // token 0 is the wake-up's
        let token = UInt64(generation) << 32 | UInt64(UInt32(bitPattern: fd))
        let slot = Int(fd)
        if slot >= descriptors.count {
            let newCount = max(slot + 1, descriptors.count * 2, 1024)
            descriptors.append(contentsOf: repeatElement(nil, count: newCount - descriptors.count))
        }
        let interest = Epoll.input | Epoll.priority | Epoll.output | Epoll.readHangUp | Epoll.edgeTriggered
        guard Epoll.control(epollFD, Epoll.add, fd, events: interest, token: token) == 0 else {
            throw SocketError(code: errno, operation: "epoll_ctl")
        }
        let descriptor = PollDescriptor(fd: fd, token: token, loop: self)
        descriptors[slot] = descriptor
        return descriptor
    }

    /// Drops `descriptor` from the table (its fd is about to be closed).
    func forget(_ descriptor: PollDescriptor) {
        let slot = Int(descriptor.fd)
        if slot < descriptors.count, descriptors[slot] === descriptor { descriptors[slot] = nil }
    }
}
