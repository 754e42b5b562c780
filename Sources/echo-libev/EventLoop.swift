import CLibev
import EchoProtocol
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One libev event loop and everything it owns: its listening socket, its connections and the one
/// read buffer they share. State lives here, in one place, as in redis's `aeEventLoop`; the other
/// files of this module add what the loop does (`Accepting.swift`, `Connection.swift`).
///
/// Threading: the loop is built on the main thread and then used only by its own thread, with one
/// exception, `requestStop`, which any thread may call (`ev_async_send` is documented thread-safe).
/// That is why the class is `@unchecked Sendable`: the compiler cannot see the hand-off.
final class EventLoop: @unchecked Sendable {
    /// Connections accepted per readiness event of the listener: enough to drain a burst of
    /// connects quickly, few enough that established connections are not starved meanwhile.
    static let acceptBatch = 128

    /// How long the listener rests when accepting fails for want of resources (see `pauseAccepting`).
    static let acceptRetryDelay = 0.1

    let index: Int
    let loop: OpaquePointer
    let listener: Int32
    let counters: ServerCounters
    let maxConnections: Int

    /// `--work` / `--block` on every message, and the count of messages that decides which block.
    let cost: MessageCost
    var messages = 0
    /// `--offload N`: where blocking calls run instead of this loop's thread (one pool shared by the
    /// loops, so at most N run at once); nil runs them here.
    let offload: BlockingPool?
    /// Connections whose offloaded call has finished, as addresses, posted by the pool's threads;
    /// `offloadWatcher` wakes the loop to resume them.
    let offloadsDone = Mutex<[UInt]>([])

    /// Every read of every connection on this loop lands here and is written straight back, so an
    /// idle connection owns no buffer at all. `--buffer-size` bytes.
    let readBuffer: UnsafeMutableRawBufferPointer

    /// The watchers libev keeps pointers to (the listener's, the timer that resumes it after a
    /// pause, the stop wake-up, the end-of-iteration check) and the byte tally, in one block of
    /// whole cache lines (see `LoopBlock`).
    let acceptWatcher: UnsafeMutablePointer<ev_io>
    let acceptRetryTimer: UnsafeMutablePointer<ev_timer>
    let stopWatcher: UnsafeMutablePointer<ev_async>
    let offloadWatcher: UnsafeMutablePointer<ev_async>
    let tallyWatcher: UnsafeMutablePointer<ev_check>

    /// Bytes echoed since the end of the last loop iteration. Plain integers the hot path bumps
    /// without atomics; `flushTally` adds them to the shared atomic `counters` once per iteration
    /// (the ev_check watcher), so the stats endpoint lags by one iteration at most. Behind a
    /// pointer, because a class's stored `var` costs a dynamic exclusivity check per access.
    let tally: UnsafeMutablePointer<ByteTally>

    /// A descriptor held in reserve for running out of them (see `refuseQueuedConnections`).
    var spare = SpareDescriptor()

    /// Set when the loop reports running out of descriptors, cleared by the next successful accept,
    /// so the warning appears once per episode instead of once per refused connection.
    var warnedOutOfDescriptors = false

    /// This loop's connections by fd, as redis indexes its file events: 8 bytes per descriptor,
    /// and the way to find every connection when the loop stops.
    var connections: [UnsafeMutablePointer<Connection>?] = []

    /// Creates the loop and starts watching `listener`; `run` then serves it.
    init(index: Int, listener: Int32, runtime: ServerRuntime, offload: BlockingPool?) throws(StartupError) {
        // epoll is what this server is about; any other backend is a fallback worth a warning.
        var created = ev_loop_new(clibev_backend_epoll())
        if created == nil {
            warn("echo-libev: epoll is unavailable; event loop \(index) uses libev's default backend")
            created = ev_loop_new(0)  // EVFLAG_AUTO
        }
        guard let created else { throw StartupError("cannot create a libev event loop") }

        self.index = index
        self.loop = created
        self.listener = listener
        self.counters = runtime.counters
        self.maxConnections = runtime.options.maxConnections
        self.cost = runtime.options.messageCost
        self.offload = offload
        self.readBuffer = .allocate(byteCount: runtime.options.bufferSize, alignment: LoopBlock.cacheLine)
        let block = LoopBlock.allocate()
        self.acceptWatcher = block.pointer(to: \.acceptWatcher)!
        self.acceptRetryTimer = block.pointer(to: \.acceptRetryTimer)!
        self.stopWatcher = block.pointer(to: \.stopWatcher)!
        self.offloadWatcher = block.pointer(to: \.offloadWatcher)!
        self.tallyWatcher = block.pointer(to: \.tallyWatcher)!
        self.tally = block.pointer(to: \.tally)!

        // Every callback finds this object through the loop's user pointer. The array of loops in
        // `EchoLibev.run` keeps it alive for as long as the loop runs.
        ev_set_userdata(loop, Unmanaged.passUnretained(self).toOpaque())

        clibev_io_init(acceptWatcher, listenerReady, listener, clibev_read())
        ev_io_start(loop, acceptWatcher)
        clibev_timer_init(acceptRetryTimer, acceptRetryDue, Self.acceptRetryDelay, 0)
        clibev_async_init(stopWatcher, stopRequested)
        ev_async_start(loop, stopWatcher)
        clibev_async_init(offloadWatcher, offloadFinished)
        ev_async_start(loop, offloadWatcher)
        clibev_check_init(tallyWatcher, iterationEnded)
        ev_check_start(loop, tallyWatcher)
    }

