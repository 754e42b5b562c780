#if canImport(Glibc)
import Glibc
#endif
import EchoProtocol
import NetPoller
import Histogram

/// One client event loop: one thread, one epoll instance, its share of the connections.
///
/// Reads top to bottom like redis's ae.c: `run()` is the loop, each `on…` function handles one event.
/// Level-triggered epoll; a connection is watched for input always and for output only while a write
/// is partial. All state lives in buffers allocated once, so the hot path (read, verify, time, record,
/// write) allocates nothing.
///
/// A connection counts as up once one message has made the round trip (its greeting): a client's
/// connect() succeeds when the server's kernel answers, even if the server's accept queue then overflows
/// and the connection is not really there until TCP retries. The load starts only after every greeting.
///
/// Payload: connection `id` sends the byte `(offset + 7·id) mod 251` at stream offset `offset`, so
/// every echoed byte is compared with what must come back there, and streams of different
/// connections differ.
final class ClientLoop: @unchecked Sendable {
    // @unchecked Sendable: after `init` the loop's mutable state is touched only by the thread running
    // `run()`; the coordinator reads `outcome` after joining that thread, and otherwise only `status`
    // (atomics) and `control` (atomics).

    let plan: LoopPlan
    let control: RunControl
    let status = LoopStatus()
    private(set) var outcome = LoopOutcome()

    static let patternPeriod = 251
    static let readBufferSize = 64 * 1024
    /// Most bytes one write hands the kernel; the pattern buffer is this much longer than its period.
    static let writeChunk = 64 * 1024
    static let maxPendingConnects = 256
    static let maxEvents = 1024
    /// Latencies above an hour are recorded as an hour.
    static let highestLatency: UInt64 = 3_600_000_000_000

    private struct Connection {
        enum State: UInt8 { case notStarted, connecting, open, closed }
        var fd: Int32 = -1
        var state = State.notStarted
        var wantsOutput = false
        var wasEstablished = false
        var id = 0
        /// Where this connection's stream starts in the pattern.
        var seed = 0
        var queued = 0  // stream bytes queued for sending
        var sent = 0  // stream bytes written
        var received = 0  // stream bytes received and verified
        var messagesQueued = 0
        var messagesDone = 0
        var measuredMessages = 0
        var connectStartedAt: UInt64 = 0
    }

    private let count: Int
    private let wakeFD: Int32
    private let wakeToken = UInt64.max
    private var epollFD: Int32 = -1
    private let connections: UnsafeMutablePointer<Connection>
    /// Send time of each message in flight: `slots` per connection, a ring indexed by message number.
    private let sendTimes: UnsafeMutablePointer<UInt64>
    private let slotMask: Int
    private let pattern: UnsafeMutableRawPointer
    private let readBuffer: UnsafeMutableRawPointer
    private let events: UnsafeMutableRawPointer

    private let messageSize: Int
    private let closedLoopDepth: Int  // 0 unless closed loop
    private let echoOnce: Bool

    // Phase and schedule, copied from `control` at each wake-up.
    private var measureAt: UInt64 = .max
    private var stopAt: UInt64 = .max
    private var startedAt: UInt64 = 0

    // Tallies.
    private var open = 0
    private var pendingConnects = 0
    /// Open connections whose first message has not come back yet.
    private var pendingGreetings = 0
    /// Set when the load begins: from then on a closed loop refills.
    private var sending = false
    private var nextToConnect = 0
    private var connectStartedAt: UInt64 = 0
    private var inFlight = 0
    private var completed = 0
    private var echoed = 0
    private var measured = Histogram<UInt64>(highestTrackableValue: highestLatency, numberOfSignificantValueDigits: .three)
    private var live = Histogram<UInt64>(highestTrackableValue: highestLatency, numberOfSignificantValueDigits: .two)
    /// Open loop: how late each measured message left (send time − scheduled time). Its own histogram, so
    /// the client's oversleeping can be told from the server's latency, which includes it.
    private var lateness = Histogram<UInt64>(highestTrackableValue: highestLatency, numberOfSignificantValueDigits: .three)
    /// With `plan.intervalNanoseconds`: the current interval's latencies, and its index in the measured phase.
    private var intervalLatency = IntervalRecording.emptyHistogram()
    private var intervalIndex = 0
    /// `--metrics-port`: this loop's totals, copied to `plan.metrics` at most ten times a second.
    private var metricsTally = LiveMetrics.Tally()
    private var nextMetricsPublish: UInt64 = 0

