import EchoProtocol
import ForeignProcess
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A check that did not hold, with what was expected and what happened.
struct ConformanceFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Which server to run: an executable built by this package, plus arguments.
struct ServerSpec: Sendable, CustomTestStringConvertible, CustomStringConvertible {
    let executable: String
    let arguments: [String]

    init(_ executable: String, _ arguments: [String] = []) {
        self.executable = executable
        self.arguments = arguments
    }

    var description: String { ([executable] + arguments).joined(separator: " ") }
    var testDescription: String { description }
}

/// The folder holding this package's built executables: the test runner lives there too.
/// `ECHO_LAB_BIN_DIR` overrides it (e.g. to test a release build).
let productsDirectory: URL = {
    if let override = ProcessInfo.processInfo.environment["ECHO_LAB_BIN_DIR"] {
        return URL(fileURLWithPath: override)
    }
    var url = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
    // On some layouts the runner sits inside NAME.xctest/; the products are beside that folder.
    while url.pathExtension == "xctest" || url.lastPathComponent == "Contents" || url.lastPathComponent == "MacOS" {
        url.deleteLastPathComponent()
    }
    return url
}()

/// A server process spawned for one test: started, waited for until it prints its readiness line,
/// and always reaped (`stop`, or `kill` as a last resort from `deinit`).
final class ServerProcess: @unchecked Sendable {
    // @unchecked: `process` is only touched by the test's thread; the output collectors lock.
    let spec: ServerSpec
    let process = Process()
    let stdout: OutputLines
    let stderr: OutputLines
    private(set) var ready: ReadinessLine?

    var pid: Int32 { process.processIdentifier }
    var address: SocketAddress { ready!.listening }

    /// Starts `spec` with `--port 0` unless the arguments name a port, and `extra` arguments.
    /// `shellPrefix` runs it through `/bin/sh -c 'PREFIX; exec SERVER ...'` (e.g. `ulimit -Hn 64`).
    init(_ spec: ServerSpec, extra: [String] = [], shellPrefix: String? = nil) throws {
        self.spec = spec
        let path = productsDirectory.appendingPathComponent(spec.executable).path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw ConformanceFailure("server executable \(path) does not exist: build it first")
        }
        var arguments = spec.arguments + extra
        if !arguments.contains("--port") { arguments += ["--port", "0"] }
        if let shellPrefix {
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            let quoted = ([path] + arguments).map { "'\($0)'" }.joined(separator: " ")
            process.arguments = ["-c", "\(shellPrefix); exec \(quoted)"]
        } else {
            process.executableURL = URL(fileURLWithPath: path)
            process.arguments = arguments
        }
        let outPipe = Pipe()
        let errPipe = Pipe()
        process.standardOutput = outPipe
        process.standardError = errPipe
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // The readers get descriptors of their own: the pipes' FileHandles close theirs whenever
        // they are freed, which may be before a reader has seen the end. Close-on-exec, as dup's
        // are not: a child that loadgen's ChildProcess starts in this process keeps every other.
        let outFD = fcntl(outPipe.fileHandleForReading.fileDescriptor, F_DUPFD_CLOEXEC, 0)
        let errFD = fcntl(errPipe.fileHandleForReading.fileDescriptor, F_DUPFD_CLOEXEC, 0)
        stdout = OutputLines(reading: outFD, threadName: "test-stdout")
        stderr = OutputLines(reading: errFD, threadName: "test-stderr")
    }

    /// Starts the server and waits for its readiness line.
    static func started(_ spec: ServerSpec, extra: [String] = [], shellPrefix: String? = nil) throws
        -> ServerProcess
    {
        let server = try ServerProcess(spec, extra: extra, shellPrefix: shellPrefix)
        do {
            try server.waitUntilReady()
        } catch {
            server.stop()
            try server.cancelIfIOURingRefused()
            throw error
        }
        return server
    }

    /// echo-uring exits 1 with one line where the kernel or a sandbox refuses io_uring (ENOSYS,
    /// EPERM, kernel.io_uring_disabled); a test that needs it is then cancelled with that line as
    /// the reason. Any other failure to start stays a failure.
    func cancelIfIOURingRefused() throws {
        guard spec.executable == "echo-uring", waitForExit(timeout: 5) == 1,
            let line = stderr.lines.first(where: { $0.contains("io_uring is unavailable") })
        else { return }
        try Test.cancel(Comment(rawValue: line))
    }

    func waitUntilReady(timeout: Double = 20) throws {
        guard let line = stdout.waitForLine(timeout: timeout, where: { ReadinessLine(parsing: $0) != nil }) else {
            throw ConformanceFailure(
                "\(spec) printed no readiness line within \(timeout) s; stdout: \(stdout.lines), stderr: \(stderr.lines)")
        }
        ready = ReadinessLine(parsing: line)
    }

    /// Waits up to `timeout` seconds for the process to exit; its status, or nil if still running.
    func waitForExit(timeout: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(5_000) }
        if process.isRunning { return nil }
        return process.terminationStatus
    }

    /// SIGTERM, then SIGKILL if it has not exited within 3 s; always reaps.
    func stop() {
        guard process.isRunning else { return }
        kill(pid, SIGTERM)
        if waitForExit(timeout: 3) == nil {
            kill(pid, SIGKILL)
            process.waitUntilExit()
        }
    }

    deinit {
        if process.isRunning {
            kill(pid, SIGKILL)
            process.waitUntilExit()
        }
    }

    /// The server's own snapshot from its stats endpoint.
    func snapshot() throws -> ServerSnapshot {
        try StatsEndpoint.fetch(from: ready!.stats)
    }

    /// VmRSS in KiB, read from /proc: works for any server.
    func residentKiB() throws -> Int {
        guard let status = ProcStatus.read(pid: pid) else { throw ConformanceFailure("server \(pid) is gone") }
        return status.vmRSSKiB
    }
}

/// Runs `body` with a started server and always stops and reaps it, whatever `body` does.
func withServer<T>(_ spec: ServerSpec, extra: [String] = [], _ body: (ServerProcess) throws -> T) throws -> T {
    let server = try ServerProcess.started(spec, extra: extra)
    defer { server.stop() }
    return try body(server)
}
