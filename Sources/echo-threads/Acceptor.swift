#if canImport(Glibc)
import Glibc
#endif
import EchoProtocol
import Synchronization

/// The accept loop: takes each connection, admits it against `--max-connections`, and starts its
/// detached thread. Runs on the main thread; `stop()` may be called from any thread.
final class Acceptor: Sendable {
    let listenFD: Int32
    let attributes: ThreadAttributes
    let connections: OpenConnections
    let runtime: ServerRuntime
    let bufferSize: Int
    let blocks: ConnectionBlock
    let cost: MessageCost
    /// Messages of every connection, for `--block-every`.
    let messages = MessageCost.SharedCount()
    private let stopping = Atomic<Bool>(false)

    init(listenFD: Int32, attributes: ThreadAttributes, connections: OpenConnections, runtime: ServerRuntime) {
        self.listenFD = listenFD
        self.attributes = attributes
        self.connections = connections
        self.runtime = runtime
        self.bufferSize = runtime.options.bufferSize
        self.blocks = ConnectionBlock(bufferSize: runtime.options.bufferSize)
        self.cost = runtime.options.messageCost
    }

    /// Makes `run` return: shutting the listening socket down fails the blocked `accept` with EINVAL.
    func stop() {
        stopping.store(true, ordering: .sequentiallyConsistent)
        shutdown(listenFD, Int32(SHUT_RDWR))
    }

    /// Accepts until `stop()`.
    func run() {
        // Connection threads find the acceptor through their block; it lives as long as the process.
        let shared = Unmanaged.passRetained(self)
        let counters = runtime.counters
        let limit = runtime.options.maxConnections
        var warning = RateLimitedWarning(tool: "echo-threads")
        // Held in reserve for EMFILE: closing it frees one descriptor to accept and close the
        // pending connection with, so the client is told at once instead of waiting in the backlog.
        var spare = SpareDescriptor()
        // Out of descriptors, Linux fails accept(2) before it looks at the queue, so a blocking
        // accept returns at once. Then wait with poll until a client is queued, and accept it as
        // usual first: descriptors may have been freed meanwhile, and that client is served. Only
        // if accept still fails is the queue refused with the spare's slot, nonblocking. (A blocking
        // accept with the spare given up would wait for the next client and refuse it even when
        // descriptors had been freed meanwhile.)
        var outOfDescriptors = false

        while true {
            if outOfDescriptors {
                guard waitUntilQueued() else { return }
            }
            let fd = Listener.accept(listenFD, nonBlocking: false)
            if fd < 0 {
                let code = errno
                if stopping.load(ordering: .sequentiallyConsistent) { return }
                switch AcceptPolicy.failure(code) {
                case .failedInQueue, .queueEmpty:
                    continue
                case .outOfDescriptors:
                    warning.emit("out of file descriptors (\(errnoDescription(code))); closing new connections at once")
                    if outOfDescriptors,
                        spare.refuseQueued(on: listenFD, batch: 128, counters: counters) == .noSlot
                    {
                        usleep(10_000)  // the freed slot went elsewhere: rest instead of spinning
                    }
                    outOfDescriptors = true
                case .other:
                    warning.emit("cannot accept: \(errnoDescription(code))")
                    usleep(10_000)  // ENOBUFS, ENOMEM: give the system a moment instead of spinning
                }
                continue
            }
            outOfDescriptors = false
            spare.reopenIfLost()

            guard counters.admit(limit: limit) else {
                close(fd)
                continue
            }
            guard connections.insert(fd) else {  // stopping
                close(fd)
                counters.refuseAdmitted()
                return
            }
            guard let block = blocks.allocate(fd: fd, shared: shared) else {
                let code = errno
                refuse(fd, counters: counters)
                warning.emit(
                    "cannot map a \(ByteCount.describe(bufferSize)) buffer (\(errnoDescription(code))); connection closed")
                continue
            }
            var thread = pthread_t()
            let result = pthread_create(&thread, attributes.pointer, connectionThreadMain, block)
            if result != 0 {
                blocks.free(block)
                refuse(fd, counters: counters)
                warning.emit(
                    "cannot create a thread (\(errnoDescription(result))) with \(counters.snapshot.active) connections open; connection closed")
            }
        }
    }

    /// Blocks until a connection is queued on the listener (or `stop()`: false). Polls in 100 ms
    /// slices so a stop is seen even if the shut-down listener raised no event.
    private func waitUntilQueued() -> Bool {
        var entry = pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0)
        while !stopping.load(ordering: .sequentiallyConsistent) {
            let ready = poll(&entry, 1, 100)
            if ready > 0 { return true }
            if ready < 0 && errno != EINTR { return true }  // let accept report what is wrong
        }
        return false
    }

    private func refuse(_ fd: Int32, counters: ServerCounters) {
        connections.remove(fd)
        close(fd)
        counters.refuseAdmitted()
    }
}

/// A warning printed at most once a second on stderr; the ones in between are counted and the
/// next printed warning says how many were suppressed. Used only by the accept loop's thread.
struct RateLimitedWarning {
    let tool: String
    private var lastPrinted: ContinuousClock.Instant?
    private var suppressed = 0

    init(tool: String) { self.tool = tool }

    mutating func emit(_ message: String) {
        let now = ContinuousClock.now
        if let lastPrinted, now - lastPrinted < .seconds(1) {
            suppressed += 1
            return
        }
        let note = suppressed > 0 ? " (\(suppressed) similar warnings suppressed)" : ""
        writeAll(STDERR_FILENO, Array("\(tool): warning: \(message)\(note)\n".utf8))
        lastPrinted = now
        suppressed = 0
    }
}