    // Open loop: message n of this loop is due at startedAt + n·interval on connection openList[n % count].
    private var interval: Double = 0
    private var issued = 0
    private var openList: [Int] = []
    private var scheduleStalled = false

    init(plan: LoopPlan, control: RunControl, wakeFD: Int32) {
        self.plan = plan
        self.control = control
        self.wakeFD = wakeFD
        count = plan.connectionIDs.count
        messageSize = plan.messageSize
        switch plan.workload {
        case .closedLoop(let depth):
            closedLoopDepth = depth
            echoOnce = false
        case .openLoop:
            closedLoopDepth = 0
            echoOnce = false
        case .echoOnce:
            closedLoopDepth = 0
            echoOnce = true
        }
        let inFlightCap: Int
        switch plan.workload {
        case .closedLoop(let depth): inFlightCap = depth
        case .openLoop(_, let maxInFlight): inFlightCap = maxInFlight
        case .echoOnce: inFlightCap = 1
        }
        var slots = 1
        while slots < inFlightCap { slots <<= 1 }
        slotMask = slots - 1

        connections = .allocate(capacity: max(count, 1))
        for (index, id) in plan.connectionIDs.enumerated() {
            (connections + index).initialize(to: Connection(id: id, seed: (id % Self.patternPeriod) * 7 % Self.patternPeriod))
        }
        sendTimes = .allocate(capacity: max(count, 1) * slots)
        let patternLength = Self.patternPeriod + max(Self.writeChunk, Self.readBufferSize)
        pattern = .allocate(byteCount: patternLength, alignment: 16)
        for offset in 0..<patternLength {
            pattern.storeBytes(of: UInt8(offset % Self.patternPeriod), toByteOffset: offset, as: UInt8.self)
        }
        readBuffer = .allocate(byteCount: Self.readBufferSize, alignment: 16)
        events = .allocate(byteCount: Self.maxEvents * Epoll.eventSize, alignment: 16)
    }

    deinit {
        for index in 0..<count where connections[index].fd >= 0 { close(connections[index].fd) }
        connections.deinitialize(count: count)
        connections.deallocate()
        sendTimes.deallocate()
        pattern.deallocate()
        readBuffer.deallocate()
        events.deallocate()
        if epollFD >= 0 { close(epollFD) }
    }

    // MARK: The loop

    private enum Phase { case connecting, ready, loading, draining, holding, done }

    /// Runs the loop on the calling thread until the run is over, then closes every connection.
    func run() {
        let began = (wall: monotonicNanoseconds(), cpu: threadCPUNanoseconds())
        defer {
            // How busy this loop's thread was over its life: about 100% with --spin, little without.
            let wall = monotonicNanoseconds() - began.wall
            outcome.busyPercent = wall > 0 ? 100 * Double(threadCPUNanoseconds() - began.cpu) / Double(wall) : 0
        }
        if let cpu = plan.cpu { pinCurrentThread(to: [cpu]) }
        epollFD = c_epoll_create1(Epoll.closeOnExec)
        guard epollFD >= 0 else {
            for _ in 0..<count { outcome.errors.count(.connectFailed, "epoll_create1: \(errnoDescription(errno))") }
            finish()
            return
        }
        Epoll.control(epollFD, Epoll.add, wakeFD, events: Epoll.input, token: wakeToken)

        var phase = Phase.connecting
        var drainDeadline: UInt64 = 0
        var nextExpiryCheck: UInt64 = 0
        var nextLiveTick: UInt64 = 0
        connectStartedAt = monotonicNanoseconds()

        while phase != .done {
            let now = monotonicNanoseconds()
            if control.closeNow.load(ordering: .acquiring) { break }
            stopAt = control.stopAt.load(ordering: .relaxed)

            if nextToConnect < count { startConnects(now: now) }
            if (pendingConnects > 0 || pendingGreetings > 0) && now >= nextExpiryCheck {
                expireConnects(now: now)
                nextExpiryCheck = now + 50_000_000
            }

            switch phase {
            case .connecting:
                if nextToConnect == count && pendingConnects == 0 && pendingGreetings == 0 {
                    publish()
                    status.connectPhaseDone.store(true, ordering: .releasing)
                    phase = .ready
                    continue
                }
            case .ready:
                if open == 0 { phase = .done; continue }
                let start = control.startAt.load(ordering: .acquiring)
                if start != 0 && !echoOnce {
                    begin(at: start)
                    phase = .loading
                    nextLiveTick = now + 1_000_000_000
                    continue
                }
            case .loading:
                if open == 0 { phase = .done; continue }
                if interval > 0 { issueDueMessages(now: now) }
                if now >= stopAt {
                    if interval > 0 { countUnsent() }
                    phase = .draining
                    drainDeadline = now + plan.drainTimeoutNanoseconds
                    continue
                }
            case .draining:
                if open == 0 { phase = .done; continue }
                if inFlight == 0 || now >= drainDeadline {
                    if inFlight > 0 { reportUndrained() }
                    publish()
                    status.drained.store(true, ordering: .releasing)
                    phase = .holding
                    continue
                }
            case .holding:
                if open == 0 { phase = .done; continue }
            case .done:
                continue
            }

            if plan.liveLatency && phase == .loading && now >= nextLiveTick {
                status.liveP99.store(live.totalCount > 0 ? live.valueAtPercentile(99) : 0, ordering: .relaxed)
                live.reset()
                nextLiveTick = now + 1_000_000_000
            }

            let wakeAt = nextWakeUp(now: now, phase: phase, drainDeadline: drainDeadline,
                                    nextExpiryCheck: nextExpiryCheck, nextLiveTick: nextLiveTick)
            wait(now: now, until: wakeAt)
            publish()
        }
        finish()
    }

