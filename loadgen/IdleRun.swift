import EchoProtocol

/// Opens connections, echoes one message on each, holds them idle, and reports what they cost the
/// server: (VmRSS with N idle connections − VmRSS before the first) / N.
///
/// ```
/// var settings = ConnectionSettings(target: address, connections: 10_000)
/// settings.serverPID = pid
/// let result = try IdleRun(connection: settings).run()
/// print(result.server?.rssPerConnectionKiB)
/// ```
struct IdleRun: Sendable {
    var connection: ConnectionSettings
    var messageSize = 16
    /// How long the connections stay open after every echo came back; the server is read at its end.
    var hold: Duration = .seconds(1)
    /// `--metrics-port`: the loops publish their totals here.
    var metrics: LiveMetrics? = nil
    /// How long the echoes may take once every connection is up.
    var echoTimeout: Duration = .seconds(10)

    func run(progress: ((LiveFigures) -> Void)? = nil, stop: StopRequest? = nil) throws(StartupError) -> IdleResult {
        guard connection.connections >= 1 else { throw StartupError("connections must be at least 1") }
        guard messageSize >= 1 && messageSize <= 64 * 1024 else {
            throw StartupError("message size must be 1 B...64 KiB, got \(messageSize)")
        }
        try Preflight.checkResources(connection)
        try Preflight.checkReachable(connection)
        let (probe, probeNote) = ServerProbe.choose(
            statsAddress: connection.serverStats, pid: connection.serverPID, target: connection.target)
        var serverNote = probeNote
        let before = try probe?.snapshot(proportional: true)
        let kernelBefore = KernelMemory.read()
        let clientStart = ResourceUsage.ofSelf()

        let group = try LoopGroup(settings: connection, messageSize: messageSize, workload: .echoOnce,
                                  drainTimeout: .zero, liveLatency: false, metrics: metrics)
        let watch = Watch(group: group, requested: connection.connections, progress: progress, stop: stop)
        let began = monotonicNanoseconds()
        let connect = try ConnectPhase.run(group, watch: watch, settings: connection)
        let (established, connectSeconds, overflows) = (connect.established, connect.seconds, connect.listenOverflows)
        if (established == 0 || group.sawNotAnEchoServer) && !watch.stopped {
            throw ConnectPhase.failure(group, target: connection.target, interrupted: false)
        }

        watch.phase = "echoing"
        watch.wait(until: monotonicNanoseconds() + echoTimeout.nanoseconds) {
            group.allFinished || (group.connectPhaseDone && group.inFlight == 0)
        }
        watch.phase = "holding"
        var stopReason: String? = nil
        let holdFrom = monotonicNanoseconds()
        watch.wait(until: holdFrom + hold.nanoseconds) { group.allFinished }
        let heldSeconds = Double(monotonicNanoseconds() - holdFrom) / 1e9
        let heldOpen = group.open
        var read = ServerReadCost()  // outside any measured window: idle measures memory, not rate
        let after = LoadRun.read(probe, note: &serverNote, when: "with the connections open", took: &read, proportional: true)
        let kernelAfter = KernelMemory.read()
        if group.allFinished {
            stopReason = "every connection was lost"
        } else if watch.stopped {
            stopReason = ExitStatus.interruptedReason
        }
        let outcomes = group.closeAndJoin()
        let clientEnd = ResourceUsage.ofSelf()

        var errors = ErrorCounts()
        var echoed = 0
        var peak = 0
        for outcome in outcomes {
            errors.add(outcome.errors)
            echoed += outcome.echoed
            peak += outcome.peakOpen
        }
        var server: IdleServerFigures? = nil
        if let probe, let before, let after {
            server = IdleServerFigures(source: probe.method, before: before, after: after, connections: heldOpen)
        }
        let seconds = Double(monotonicNanoseconds() - began) / 1e9
        return IdleResult(
            target: connection.target.description,
            settings: .init(
                connections: connection.connections, messageSize: messageSize, holdSeconds: hold.seconds,
                threads: group.loops.count, connectRate: connection.connectRate,
                sourceAddresses: connection.sourceAddresses.count, cpus: connection.cpus),
            connections: .init(requested: connection.connections, established: established, peakOpen: peak,
                               connectSeconds: connectSeconds, listenOverflows: overflows),
            echoed: echoed, heldOpen: heldOpen, heldSeconds: heldSeconds, errors: errors, server: server,
            serverNote: serverNote,
            client: ClientFigures(loops: group.loops.count, usage: clientEnd.since(clientStart), seconds: seconds,
                                  messages: echoed),
            complete: stopReason == nil, stopReason: stopReason,
            kernelPerConnection: KernelPerConnection(before: kernelBefore, after: kernelAfter, connections: heldOpen))
    }
}

