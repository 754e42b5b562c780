#if canImport(Glibc)
import Glibc
#endif
import EchoProtocol
import Histogram
import NetPoller

/// `loadgen churn`: the article's creation cost. Each connection's life is connect → one message,
/// every byte verified → close; `concurrency` lives are in flight, and one starts as another ends.
/// One epoll loop on one thread, as the run engine's loops are; never a thread per connection.
struct ChurnRun {
    var connection: ConnectionSettings
    var concurrency = 64
    var messageSize = 16
    var duration: Duration = .seconds(10)
    var warmup: Duration = .seconds(1)
    /// A life that has not ended after this long is counted as timed out and closed.
    var lifeTimeout: Duration = .seconds(5)
    /// `--metrics-port`: lives (as messages), failures by kind, lives open, life latency.
    var metrics: LiveMetrics? = nil

    enum Failure: String, Codable, Sendable, CaseIterable {
        case refused, reset, timedOut, mismatch, short
    }

    private struct Life {
        var fd: Int32 = -1
        var startedAt: UInt64 = 0
        var sent = 0
        var received = 0
        var connected = false
    }

    /// `progress`, when given, gets a live line once a second: elapsed time, phase, lives per second
    /// over the last second, errors so far.
    func run(stop: StopRequest? = nil, progress: ((String) -> Void)? = nil) throws(StartupError) -> ChurnResult {
        guard concurrency >= 1, messageSize >= 1, messageSize <= 64 * 1024 else {
            throw StartupError("churn needs a concurrency of at least 1 and a size of 1 B...64 KiB")
        }
        try Preflight.checkReachable(connection)
        let (probe, probeNote) = ServerProbe.choose(
            statsAddress: connection.serverStats, pid: connection.serverPID, target: connection.target)
        let epollFD = c_epoll_create1(Epoll.closeOnExec)
        guard epollFD >= 0 else { throw StartupError("epoll_create1: \(errnoDescription(errno))") }
        defer { close(epollFD) }

        let message = (0..<messageSize).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 13) }
        var buffer = [UInt8](repeating: 0, count: max(messageSize, 4096))
        var lives = [Life](repeating: Life(), count: concurrency)
        var latency = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
        var failures: [Failure: Int] = [:]
        var firstError: String? = nil
        var completed = 0
        var started = 0
        var stopReason: String? = nil
        let events = UnsafeMutableRawPointer.allocate(byteCount: 256 * Epoll.eventSize, alignment: 16)
        defer { events.deallocate() }

        let begin = monotonicNanoseconds()
        let measureFrom = begin + warmup.nanoseconds
        let end = measureFrom + duration.nanoseconds
        var measuring = false
        var serverStart: ServerSnapshot? = nil
        var serverEnd: ServerSnapshot? = nil
        var serverNote = probeNote
        var serverRead = ServerReadCost()
        var clientStart = ResourceUsage.ofSelf()

        func fail(_ slot: Int, _ kind: Failure, _ text: String) {
            failures[kind, default: 0] += 1  // warm-up included: a failure is a failure
            if firstError == nil { firstError = text }
            finish(slot)
        }
        func finish(_ slot: Int) {
            if lives[slot].fd >= 0 { close(lives[slot].fd) }  // also leaves the epoll set
            lives[slot] = Life()
        }
        /// Starts a life in `slot`; false when it could not even start (the cause is counted).
        func start(_ slot: Int, now: UInt64) -> Bool {
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

        var tally = LiveMetrics.Tally()
        var nextPublish: UInt64 = 0
        /// Every life since the start, warm-up included, as the other commands' metrics count.
        func publish(now: UInt64) {
            guard let metrics, now >= nextPublish else { return }
            tally.bytes = tally.messages &* messageSize
            tally.open = lives.reduce(0) { $0 + ($1.fd >= 0 ? 1 : 0) }
            tally.errors = Dictionary(uniqueKeysWithValues: Failure.allCases.map { ($0.rawValue, failures[$0] ?? 0) })
            metrics.publish(tally, from: 0)
            nextPublish = now + LiveMetrics.publishEveryNanoseconds
        }

        for slot in 0..<concurrency where stopReason == nil { _ = start(slot, now: begin) }
        var lastTick = begin
        var livesAtTick = 0
        var livesEnded = 0  // lives that ended well, warm-up included: the live line's rate
        while stopReason == nil {
            let now = monotonicNanoseconds()
            if let progress, now - lastTick >= 1_000_000_000 {
                let perSecond = Double(livesEnded - livesAtTick) / (Double(now - lastTick) / 1e9)
                let errorCount = failures.values.reduce(0, +)
                progress("\(TextFormat.fixed(Double(now - begin) / 1e9, 0)) s  \(measuring ? "measuring" : "warm-up")  \(TextFormat.grouped(Int(perSecond))) lives/s  \(TextFormat.grouped(completed)) measured  errors \(errorCount)")
                (lastTick, livesAtTick) = (now, livesEnded)
            }
            if metrics != nil { publish(now: now) }
            if !measuring && now >= measureFrom {
                measuring = true
                completed = 0
                latency.reset()
                clientStart = ResourceUsage.ofSelf()
                serverStart = LoadRun.read(probe, note: &serverNote, when: "at the start of the measured phase",
                                           took: &serverRead)
            }
            if now >= end { break }
            if let stop, stop.isRequested {
                stopReason = ExitStatus.interruptedReason
                break
            }
            var timeout = timespec(tv_sec: 0, tv_nsec: 10_000_000)
            let ready = c_epoll_pwait2(epollFD, events, 256, &timeout, nil)
            let after = monotonicNanoseconds()
            for index in 0..<max(0, Int(ready)) {
                let (flags, token) = Epoll.event(index, in: events)
                let slot = Int(token)
                guard slot < lives.count, lives[slot].fd >= 0 else { continue }
                var life = lives[slot]
                if !life.connected {
                    let error = ClientSocket.connectResult(life.fd)
                    if error != 0 {
                        fail(slot, error == ECONNREFUSED ? .refused : .reset, "cannot connect to \(connection.target): \(errnoDescription(error))")
                        if after < end { _ = start(slot, now: after) }
                        continue
                    }
                    guard flags & Epoll.output != 0 else { continue }
                    life.connected = true
                }
                if life.sent < messageSize {
                    let n = message.withUnsafeBytes { write(life.fd, $0.baseAddress! + life.sent, messageSize - life.sent) }
                    if n > 0 { life.sent += n } else if n < 0 && errno != EAGAIN && errno != EINTR {
                        fail(slot, .reset, "write: \(errnoDescription(errno))")
                        if after < end { _ = start(slot, now: after) }
                        continue
                    }
                }
                var ended = false
                while life.received < messageSize {
                    let n = buffer.withUnsafeMutableBytes { read(life.fd, $0.baseAddress, $0.count) }
                    if n > 0 {
                        for offset in 0..<n where life.received + offset >= messageSize || buffer[offset] != message[life.received + offset] {
                            fail(slot, .mismatch, life.received + offset >= messageSize
                                 ? "more bytes came back than were sent"
                                 : life.received + offset == 0
                                 ? "not an echo server: the first byte back was not the first byte sent"
                                 : "byte \(life.received + offset) of a life came back wrong")
                            ended = true
                            break
                        }
                        if ended { break }
                        life.received += n
                    } else if n == 0 {
                        fail(slot, .short, "the server closed after \(life.received) of \(messageSize) bytes")
                        ended = true
                        break
                    } else if errno == EAGAIN || errno == EINTR {
                        break
                    } else {
                        fail(slot, .reset, "read: \(errnoDescription(errno))")
                        ended = true
                        break
                    }
                }
                if !ended && life.received == messageSize {
                    livesEnded += 1
                    if metrics != nil {
                        tally.messages += 1
                        tally.record(latencyNanoseconds: after - life.startedAt)
                    }
                    if measuring {
                        completed += 1
                        latency.record(after - life.startedAt)
                    }
                    finish(slot)
                    ended = true
                }
                if ended {
                    if after < end { _ = start(slot, now: after) }
                } else {
                    lives[slot] = life
                }
            }
            // Lives that have gone on too long: the server never answered.
            for slot in lives.indices where lives[slot].fd >= 0 && after - lives[slot].startedAt >= lifeTimeout.nanoseconds {
                fail(slot, .timedOut, "a life got no answer within \(lifeTimeout.shortDescription)")
                if after < end { _ = start(slot, now: after) }
            }
        }
        let measuredTo = monotonicNanoseconds()
        if metrics != nil {
            nextPublish = 0  // the final totals, whenever the last were published
            publish(now: measuredTo)
        }
        let clientUsage = ResourceUsage.ofSelf().since(clientStart)
        if serverStart != nil {
            serverEnd = LoadRun.read(probe, note: &serverNote, when: "at the end of the measured phase", took: &serverRead)
        }
        for slot in lives.indices { finish(slot) }
        let seconds = measuring ? Double(measuredTo - measureFrom) / 1e9 : 0
        var server: ServerFigures? = nil
        if let probe, let serverStart, let serverEnd {
            server = ServerFigures(source: probe.method, from: serverStart, to: serverEnd, seconds: seconds, messages: completed,
                                   read: serverRead)
            serverRead.note(window: seconds, countedBy: serverEnd.contextSwitchesFrom, into: &serverNote)
        }
        let client = ClientFigures(loops: 1, usage: clientUsage, seconds: seconds, messages: completed)
        return ChurnResult(
            target: connection.target.description,
            settings: .init(concurrency: concurrency, messageSize: messageSize, durationSeconds: duration.seconds,
                            warmupSeconds: warmup.seconds, sourceAddresses: connection.sourceAddresses.count, cpus: connection.cpus),
            measuredSeconds: seconds, lives: completed, livesPerSecond: seconds > 0 ? Double(completed) / seconds : 0,
            latencyMicroseconds: LatencyFigures(latency), errors: .init(failures, firstError: firstError),
            server: server, serverNote: serverNote, client: client,
            clientWasTheBottleneck: client.cpuPercent >= 90, complete: stopReason == nil, stopReason: stopReason,
            latencyHistogram: latency, provenance: .current())
    }
}

