import EchoProtocol
import Histogram

/// Latency percentiles of the measured messages, in microseconds.
struct LatencyFigures: Codable, Sendable, Equatable {
    var count: Int
    var mean: Double
    var p50: Double
    var p90: Double
    var p99: Double
    var p999: Double
    var max: Double

    init(count: Int, mean: Double, p50: Double, p90: Double, p99: Double, p999: Double, max: Double) {
        self.count = count
        self.mean = mean
        self.p50 = p50
        self.p90 = p90
        self.p99 = p99
        self.p999 = p999
        self.max = max
    }

    /// From a histogram of nanoseconds.
    init(_ histogram: Histogram<UInt64>) {
        let empty = histogram.totalCount == 0
        func micros(_ percentile: Double) -> Double {
            empty ? 0 : Double(histogram.valueAtPercentile(percentile)) / 1000
        }
        self.init(
            count: Int(histogram.totalCount), mean: empty ? 0 : histogram.mean / 1000, p50: micros(50),
            p90: micros(90), p99: micros(99), p999: micros(99.9), max: empty ? 0 : Double(histogram.max) / 1000)
    }
}

/// How evenly the measured messages spread over the connections.
struct FairnessFigures: Codable, Sendable, Equatable {
    var minimum: Int
    var median: Int
    var maximum: Int
    /// Jain's fairness index, (Σx)² / (n·Σx²): 1 when every connection got the same, 1/n when one got all.
    var jainIndex: Double
    /// n, Σx and Σx² over the connections: what `loadgen merge` needs to compute Jain's index over
    /// several runs' connections exactly (the median cannot be merged).
    var connections: Int?
    var sum: Double?
    var sumOfSquares: Double?

    init(minimum: Int, median: Int, maximum: Int, jainIndex: Double, connections: Int? = nil, sum: Double? = nil,
         sumOfSquares: Double? = nil) {
        self.minimum = minimum
        self.median = median
        self.maximum = maximum
        self.jainIndex = jainIndex
        self.connections = connections
        self.sum = sum
        self.sumOfSquares = sumOfSquares
    }

    init(messagesPerConnection counts: [Int]) {
        let sorted = counts.sorted()
        guard !sorted.isEmpty else {
            self.init(minimum: 0, median: 0, maximum: 0, jainIndex: 0)
            return
        }
        let sum = sorted.reduce(0.0) { $0 + Double($1) }
        let squares = sorted.reduce(0.0) { $0 + Double($1) * Double($1) }
        self.init(
            minimum: sorted[0], median: sorted[sorted.count / 2], maximum: sorted[sorted.count - 1],
            jainIndex: squares > 0 ? sum * sum / (Double(sorted.count) * squares) : 0,
            connections: sorted.count, sum: sum, sumOfSquares: squares)
    }
}

/// A process's CPU and context switches accrued over a phase, and both per message: the server's
/// figures and the client's are derived the same way, here. Encoded flat, into its owner's object.
struct CPUFigures: Codable, Sendable, Equatable {
    var userSeconds: Double
    var systemSeconds: Double
    var cpuSeconds: Double
    /// CPU time over wall time of the phase: 100 is one core.
    var cpuPercent: Double
    var voluntaryContextSwitches: Int
    var involuntaryContextSwitches: Int
    var contextSwitches: Int
    var cpuMicrosecondsPerMessage: Double
    var contextSwitchesPerMessage: Double

    /// `usage` accrued over `seconds` of wall time for `messages`. Summed over /proc/PID/task, a
    /// foreign server's counts lose every thread that exits and can even fall: never a negative
    /// count (its owner flags the case instead).
    init(usage: ResourceUsage, seconds: Double, messages: Int) {
        userSeconds = usage.userSeconds
        systemSeconds = usage.systemSeconds
        cpuSeconds = usage.cpuSeconds
        cpuPercent = seconds > 0 ? 100 * usage.cpuSeconds / seconds : 0
        voluntaryContextSwitches = max(0, usage.voluntaryContextSwitches)
        involuntaryContextSwitches = max(0, usage.involuntaryContextSwitches)
        contextSwitches = voluntaryContextSwitches + involuntaryContextSwitches
        cpuMicrosecondsPerMessage = messages > 0 ? usage.cpuSeconds * 1e6 / Double(messages) : 0
        contextSwitchesPerMessage = messages > 0 ? Double(contextSwitches) / Double(messages) : 0
    }
}

