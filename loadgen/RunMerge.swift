import EchoProtocol
import Histogram

/// `loadgen merge`: runs of the same settings from several client machines against one server,
/// combined into one result. Messages and rates add up, latency histograms are added (percentiles are
/// never averaged), fairness is computed over every connection of every run, and the server's
/// figures, which each client read of the same server, are taken once (from the first run).
enum RunMerge {
    static func merge(_ runs: [(name: String, result: LoadResult)]) throws(StartupError) -> LoadResult {
        guard let (firstName, first) = runs.first, runs.count >= 2 else {
            throw StartupError("merge needs at least two results")
        }
        var histogram: Histogram<UInt64>? = nil
        for (name, run) in runs {
            guard run.mode == "run", run.schemaVersion == first.schemaVersion else {
                throw StartupError("\(name) is a '\(run.mode)' result of schema \(run.schemaVersion); merge takes `loadgen run --json` results of one schema")
            }
            guard run.target == first.target || sameServer(run, first) else {
                throw StartupError("\(name) measured \(run.target) but \(firstName) measured \(first.target)")
            }
            let (a, b) = (run.settings, first.settings)
            guard a.messageSize == b.messageSize, a.depth == b.depth, a.durationSeconds == b.durationSeconds,
                a.warmupSeconds == b.warmupSeconds, (a.rate == nil) == (b.rate == nil)
            else {
                throw StartupError(
                    "\(name) and \(firstName) differ in their settings (size, depth, duration, warm-up or open/closed loop)")
            }
            guard let runHistogram = run.latencyHistogram else {
                throw StartupError("\(name) has no latency histogram (written by an older loadgen); it cannot be merged")
            }
            if histogram == nil { histogram = runHistogram } else { histogram!.add(runHistogram) }
        }
        // Counting one run twice would double its messages: refuse the same result, or the same provenance
        // (one process on one host at one moment), given twice.
        for (index, (name, run)) in runs.enumerated() {
            for (otherName, other) in runs[..<index] {
                if run == other {
                    throw StartupError("\(name) and \(otherName) hold the same run; merge each run once")
                }
                if let provenance = run.provenance, provenance.pid != nil, provenance == other.provenance {
                    throw StartupError(
                        "\(name) and \(otherName) have the same provenance (host \(provenance.host), pid \(provenance.pid!), \(provenance.madeAt ?? "?")): the same run; merge each run once")
                }
            }
        }

        var merged = first
        let all = runs.map(\.result)
        func sum(_ value: (LoadResult) -> Int) -> Int { all.reduce(0) { $0 + value($1) } }
        func sum(_ value: (LoadResult) -> Double) -> Double { all.reduce(0) { $0 + value($1) } }
        merged.settings.connections = sum { $0.settings.connections }
        merged.settings.threads = sum { $0.settings.threads }
        merged.settings.sourceAddresses = sum { $0.settings.sourceAddresses }
        merged.settings.rate = first.settings.rate == nil ? nil : sum { $0.settings.rate ?? 0 }
        merged.settings.cpus = []  // per machine
        merged.connections = ConnectionFigures(
            requested: sum { $0.connections.requested }, established: sum { $0.connections.established },
            peakOpen: sum { $0.connections.peakOpen }, connectSeconds: all.map(\.connections.connectSeconds).max() ?? 0,
            listenOverflows: all.map(\.connections.listenOverflows).max() ?? 0)
        merged.measuredSeconds = all.map(\.measuredSeconds).max() ?? 0
        merged.messages = sum { $0.messages }
        // Each machine measured its own window; the rates of windows that overlap add up.
        merged.messagesPerSecond = sum { $0.messagesPerSecond }
        merged.bytesPerSecond = sum { $0.bytesPerSecond }
        merged.latencyHistogram = histogram
        merged.latencyMicroseconds = LatencyFigures(histogram!)
        merged.fairness = mergedFairness(all.map(\.fairness))
        merged.errors = all.dropFirst().reduce(first.errors) { var errors = $0; errors.add($1.errors); return errors }
        merged.client = mergedClient(all.map(\.client), messages: merged.messages)
        merged.totals = LoadResult.Totals(
            messagesCompleted: sum { $0.totals.messagesCompleted }, bytesSent: sum { $0.totals.bytesSent },
            bytesReceived: sum { $0.totals.bytesReceived })
        merged.unsentMessages = sum { $0.unsentMessages }
        merged.complete = all.allSatisfy(\.complete)
        merged.stopReason = all.compactMap(\.stopReason).first
        merged.provenance = .current()
        merged.mergedRuns = runs.count
        merged.perSecond = nil  // each machine's seconds are its own; they are not aligned
        let lateness = all.compactMap(\.sendLatenessHistogram)
        if let firstLateness = lateness.first {
            SendLateness.attach(lateness.dropFirst().reduce(into: firstLateness) { $0.add($1) }, to: &merged)
        }
        return merged
    }

    /// Two runs that reached one server by different addresses (one per client host, as
    /// bench/multi-host.sh's namespaces do): the same port, and the same server process read.
    static func sameServer(_ a: LoadResult, _ b: LoadResult) -> Bool {
        guard let serverA = a.server, let serverB = b.server, serverA.pid == serverB.pid else { return false }
        return a.target.split(separator: ":").last == b.target.split(separator: ":").last
    }

    /// Exact for min, max and Jain's index (from n, Σx, Σx²); the median is the median of the runs'.
    static func mergedFairness(_ parts: [FairnessFigures]) -> FairnessFigures {
        let n = parts.reduce(0) { $0 + ($1.connections ?? 0) }
        let sum = parts.reduce(0.0) { $0 + ($1.sum ?? 0) }
        let squares = parts.reduce(0.0) { $0 + ($1.sumOfSquares ?? 0) }
        let medians = parts.map(\.median).sorted()
        return FairnessFigures(
            minimum: parts.map(\.minimum).min() ?? 0, median: medians[medians.count / 2],
            maximum: parts.map(\.maximum).max() ?? 0,
            jainIndex: squares > 0 && n > 0 ? sum * sum / (Double(n) * squares) : 0,
            connections: n, sum: sum, sumOfSquares: squares)
    }

    /// The client machines together: their CPU and switches added up, per message of them all.
    static func mergedClient(_ parts: [ClientFigures], messages: Int) -> ClientFigures {
        var client = parts[0]
        client.loops = parts.reduce(0) { $0 + $1.loops }
        client.userSeconds = parts.reduce(0) { $0 + $1.userSeconds }
        client.systemSeconds = parts.reduce(0) { $0 + $1.systemSeconds }
        client.cpuSeconds = parts.reduce(0) { $0 + $1.cpuSeconds }
        client.cpuPercent = parts.reduce(0) { $0 + $1.cpuPercent }
        client.voluntaryContextSwitches = parts.reduce(0) { $0 + $1.voluntaryContextSwitches }
        client.involuntaryContextSwitches = parts.reduce(0) { $0 + $1.involuntaryContextSwitches }
        client.contextSwitches = parts.reduce(0) { $0 + $1.contextSwitches }
        client.cpuMicrosecondsPerMessage = messages > 0 ? client.cpuSeconds * 1e6 / Double(messages) : 0
        client.contextSwitchesPerMessage = messages > 0 ? Double(client.contextSwitches) / Double(messages) : 0
        client.maxRSSKiB = parts.map(\.maxRSSKiB).max() ?? 0
        return client
    }
}
