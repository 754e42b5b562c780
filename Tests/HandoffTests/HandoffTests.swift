import Foundation
import Testing

@testable import handoff

#if canImport(Glibc)
import Glibc
#endif

/// The JSON `handoff local|pingpong|tasks --json` prints, decoded by its documented keys.
struct RunJSON: Decodable {
    var mode: String
    var executor: String?
    var operations: Int?
    var handoffs: Int?
    var roundTrips: Int?
    var elapsedMilliseconds: Double
    var averageNanoseconds: Double
    var voluntaryContextSwitches: Int
    var involuntaryContextSwitches: Int
    var userSeconds: Double
    var systemSeconds: Double
}

/// The JSON `handoff sleepers --json` prints.
struct SleepersJSON: Decodable {
    var mode: String
    var units: String
    var requested: Int
    var started: Int
    var stopped: String?
    var peakAlive: Int
    var elapsedMilliseconds: Double
    var peakRSSKiB: Int
    var rssPerUnitKiB: Double
    var vmSizePerUnitKiB: Double
    var threadsUsed: Int
    var voluntaryContextSwitches: Int
    var involuntaryContextSwitches: Int
}

@Suite("handoff")
struct HandoffTests {
    @Test func localDoesTwoOperationsPerRoundTrip() throws {
        let run = try decodeRun(["local", "1000", "--json"])
        #expect(run.mode == "local")
        #expect(run.operations == 2000)
        #expect(run.handoffs == nil && run.roundTrips == nil)
        expectConsistent(run, count: 2000)
    }

    @Test func pingpongCountsTwoHandoffsPerRoundTrip() throws {
        let run = try decodeRun(["pingpong", "500", "--json"])
        #expect(run.mode == "pingpong")
        #expect(run.roundTrips == 500)
        #expect(run.handoffs == 1000)
        #expect(run.operations == nil)
        expectConsistent(run, count: 1000)
        // Every pass wakes a thread asleep on the condition variable: the kernel switches.
        #expect(run.voluntaryContextSwitches > 0)
    }

    @Test func tasksCountsExactlyNRoundTrips() throws {
        let run = try decodeRun(["tasks", "1000", "--json"])
        #expect(run.mode == "tasks")
        #expect(run.roundTrips == 1000)
        #expect(run.handoffs == 2000)
        expectConsistent(run, count: 2000)
    }

    /// On one netpoller loop: the same exact counts, and no kernel context switch per handoff
    /// (both tasks run on the loop's thread; a handoff is a job on its own queue).
    @Test func tasksOnOneLoopCountExactlyAndDoNotSwitchThreads() throws {
        let run = try decodeRun(["tasks", "20000", "--executor", "loop", "--json"])
        #expect(run.mode == "tasks")
        #expect(run.executor == "loop")
        #expect(run.roundTrips == 20000)
        #expect(run.handoffs == 40000)
        expectConsistent(run, count: 40000)
        #expect(run.voluntaryContextSwitches < 1000, "\(run.voluntaryContextSwitches) switches for 40000 handoffs")
    }

    @Test(arguments: [1, 2, 3, 1000])
    func tasksCountsExactlyNRoundTripsInProcess(roundTrips: Int) async {
        let report = await Tasks.measure(roundTrips: roundTrips)
        #expect(report.roundTrips == roundTrips)
        #expect(report.handoffs == 2 * roundTrips)
    }

    /// TaskTurn's continuations are unchecked: many round trips, across the pool's threads and on
    /// one loop, each counted once (a lost resume would hang, a second one would crash).
    @Test(arguments: [Tasks.Executor.default, .loop])
    func manyRoundTripsLoseNoTurn(executor: Tasks.Executor) async throws {
        let report = try await Tasks.measure(roundTrips: 100_000, executor: executor)
        #expect(report.roundTrips == 100_000)
        #expect(report.handoffs == 200_000)
    }

    @Test(arguments: ["local", "pingpong", "tasks"])
    func printsTheArticlesLines(mode: String) throws {
        let result = try runHandoff([mode, "10"])
        #expect(result.status == 0)
        let lines = result.stdout.split(separator: "\n").map(String.init)
        let (countName, averageName) = mode == "local" ? ("operations", "operation") : ("handoffs", "handoff")
        try #require(lines.count == 6, "\(lines)")
        #expect(lines[0] == "mode: \(mode)")
        #expect(lines[1] == "\(countName): 20")
        #expect(lines[2].wholeMatch(of: /elapsed: \d+\.\d{3} ms/) != nil, "\(lines[2])")
        #expect(lines[3].wholeMatch(of: try Regex("average \(averageName): \\d+\\.\\d ns")) != nil, "\(lines[3])")
        #expect(lines[4].wholeMatch(of: /voluntary context switches: \d+/) != nil, "\(lines[4])")
        #expect(lines[5].wholeMatch(of: /involuntary context switches: \d+/) != nil, "\(lines[5])")
    }