/// The server over the measured phase: memory and process figures at its end, CPU and context
/// switches accrued during it, and both per message (`cpu`, whose fields read as this type's own).
@dynamicMemberLookup
struct ServerFigures: Codable, Sendable, Equatable {
    /// `stats-endpoint`, `pid` or `listening-socket`.
    var source: String
    var pid: Int32
    var variant: String
    var rssKiB: Int
    var hwmKiB: Int
    var vmSizeKiB: Int
    var threads: Int
    var openFDs: Int
    var cpu: CPUFigures
    /// True when threads of a /proc-read server exited during the phase and took their counts along
    /// (seen as a count that fell); the figures above are then a lower bound.
    var contextSwitchesUndercounted: Bool
    /// How the switches were counted: `getrusage` (the server's own), `taskstats` (one netlink request
    /// for the whole thread group) or `proc-threads` (a /proc status file per thread, the fallback).
    var contextSwitchesFrom: ServerSnapshot.SwitchCounting?
    /// The longer of the two reads of the server (start and end of the measured window), in ms:
    /// wall time (with a stats endpoint, mostly the server's queue), and loadgen's CPU for it.
    var readMilliseconds: Double
    var readCPUMilliseconds: Double

    subscript<T>(dynamicMember field: WritableKeyPath<CPUFigures, T>) -> T {
        get { cpu[keyPath: field] }
        set { cpu[keyPath: field] = newValue }
    }

    init(source: ServerProbe.Method, from start: ServerSnapshot, to end: ServerSnapshot, seconds: Double, messages: Int,
         read: ServerReadCost = .init()) {
        let usage = end.usage.since(start.usage)
        self.source = source.rawValue
        pid = end.pid
        variant = end.variant
        rssKiB = end.memory.rssKiB
        hwmKiB = end.memory.hwmKiB
        vmSizeKiB = end.memory.vmSizeKiB
        threads = end.threads
        openFDs = end.openFDs
        cpu = CPUFigures(usage: usage, seconds: seconds, messages: messages)
        contextSwitchesUndercounted =
            source != .statsEndpoint && (usage.voluntaryContextSwitches < 0 || usage.involuntaryContextSwitches < 0)
        contextSwitchesFrom = end.contextSwitchesFrom
        readMilliseconds = read.wallSeconds * 1000
        readCPUMilliseconds = read.cpuSeconds * 1000
    }

    private enum CodingKeys: String, CodingKey {
        case source, pid, variant, rssKiB, hwmKiB, vmSizeKiB, threads, openFDs, contextSwitchesUndercounted,
            contextSwitchesFrom, readMilliseconds, readCPUMilliseconds
    }

    init(from decoder: any Decoder) throws {
        cpu = try CPUFigures(from: decoder)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        source = try container.decode(String.self, forKey: .source)
        pid = try container.decode(Int32.self, forKey: .pid)
        variant = try container.decode(String.self, forKey: .variant)
        rssKiB = try container.decode(Int.self, forKey: .rssKiB)
        hwmKiB = try container.decode(Int.self, forKey: .hwmKiB)
        vmSizeKiB = try container.decode(Int.self, forKey: .vmSizeKiB)
        threads = try container.decode(Int.self, forKey: .threads)
        openFDs = try container.decode(Int.self, forKey: .openFDs)
        contextSwitchesUndercounted = try container.decode(Bool.self, forKey: .contextSwitchesUndercounted)
        contextSwitchesFrom = try container.decodeIfPresent(ServerSnapshot.SwitchCounting.self, forKey: .contextSwitchesFrom)
        readMilliseconds = try container.decode(Double.self, forKey: .readMilliseconds)
        readCPUMilliseconds = try container.decode(Double.self, forKey: .readCPUMilliseconds)
    }

