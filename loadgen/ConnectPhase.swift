import EchoProtocol

/// The phase `run` and `idle` both begin with: start the loops, which open every connection (at
/// `--connect-rate`, each attempt bounded by `--connect-timeout`, a connection up once its first
/// echo came back), and wait until all have succeeded or failed. The deadline is a safety net that
/// starts when the loops do, so the same settings give both commands the same bound.
struct ConnectPhase {
    /// Connections up at the end of the phase.
    let established: Int
    /// From starting the loops to the end of the phase.
    let seconds: Double
    /// The kernel's ListenOverflows during the phase (connections the server's backlog dropped).
    let listenOverflows: Int
    /// Every connection succeeded or failed before the deadline.
    let finished: Bool

    static func run(_ group: LoopGroup, watch: Watch, settings: ConnectionSettings) throws(StartupError) -> ConnectPhase {
        watch.phase = "connecting"
        let overflowsBefore = Preflight.listenOverflows()
        let began = monotonicNanoseconds()
        try group.start()
        let rampSeconds = settings.connectRate.map { Double(settings.connections) / $0 } ?? 0
        let deadline = began + UInt64((rampSeconds + settings.connectTimeout.seconds + 10) * 1e9)
        // A target that answered with other bytes is not an echo server: no need to wait for the rest.
        watch.wait(until: deadline) { group.connectPhaseDone || group.sawNotAnEchoServer }
        return ConnectPhase(
            established: group.open, seconds: Double(monotonicNanoseconds() - began) / 1e9,
            listenOverflows: Preflight.listenOverflows() - overflowsBefore, finished: group.connectPhaseDone)
    }

    /// Closes every connection and says, in one line, why nothing could be measured.
    static func failure(_ group: LoopGroup, target: SocketAddress, interrupted: Bool) -> StartupError {
        var errors = ErrorCounts()
        group.closeAndJoin().forEach { errors.add($0.errors) }
        if interrupted { return StartupError("interrupted while connecting") }
        return StartupError(errors.firstError ?? "cannot connect to \(target)")
    }
}
