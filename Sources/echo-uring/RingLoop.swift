import CLibURing
import EchoProtocol
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// How every loop is built: the set-up flags, how recv is armed, the buffer ring's shape.
struct LoopSettings: Sendable {
    let ringFlags: UInt32
    let multishotRecv: Bool
    /// Buffers in each loop's provided-buffer ring (a power of two) and the size of each.
    let ringBuffers: Int
    let ringBufferSize: Int
}

/// One io_uring loop and everything it owns: its ring and buffer ring, its listening socket, its
/// connections. State lives here, in one place, as in redis's `aeEventLoop`; the other files add
/// what the loop does (`Accepting.swift`, `Echoing.swift`, `Offloading.swift`).
///
/// Threading: built and run on its own thread (IORING_SETUP_SINGLE_ISSUER: only the thread that
/// created the ring may submit to it). Other threads only write its eventfd (`requestStop`, the
/// offload pool), which is why the class is `@unchecked Sendable`.
final class RingLoop: @unchecked Sendable {
    /// The buffer group id of the loop's provided-buffer ring (each ring has its own group ids).
    static let bufferGroup: UInt16 = 1
    /// How long accepting rests when it fails for want of resources (see `pauseAccepting`).
    static let acceptRetryNanoseconds: Int64 = 100_000_000
    /// Completions copied out of the queue per pass.
    static let reapBatch = 256
    static let batchesPerPass = 4

    let index: Int
    let ring: OpaquePointer
    let listener: Int32
    let settings: LoopSettings
    let counters: ServerCounters
    let maxConnections: Int

    /// `--work` / `--block`, and the count of messages that decides which block (per loop).
    let cost: MessageCost
    var messages = 0
    /// `--offload N`: the pool blocking calls run on (shared by the loops); nil runs them here.
    let offload: BlockingPool?
    /// Connections whose offloaded call has finished, as (fd, generation), posted by the pool.
    let offloadsDone = Mutex<[(Int32, UInt32)]>([])

    /// Wakes the loop from other threads: written by `requestStop` and the offload pool, read by
    /// a read request always in the ring.
    let wakeFD: Int32
    let wakeBuffer = UnsafeMutablePointer<UInt64>.allocate(capacity: 1)
    let stopRequested = Atomic<Bool>(false)
    var running = true

    var connections = ConnectionTable()
    /// Ring buffers currently in the kernel's hands: recv takes one per completion, a send's end
    /// gives it back. Only a count, for deciding how many starved connections to re-arm.
    var freeBuffers: Int
    /// Connections whose recv ended with ENOBUFS, re-armed as buffers come back.
    var starved: [(fd: Int32, generation: UInt32)] = []
    /// Connections whose multishot recv left bytes in the socket this pass (`.bytesLeft`).
    var leftBytes: [(fd: Int32, generation: UInt32)] = []

    /// Bytes echoed since the last publication to `counters` (once per loop pass).
    var received = 0
    var sent = 0

    /// A descriptor held in reserve for running out of them (see `Accepting.swift`).
    var spare = SpareDescriptor()
    var warnedOutOfDescriptors = false
    var acceptPaused = false
    /// The multishot accept is in the kernel (it ends on an error, or when the kernel says so).
    var acceptArmed = false

    let completions: UnsafeMutablePointer<curing_cqe>

    /// Creates the ring and its buffer ring and arms the accept; on the loop's own thread.
    init(index: Int, listener: Int32, settings: LoopSettings, runtime: ServerRuntime, offload: BlockingPool?)
        throws(StartupError)
    {
        var created: OpaquePointer?
        // Submission slots for a burst of sends; the completion queue 8x that, so a burst of
        // completions waits in the queue rather than the kernel's overflow list.
        let result = curing_ring_create(&created, 1024, 8192, settings.ringFlags)
        guard result == 0, let created else { throw RingSetup.refusal(-result) }
        let buffers = curing_buffers_create(
            created, Self.bufferGroup, UInt32(settings.ringBuffers), UInt32(settings.ringBufferSize))
        guard buffers == 0 else {
            throw StartupError("cannot register a buffer ring (io_uring provided buffers need Linux 5.19): "
                + errnoDescription(-buffers))
        }
        let wake = curing_eventfd()
        guard wake >= 0 else { throw StartupError("cannot create an eventfd: \(errnoDescription(errno))") }

        self.index = index
        self.ring = created
        self.listener = listener
        self.settings = settings
        self.counters = runtime.counters
        self.maxConnections = runtime.options.maxConnections
        self.cost = runtime.options.messageCost
        self.offload = offload
        self.wakeFD = wake
        self.freeBuffers = settings.ringBuffers
        self.completions = .allocate(capacity: Self.reapBatch)

        armAccept()
        armWake()
    }

    /// Serves until `requestStop`: submit what the last pass queued and wait for a completion in
    /// one io_uring_enter, then handle every completion there is.
    func run() {
        while running {
            let result = curing_submit_and_wait(ring, 1)
            if result < 0 && result != -EINTR && result != -EAGAIN && result != -EBUSY && result != -ETIME {
                Lifecycle.fail(tool: "echo-uring", message: "io_uring_enter failed: \(errnoDescription(-result))")
            }
            // A bounded number of batches per pass: without DEFER_TASKRUN the kernel posts
            // completions whenever this thread returns from any syscall, so "until the queue is
            // empty" could last forever and starve the submissions (a cancel, a send) it waits on.
            var drained = false
            for _ in 0..<Self.batchesPerPass {
                let count = Int(curing_reap(ring, completions, UInt32(Self.reapBatch)))
                for slot in 0..<count { handle(completions[slot]) }
                if count < Self.reapBatch {
                    drained = true
                    break
                }
            }
            if drained { rearmWhereBytesWereLeft() }
            rearmStarved()
            publishTally()
        }
    }

    @inline(__always)
    func handle(_ completion: curing_cqe) {
        let data = UserData(raw: completion.user_data)
        switch data.operation {
        case .recv: received(completion, data)
        case .send: sent(completion, data)
        case .accept: accepted(completion)
        case .wake: woken(completion)
        case .acceptPause: resumeAccepting()
        case .cancel, nil: break
        }
    }

    /// Asks the loop to stop. Any thread.
    func requestStop() {
        stopRequested.store(true, ordering: .releasing)
        wake()
    }

    func wake() {
        var one: UInt64 = 1
        _ = Glibc.write(wakeFD, &one, 8)
    }

    func armWake() {
        curing_read(ring, wakeFD, wakeBuffer, 8, UserData(.wake).raw)
    }

    /// The eventfd was written: stop, or resume the connections whose offloaded call is done.
    func woken(_ completion: curing_cqe) {
        if stopRequested.load(ordering: .acquiring) { return stop() }
        resumeOffloaded()
        armWake()
    }

    /// Closes the listener and every connection (pending bytes are dropped: the server is going
    /// away) and leaves `run`. The ring is left to the process's exit.
    func stop() {
        publishTally()
        Glibc.close(listener)
        spare.close()
        for fd in 0..<Int32(connections.highWater) {
            let connection = connections[fd]
            guard connection.pointee.state.contains(.open) else { continue }
            Glibc.close(fd)
            connection.pointee.state = []
            counters.closed()
        }
        running = false
    }

    /// Publishes this pass's byte counts to the shared counters.
    func publishTally() {
        if received > 0 { counters.received(received) }
        if sent > 0 { counters.sent(sent) }
        received = 0
        sent = 0
    }
}

/// A line on stderr, for conditions the operator should see but that do not stop the server.
func warn(_ message: String) {
    Lifecycle.warn(message)
}