    func encode(to encoder: any Encoder) throws {
        try cpu.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(source, forKey: .source)
        try container.encode(pid, forKey: .pid)
        try container.encode(variant, forKey: .variant)
        try container.encode(rssKiB, forKey: .rssKiB)
        try container.encode(hwmKiB, forKey: .hwmKiB)
        try container.encode(vmSizeKiB, forKey: .vmSizeKiB)
        try container.encode(threads, forKey: .threads)
        try container.encode(openFDs, forKey: .openFDs)
        try container.encode(contextSwitchesUndercounted, forKey: .contextSwitchesUndercounted)
        try container.encodeIfPresent(contextSwitchesFrom, forKey: .contextSwitchesFrom)
        try container.encode(readMilliseconds, forKey: .readMilliseconds)
        try container.encode(readCPUMilliseconds, forKey: .readCPUMilliseconds)
    }
}

/// loadgen itself over the measured phase (getrusage of the whole process), so a reader can tell
/// whether the client was the bottleneck; the CPU figures are `cpu`'s, read as this type's own.
@dynamicMemberLookup
struct ClientFigures: Codable, Sendable, Equatable {
    var loops: Int
    var cpu: CPUFigures
    var maxRSSKiB: Int
    /// The busiest client loop thread's CPU over its life (connecting and draining included), 100 = a
    /// full core: near 100 with --spin. Unlike the figures above it excludes the rest of the process.
    var busiestLoopPercent: Double? = nil

    subscript<T>(dynamicMember field: WritableKeyPath<CPUFigures, T>) -> T {
        get { cpu[keyPath: field] }
        set { cpu[keyPath: field] = newValue }
    }

    init(loops: Int, usage: ResourceUsage, seconds: Double, messages: Int) {
        self.loops = loops
        cpu = CPUFigures(usage: usage, seconds: seconds, messages: messages)
        maxRSSKiB = usage.maxRSSKiB
    }

    private enum CodingKeys: String, CodingKey { case loops, maxRSSKiB, busiestLoopPercent }

    init(from decoder: any Decoder) throws {
        cpu = try CPUFigures(from: decoder)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        loops = try container.decode(Int.self, forKey: .loops)
        maxRSSKiB = try container.decode(Int.self, forKey: .maxRSSKiB)
        busiestLoopPercent = try container.decodeIfPresent(Double.self, forKey: .busiestLoopPercent)
    }

    func encode(to encoder: any Encoder) throws {
        try cpu.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(loops, forKey: .loops)
        try container.encode(maxRSSKiB, forKey: .maxRSSKiB)
        try container.encodeIfPresent(busiestLoopPercent, forKey: .busiestLoopPercent)
    }
}

/// One second of a run's measured phase.
struct SecondFigures: Codable, Sendable, Equatable {
    /// Seconds since the measured phase began, at the end of this one.
    var second: Double
    var messagesPerSecond: Double
    var p99Microseconds: Double
    /// The last entry, from the last full second to the end of the phase: shorter than a second
    /// (its rate is still per second).
    var partial = false

    init(second: Double, messagesPerSecond: Double, p99Microseconds: Double, partial: Bool = false) {
        self.second = second
        self.messagesPerSecond = messagesPerSecond
        self.p99Microseconds = p99Microseconds
        self.partial = partial
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        second = try container.decode(Double.self, forKey: .second)
        messagesPerSecond = try container.decode(Double.self, forKey: .messagesPerSecond)
        p99Microseconds = try container.decode(Double.self, forKey: .p99Microseconds)
        partial = try container.decodeIfPresent(Bool.self, forKey: .partial) ?? false  // results before it existed
    }
}