    /// The earliest instant something is due without an event: a connect, a phase change, a message.
    private func nextWakeUp(now: UInt64, phase: Phase, drainDeadline: UInt64, nextExpiryCheck: UInt64,
                            nextLiveTick: UInt64) -> UInt64 {
        var wakeAt = now + 1_000_000_000
        if nextToConnect < count {
            if let rate = plan.connectRate, pendingConnects < Self.maxPendingConnects {
                wakeAt = min(wakeAt, connectStartedAt + UInt64(Double(nextToConnect) / rate * 1e9))
            } else if pendingConnects < Self.maxPendingConnects {
                wakeAt = now
            }
        }
        if pendingConnects > 0 || pendingGreetings > 0 { wakeAt = min(wakeAt, nextExpiryCheck) }
        switch phase {
        case .loading:
            wakeAt = min(wakeAt, stopAt)
            if plan.liveLatency { wakeAt = min(wakeAt, nextLiveTick) }
            if interval > 0 && !scheduleStalled { wakeAt = min(wakeAt, dueTime(of: issued)) }
        case .draining:
            wakeAt = min(wakeAt, drainDeadline)
        default:
            break
        }
        return wakeAt
    }

    /// Waits for events until `deadline` and handles them.
    @inline(__always)
    private func wait(now: UInt64, until deadline: UInt64) {
        // --spin: never sleep in the kernel, so a halted CPU's wake-up never delays a send or a read.
        let delay = deadline > now && !plan.spin ? deadline - now : 0
        var timeout = timespec(tv_sec: Int(delay / 1_000_000_000), tv_nsec: Int(delay % 1_000_000_000))
        let ready = c_epoll_pwait2(epollFD, events, Int32(Self.maxEvents), &timeout, nil)
        guard ready > 0 else { return }
        for index in 0..<Int(ready) {
            let (flags, token) = Epoll.event(index, in: events)
            if token == wakeToken {
                var value: UInt64 = 0
                _ = read(wakeFD, &value, 8)
                continue
            }
            dispatch(Int(token), flags)
        }
    }

    @inline(__always)
    private func dispatch(_ index: Int, _ flags: UInt32) {
        switch connections[index].state {
        case .connecting:
            onConnectFinished(index)
        case .open:
            if flags & (Epoll.input | Epoll.hangUp | Epoll.error) != 0 { onReadable(index) }
            if flags & Epoll.output != 0 && connections[index].state == .open { pump(index) }
        case .notStarted, .closed:
            break
        }
    }

