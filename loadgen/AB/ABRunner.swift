#if canImport(Glibc)
import Glibc
#endif
import EchoProtocol

/// `loadgen ab`'s engine: N rounds, each running every contender once with the same load, the order
/// reversed every other round (A B, B A, …). A started server is fresh for each run (started, pinned,
/// measured, stopped), so no run inherits another's warm caches, grown heaps or leftover threads.
struct ABRunner {
    var contenders: [ABContender]
    var rounds = 4
    /// The load of every run; its target and server probe are set per contender.
    var load: LoadRun
    /// Connections opened first and held idle beside the loading ones (as the sweep's loaded phase).
    var idleConnections = 0
    var serverCPUs: CPUSet?
    var pinningSummary = "not pinned"
    var progress: (String) -> Void = { _ in }

    func run(stop: StopRequest? = nil) -> ABResult {
        var finished: [ABResult.Round] = []
        var failures: [String] = []
        roundLoop: for round in 0..<rounds {
            let order = ABContender.order(of: contenders, round: round)
            var runs: [ABResult.Run] = []
            for contender in order {
                if stop?.isRequested == true { failures.append("interrupted in round \(round + 1)"); break roundLoop }
                progress("round \(round + 1) of \(rounds): \(contender.name)")
                let run = measure(contender, stop: stop)
                if let failure = run.failure { failures.append("round \(round + 1), \(contender.name): \(failure)") }
                runs.append(run)
                progress("round \(round + 1) of \(rounds): \(contender.name) \(TextFormat.grouped(Int(run.messagesPerSecond))) msgs/s")
            }
            finished.append(ABResult.Round(round: round + 1, order: order.map(\.name), runs: runs))
        }
        let settings = ABResult.Settings(
            rounds: rounds, connections: load.connection.connections, idleConnections: idleConnections,
            messageSize: load.messageSize, depth: load.depth, rate: load.rate, durationSeconds: load.duration.seconds,
            warmupSeconds: load.warmup.seconds, threads: load.connection.threads, spin: load.spin, pinning: pinningSummary)
        return ABResult(
            contenders: contenders.map { .init(name: $0.name, origin: $0.origin) }, settings: settings, rounds: finished,
            comparisons: ABResult.compare(finished, contenders: contenders.map(\.name)),
            complete: failures.isEmpty && finished.count == rounds, failures: failures, provenance: .current())
    }

    /// One run of one contender: start it if it is ours to start, load it, stop it. A started server
    /// that does not exit cleanly on SIGTERM fails the run: its figures may be a dying process's.
    private func measure(_ contender: ABContender, stop: StopRequest?) -> ABResult.Run {
        var load = self.load
        guard case .started(let swept) = contender.source else {
            if case .address(let address) = contender.source { load.connection.target = address }
            return measure(contender.name, load, server: nil, stop: stop)
        }
        let server: RunningServer
        do {
            server = try RunningServer(swept, pinTo: serverCPUs)
        } catch {
            return ABResult.Run(contender: contender.name, failure: error.description)
        }
        load.connection.target = server.address
        if let stats = server.statsAddress { load.connection.serverStats = stats } else { load.connection.serverPID = server.pid }
        var run = measure(contender.name, load, server: server, stop: stop)
        if let problem = server.stop(), run.failure == nil { run.failure = problem }
        return run
    }

    /// Holds the idle connections (closed before returning), then runs the load.
    private func measure(_ name: String, _ load: LoadRun, server: RunningServer?, stop: StopRequest?) -> ABResult.Run {
        var idle: IdlePopulation? = nil
        defer { idle?.closeAll() }
        if idleConnections > 0 {
            progress("\(name): opening \(TextFormat.grouped(idleConnections)) idle connections")
            let population = IdlePopulation(target: load.connection.target, count: idleConnections,
                                            shouldStop: { stop?.isRequested == true })
            idle = population
            guard population.open == idleConnections else {
                return ABResult.Run(contender: name,
                                    failure: "idle connections: " + population.summary(requested: idleConnections) + (server?.exitNote ?? ""))
            }
        }
        do {
            return ABResult.Run(contender: name, result: try load.run(stop: stop))
        } catch {
            return ABResult.Run(contender: name, failure: error.oneLine + (server?.exitNote ?? ""))
        }
    }
}
