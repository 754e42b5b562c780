#if canImport(Glibc)
import Glibc
#endif
import EchoProtocol
import Histogram
import NetPoller

/// `loadgen churn`'s engine, shaped as ClientLoop is: its state, and one handler per event. A slot
/// holds one life (connect → one message, every byte verified → close); a life that ends starts
/// the next in its slot until `end`. One edge-triggered epoll set, one thread.
final class ChurnEngine {
    private struct Life {
        var fd: Int32 = -1
        var startedAt: UInt64 = 0
        var sent = 0
        var received = 0
        var connected = false
    }

    let connection: ConnectionSettings
    let messageSize: Int
    let lifeTimeout: Duration
    let metrics: LiveMetrics?
    /// No life starts from then on (the end of the measured phase).
    let end: UInt64

    private let epollFD: Int32
    private let events: UnsafeMutableRawPointer
    private let message: [UInt8]
    private var buffer: [UInt8]
    private var lives: [Life]

    /// Lives counted since the measured phase began (`measuring`), and their latency.
    private(set) var completed = 0
    private(set) var latency = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
    private(set) var measuring = false
    /// Failures by kind, warm-up included: a failure is a failure.
    private(set) var errors = ChurnResult.Errors()
    /// Set when churning cannot go on (no socket, out of ports); the run stops.
    var stopReason: String? = nil
    /// Lives that ended well, warm-up included: the live line's rate.
    private(set) var livesEnded = 0
    /// Lives started, for rotating the source addresses.
    private var started = 0
    private var tally = LiveMetrics.Tally()
    private var nextPublish: UInt64 = 0

