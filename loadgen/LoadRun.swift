import EchoProtocol
import Foundation

/// One load run: connect, warm up, measure, drain, report. A value the CLI and the sweep build and run:
///
/// ```
/// var settings = ConnectionSettings(target: SocketAddress("127.0.0.1", port: 7007)!, connections: 100)
/// settings.serverPID = pid
/// let result = try LoadRun(connection: settings, duration: .seconds(5)).run()
/// print(result.messagesPerSecond, result.latencyMicroseconds.p99, result.server?.contextSwitchesPerMessage)
/// ```
///
/// `run()` throws (a one-line `StartupError`) only when no load could start: bad settings, too few
/// descriptors or ports, an unreachable target, an unreadable server. Anything that goes wrong once the
/// load runs ends up in the result (`errors`, `complete`, `stopReason`), with the partial figures.
struct LoadRun: Sendable {
    var connection: ConnectionSettings
    var messageSize = 64
    /// Closed loop: messages in flight per connection (default 1). Open loop: the most one connection
    /// may hold unanswered (default 64).
    var depth: Int? = nil
    /// Total messages per second over all connections: an open loop. Nil: a closed loop.
    var rate: Double? = nil
    var duration: Duration = .seconds(10)
    var warmup: Duration = .seconds(1)
    /// How long in-flight messages may take to come back after the measured phase.
    var drainTimeout: Duration = .seconds(5)
    /// Client loops poll without sleeping (`--spin`).
    var spin = false
    /// Latency over time (`--histogram-log`, `--heatmap`): filled with the measured phase's intervals.
    var intervals: IntervalRecording? = nil
    /// `--metrics-port`: the loops publish their totals here.
    var metrics: LiveMetrics? = nil

    static let defaultOpenLoopDepth = 64
    static let maxDepth = 4096

    var workload: Workload {
        if let rate { return .openLoop(messagesPerSecond: rate, maxInFlight: depth ?? Self.defaultOpenLoopDepth) }
        return .closedLoop(depth: depth ?? 1)
    }

    func validate() throws(StartupError) {
        guard connection.connections >= 1 else { throw StartupError("connections must be at least 1") }
        guard messageSize >= 1 && messageSize <= ByteCount.maxBufferSize else {
            throw StartupError("message size must be 1 B...64 MiB, got \(messageSize)")
        }
        if let depth, !(1...Self.maxDepth).contains(depth) {
            throw StartupError("depth must be 1...\(Self.maxDepth), got \(depth)")
        }
        if let rate, !(rate > 0 && rate.isFinite) { throw StartupError("rate must be above 0, got \(rate)") }
        guard duration > .zero else { throw StartupError("duration must be above 0") }
        guard connection.threads >= 1 else { throw StartupError("threads must be at least 1") }
    }

