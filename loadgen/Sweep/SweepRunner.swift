#if canImport(Glibc)
import Glibc
#endif
import EchoProtocol
import Foundation

/// Everything a sweep needs to know before it starts.
struct SweepPlan: Sendable {
    var servers: [SweptServer]
    var connections: [Int]
    /// Connections that send in the loaded phase; the rest of the N stay idle.
    var active = 100
    var messageSize = 64
    var depth = 1
    var duration: Duration = .seconds(5)
    var warmup: Duration = .seconds(1)
    /// How long the N idle connections are held before the server is read.
    var hold: Duration = .seconds(1)
    /// Client event loops in the loaded phase.
    var threads = 1
    var pinning = SweepPinning(server: nil, client: nil)
    var output: URL
    var commandLine = "loadgen sweep"
    var scenarios: [SweepScenario] = []
    /// `--curve`: the connection count whose step also runs a latency curve, and its p99 bound (µs).
    var curveAt: Int? = nil
    var p99LimitMicroseconds = 10_000.0
    /// Lives in flight in each step's churn phase; nil for none (`--no-churn`).
    var churnConcurrency: Int? = 64
    /// `--rounds`: each step this many times, the servers interleaved (A B, B A, …) at each count.
    var rounds = 1
}

/// Runs a sweep: for each server, for each connection count, a fresh server, an idle phase and a
/// loaded phase; writes the results after every step, so an interrupted sweep keeps what it measured.
///
/// The loaded phase uses the load engine (`LoadRun`) for the active connections; the idle ones are an
/// `IdlePopulation` held open across both phases, since a run closes its connections when it ends.
final class SweepRunner {
    let plan: SweepPlan
    let stop: StopRequest
    let progress: SweepProgress
    private(set) var results: SweepResults

    init(plan: SweepPlan, stop: StopRequest = StopRequest(), progress: SweepProgress = SweepProgress()) {
        self.plan = plan
        self.stop = stop
        self.progress = progress
        results = SweepResults(
            machine: .current(),
            settings: SweepSettings(
                servers: plan.servers.map { .init(name: $0.name, command: $0.commandLine) },
                connections: plan.connections, active: plan.active, messageSize: plan.messageSize, depth: plan.depth,
                durationSeconds: plan.duration.seconds, warmupSeconds: plan.warmup.seconds, pinning: plan.pinning,
                commandLine: plan.commandLine, scenarios: plan.scenarios.isEmpty ? nil : plan.scenarios,
                rounds: plan.rounds > 1 ? plan.rounds : nil))
    }

    /// Runs every step (or until stopped) and returns the results, which are also in `plan.output`.
    /// Throws only when the output cannot be written.
    func run() throws -> SweepResults {
        // This thread opens the idle connections: it runs on the client's CPUs, and returns to where it
        // was allowed before when the sweep ends (a caller's thread, e.g. a test's, is not left pinned).
        let allowedBefore = CPUSet.available()
        if let client = plan.pinning.client { _ = client.pin(thread: 0) }
        defer { _ = allowedBefore.pin(thread: 0) }
        let total = plan.servers.count * plan.connections.count * max(1, plan.rounds)
        try SweepReport.write(results, to: plan.output)
        for (server, count, round) in order {
            if stop.isRequested { break }
            let roundNote = round.map { " · round \($0)/\(plan.rounds)" } ?? ""
            progress.step = "[\(results.steps.count + 1)/\(total)] \(server.name) · \(count) connections\(roundNote)"
            var step = runStep(server, connections: count)
            step.round = round
            results.steps.append(step)
            results.updateSlopes()
            if plan.rounds > 1 { results.summary = SweepRounds.summarize(results) }
            progress.finished(step)
            try SweepReport.write(results, to: plan.output)
        }
        results.complete = !stop.isRequested && results.steps.count == total
        if !results.complete { results.stopReason = "interrupted (Ctrl-C) after \(results.steps.count) of \(total) steps" }
        progress.clear()
        try SweepReport.write(results, to: plan.output)
        return results
    }

    /// The steps in the order they run. One round: each server through every count. Several: at each
    /// count, round after round, the servers in alternating order (A B, B A, …), so that drift of the
    /// machine over a count's rounds touches every server alike.
    var order: [(server: SweptServer, connections: Int, round: Int?)] {
        guard plan.rounds > 1 else {
            return plan.servers.flatMap { server in plan.connections.map { (server, $0, nil) } }
        }
        return plan.connections.flatMap { count in
            (0..<plan.rounds).flatMap { round in
                SweepRounds.order(plan.servers, round: round).map { (server: $0, connections: count, round: Optional(round + 1)) }
            }
        }
    }