/// What `loadgen churn --json` prints. Per-connection figures are per completed life: the server's
/// `cpuMicrosecondsPerMessage` there is its CPU per connection.
struct ChurnResult: Codable, Sendable, Equatable {
    var schemaVersion = 1
    var mode = "churn"
    var target: String
    var settings: Settings
    var measuredSeconds: Double
    /// Lives that ended well (every byte back) within the measured phase.
    var lives: Int
    var livesPerSecond: Double
    /// From connect() to the last byte back.
    var latencyMicroseconds: LatencyFigures
    var errors: Errors
    var server: ServerFigures?
    var serverNote: String?
    var client: ClientFigures
    /// The client used ≥ 90% of a CPU: the figures may be the client's limit, not the server's.
    var clientWasTheBottleneck: Bool
    var complete: Bool
    var stopReason: String?
    var latencyHistogram: Histogram<UInt64>?
    var provenance: Provenance?

    struct Settings: Codable, Sendable, Equatable {
        var concurrency: Int
        var messageSize: Int
        var durationSeconds: Double
        var warmupSeconds: Double
        var sourceAddresses: Int
        var cpus: [Int]
    }

    struct Errors: Codable, Sendable, Equatable {
        var refused = 0
        var reset = 0
        var timedOut = 0
        var mismatch = 0
        var short = 0
        var firstError: String?
        var total = 0