    private func publish() {
        if let metrics = plan.metrics {
            let now = monotonicNanoseconds()
            if now >= nextMetricsPublish || open == 0 {
                metricsTally.messages = completed
                metricsTally.bytes = completed &* messageSize
                metricsTally.open = open
                metricsTally.errors = outcome.errors.byMetricName
                metrics.publish(metricsTally, from: plan.connectionIDs.first ?? 0)
                nextMetricsPublish = now + LiveMetrics.publishEveryNanoseconds
            }
        }
        status.open.store(open, ordering: .relaxed)
        status.completed.store(completed, ordering: .relaxed)
        status.errors.store(outcome.errors.total, ordering: .relaxed)
        status.inFlight.store(inFlight, ordering: .relaxed)
        status.echoed.store(echoed, ordering: .relaxed)
    }

    // MARK: Connecting

    private func startConnects(now: UInt64) {
        var allowed = count
        if let rate = plan.connectRate {
            allowed = min(count, Int(Double(now - connectStartedAt) / 1e9 * rate) + 1)
        }
        while nextToConnect < allowed && pendingConnects < Self.maxPendingConnects {
            startConnect(nextToConnect, now: now)
            nextToConnect += 1
        }
    }

    private func startConnect(_ index: Int, now: UInt64) {
        let connection = connections + index
        let id = connection.pointee.id
        let fd = ClientSocket.open(for: plan.target)
        guard fd >= 0 else {
            connectFailed(index, "connection \(id): cannot create a socket: \(errnoDescription(errno))")
            return
        }
        connection.pointee.fd = fd
        Listener.setOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
        if !plan.sourceAddresses.isEmpty {
            // Let connect() pick the port, so a port is shared by connections to different targets.
            let source = plan.sourceAddresses[id % plan.sourceAddresses.count]
            guard ClientSocket.bind(fd, to: source) else {
                connectFailed(index, "connection \(id): cannot bind source address \(source.host): \(errnoDescription(errno))")
                return
            }
        }
        connection.pointee.connectStartedAt = now
        let started = ClientSocket.startConnect(fd, to: plan.target)
        if started == 0 {
            established(index, added: false)
            return
        }
        guard started == EINPROGRESS else {
            connectFailed(index, "cannot connect to \(plan.target): \(errnoDescription(started))")
            return
        }
        connection.pointee.state = .connecting
        pendingConnects += 1
        Epoll.control(epollFD, Epoll.add, fd, events: Epoll.output, token: UInt64(index))
    }

    private func onConnectFinished(_ index: Int) {
        let error = ClientSocket.connectResult(connections[index].fd)
        pendingConnects -= 1
        if error != 0 {
            connectFailed(index, "cannot connect to \(plan.target): \(errnoDescription(error))")
        } else {
            established(index, added: true)
        }
    }

    /// Fails connection attempts, and greetings, older than the connect timeout.
    private func expireConnects(now: UInt64) {
        let seconds = Duration.nanoseconds(Int64(plan.connectTimeoutNanoseconds)).shortDescription
        for index in 0..<nextToConnect {
            let connection = connections[index]
            guard now - connection.connectStartedAt >= plan.connectTimeoutNanoseconds else { continue }
            if connection.state == .connecting {
                pendingConnects -= 1
                connectFailed(index, "cannot connect to \(plan.target): no answer within \(seconds)")
            } else if connection.state == .open && connection.messagesDone == 0 {
                closeConnection(index)  // also counts it as resolved
                connections[index].wasEstablished = false
                outcome.established -= 1
                outcome.errors.count(.connectFailed,
                    "connection \(connection.id): connected, but its first echo did not come back within \(seconds) (server's accept queue full? try a lower --connect-rate)")
            }
        }
    }

    /// The kernel says connected: send the greeting; the connection is up when it comes back.
    private func established(_ index: Int, added: Bool) {
        let connection = connections + index
        connection.pointee.state = .open
        connection.pointee.wasEstablished = true
        let now = monotonicNanoseconds()
        connection.pointee.connectStartedAt = now  // the greeting gets its own connect timeout
        open += 1
        pendingGreetings += 1
        outcome.established += 1
        outcome.peakOpen = max(outcome.peakOpen, open)
        Epoll.control(epollFD, added ? Epoll.modify : Epoll.add, connection.pointee.fd, events: Epoll.input,
                      token: UInt64(index))
        queueMessage(index, sentAt: now)
        pump(index)
    }

