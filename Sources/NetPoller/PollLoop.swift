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
///    none is left or `batchesPerPoll` batches have run;
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
    /// byte that arrives after the read makes a new event. Set before the loop runs.
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
    private static let wakeToken: UInt64 = 0

    /// The loop thread's id while `run` runs, else 0: how `enqueue` tells "from my own thread".
    private let owner = Atomic<UInt>(0)
    private let wakePending = Atomic<Bool>(false)
    private let stopRequested = Atomic<Bool>(false)
    private let inbox = Mutex(Inbox())

    private struct Inbox {
        var jobs: [UnownedJob] = []
        var cancellations: [(PollDescriptor, PollDescriptor.Direction)] = []
    }

    // The loop thread's own state.
    private var ready: [UnownedJob] = []
    private var running: [UnownedJob] = []
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

    // The loop lives as long as the process; its descriptors are closed by their owners.

    /// True on the loop's own thread while it runs.
    @inline(__always)
    public var isCurrent: Bool {
        owner.load(ordering: .relaxed) == UInt(pthread_self())
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

    /// Runs jobs and waits for events on the calling thread until `requestStop`.
    public func run() {
        owner.store(UInt(pthread_self()), ordering: .relaxed)
        defer { owner.store(0, ordering: .relaxed) }
        while true {
            var batches = 0
            repeat {
                runReadyJobs()
                batches += 1
            } while !ready.isEmpty && batches < Self.batchesPerPoll
            iterationEnded?()
            if ready.isEmpty && stopRequested.load(ordering: .sequentiallyConsistent) { return }
            poll(blocking: ready.isEmpty)
        }
    }

    private func runReadyJobs() {
        swap(&ready, &running)
        let executor = asUnownedTaskExecutor()
        for job in running {
            job.runSynchronously(on: executor)
        }
        running.removeAll(keepingCapacity: true)
    }

    private func poll(blocking: Bool) {
        let count = c_epoll_wait(epollFD, events, Int32(Self.maxEvents), blocking ? -1 : 0)
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
        assert(isCurrent || owner.load(ordering: .relaxed) == 0, "register fd \(fd) on its loop's thread")
        generation &+= 1
        if generation == 0 { generation = 1 }  // token 0 is the wake-up's
        let token = UInt64(generation) << 32 | UInt64(UInt32(bitPattern: fd))
        let slot = Int(fd)
        if slot >= descriptors.count {
            let newCount = max(slot + 1, descriptors.count * 2, 1024)
            descriptors.append(contentsOf: repeatElement(nil, count: newCount - descriptors.count))
        }
        let interest = Epoll.input | Epoll.output | Epoll.readHangUp | Epoll.edgeTriggered
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
