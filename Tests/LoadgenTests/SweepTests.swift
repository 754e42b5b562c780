#if canImport(Glibc)
import Glibc
#endif
import EchoProtocol
import Foundation
import Testing

@testable import loadgen

/// `loadgen sweep` end to end, on this package's real servers (built beside the test runner):
/// a tiny sweep must leave a row, an entry and a chart point for every step, and no process behind.
@Suite(.serialized)
struct SweepTests {
    static func plan(_ servers: [SweptServer], connections: [Int], output: URL) -> SweepPlan {
        var plan = SweepPlan(servers: servers, connections: connections, output: output)
        plan.active = 5
        plan.duration = .milliseconds(300)
        plan.warmup = .milliseconds(100)
        plan.hold = .milliseconds(100)
        plan.pinning = SweepPinning.split(CPUSet.available())
        return plan
    }

    static func temporaryDirectory() -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("sweep-test-\(getpid())-\(UUID().uuidString)")
    }

    static var variants: [SweptServer] {
        ["threads", "libev"].map { SweptServer.variant($0, in: SweptServer.productsDirectory) }
    }

    @Test func tinySweepWritesEveryStepToCSVJSONAndCharts() throws {
        let output = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: output) }
        let results = try SweepRunner(plan: Self.plan(Self.variants, connections: [10, 50], output: output)).run()

        // Every step ran and measured both phases.
        #expect(results.complete)
        // A churn phase per step, after the loaded one: lives, and the server's CPU per connection.
        for step in results.steps {
            let churn = try #require(step.completedChurn, "\(step.server) at \(step.connections): \(step.reason ?? "")")
            #expect(churn.lives > 0 && churn.errors == 0)
            #expect((churn.serverCPUMicrosecondsPerConnection ?? 0) > 0)
        }
        #expect(FileManager.default.fileExists(atPath: output.appendingPathComponent("churn-cpu.svg").path))
        // Kernel memory and the RSS slope over the two counts, for every idle phase.
        for step in results.steps {
            #expect(step.idle?.kernelPerConnection != nil, "\(step.server)")
            #expect(step.idle?.rssSlopeKiBPerConnection != nil, "\(step.server)")
        }
        #expect(SweepReport.table(results).contains("slope KiB/conn"))
        // A percentile file per loaded phase, whose last row counts that phase's messages.
        for step in results.steps {
            let hgrm = try String(contentsOf: output.appendingPathComponent("\(step.server)-\(step.connections).hgrm"), encoding: .utf8)
            let last = hgrm.split(separator: "\n").map { $0.split(separator: " ").compactMap { Double($0) } }.filter { $0.count >= 3 }.last
            #expect(last.map { Int($0[2]) } == step.loaded?.messages)
        }
        #expect(results.steps.map { "\($0.server)@\($0.connections)" } == ["threads@10", "threads@50", "libev@10", "libev@50"])
        for step in results.steps {
            #expect(step.status == .ok, "\(step.server) at \(step.connections): \(step.reason ?? "")")
            #expect(step.idle?.open == step.connections)
            #expect((step.idle?.rssKiB ?? 0) > 0)
            #expect(step.loaded?.active == 5)
            #expect(step.loaded?.idle == step.connections - 5)
            #expect((step.loaded?.messages ?? 0) > 0)
            #expect(step.loaded?.errors == 0)
        }
        // The thread-per-connection server holds a thread per idle connection; libev does not.
        let threads = results.steps.filter { $0.server == "threads" }.compactMap { $0.idle?.threads }
        let libev = results.steps.filter { $0.server == "libev" }.compactMap { $0.idle?.threads }
        #expect(threads.count == 2 && threads[1] - threads[0] == 40)
        #expect(libev.count == 2 && libev[0] == libev[1])

        // CSV: the header and one row per step.
        let csv = try String(contentsOf: output.appendingPathComponent("results.csv"), encoding: .utf8)
        let rows = csv.split(separator: "\n")
        #expect(rows.first.map(String.init) == SweepResults.csvHeader.joined(separator: ","))
        #expect(rows.dropFirst().map { $0.split(separator: ",", omittingEmptySubsequences: false).prefix(4).joined(separator: ",") }
            == ["threads,10,ok,", "threads,50,ok,", "libev,10,ok,", "libev,50,ok,"])
        #expect(rows.dropFirst().allSatisfy { $0.split(separator: ",", omittingEmptySubsequences: false).count == SweepResults.csvHeader.count })

        // JSON: decodes back to the same results.
        let json = try Data(contentsOf: output.appendingPathComponent("results.json"))
        let decoded = try SweepResults.decode(json)
        #expect(decoded == results)

        // Charts: well-formed SVG, one series per server, a point per step.
        for definition in SweepCharts.definitions {
            let text = try String(contentsOf: output.appendingPathComponent(definition.file), encoding: .utf8)
            let svg = try ParsedSVG(text)
            #expect(svg.series == ["threads", "libev"], "\(definition.file)")
            #expect(svg.circles == 4, "\(definition.file)")
        }
        let html = try String(contentsOf: output.appendingPathComponent("index.html"), encoding: .utf8)
        for definition in SweepCharts.definitions { #expect(html.contains(#"src="\#(definition.file)""#)) }

        // Nothing left running.
        #expect(StartedProcesses.shared.running.isEmpty)
        for pid in results.steps.compactMap(\.serverPID) { #expect(kill(pid, 0) != 0) }
    }

    /// `--scenario`: every server under every scenario, its options on the server's command line,
    /// the figures per scenario (a 30 ms block on every message shows in p50), and the bar charts.
    @Test func scenariosRunEveryServerUnderEveryScenario() throws {
        let output = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: output) }
        let scenarios = [SweepScenario("base=")!, SweepScenario("block=--block 30ms --block-every 1")!]
        var servers = scenarios.flatMap { scenario in Self.variants.map { $0.under(scenario) } }
        // A foreign server gets the options at the end of its command (go-echo takes them after its port).
        let foreign = SweptServer(foreign: "other=exit 3 # {port}")!
        #expect(foreign.under(scenarios[1]).launch == .foreign(command: "exit 3 # {port} --block 30ms --block-every 1"))
        servers += scenarios.prefix(1).map { foreign.under($0) }
        var plan = Self.plan(servers, connections: [10], output: output)
        plan.scenarios = scenarios
        let results = try SweepRunner(plan: plan).run()

        #expect(results.steps.map(\.server) == ["threads/base", "libev/base", "threads/block", "libev/block", "other/base"])
        #expect(results.steps.map(\.scenario) == ["base", "base", "block", "block", "base"])
        #expect(results.settings.servers[2].command.hasSuffix("--block 30ms --block-every 1"))
        for step in results.steps.prefix(4) {
            let p50 = try #require(step.completedLoaded?.p50Microseconds, "\(step.server): \(step.reason ?? "")")
            #expect(step.scenario == "block" ? p50 >= 25_000 : p50 < 25_000, "\(step.server) p50 \(p50) µs")
            #expect(step.completedLoaded?.p999Microseconds != nil)
        }
        for file in ["scenario-throughput.svg", "scenario-p50.svg", "scenario-p99.svg", "scenario-p999.svg"] {
            let svg = try String(contentsOf: output.appendingPathComponent(file), encoding: .utf8)
            #expect(svg.components(separatedBy: "<rect x=").count - 1 >= 4 + 3, "\(file): a bar per server and scenario")
            #expect(svg.contains(">block<") && svg.contains(">base<"))
        }
    }

    /// `--curve`: the chosen step also runs a latency curve; its best rate is in the table, its
    /// points in curve-p99.svg.
    @Test func curvePhaseRunsAtTheChosenCount() throws {
        let output = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: output) }
        var plan = Self.plan([SweptServer.variant("libev", in: SweptServer.productsDirectory)], connections: [10, 20], output: output)
        plan.curveAt = 20
        plan.p99LimitMicroseconds = 50_000  // generous: the test machine may be busy
        let results = try SweepRunner(plan: plan).run()
        #expect(results.steps[0].curve == nil)
        let curve = try #require(results.steps[1].curve, "\(results.steps[1].reason ?? "")")
        #expect(curve.steps.first?.offered == 1000)
        #expect(curve.highestRateWithinBound != nil, "\(curve.table)")
        let svg = try ParsedSVG(String(contentsOf: output.appendingPathComponent("curve-p99.svg"), encoding: .utf8))
        // A point per step that has a latency to plot (log scale).
        #expect(svg.circles >= curve.steps.filter { $0.latencyMicroseconds.p99 > 0 && $0.achieved > 0 }.count)
        #expect(svg.series == ["libev"])
        #expect(SweepReport.table(results).contains("msgs/s within p99"))
    }

    @Test func scenarioTextIsParsed() {
        #expect(SweepScenario("work=--work 20us")?.options == ["--work", "20us"])
        #expect(SweepScenario("base=")?.options == [])
        #expect(SweepScenario("=--work 1ms") == nil)
        #expect(SweepScenario("a b=--work 1ms") == nil)
    }

    @Test func stepThatCannotRunIsRecordedAndTheSweepGoesOn() throws {
        let output = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: output) }
        let servers = [
            SweptServer(foreign: "never-listens=exit 3 # {port}")!,
            SweptServer.variant("libev", in: SweptServer.productsDirectory),
            SweptServer.variant("missing", in: SweptServer.productsDirectory),
        ]
        let results = try SweepRunner(plan: Self.plan(servers, connections: [10], output: output)).run()
        #expect(results.complete)
        #expect(results.steps.map(\.status) == [.failed, .ok, .failed])
        #expect(results.steps[0].reason?.contains("before it listened") == true, "\(results.steps[0].reason ?? "")")
        #expect(results.steps[2].reason?.contains("echo-missing does not exist") == true)
        let svg = try ParsedSVG(String(contentsOf: output.appendingPathComponent("rss-vs-connections.svg"), encoding: .utf8))
        #expect(svg.series == ["never-listens", "libev", "missing"])
        #expect(svg.circles == 1)
        #expect(StartedProcesses.shared.running.isEmpty)
    }

    @Test func stoppedSweepStillWritesWhatItHas() throws {
        let output = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: output) }
        let stop = StopRequest()
        stop.request()
        let results = try SweepRunner(plan: Self.plan(Self.variants, connections: [10], output: output), stop: stop).run()
        #expect(!results.complete)
        #expect(results.steps.isEmpty)
        #expect(results.stopReason?.contains("interrupted") == true)
        let decoded = try SweepResults.decode(Data(contentsOf: output.appendingPathComponent("results.json")))
        #expect(decoded.complete == false)
        #expect(FileManager.default.fileExists(atPath: output.appendingPathComponent("index.html").path))
    }

    @Test func foreignServerIsParsedAndCommandsAreQuoted() {
        let server = SweptServer(foreign: "c-epoll=.build-peers/c-epoll-echo {port} 1")
        #expect(server?.name == "c-epoll")
        #expect(server?.launch == .foreign(command: ".build-peers/c-epoll-echo {port} 1"))
        #expect(SweptServer(foreign: "no-port=some-server 7007") == nil)
        #expect(SweptServer(foreign: "=x {port}") == nil)
        #expect(Sweep.shellQuoted("--out") == "--out")
        #expect(Sweep.shellQuoted("c=a b {port}") == "'c=a b {port}'")
        #expect(Sweep.shellQuoted("it's") == #"'it'\''s'"#)
    }

    @Test func pinningSplitsTheCPUsInHalves() {
        #expect(SweepPinning.split(CPUSet([0, 1])) == SweepPinning(server: CPUSet([0]), client: CPUSet([1])))
        #expect(SweepPinning.split(CPUSet([0, 1, 2, 3])) == SweepPinning(server: CPUSet([0, 1]), client: CPUSet([2, 3])))
        #expect(SweepPinning.split(CPUSet([0])) == SweepPinning(server: nil, client: nil))
        #expect(CPUSet(parsing: "0,2-4")?.description == "0,2-4")
        #expect(CPUSet(parsing: "3-1") == nil)
    }

    @Test func chartsKeepFiguresOfPhasesThatCompletedBeforeAFailure() throws {
        let idle = SweepStep.IdleFigures(
            open: 100, baselineRSSKiB: 1000, rssKiB: 2000, rssPerConnectionKiB: 10, baselineVmSizeKiB: 1,
            vmSizeKiB: 1, threads: 1, openFDs: 1, openSeconds: 1)
        var partial = idle
        partial.open = 40
        let loaded = SweepStep.LoadedFigures(
            active: 10, idle: 90, measuredSeconds: 1, messages: 1000, messagesPerSecond: 1000, p50Microseconds: 50,
            p99Microseconds: 90, serverCPUPercent: 50, serverContextSwitchesPerMessage: 1, serverRSSKiB: 2000,
            clientCPUPercent: 40, clientContextSwitchesPerMessage: 0.1, fairness: 1, errors: 0, run: nil)
        var results = SweepResults(
            machine: .current(),
            settings: SweepSettings(
                servers: [.init(name: "a", command: "a"), .init(name: "b", command: "b")], connections: [100],
                active: 10, messageSize: 64, depth: 1, durationSeconds: 1, warmupSeconds: 1,
                pinning: SweepPinning(server: nil, client: nil), commandLine: "loadgen sweep"))
        // a: measured fully, then did not exit 0. b: only 40 of 100 connections opened.
        results.steps = [
            SweepStep(server: "a", connections: 100, idle: idle, loaded: loaded)
                .failing("a did not exit", in: .stop, stopped: false),
            SweepStep(server: "b", connections: 100, idle: partial).failing("40 of 100 open", in: .idle, stopped: false),
        ]
        let memory = try ParsedSVG(SweepCharts.chart(SweepCharts.definitions[0], results).render())
        #expect(memory.series == ["a", "b"])
        #expect(memory.circles == 1)
        #expect(memory.titles.contains("a failed at 100: a did not exit"))
        #expect(memory.titles.contains("b failed at 100: 40 of 100 open"))
        let throughput = try ParsedSVG(SweepCharts.chart(SweepCharts.definitions[2], results).render())
        #expect(throughput.circles == 1)
        #expect(results.csv().split(separator: "\n")[1].hasPrefix("a,100,failed,stop,a did not exit,"))
    }

    @Test func manyIdleConnectionsComeFromSeveralLoopbackAddresses() {
        #expect(IdlePopulation.sourceAddresses(for: 100).map(\.host) == ["127.0.0.1"])
        #expect(IdlePopulation.sourceAddresses(for: 5000).map(\.host) == ["127.0.0.1"])
        #expect(IdlePopulation.sourceAddresses(for: 19000).map(\.host) == ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"])
    }

    @Test func csvQuotesFieldsThatNeedIt() {
        #expect(TextFormat.csvField("plain") == "plain")
        #expect(TextFormat.csvField("a, b") == "\"a, b\"")
        #expect(TextFormat.csvField("say \"hi\"") == "\"say \"\"hi\"\"\"")
        #expect(TextFormat.trimmed(0.03120) == "0.0312")
        #expect(TextFormat.trimmed(12) == "12")
    }
}