    private func connectFailed(_ index: Int, _ message: String) {
        let connection = connections + index
        if connection.pointee.fd >= 0 {
            close(connection.pointee.fd)  // close() also removes it from epoll
            connection.pointee.fd = -1
        }
        connection.pointee.state = .closed
        outcome.errors.count(.connectFailed, message)
        status.resolved.wrappingAdd(1, ordering: .relaxed)
    }

    // MARK: Sending

    /// Starts the load: the first `depth` messages on every connection, or the open-loop schedule.
    private func begin(at start: UInt64) {
        startedAt = start
        sending = true
        measureAt = control.measureAt.load(ordering: .relaxed)
        switch plan.workload {
        case .closedLoop(let depth):
            for index in 0..<count where connections[index].state == .open {
                for _ in 0..<depth { queueMessage(index, sentAt: start) }
                pump(index)
            }
        case .openLoop(let rate, _):
            openList = (0..<count).filter { connections[$0].state == .open }
            let total = max(1, control.establishedTotal.load(ordering: .relaxed))
            let share = rate * Double(openList.count) / Double(total)
            interval = share > 0 ? 1e9 / share : 0
        case .echoOnce:
            break
        }
    }

    @inline(__always)
    private func dueTime(of message: Int) -> UInt64 {
        startedAt + UInt64(Double(message) * interval)
    }

    /// Open loop: sends every message whose scheduled time has come, each on the next connection in turn.
    private func issueDueMessages(now: UInt64) {
        scheduleStalled = false
        while !openList.isEmpty {
            let due = dueTime(of: issued)
            guard due <= now, due < stopAt else { return }
            let index = openList[issued % openList.count]
            let connection = connections + index
            if connection.pointee.state != .open {
                issued += 1  // its connection is gone (and counted as an error); the schedule moves on
                continue
            }
            if connection.pointee.messagesQueued - connection.pointee.messagesDone > slotMask {
                // This connection has as many unanswered messages as it may hold: the schedule waits
                // for an answer, and every message behind it is late by that wait.
                scheduleStalled = true
                return
            }
            queueMessage(index, sentAt: due)
            issued += 1
            if !connection.pointee.wantsOutput { pump(index) }
            // The sends of the measured phase, as the latency counts its answers. The clock is read
            // again: a burst of due messages leaves one send call after another.
            let sentAt = monotonicNanoseconds()
            if sentAt >= measureAt { lateness.record(min(sentAt &- due, Self.highestLatency)) }
        }
    }

    /// Open loop: messages scheduled before stopAt that were never sent (the load fell behind).
    private func countUnsent() {
        guard !openList.isEmpty, dueTime(of: issued) < stopAt else { return }
        let scheduled = Int((Double(stopAt - startedAt) / interval).rounded(.up))
        outcome.unsentMessages = max(0, scheduled - issued)
    }

    @inline(__always)
    private func queueMessage(_ index: Int, sentAt: UInt64) {
        let connection = connections + index
        sendTimes[index &* (slotMask &+ 1) &+ (connection.pointee.messagesQueued & slotMask)] = sentAt
        connection.pointee.messagesQueued &+= 1
        connection.pointee.queued &+= messageSize
        inFlight &+= 1
    }

    /// A connection's first message came back: it is up.
    private func greeted() {
        pendingGreetings -= 1
        echoed += 1
        status.resolved.wrappingAdd(1, ordering: .relaxed)
    }

    /// Writes what is queued; on a full socket buffer, waits for EPOLLOUT.
    @inline(__always)
    private func pump(_ index: Int) {
        let connection = connections + index
        let fd = connection.pointee.fd
        while connection.pointee.sent < connection.pointee.queued {
            let offset = (connection.pointee.sent &+ connection.pointee.seed) % Self.patternPeriod
            let length = min(connection.pointee.queued &- connection.pointee.sent, Self.writeChunk)
            let written = send(fd, pattern + offset, length, Int32(MSG_NOSIGNAL))
            if written > 0 {
                connection.pointee.sent &+= written
                continue
            }
            let code = errno
            if written < 0 && code == EINTR { continue }
            if written < 0 && (code == EAGAIN || code == EWOULDBLOCK) {
                if !connection.pointee.wantsOutput {
                    connection.pointee.wantsOutput = true
                    Epoll.control(epollFD, Epoll.modify, fd, events: Epoll.input | Epoll.output, token: UInt64(index))
                }
                return
            }
            lost(index, "send failed: \(errnoDescription(code))")
            return
        }
        if connection.pointee.wantsOutput {
            connection.pointee.wantsOutput = false
            Epoll.control(epollFD, Epoll.modify, fd, events: Epoll.input, token: UInt64(index))
        }
    }