        init(_ counts: [ChurnRun.Failure: Int], firstError: String?) {
            refused = counts[.refused] ?? 0
            reset = counts[.reset] ?? 0
            timedOut = counts[.timedOut] ?? 0
            mismatch = counts[.mismatch] ?? 0
            short = counts[.short] ?? 0
            total = refused + reset + timedOut + mismatch + short
            self.firstError = firstError
        }
    }

    var succeeded: Bool { complete && errors.total == 0 && lives > 0 }

    /// Why it did not succeed, in one line for stderr; nil when it did.
    var failureLine: String? {
        if succeeded { return nil }
        if let first = errors.firstError { return "\(errors.total) error\(errors.total == 1 ? "" : "s"); the first: \(first)" }
        return stopReason
    }

    var table: String {
        let l = latencyMicroseconds
        var lines = [
            "churn \(target): \(settings.concurrency) lives in flight, \(settings.messageSize) B each, \(TextFormat.fixed(measuredSeconds, 1)) s measured",
            "lives: \(TextFormat.grouped(lives))  (\(TextFormat.grouped(Int(livesPerSecond))) per second)",
            "life latency: \(Report.latencySummary(l))",
            "errors: \(errors.total) (refused \(errors.refused), reset \(errors.reset), timed out \(errors.timedOut), mismatch \(errors.mismatch), short \(errors.short))"
                + (errors.firstError.map { "; first: \($0)" } ?? ""),
        ]
        if let server {
            lines.append("server: \(TextFormat.fixed(server.cpuMicrosecondsPerMessage, 1)) µs CPU and \(TextFormat.fixed(server.contextSwitchesPerMessage, 2)) context switches per connection")
        } else if let serverNote {
            lines.append("server: \(serverNote)")
        }
        lines.append("client: \(TextFormat.fixed(client.cpuMicrosecondsPerMessage, 1)) µs CPU per connection, \(TextFormat.fixed(client.cpuPercent, 0))% of a CPU"
            + (clientWasTheBottleneck ? " — the client was the bottleneck" : ""))
        if let stopReason { lines.append("stopped early: \(stopReason)") }
        return lines.joined(separator: "\n")
    }
}