    /// Calls `body` with the object behind the loop a libev callback was called for. Borrowed, not
    /// retained: the object outlives its loop (see `init`), and a retain/release pair per event
    /// was a measurable share of the user-space time per message.
    @inline(__always)
    static func with(_ loop: OpaquePointer?, _ body: (EventLoop) -> Void) {
        Unmanaged<EventLoop>.fromOpaque(ev_userdata(loop)!)._withUnsafeGuaranteedRef(body)
    }

    /// Serves until `requestStop`. Runs on the loop's own thread.
    func run() {
        ev_run(loop, 0)
    }

    /// Wakes the loop so it stops (see `stop`). Safe from any thread, and from a signal handler.
    func requestStop() {
        ev_async_send(loop, stopWatcher)
    }

    /// Stops accepting, closes every connection (pending bytes are dropped: the server is going
    /// away), and leaves `ev_run`.
    ///
    /// The libev loop itself is not destroyed: the signal thread may still be inside
    /// `ev_async_send` for this loop when we get here, and the process exits right after anyway.
    func stop() {
        flushTally()
        ev_check_stop(loop, tallyWatcher)
        ev_io_stop(loop, acceptWatcher)
        ev_timer_stop(loop, acceptRetryTimer)
        ev_async_stop(loop, stopWatcher)
        ev_async_stop(loop, offloadWatcher)
        Glibc.close(listener)
        spare.close()
        for case let connection? in connections { close(connection) }
        ev_break(loop, clibev_break_all())
    }

    /// Publishes this iteration's byte counts to the shared counters.
    func flushTally() {
        if tally.pointee.received > 0 { counters.received(tally.pointee.received) }
        if tally.pointee.sent > 0 { counters.sent(tally.pointee.sent) }
        tally.pointee = ByteTally()
    }

    // MARK: The connection table

    func register(_ connection: UnsafeMutablePointer<Connection>, fd: Int32) {
        let slot = Int(fd)
        if slot >= connections.count {
            // Grow geometrically so a burst of accepts does not copy the table each time.
            let newCount = max(slot + 1, connections.count * 2, 1024)
            connections.append(contentsOf: repeatElement(nil, count: newCount - connections.count))
        }
        connections[slot] = connection
    }

    func unregister(fd: Int32) {
        connections[Int(fd)] = nil
    }
}

/// libev calls this when the loop's stop wake-up (`requestStop`) arrives.
private func stopRequested(_ loop: OpaquePointer?, _ watcher: UnsafeMutablePointer<ev_async>?, _ revents: Int32) {
    EventLoop.with(loop) { $0.stop() }
}

/// libev calls this when the pool has finished offloaded calls (`EventLoop.offload`).
private func offloadFinished(_ loop: OpaquePointer?, _ watcher: UnsafeMutablePointer<ev_async>?, _ revents: Int32) {
    EventLoop.with(loop) { $0.resumeOffloaded() }
}

/// libev calls this at the end of every loop iteration.
private func iterationEnded(_ loop: OpaquePointer?, _ watcher: UnsafeMutablePointer<ev_check>?, _ revents: Int32) {
    EventLoop.with(loop) { $0.flushTally() }
}

/// What libev and the hot path write on every iteration of one loop, allocated together on whole
/// cache lines: with `--loops 2` and separate small allocations, two loops' watchers would share
/// lines and two cores would bounce them back and forth (false sharing).
struct LoopBlock {
    static let cacheLine = 64

    var acceptWatcher = ev_io()
    var acceptRetryTimer = ev_timer()
    var stopWatcher = ev_async()
    var offloadWatcher = ev_async()
    var tallyWatcher = ev_check()
    var tally = ByteTally()

    /// A zeroed block, never freed: it lives as long as its loop, which lives until the process exits.
    static func allocate() -> UnsafeMutablePointer<LoopBlock> {
        let size = (MemoryLayout<LoopBlock>.size + cacheLine - 1) / cacheLine * cacheLine
        let block = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: cacheLine)
            .bindMemory(to: LoopBlock.self, capacity: 1)
        block.initialize(to: LoopBlock())
        return block
    }
}

/// Bytes one loop has echoed and not yet published to `ServerCounters`.
struct ByteTally {
    var received = 0
    var sent = 0
}

/// A line on stderr, for conditions the operator should see but that do not stop the server.
func warn(_ message: String) {
    writeAll(STDERR_FILENO, Array((message + "\n").utf8))
}