    /// One server at one connection count. Never throws: whatever fails is the step's `reason`.
    func runStep(_ server: SweptServer, connections count: Int) -> SweepStep {
        var step = SweepStep(server: server.name, connections: count)
        step.scenario = server.scenario
        if let problem = Self.limitProblem(connections: count) { return step.failing(problem, in: .start, stopped: false) }
        progress.show("starting the server")
        let running: RunningServer
        do {
            running = try RunningServer(server, pinTo: plan.pinning.server)
        } catch {
            return step.failing(error.description, in: .start, stopped: stop.isRequested)
        }
        step.serverPID = running.pid
        var population: IdlePopulation?
        var phase = SweepStep.Phase.idle
        do throws(SweepFailure) {
            population = try idlePhase(running, count: count, into: &step)
            if let population {
                phase = .loaded
                try loadedPhase(running, population: population, count: count, into: &step)
                if plan.curveAt == count { try curvePhase(running, count: count, into: &step) }
                if let concurrency = plan.churnConcurrency {
                    phase = .churn
                    try churnPhase(running, concurrency: concurrency, into: &step)
                }
            }
        } catch {
            step = step.failing(error.description, in: phase, stopped: stop.isRequested)
        }
        // Stop the server with the idle connections still open: it must close them all and exit 0,
        // and as it closes first, the TIME_WAIT states stay on its side instead of holding this
        // client's local ports (which would slow the next, larger step's connects).
        progress.show("stopping the server")
        // Closing thousands of connections (and ending as many threads) takes a while on a busy machine.
        let problem = running.stop(grace: 10 + Double(count) / 1000)
        population?.closeAll()
        if let problem, step.status == .ok, !stop.isRequested {
            step = step.failing(problem, in: .stop, stopped: false)
        }
        if stop.isRequested {
            // Ctrl-C also ends the server: what failed after it (resets, a server gone, its exit
            // status) is the interruption's doing, not the server's.
            step.status = .interrupted
            step.failedIn = step.failedIn ?? .stop
            step.reason = "interrupted (Ctrl-C)"
        }
        return step
    }

    /// Why this client cannot hold `count` connections at once here, or nil if it can: each needs a
    /// descriptor. (Local ports are no limit: the idle connections come from several loopback addresses.)
    static func limitProblem(connections count: Int) -> String? {
        let files = Lifecycle.raiseOpenFileLimit()
        if count + 64 > files {
            return "\(count) connections need about \(count + 64) open files; the limit is \(files) (ulimit -Hn)"
        }
        return nil
    }

    /// Opens N connections, echoes once on each, holds them, reads the server. Returns the population
    /// (still open) when all N made it; records the figures either way.
    private func idlePhase(_ server: RunningServer, count: Int, into step: inout SweepStep) throws(SweepFailure)
        -> IdlePopulation?
    {
        let baseline = try server.snapshot()
        let kernelBefore = KernelMemory.read()
        progress.show("opening 0/\(count)")
        let began = monotonicNanoseconds()
        let population = IdlePopulation(
            target: server.address, count: count,
            progress: { [progress] open in progress.show("opening \(open)/\(count)") },
            shouldStop: { [stop] in stop.isRequested })
        let openSeconds = Double(monotonicNanoseconds() - began) / 1e9
        if population.open > 0 {
            progress.show("holding \(population.open) idle")
            sleep(untilNanoseconds: monotonicNanoseconds() + plan.hold.nanoseconds)
        }
        // Figures taken after Ctrl-C (which ends the server) would be a dying process's.
        if stop.isRequested { throw SweepFailure("interrupted (Ctrl-C) while opening the idle connections") }
        let held = try server.snapshot()
        let kernelAfter = KernelMemory.read()
        guard held.memory.rssKiB > 0 else { throw SweepFailure("\(server.server.name) is gone\(server.exitNote)") }
        step.idle = SweepStep.IdleFigures(
            open: population.open, baselineRSSKiB: baseline.memory.rssKiB, rssKiB: held.memory.rssKiB,
            rssPerConnectionKiB: population.open > 0
                ? Double(held.memory.rssKiB - baseline.memory.rssKiB) / Double(population.open) : 0,
            baselineVmSizeKiB: baseline.memory.vmSizeKiB, vmSizeKiB: held.memory.vmSizeKiB, threads: held.threads,
            openFDs: held.openFDs, openSeconds: openSeconds,
            kernelPerConnection: KernelPerConnection(before: kernelBefore, after: kernelAfter, connections: population.open))
        guard population.open == count else {
            var reason = population.summary(requested: count)
            if let refused = held.counters?.refused, refused > 0 { reason += "; the server counted \(refused) refused" }
            throw SweepFailure(reason + server.exitNote)
        }
        return population
    }

