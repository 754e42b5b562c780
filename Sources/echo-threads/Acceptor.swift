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
        // pending connection with, so the client is told at once instead of waiting in the backlog
        // (libev's manual: "The special problem of accept()ing when you can't").
        var spareFD = open("/dev/null", O_RDONLY | O_CLOEXEC)

        while true {
            let fd = Listener.accept(listenFD, nonBlocking: false)
            if fd < 0 {
                let code = errno
                if stopping.load(ordering: .sequentiallyConsistent) { return }
                switch code {
                case ECONNABORTED, EPROTO, EPERM:
                    continue  // that connection died in the backlog; the next one is fine
                case EMFILE, ENFILE:
                    if spareFD >= 0 {
                        close(spareFD)
                        let pending = Listener.accept(listenFD, nonBlocking: false)
                        if pending >= 0 {
                            close(pending)
                            counters.refuse()
                        }
                        spareFD = open("/dev/null", O_RDONLY | O_CLOEXEC)
                    } else {
                        usleep(10_000)
                        spareFD = open("/dev/null", O_RDONLY | O_CLOEXEC)
                    }
                    warning.emit("out of file descriptors (\(errnoDescription(code))); closing new connections at once")
                default:
                    warning.emit("cannot accept: \(errnoDescription(code))")
                    usleep(10_000)  // ENOBUFS, ENOMEM: give the system a moment instead of spinning
                }
                continue
            }

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