    // MARK: Receiving

    @inline(__always)
    private func onReadable(_ index: Int) {
        let connection = connections + index
        var count: Int
        repeat {
            count = recv(connection.pointee.fd, readBuffer, Self.readBufferSize, 0)
        } while count < 0 && errno == EINTR
        if count < 0 {
            let code = errno
            if code == EAGAIN || code == EWOULDBLOCK { return }
            lost(index, errnoDescription(code))
            return
        }
        if count == 0 {
            lost(index, "the server closed the connection")
            return
        }
        let received = connection.pointee.received
        guard received &+ count <= connection.pointee.sent else {
            if received == 0 { status.notAnEchoServer.store(true, ordering: .relaxed) }
            fail(index, .extraBytes,
                 (received == 0 ? "not an echo server: " : "")
                 + "connection \(connection.pointee.id): \(received + count - connection.pointee.sent) bytes came back that were never sent")
            return
        }
        let offset = (received &+ connection.pointee.seed) % Self.patternPeriod
        if memcmp(readBuffer, pattern + offset, count) != 0 {
            reportMismatch(index, count: count, offset: offset)
            return
        }
        connection.pointee.received = received &+ count

        let now = monotonicNanoseconds()
        var queuedNew = false
        while connection.pointee.messagesDone < connection.pointee.messagesQueued
            && connection.pointee.received >= (connection.pointee.messagesDone &+ 1) &* messageSize
        {
            let slot = index &* (slotMask &+ 1) &+ (connection.pointee.messagesDone & slotMask)
            let sentAt = sendTimes[slot]
            connection.pointee.messagesDone &+= 1
            inFlight &-= 1
            completed &+= 1
            let latency = min(now &- sentAt, Self.highestLatency)
            // Measured: the messages that come back during the measured phase (as wrk2 and refload count).
            if now >= measureAt && now < stopAt {
                measured.record(latency)
                connection.pointee.measuredMessages &+= 1
                if plan.intervalNanoseconds > 0 { recordInterval(latency, now: now) }
            }
            if plan.liveLatency { live.record(latency) }
            if plan.metrics != nil { metricsTally.record(latencyNanoseconds: latency) }
            if closedLoopDepth > 0 && sending && now < stopAt {
                queueMessage(index, sentAt: now)
                queuedNew = true
            }
            if connection.pointee.messagesDone == 1 { greeted() }
        }
        if queuedNew && !connection.pointee.wantsOutput { pump(index) }
    }

    /// Latency over time: an interval's histogram is kept as sparse (value, count) pairs when the next
    /// interval begins, so a long run holds only what was recorded.
    @inline(__always)
    private func recordInterval(_ latency: UInt64, now: UInt64) {
        let index = Int((now &- measureAt) / plan.intervalNanoseconds)
        if index != intervalIndex {
            flushInterval()
            intervalIndex = index
        }
        intervalLatency.record(latency)
    }

    private func flushInterval() {
        guard intervalLatency.totalCount > 0 else { return }
        outcome.intervals[intervalIndex] = intervalLatency.recordedValues().filter { $0.count > 0 }.map { ($0.value, $0.count) }
        intervalLatency.reset()
    }

    /// The connection ended (end of stream, reset, failed read or write). With bytes still owed, the
    /// stream came back short; owing nothing, it was an unexpected close.
    private func lost(_ index: Int, _ how: String) {
        let connection = connections + index
        let (sent, received) = (connection.pointee.sent, connection.pointee.received)
        if sent > received {
            fail(index, .shortStream, "connection \(connection.pointee.id): \(how) after echoing \(received) of \(sent) bytes")
        } else {
            fail(index, .unexpectedClose, "connection \(connection.pointee.id): \(how)")
        }
    }