    /// `--curve`: after the loaded phase, the same `active` connections (the idle ones still open)
    /// at rising open-loop rates, as `loadgen curve --rates auto` from 1,000 msgs/s.
    private func curvePhase(_ server: RunningServer, count: Int, into step: inout SweepStep) throws(SweepFailure) {
        var settings = ConnectionSettings(target: server.address, connections: min(plan.active, count))
        settings.threads = max(1, min(plan.threads, settings.connections))
        settings.cpus = plan.pinning.client?.cpus ?? []
        if let stats = server.statsAddress { settings.serverStats = stats } else { settings.serverPID = server.pid }
        var curve = Curve(connection: settings)
        curve.messageSize = plan.messageSize
        curve.duration = min(plan.duration, .seconds(3))
        curve.warmup = min(plan.warmup, .seconds(1))
        curve.p99LimitMicroseconds = plan.p99LimitMicroseconds
        do {
            step.curve = try curve.run(stop: stop) { [progress] done, _ in
                progress.show("curve: \(Int(done.offered)) msgs/s offered → \(Int(done.achieved)) achieved")
            }
        } catch {
            throw SweepFailure("curve phase: \(error)\(server.exitNote)")
        }
        if step.curve?.complete == false {
            throw SweepFailure("curve phase: \(step.curve?.stopReason ?? "ended early")\(server.exitNote)")
        }
    }

    /// After the loaded phase, with the idle connections still open: `loadgen churn` for the
    /// loaded phase's duration, its lives from 32 loopback addresses (each closed life holds a port
    /// in TIME_WAIT).
    private func churnPhase(_ server: RunningServer, concurrency: Int, into step: inout SweepStep) throws(SweepFailure) {
        var settings = ConnectionSettings(target: server.address, connections: 1)
        settings.cpus = plan.pinning.client?.cpus ?? []
        settings.sourceAddresses = (1...32).compactMap { SocketAddress("127.0.0.\($0)") }
        if let stats = server.statsAddress { settings.serverStats = stats } else { settings.serverPID = server.pid }
        var churn = ChurnRun(connection: settings)
        churn.concurrency = concurrency
        churn.duration = plan.duration
        churn.warmup = plan.warmup
        progress.show("churn: \(concurrency) lives in flight")
        let result: ChurnResult
        do {
            result = try churn.run(stop: stop)
        } catch {
            throw SweepFailure("churn phase: \(error)\(server.exitNote)")
        }
        step.churn = SweepStep.ChurnFigures(
            concurrency: concurrency, lives: result.lives, livesPerSecond: result.livesPerSecond,
            p99Microseconds: result.latencyMicroseconds.p99,
            serverCPUMicrosecondsPerConnection: result.server?.cpuMicrosecondsPerMessage,
            serverContextSwitchesPerConnection: result.server?.contextSwitchesPerMessage,
            clientCPUMicrosecondsPerConnection: result.client.cpuMicrosecondsPerMessage,
            clientWasTheBottleneck: result.clientWasTheBottleneck, errors: result.errors.total)
        if !result.succeeded {
            throw SweepFailure("churn phase: \(result.stopReason ?? "\(result.errors.total) errors; first: \(result.errors.firstError ?? "?")")\(server.exitNote)")
        }
    }

    /// Keeps N open: closes `active` of the idle connections and runs the engine on `active` new ones.
    private func loadedPhase(
        _ server: RunningServer, population: IdlePopulation, count: Int, into step: inout SweepStep
    ) throws(SweepFailure) {
        let active = min(plan.active, count)
        population.release(active)
        var settings = ConnectionSettings(target: server.address, connections: active)
        settings.threads = max(1, min(plan.threads, active))
        settings.cpus = plan.pinning.client?.cpus ?? []
        if let stats = server.statsAddress { settings.serverStats = stats } else { settings.serverPID = server.pid }
        var load = LoadRun(connection: settings)
        load.messageSize = plan.messageSize
        load.depth = plan.depth
        load.duration = plan.duration
        load.warmup = plan.warmup
        load.intervals = IntervalRecording()
        let idle = population.open
        let result: LoadResult
        do {
            result = try load.run(
                progress: { [progress] live in
                    progress.show(
                        "\(live.phase) \(active) active + \(idle) idle · \(Int(live.messagesPerSecond)) msgs/s"
                            + " · p99 \(Int(live.p99Microseconds)) µs")
                }, stop: stop)
        } catch {
            throw SweepFailure("loaded phase: \(error)\(server.exitNote)")
        }
        step.loaded = SweepStep.LoadedFigures(
            active: active, idle: idle, measuredSeconds: result.measuredSeconds, messages: result.messages,
            messagesPerSecond: result.messagesPerSecond, p50Microseconds: result.latencyMicroseconds.p50,
            p99Microseconds: result.latencyMicroseconds.p99, p999Microseconds: result.latencyMicroseconds.p999,
            serverCPUPercent: result.server?.cpuPercent,
            serverContextSwitchesPerMessage: result.server?.contextSwitchesPerMessage,
            serverRSSKiB: result.server?.rssKiB, clientCPUPercent: result.client.cpuPercent,
            clientContextSwitchesPerMessage: result.client.contextSwitchesPerMessage,
            fairness: result.fairness.jainIndex, errors: result.errors.total, run: result)
        step.heatmap = writeHeatmap(load.intervals, step: step)
        if result.errors.total > 0 {
            throw SweepFailure(
                "loaded phase: \(result.errors.summary) errors; first: \(result.errors.firstError ?? "?")\(server.exitNote)")
        }
        if !result.complete { throw SweepFailure("loaded phase: \(result.stopReason ?? "ended early")\(server.exitNote)") }
        if result.server == nil { throw SweepFailure("loaded phase: \(result.serverNote ?? "no server figures")") }
        if population.open != idle { throw SweepFailure("idle connections were lost during the loaded phase") }
    }