/// Server memory and process figures at one moment.
struct ServerMemory: Codable, Sendable, Equatable {
    var rssKiB: Int
    var hwmKiB: Int
    var vmSizeKiB: Int
    var threads: Int
    var openFDs: Int
    /// A foreign server's PSS summed over its tree (see ServerSnapshot.Memory.pssKiB).
    var pssKiB: Int?

    init(_ snapshot: ServerSnapshot) {
        pssKiB = snapshot.memory.pssKiB
        rssKiB = snapshot.memory.rssKiB
        hwmKiB = snapshot.memory.hwmKiB
        vmSizeKiB = snapshot.memory.vmSizeKiB
        threads = snapshot.threads
        openFDs = snapshot.openFDs
    }
}

/// The server before the first connection and with every connection open and idle.
struct IdleServerFigures: Codable, Sendable, Equatable {
    var source: String
    var pid: Int32
    var variant: String
    var before: ServerMemory
    var after: ServerMemory
    /// (after − before) / connections held open, KiB.
    var rssPerConnectionKiB: Double
    var vmSizePerConnectionKiB: Double
    /// (after − before) / connections of a foreign server's PSS: the honest per-connection figure for
    /// a server that forks, where summed RSS counts shared pages once per process.
    var pssPerConnectionKiB: Double?

    init(source: ServerProbe.Method, before: ServerSnapshot, after: ServerSnapshot, connections: Int) {
        self.source = source.rawValue
        pid = after.pid
        variant = after.variant
        self.before = ServerMemory(before)
        self.after = ServerMemory(after)
        let count = Double(max(connections, 1))
        rssPerConnectionKiB = Double(after.memory.rssKiB - before.memory.rssKiB) / count
        vmSizePerConnectionKiB = Double(after.memory.vmSizeKiB - before.memory.vmSizeKiB) / count
        if let pssAfter = after.memory.pssKiB, let pssBefore = before.memory.pssKiB {
            pssPerConnectionKiB = Double(pssAfter - pssBefore) / count
        }
    }
}

/// Everything `loadgen idle` measured; documented with LoadResult in docs/loadgen.md.
struct IdleResult: Codable, Sendable, Equatable {
    var schemaVersion = LoadResult.currentSchemaVersion
    var mode = "idle"
    var target: String
    var settings: Settings
    var connections: ConnectionFigures
    /// Connections whose one message came back whole.
    var echoed: Int
    /// Connections still open when the server was read.
    var heldOpen: Int
    /// How long they were actually held: `settings.holdSeconds` unless interrupted or lost early.
    var heldSeconds: Double?
    var errors: ErrorCounts
    var server: IdleServerFigures?
    var serverNote: String?
    /// loadgen over the whole idle run; per-message figures are per echoed connection.
    var client: ClientFigures
    var complete: Bool
    var stopReason: String?
    /// What the kernel's memory grew by per held connection (KernelStack, PageTables, SUnreclaim,
    /// sockstat TCP mem), machine-wide; nil when /proc could not be read.
    var kernelPerConnection: KernelPerConnection?

    struct Settings: Codable, Sendable, Equatable {
        var connections: Int
        var messageSize: Int
        var holdSeconds: Double
        var threads: Int
        var connectRate: Double?
        var sourceAddresses: Int
        var cpus: [Int]
    }

    var succeeded: Bool { errors.total == 0 && complete && echoed == connections.requested }

    /// Why it did not succeed, in one line for stderr; nil when it did.
    var failureLine: String? {
        if succeeded { return nil }
        if let line = errors.failureLine ?? stopReason { return line }
        return "\(echoed) of \(connections.requested) connections echoed"
    }
}