    @Test(arguments: ["tasks", "threads"])
    func sleepersReportEveryUnit(units: String) throws {
        let result = try runHandoff(["sleepers", "--units", units, "-n", "50", "--sleep", "200ms", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let run = try JSONDecoder().decode(SleepersJSON.self, from: Data(result.stdout.utf8))
        #expect(run.mode == "sleepers")
        #expect(run.units == units)
        #expect(run.requested == 50)
        #expect(run.started == 50)
        #expect(run.stopped == nil)
        // 200 ms is ample time to start 50 units, so all of them sleep at once.
        #expect(run.peakAlive == 50)
        #expect(run.elapsedMilliseconds >= 200)
        #expect(run.peakRSSKiB > 0)
        #expect(run.rssPerUnitKiB >= 0)
        if units == "threads" {
            // Each thread maps its own stack, and each is a kernel thread of this process.
            #expect(run.vmSizePerUnitKiB >= 64)
            #expect(run.threadsUsed >= 50)
        } else {
            #expect(run.threadsUsed >= 1)
        }
    }

    @Test(arguments: [["local", "0"], ["pingpong", "--", "-3"], ["tasks", "100000001"]])
    func outOfRangeCountIsRejected(arguments: [String]) throws {
        let result = try runHandoff(arguments)
        #expect(result.status != 0)
        #expect(result.stdout.isEmpty)
        let first = result.stderr.split(separator: "\n").first.map(String.init) ?? ""
        #expect(first.contains("N must be 1...100000000"), "\(result.stderr)")
    }

    @Test func sleepWithoutUnitIsRejected() throws {
        let result = try runHandoff(["sleepers", "-n", "10", "--sleep", "100"])
        #expect(result.status != 0)
        #expect(result.stderr.hasPrefix("Error: --sleep needs a unit"), "\(result.stderr)")
    }

    @Test func sleepersCountIsBounded() throws {
        let result = try runHandoff(["sleepers", "-n", "0"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("-n must be 1...1000000"), "\(result.stderr)")
    }
}

// MARK: - Running the built executable

struct RunResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

struct HandoffTestFailure: Error, CustomStringConvertible {
    let description: String
}

/// The built `handoff`: beside the test runner, or in `ECHO_LAB_BIN_DIR`.
let handoffExecutable: String = {
    if let override = ProcessInfo.processInfo.environment["ECHO_LAB_BIN_DIR"] {
        return override + "/handoff"
    }
    var url = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
    while url.pathExtension == "xctest" || url.lastPathComponent == "Contents" || url.lastPathComponent == "MacOS" {
        url.deleteLastPathComponent()
    }
    return url.appendingPathComponent("handoff").path
}()

/// Runs `handoff ARGUMENTS` to completion (killed and reaped after `timeout` seconds), output
/// collected through temporary files so a full pipe can never stall it.
func runHandoff(_ arguments: [String], timeout: Double = 60) throws -> RunResult {
    guard FileManager.default.isExecutableFile(atPath: handoffExecutable) else {
        throw HandoffTestFailure(description: "\(handoffExecutable) does not exist: build it first")
    }
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("handoff-test-\(UUID())")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let outURL = folder.appendingPathComponent("stdout")
    let errURL = folder.appendingPathComponent("stderr")
    _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
    _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
    let out = try FileHandle(forWritingTo: outURL)
    let err = try FileHandle(forWritingTo: errURL)
    defer {
        try? out.close()
        try? err.close()
    }

    let process = Process()
    process.executableURL = URL(fileURLWithPath: handoffExecutable)
    process.arguments = arguments
    process.standardOutput = out
    process.standardError = err
    process.standardInput = FileHandle.nullDevice
    try process.run()
    defer {
        // Reap it whatever happened above.
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning && Date() < deadline { usleep(2_000) }
    guard !process.isRunning else {
        throw HandoffTestFailure(description: "handoff \(arguments.joined(separator: " ")) ran over \(timeout) s")
    }
    process.waitUntilExit()
    return RunResult(
        status: process.terminationStatus,
        stdout: (try? String(contentsOf: outURL, encoding: .utf8)) ?? "",
        stderr: (try? String(contentsOf: errURL, encoding: .utf8)) ?? "")
}

func decodeRun(_ arguments: [String]) throws -> RunJSON {
    let result = try runHandoff(arguments)
    guard result.status == 0 else {
        throw HandoffTestFailure(description: "handoff exited \(result.status): \(result.stderr)")
    }
    return try JSONDecoder().decode(RunJSON.self, from: Data(result.stdout.utf8))
}

/// The fields agree with one another: average = elapsed / count, nothing negative.
func expectConsistent(_ run: RunJSON, count: Int, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(run.elapsedMilliseconds > 0, sourceLocation: sourceLocation)
    let average = run.elapsedMilliseconds * 1e6 / Double(count)
    #expect(abs(run.averageNanoseconds - average) <= max(1e-6 * average, 1e-3), sourceLocation: sourceLocation)
    #expect(run.voluntaryContextSwitches >= 0, sourceLocation: sourceLocation)
    #expect(run.involuntaryContextSwitches >= 0, sourceLocation: sourceLocation)
    #expect(run.userSeconds >= 0 && run.systemSeconds >= 0, sourceLocation: sourceLocation)
}