    private func reportMismatch(_ index: Int, count: Int, offset: Int) {
        let connection = connections + index
        var position = 0
        while position < count
            && readBuffer.load(fromByteOffset: position, as: UInt8.self)
                == pattern.load(fromByteOffset: offset + position, as: UInt8.self)
        {
            position += 1
        }
        let got = readBuffer.load(fromByteOffset: position, as: UInt8.self)
        let expected = pattern.load(fromByteOffset: offset + position, as: UInt8.self)
        let streamOffset = connection.pointee.received + position
        if streamOffset == 0 { status.notAnEchoServer.store(true, ordering: .relaxed) }
        fail(index, .mismatch,
             (streamOffset == 0 ? "not an echo server: " : "")
             + "connection \(connection.pointee.id): echoed byte \(streamOffset) was \(hex(got)), expected \(hex(expected))")
    }

    private func hex(_ byte: UInt8) -> String {
        "0x" + (byte < 16 ? "0" : "") + String(byte, radix: 16)
    }

    // MARK: Ending

    /// Counts an error and closes the connection; its unanswered messages leave the in-flight count.
    private func fail(_ index: Int, _ kind: ConnectionFailure, _ message: @autoclosure () -> String) {
        outcome.errors.count(kind, message())
        closeConnection(index)
    }

    private func closeConnection(_ index: Int) {
        let connection = connections + index
        guard connection.pointee.state == .open else { return }
        if connection.pointee.messagesDone == 0 {
            pendingGreetings -= 1
            status.resolved.wrappingAdd(1, ordering: .relaxed)
        }
        close(connection.pointee.fd)
        connection.pointee.fd = -1
        connection.pointee.state = .closed
        open -= 1
        inFlight -= connection.pointee.messagesQueued - connection.pointee.messagesDone
    }

    /// The drain time ran out: every connection still owed bytes came back short.
    private func reportUndrained() {
        for index in 0..<count where connections[index].state == .open {
            let connection = connections[index]
            if connection.sent > connection.received {
                outcome.errors.count(.shortStream,
                    "connection \(connection.id): \(connection.sent - connection.received) bytes never came back within \(Duration.nanoseconds(Int64(plan.drainTimeoutNanoseconds)).shortDescription) after the end")
                closeConnection(index)
            }
        }
    }

    /// Closes everything; a connection still owed bytes now will never get them: a short stream.
    private func finish() {
        for index in 0..<count {
            let connection = connections[index]
            if connection.state == .open && connection.sent > connection.received {
                outcome.errors.count(.shortStream,
                    "connection \(connection.id): \(connection.sent - connection.received) bytes had not come back when the run ended")
            }
            outcome.bytesSent += connection.sent
            outcome.bytesReceived += connection.received
            if connection.wasEstablished { outcome.messagesPerConnection.append(connection.measuredMessages) }
            if connection.fd >= 0 {
                close(connection.fd)
                connections[index].fd = -1
            }
            connections[index].state = .closed
        }
        open = 0
        outcome.completed = completed
        outcome.echoed = echoed
        outcome.latency = measured
        if plan.intervalNanoseconds > 0 { flushInterval() }
        outcome.sendLateness = lateness
        publish()
        status.finished.store(true, ordering: .releasing)
    }
}

/// What a loop hands back once its thread has ended.
struct LoopOutcome {
    var established = 0
    var peakOpen = 0
    var completed = 0
    var echoed = 0
    var bytesSent = 0
    var bytesReceived = 0
    /// Measured messages of each connection that was established.
    var messagesPerConnection: [Int] = []
    /// Open loop: messages scheduled before the end but never sent (the load fell behind its schedule).
    var unsentMessages = 0
    var latency = Histogram<UInt64>(highestTrackableValue: ClientLoop.highestLatency, numberOfSignificantValueDigits: .three)
    /// Open loop: lateness of the measured phase's sends (empty for a closed loop).
    var sendLateness = Histogram<UInt64>(highestTrackableValue: ClientLoop.highestLatency, numberOfSignificantValueDigits: .three)
    var errors = ErrorCounts()
    /// The loop thread's CPU over its wall time, from start to end (100 = a full core).
    var busyPercent = 0.0
    /// With intervals: interval index in the measured phase → the latencies recorded in it (value, count).
    var intervals: [Int: [(UInt64, UInt64)]] = [:]
}