    func run(progress: ((LiveFigures) -> Void)? = nil, stop: StopRequest? = nil) throws(StartupError) -> LoadResult {
        try validate()
        try Preflight.checkResources(connection)
        try Preflight.checkReachable(connection)
        let (probe, probeNote) = ServerProbe.choose(
            statsAddress: connection.serverStats, pid: connection.serverPID, target: connection.target)
        if let probe { _ = try probe.snapshot() }  // asked-for figures must be readable from the start

        let group = try LoopGroup(settings: connection, messageSize: messageSize, workload: workload,
                                  drainTimeout: drainTimeout, liveLatency: true,  // also for the per-second series
                                  spin: spin, intervalNanoseconds: intervals?.length.nanoseconds ?? 0, metrics: metrics)
        let watch = Watch(group: group, requested: connection.connections, progress: progress, stop: stop)
        let connect = try ConnectPhase.run(group, watch: watch, settings: connection)
        let (established, connectSeconds, overflows) = (connect.established, connect.seconds, connect.listenOverflows)
        if established == 0 || watch.stopped || !connect.finished || group.sawNotAnEchoServer {
            throw ConnectPhase.failure(group, target: connection.target, interrupted: watch.stopped)
        }

        // Warm up, then measure between two snapshots of the server and of ourselves.
        let start = monotonicNanoseconds()
        group.control.start(at: start, warmup: warmup.nanoseconds, duration: duration.nanoseconds,
                            established: established)
        watch.startedAt = start
        watch.phase = warmup > .zero ? "warm-up" : "measuring"
        var stopReason: String? = nil
        var serverStart: ServerSnapshot? = nil
        var serverEnd: ServerSnapshot? = nil
        var serverNote = probeNote
        var serverRead = ServerReadCost()
        var clientStart = ResourceUsage.ofSelf()
        var clientEnd = clientStart
        var measuredFrom = start
        var measuredTo = start

        let measureAt = group.control.measureAt.load(ordering: .relaxed)
        var ranToTheEnd = false
        if watch.wait(until: measureAt, done: { group.allFinished }) {
            measuredFrom = monotonicNanoseconds()
            clientStart = ResourceUsage.ofSelf()
            serverStart = Self.read(probe, note: &serverNote, when: "at the start of the measured phase",
                                     took: &serverRead)
            watch.phase = "measuring"
            watch.beginSeries()
            ranToTheEnd = watch.wait(until: group.control.stopAt.load(ordering: .relaxed), done: { group.allFinished })
            watch.endSeries()
        }
        if ranToTheEnd {
            stopReason = nil
        } else if group.allFinished {
            stopReason = "every connection was lost after \(Self.format(seconds: Double(monotonicNanoseconds() - start) / 1e9)) of load"
        } else if watch.stopped {
            stopReason = ExitStatus.interruptedReason
        }
        group.control.stopSending()
        measuredTo = monotonicNanoseconds()
        clientEnd = ResourceUsage.ofSelf()
        if serverStart != nil {
            serverEnd = Self.read(probe, note: &serverNote, when: "at the end of the measured phase",
                                   took: &serverRead)
        }

        // Drain: the loops drain within the drain timeout (the deadline is a safety net), then hold their
        // connections until now, after the server was read: closing earlier would race that read, and a
        // thread-per-connection server's threads would exit, taking their context switches with them.
        watch.phase = "draining"
        watch.wait(until: monotonicNanoseconds() + drainTimeout.nanoseconds + 2_000_000_000, ignoringStop: true) {
            group.allDrained
        }
        let outcomes = group.closeAndJoin()

        // Merge the loops' results.
        var errors = ErrorCounts()
        var latency = outcomes[0].latency
        var lateness = outcomes[0].sendLateness
        var perConnection: [Int] = []
        var totals = LoadResult.Totals(messagesCompleted: 0, bytesSent: 0, bytesReceived: 0)
        var peak = 0
        var unsent = 0
        for (index, outcome) in outcomes.enumerated() {
            unsent += outcome.unsentMessages
            errors.add(outcome.errors)
            if index > 0 {
                latency.add(outcome.latency)
                lateness.add(outcome.sendLateness)
            }
            perConnection += outcome.messagesPerConnection
            totals.messagesCompleted += outcome.completed
            totals.bytesSent += outcome.bytesSent
            totals.bytesReceived += outcome.bytesReceived
            peak += outcome.peakOpen
        }
        let finalStop = group.control.stopAt.load(ordering: .relaxed)
        let window = finalStop > measureAt ? Double(finalStop - measureAt) / 1e9 : 0
        let messages = Int(latency.totalCount)
        let usageSeconds = Double(measuredTo - measuredFrom) / 1e9
        var server: ServerFigures? = nil
        if let probe, let serverStart, let serverEnd {
            server = ServerFigures(source: probe.method, from: serverStart, to: serverEnd, seconds: usageSeconds,
                                   messages: messages, read: serverRead)
            serverRead.note(window: usageSeconds, countedBy: serverEnd.contextSwitchesFrom, into: &serverNote)
        }
        var result = LoadResult(
            target: connection.target.description,
            settings: .init(
                connections: connection.connections, messageSize: messageSize,
                depth: depth ?? (rate == nil ? 1 : Self.defaultOpenLoopDepth), rate: rate,
                durationSeconds: duration.seconds, warmupSeconds: warmup.seconds, threads: group.loops.count,
                connectRate: connection.connectRate, sourceAddresses: connection.sourceAddresses.count,
                cpus: connection.cpus, spin: spin ? true : nil),
            connections: .init(requested: connection.connections, established: established, peakOpen: peak,
                               connectSeconds: connectSeconds, listenOverflows: overflows),
            measuredSeconds: window, messages: messages,
            messagesPerSecond: window > 0 ? Double(messages) / window : 0,
            bytesPerSecond: window > 0 ? Double(messages * messageSize) / window : 0,
            latencyMicroseconds: LatencyFigures(latency),
            fairness: FairnessFigures(messagesPerConnection: perConnection),
            errors: errors, server: server, serverNote: serverNote,
            client: ClientFigures(loops: group.loops.count, usage: clientEnd.since(clientStart), seconds: usageSeconds,
                                  messages: messages),
            totals: totals, unsentMessages: unsent, complete: stopReason == nil, stopReason: stopReason,
            latencyHistogram: latency, provenance: .current(), perSecond: watch.series)
        if rate != nil { SendLateness.attach(lateness, to: &result) }
        result.client.busiestLoopPercent = outcomes.map(\.busyPercent).max()
        if let intervals {
            // The wall-clock time of the measured phase's start, for the interval log's header.
            let sinceMeasureStart = Double(monotonicNanoseconds() - measureAt) / 1e9
            intervals.collect(outcomes.map(\.intervals), windowSeconds: window,
                              startEpochSeconds: Date().timeIntervalSince1970 - sinceMeasureStart)
        }
        return result
    }

    /// A server snapshot, or nil with the reason added to `note`. `took` keeps the longest read so far:
    /// a read inside a measured window takes this thread's CPU from the load (see ServerReadCost.note).
    static func read(_ probe: ServerProbe?, note: inout String?, when: String, took: inout ServerReadCost,
                     proportional: Bool = false) -> ServerSnapshot? {
        guard let probe else { return nil }
        let began = (wall: monotonicNanoseconds(), cpu: threadCPUNanoseconds())
        defer {
            took.wallSeconds = max(took.wallSeconds, Double(monotonicNanoseconds() - began.wall) / 1e9)
            took.cpuSeconds = max(took.cpuSeconds, Double(threadCPUNanoseconds() - began.cpu) / 1e9)
        }
        do {
            return try probe.snapshot(proportional: proportional)
        } catch {
            note = "server figures unavailable: \(probe.description) could not be read \(when): \(error)"
            return nil
        }
    }

    static func format(seconds: Double) -> String {
        seconds < 10 ? "\((seconds * 100).rounded() / 100) s" : "\(Int(seconds.rounded())) s"
    }
}