/// Connection counts of a run.
struct ConnectionFigures: Codable, Sendable, Equatable {
    var requested: Int
    /// Connections that came up: connected, and their first message echoed.
    var established: Int
    /// The most connections open at one moment (summed over loops' peaks: an upper bound when they differ in time).
    var peakOpen: Int
    /// Time to open every connection and see its first echo.
    var connectSeconds: Double
    /// Machine-wide TcpExt ListenOverflows during the connect phase: connections a listener's full accept
    /// queue dropped (TCP retries them; with many, lower --connect-rate). Other processes' count too.
    var listenOverflows: Int
}

/// Everything `loadgen run` measured; `--json` prints it, the sweep collects it.
/// The schema is documented in docs/loadgen.md; bump `currentSchemaVersion` on any change
/// that is not a new optional field.
struct LoadResult: Codable, Sendable, Equatable {
    static let currentSchemaVersion = 1

    var schemaVersion = LoadResult.currentSchemaVersion
    var mode = "run"
    var target: String
    var settings: Settings
    var connections: ConnectionFigures
    /// Length of the measured phase (shorter than asked when the run ended early).
    var measuredSeconds: Double
    /// Messages that came back whole and verified during the measured phase.
    var messages: Int
    var messagesPerSecond: Double
    /// Payload bytes per second, one way.
    var bytesPerSecond: Double
    var latencyMicroseconds: LatencyFigures
    var fairness: FairnessFigures
    var errors: ErrorCounts
    /// Nil when no server could be read; `serverNote` says why.
    var server: ServerFigures?
    var serverNote: String?
    var client: ClientFigures
    /// The whole run, warm-up and drain included: what the byte counts of a server must match.
    var totals: Totals
    /// Open loop: messages scheduled before the end that were never sent, because the load fell behind its
    /// schedule (connections full, or the client too slow). 0 for a closed loop.
    var unsentMessages: Int
    /// False when the run ended before its time (all connections lost, or interrupted); `stopReason` says why.
    var complete: Bool
    var stopReason: String?
    /// The measured latencies themselves (nanoseconds), so runs can be merged by adding histograms,
    /// never by averaging percentiles. Nil in results written before it existed.
    var latencyHistogram: Histogram<UInt64>?
    var provenance: Provenance?
    /// Each second of the measured phase: messages per second and the p99 of that second (the
    /// highest over the client's loops).
    var perSecond: [SecondFigures]?
    /// `loadgen merge`: how many runs this result combines; nil for a single run.
    var mergedRuns: Int? = nil
    /// Open loop: how late the client sent the measured messages against their schedule (µs); the
    /// latency includes it. Nil for a closed loop.
    var sendLatenessMicroseconds: LatencyFigures? = nil
    /// The same as a histogram of nanoseconds, so `loadgen merge` can add them.
    var sendLatenessHistogram: Histogram<UInt64>? = nil
    /// Open loop: the lateness p99 was above a quarter of the latency p99 (`SendLateness.note` says so).
    var clientWasLate: Bool? = nil

    struct Settings: Codable, Sendable, Equatable {
        var connections: Int
        var messageSize: Int
        /// Closed loop: messages in flight per connection. Open loop: the most a connection may hold.
        var depth: Int
        /// Open loop's total messages per second; nil for a closed loop.
        var rate: Double?
        var durationSeconds: Double
        var warmupSeconds: Double
        var threads: Int
        var connectRate: Double?
        var sourceAddresses: Int
        var cpus: [Int]
        /// `--spin`: the client loops polled without sleeping. Nil when not asked.
        var spin: Bool? = nil
    }

    struct Totals: Codable, Sendable, Equatable {
        var messagesCompleted: Int
        var bytesSent: Int
        var bytesReceived: Int
    }

    /// Whether the run counts as a success (the exit status is 0 only then): it ran its time, every
    /// byte came back right, and it measured something.
    var succeeded: Bool { errors.total == 0 && complete && messages > 0 }

    /// Why it did not succeed, in one line for stderr; nil when it did.
    var failureLine: String? {
        if succeeded { return nil }
        return errors.failureLine ?? stopReason
    }
}