    /// The loaded phase's latency over time as `heatmap-SERVER-N[-roundR].svg` in the output folder;
    /// its file name, or nil if it could not be written (the step's figures stand without it).
    private func writeHeatmap(_ recording: IntervalRecording?, step: SweepStep) -> String? {
        guard let recording else { return nil }
        let name = "heatmap-\(step.server.replacingOccurrences(of: "/", with: "-"))-\(step.connections)"
            + (step.round.map { "-round\($0)" } ?? "") + ".svg"
        let title = "Latency over time: \(step.server), \(TextFormat.grouped(step.connections)) open, \(step.loaded?.active ?? 0) sending"
        let svg = LatencyHeatmap(title: title, intervals: recording.intervals, footer: SweepCharts.footer(results)).render()
        do {
            try FileManager.default.createDirectory(at: plan.output, withIntermediateDirectories: true)
            try svg.write(to: plan.output.appendingPathComponent(name), atomically: true, encoding: .utf8)
            return name
        } catch {
            return nil
        }
    }
}

extension SweepStep {
    /// This step marked failed (or interrupted) in `phase` with `reason`; figures already measured are kept.
    func failing(_ reason: String, in phase: Phase, stopped: Bool) -> SweepStep {
        var step = self
        step.status = stopped ? .interrupted : .failed
        step.failedIn = step.failedIn ?? phase
        step.reason = step.reason.map { "\($0); \(reason)" } ?? reason
        return step
    }
}

/// What a sweep says on stderr while it runs: a live line (`[3/12] libev · 5000 connections: opening
/// 2048/5000`), meant for a terminal, and one line per finished step. Both off by default (tests).
final class SweepProgress: @unchecked Sendable {
    // @unchecked: `step` and `lastShown` are touched by the sweep's thread only (the engine calls
    // the progress closure on the thread that called `run`).
    let live: Bool
    let stepLines: Bool
    var step = ""
    private var lastShown = ""

    init(live: Bool = false, stepLines: Bool = false) {
        self.live = live
        self.stepLines = stepLines
    }

    /// Rewrites the live line.
    func show(_ what: String) {
        guard live else { return }
        let line = "\(step): \(what)"
        guard line != lastShown else { return }
        lastShown = line
        TerminalLine(enabled: true).show(line)
    }

    func clear() {
        guard live, !lastShown.isEmpty else { return }
        lastShown = ""
        TerminalLine(enabled: true).clear()
    }

    /// One line per finished step, on stderr: `[3/12] libev · 5000 connections: ok, RSS 12.1 MiB …`.
    func finished(_ result: SweepStep) {
        clear()
        guard stepLines else { return }
        var parts: [String] = []
        if let idle = result.idle {
            parts.append(
                "RSS \(TextFormat.fixed(Double(idle.rssKiB) / 1024, 1)) MiB, "
                    + "\(TextFormat.fixed(idle.rssPerConnectionKiB, 2)) KiB/conn, \(idle.threads) threads")
        }
        if let loaded = result.loaded {
            parts.append(
                "\(Int(loaded.messagesPerSecond)) msgs/s, p99 \(Int(loaded.p99Microseconds)) µs, "
                    + "\(loaded.serverContextSwitchesPerMessage.map { TextFormat.fixed($0, 3) } ?? "?") cs/msg")
        }
        var line = "\(step): \(result.status.rawValue)"
        if !parts.isEmpty { line += ", " + parts.joined(separator: ", ") }
        if let reason = result.reason { line += " (\(reason))" }
        writeAll(STDERR_FILENO, Array((line + "\n").utf8))
    }
}