    init(connection: ConnectionSettings, concurrency: Int, messageSize: Int, lifeTimeout: Duration, metrics: LiveMetrics?,
         end: UInt64) throws(StartupError) {
        self.connection = connection
        self.messageSize = messageSize
        self.lifeTimeout = lifeTimeout
        self.metrics = metrics
        self.end = end
        epollFD = c_epoll_create1(Epoll.closeOnExec)
        guard epollFD >= 0 else { throw StartupError("epoll_create1: \(errnoDescription(errno))") }
        events = UnsafeMutableRawPointer.allocate(byteCount: 256 * Epoll.eventSize, alignment: 16)
        message = (0..<messageSize).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 13) }
        buffer = [UInt8](repeating: 0, count: max(messageSize, 4096))
        lives = [Life](repeating: Life(), count: concurrency)
    }

    deinit {
        finishAll()
        close(epollFD)
        events.deallocate()
    }

    /// Starts a life in every slot.
    func startAll(now: UInt64) {
        for slot in lives.indices where stopReason == nil { _ = start(slot, now: now) }
    }

    /// The measured phase begins: what came before was warm-up.
    func beginMeasuring() {
        measuring = true
        completed = 0
        latency.reset()
    }

    /// Waits up to 10 ms for events and handles them, then ends the lives that have gone on too long.
    func poll() {
        var timeout = timespec(tv_sec: 0, tv_nsec: 10_000_000)
        let ready = c_epoll_pwait2(epollFD, events, 256, &timeout, nil)
        let now = monotonicNanoseconds()
        for index in 0..<max(0, Int(ready)) {
            let (flags, token) = Epoll.event(index, in: events)
            let slot = Int(token)
            guard slot < lives.count, lives[slot].fd >= 0 else { continue }
            onReady(slot, flags: flags, now: now)
        }
        expireLives(now: now)
    }

    /// Ends every life (the run is over).
    func finishAll() {
        for slot in lives.indices { finish(slot) }
    }

    // MARK: Handlers

    /// Its socket is ready: connected (or failed to), writable, or readable.
    private func onReady(_ slot: Int, flags: UInt32, now: UInt64) {
        var life = lives[slot]
        if !life.connected {
            let error = ClientSocket.connectResult(life.fd)
            if error != 0 {
                fail(slot, error == ECONNREFUSED ? .refused : .reset, "cannot connect to \(connection.target): \(errnoDescription(error))")
                restart(slot, now: now)
                return
            }
            guard flags & Epoll.output != 0 else { return }
            life.connected = true
        }
        if life.sent < messageSize {
            let n = message.withUnsafeBytes { write(life.fd, $0.baseAddress! + life.sent, messageSize - life.sent) }
            if n > 0 { life.sent += n } else if n < 0 && errno != EAGAIN && errno != EINTR {
                fail(slot, .reset, "write: \(errnoDescription(errno))")
                restart(slot, now: now)
                return
            }
        }
        if !onReadable(slot, &life) {
            restart(slot, now: now)
        } else if life.received == messageSize {
            onEchoed(slot, life, now: now)
            restart(slot, now: now)
        } else {
            lives[slot] = life
        }
    }

    /// Reads and verifies what came back; false when that ended the life (counted as a failure).
    private func onReadable(_ slot: Int, _ life: inout Life) -> Bool {
        while life.received < messageSize {
            let n = buffer.withUnsafeMutableBytes { read(life.fd, $0.baseAddress, $0.count) }
            if n > 0 {
                for offset in 0..<n where life.received + offset >= messageSize || buffer[offset] != message[life.received + offset] {
                    fail(slot, .mismatch, life.received + offset >= messageSize
                         ? "more bytes came back than were sent"
                         : life.received + offset == 0
                         ? "not an echo server: the first byte back was not the first byte sent"
                         : "byte \(life.received + offset) of a life came back wrong")
                    return false
                }
                life.received += n
            } else if n == 0 {
                fail(slot, .short, "the server closed after \(life.received) of \(messageSize) bytes")
                return false
            } else if errno == EAGAIN || errno == EINTR {
                return true
            } else {
                fail(slot, .reset, "read: \(errnoDescription(errno))")
                return false
            }
        }
        return true
    }

    /// The whole message came back: the life is over, counted.
    private func onEchoed(_ slot: Int, _ life: Life, now: UInt64) {
        livesEnded += 1
        if metrics != nil {
            tally.messages += 1
            tally.record(latencyNanoseconds: now - life.startedAt)
        }
        if measuring {
            completed += 1
            latency.record(now - life.startedAt)
        }
        finish(slot)
    }

    /// Lives that have gone on too long: the server never answered.
    private func expireLives(now: UInt64) {
        for slot in lives.indices where lives[slot].fd >= 0 && now - lives[slot].startedAt >= lifeTimeout.nanoseconds {
            fail(slot, .timedOut, "a life got no answer within \(lifeTimeout.shortDescription)")
            restart(slot, now: now)
        }
    }

    // MARK: Lives

    private func restart(_ slot: Int, now: UInt64) {
        if now < end { _ = start(slot, now: now) }
    }

    /// Starts a life in `slot`; false when it could not even start (the cause is counted, or stops the run).
    private func start(_ slot: Int, now: UInt64) -> Bool {
        let fd = ClientSocket.open(for: connection.target)
        guard fd >= 0 else {
            stopReason = "cannot create a socket: \(errnoDescription(errno)) (ulimit -n?)"
            return false
        }
        // No TCP_NODELAY: a life sends one write, which Nagle never holds back.
        if !connection.sourceAddresses.isEmpty {
            // Rotate the source addresses; connect() picks the port, so ports are shared across targets.
            let source = connection.sourceAddresses[started % connection.sourceAddresses.count]
            _ = ClientSocket.bind(fd, to: source)
        }
        started += 1
        lives[slot] = Life(fd: fd, startedAt: now)
        let code = ClientSocket.startConnect(fd, to: connection.target)
        if code != 0 && code != EINPROGRESS {
            if code == EADDRNOTAVAIL {
                stopReason = "out of local ports (EADDRNOTAVAIL): closed connections hold theirs in TIME_WAIT; "
                    + "add --source-addresses 127.0.0.1-127.0.0.32 or widen net.ipv4.ip_local_port_range"
                finish(slot)
                return false
            }
            fail(slot, code == ECONNREFUSED ? .refused : .reset, "cannot connect to \(connection.target): \(errnoDescription(code))")
            return true
        }
        // Edge-triggered: level-triggered EPOLLOUT would report the socket on every wait while
        // the life waits for its echo.
        Epoll.control(epollFD, Epoll.add, fd, events: Epoll.input | Epoll.output | Epoll.edgeTriggered, token: UInt64(slot))
        return true
    }

    private func fail(_ slot: Int, _ kind: ChurnRun.Failure, _ text: String) {
        errors.count(kind, text)
        finish(slot)
    }

    private func finish(_ slot: Int) {
        if lives[slot].fd >= 0 { close(lives[slot].fd) }  // also leaves the epoll set
        lives[slot] = Life()
    }

    // MARK: Metrics

    /// Publishes every life since the start, warm-up included, as the other commands' metrics count;
    /// at most ten times a second unless `force` (the final totals).
    func publish(now: UInt64, force: Bool = false) {
        guard let metrics, force || now >= nextPublish else { return }
        tally.bytes = tally.messages &* messageSize
        tally.open = lives.reduce(0) { $0 + ($1.fd >= 0 ? 1 : 0) }
        tally.errors = errors.byMetricName
        metrics.publish(tally, from: 0)
        nextPublish = now + LiveMetrics.publishEveryNanoseconds
    }
}
