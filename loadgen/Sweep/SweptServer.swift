#if canImport(Glibc)
import Glibc
#endif
import EchoProtocol
import Foundation
import Synchronization

/// A server the sweep measures, and how to start it.
struct SweptServer: Sendable, Equatable {
    enum Launch: Sendable, Equatable {
        /// One of this package's servers (`echo-NAME` beside loadgen), started with `--port 0`;
        /// it announces its port and stats port on its readiness line.
        case variant(executable: String, arguments: [String])
        /// Any other server: a shell command in which `{port}` is replaced by a free port. Its figures
        /// are read from /proc.
        case foreign(command: String)
    }

    var name: String
    var launch: Launch

    /// `threads` → echo-threads in `directory`, with a connection limit no sweep reaches.
    static func variant(_ name: String, in directory: URL) -> SweptServer {
        SweptServer(
            name: name,
            launch: .variant(
                executable: directory.appendingPathComponent("echo-\(name)").path,
                arguments: ["--port", "0", "--max-connections", "1000000"]))
    }

    /// Parses `NAME=COMMAND {port}`.
    init?(foreign text: String) {
        guard let equals = text.firstIndex(of: "="), equals != text.startIndex else { return nil }
        let command = text[text.index(after: equals)...].trimmingCharacters(in: .whitespaces)
        guard !command.isEmpty, command.contains("{port}") else { return nil }
        self.init(name: String(text[..<equals]), launch: .foreign(command: command))
    }

    init(name: String, launch: Launch) {
        self.name = name
        self.launch = launch
    }

    /// The command line, for results.json (`{port}` left in for a foreign server).
    var commandLine: String {
        switch launch {
        case .variant(let executable, let arguments): ([executable] + arguments).joined(separator: " ")
        case .foreign(let command): command
        }
    }

    /// The folder holding this package's built executables: the one loadgen itself runs from
    /// (or the test runner, which SwiftPM puts in the same folder). `ECHO_LAB_BIN_DIR` overrides it.
    static var productsDirectory: URL {
        if let override = ProcessInfo.processInfo.environment["ECHO_LAB_BIN_DIR"], !override.isEmpty {
            return URL(fileURLWithPath: override)
        }
        var url = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        // A test bundle's runner may sit inside NAME.xctest/; the products are beside that folder.
        while url.pathExtension == "xctest" { url.deleteLastPathComponent() }
        return url
    }
}

/// Every process the sweep started and has not reaped yet, so Ctrl-C can end them by PID.
final class StartedProcesses: Sendable {
    static let shared = StartedProcesses()
    private let pids = Mutex<Set<Int32>>([])

    func add(_ pid: Int32) { pids.withLock { _ = $0.insert(pid) } }
    func remove(_ pid: Int32) { pids.withLock { _ = $0.remove(pid) } }

    /// Sends `signal` to every process still registered.
    func signalAll(_ signal: Int32) {
        for pid in pids.withLock({ $0 }) { kill(pid, signal) }
    }
}

/// One running server: started, waited for until it listens, pinned, measured, and stopped.
final class RunningServer {
    let server: SweptServer
    let process = Process()
    let address: IPv4Address
    /// From the readiness line; nil for a foreign server (read from /proc).
    let statsAddress: IPv4Address?
    private let output: ProcessOutput

    var pid: Int32 { process.processIdentifier }

    /// Starts `server`; returns when it accepts connections. Throws a `SweepFailure` naming what
    /// went wrong (executable missing, no readiness line, exited at once) after reaping it.
    init(_ server: SweptServer, pinTo cpus: CPUSet?, readyTimeout: Double = 20) throws(SweepFailure) {
        self.server = server
        var port = 0
        switch server.launch {
        case .variant(let executable, let arguments):
            guard FileManager.default.isExecutableFile(atPath: executable) else {
                throw SweepFailure("\(executable) does not exist; build it first (swift build --product \((executable as NSString).lastPathComponent))")
            }
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
        case .foreign(let command):
            guard let free = Self.freePort() else { throw SweepFailure("cannot find a free port for \(server.name)") }
            port = free
            // `exec` makes the shell become the server, so the PID we hold is the server's.
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", "exec " + command.replacingOccurrences(of: "{port}", with: String(free))]
        }
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        process.standardInput = FileHandle.nullDevice
        output = ProcessOutput(stdout: stdout.fileHandleForReading, stderr: stderr.fileHandleForReading)
        do {
            try process.run()
        } catch {
            throw SweepFailure("cannot start \(server.commandLine): \(error)")
        }
        StartedProcesses.shared.add(process.processIdentifier)

        var ready: (IPv4Address, IPv4Address?)?
        switch server.launch {
        case .variant:
            if let line = output.waitForLine(timeout: readyTimeout, where: { ReadinessLine(parsing: $0) != nil }),
                let readiness = ReadinessLine(parsing: line)
            {
                ready = (readiness.listening, readiness.stats)
            }
        case .foreign:
            let target = IPv4Address("127.0.0.1", port: port)!
            if Self.waitUntilAccepting(target, while: { [process] in process.isRunning }, timeout: readyTimeout) {
                ready = (target, nil)
            }
        }
        guard let ready else {
            let status = Self.stop(process, output: output)
            throw SweepFailure(
                "\(server.name) did not get ready within \(Int(readyTimeout)) s (\(status.description))"
                    + (output.stderrTail.map { "; stderr: \($0)" } ?? ""))
        }
        (address, statsAddress) = ready
        if let cpus, !cpus.pin(process: process.processIdentifier) {
            _ = Self.stop(process, output: output)
            throw SweepFailure("cannot pin \(server.name) to CPU \(cpus)")
        }
    }

    deinit {
        // A last resort: stop() reaps in the normal course.
        if process.isRunning {
            kill(pid, SIGKILL)
            process.waitUntilExit()
        }
        StartedProcesses.shared.remove(process.processIdentifier)
    }

    /// The server now: its own snapshot from its stats port, or /proc for a foreign server.
    func snapshot() throws(SweepFailure) -> ServerSnapshot {
        if let statsAddress {
            do {
                return try StatsEndpoint.fetch(from: statsAddress, timeoutSeconds: 5)
            } catch {
                throw SweepFailure("\(server.name): \(error)\(exitNote)")
            }
        }
        guard let snapshot = ServerSnapshot.ofProcess(pid: pid, variant: server.name) else {
            throw SweepFailure("\(server.name) (pid \(pid)) is gone\(exitNote)")
        }
        return snapshot
    }

    /// How the load engine reads this server's figures.
    var probe: ServerProbe {
        statsAddress.map { .statsEndpoint($0) } ?? .process(pid)
    }

    var isRunning: Bool { process.isRunning }

    /// `; it exited with status 1: echo-threads: …` when the server has died, else empty.
    var exitNote: String {
        guard !process.isRunning else { return "" }
        return "; it \(ExitStatus(process).description)" + (output.stderrTail.map { ": \($0)" } ?? "")
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace` seconds; always reaps.
    /// Returns nil when it exited as it should (status 0; for a foreign server, also death by SIGTERM,
    /// since a server without a handler dies of it), or the reason it did not.
    func stop(grace: Double = 10) -> String? {
        let status = Self.stop(process, output: output, grace: grace)
        StartedProcesses.shared.remove(process.processIdentifier)
        switch (status, server.launch) {
        case (.exited(0), _): return nil
        case (.signalled(SIGTERM), .foreign): return nil
        default: return "\(server.name) \(status.description) after SIGTERM" + (output.stderrTail.map { ": \($0)" } ?? "")
        }
    }

    private static func stop(_ process: Process, output: ProcessOutput, grace: Double = 10) -> ExitStatus {
        if process.isRunning {
            kill(process.processIdentifier, SIGTERM)
            let deadline = Date().addingTimeInterval(grace)
            while process.isRunning && Date() < deadline { usleep(5_000) }
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
                _ = output.waitForEnd(timeout: 2)
                return .killed(afterSeconds: grace)
            }
        }
        process.waitUntilExit()
        _ = output.waitForEnd(timeout: 2)
        return ExitStatus(process)
    }

    /// How a process ended, in words a person reads.
    enum ExitStatus: Equatable, CustomStringConvertible {
        case exited(Int32)
        case signalled(Int32)
        case killed(afterSeconds: Double)

        init(_ process: Process) {
            self =
                process.terminationReason == .uncaughtSignal
                ? .signalled(process.terminationStatus) : .exited(process.terminationStatus)
        }

        var description: String {
            switch self {
            case .exited(let code): "exited with status \(code)"
            case .signalled(let signal): "died of signal \(signal) (\(String(cString: strsignal(signal))))"
            case .killed(let seconds): "did not exit within \(Int(seconds)) s of SIGTERM and was killed"
            }
        }
    }

    /// A port nobody listens on now: bind port 0, read what the kernel chose, close.
    /// (Another process could take it before the server does; then the server fails to start and the
    /// step says so.)
    static func freePort() -> Int? {
        guard let fds = try? Listener.open(host: "127.0.0.1", port: 0, backlog: 1, nonBlocking: false),
            let fd = fds.first
        else { return nil }
        defer { close(fd) }
        return Listener.boundAddress(of: fd)?.port
    }

    /// Tries to connect every 20 ms until it works, `alive()` turns false, or `timeout` seconds pass.
    static func waitUntilAccepting(_ target: IPv4Address, while alive: () -> Bool, timeout: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline && alive() {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            if fd >= 0 {
                let connected = target.withSockaddr { connect(fd, $0, $1) } == 0
                close(fd)
                if connected { return true }
            }
            usleep(20_000)
        }
        return false
    }
}

/// Why a step (or a server) could not be measured, in one line a person can act on.
struct SweepFailure: Error, CustomStringConvertible, Sendable {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Drains a child's stdout and stderr on background threads (a full pipe would block the child),
/// keeping the stdout lines and the last few stderr lines.
final class ProcessOutput: @unchecked Sendable {
    // @unchecked: every mutable field is guarded by `condition`.
    private let condition = NSCondition()
    private var stdoutLines: [String] = []
    private var stderrLines: [String] = []
    private var openStreams = 2

    init(stdout: FileHandle, stderr: FileHandle) {
        start(stdout, isStdout: true)
        start(stderr, isStdout: false)
    }

    private func start(_ handle: FileHandle, isStdout: Bool) {
        let thread = Thread { [self] in
            let fd = handle.fileDescriptor
            var partial: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                condition.lock()
                if count <= 0 {
                    if !partial.isEmpty { append(String(decoding: partial, as: UTF8.self), isStdout: isStdout) }
                    openStreams -= 1
                    condition.broadcast()
                    condition.unlock()
                    return
                }
                partial += buffer[0..<count]
                while let newline = partial.firstIndex(of: UInt8(ascii: "\n")) {
                    append(String(decoding: partial[..<newline], as: UTF8.self), isStdout: isStdout)
                    partial.removeSubrange(...newline)
                }
                condition.broadcast()
                condition.unlock()
            }
        }
        thread.name = "sweep-output"
        thread.start()
    }

    /// Called with the lock held.
    private func append(_ line: String, isStdout: Bool) {
        if isStdout {
            if stdoutLines.count < 1000 { stdoutLines.append(line) }
        } else {
            stderrLines.append(line)
            if stderrLines.count > 20 { stderrLines.removeFirst() }
        }
    }

    /// The first stdout line matching `predicate`, waiting up to `timeout` seconds; nil if none came.
    func waitForLine(timeout: Double, where predicate: (String) -> Bool) -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        condition.lock()
        defer { condition.unlock() }
        while true {
            if let line = stdoutLines.first(where: predicate) { return line }
            if openStreams == 0 || !condition.wait(until: deadline) { return stdoutLines.first(where: predicate) }
        }
    }

    /// Waits until both pipes are closed, up to `timeout` seconds.
    func waitForEnd(timeout: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        condition.lock()
        defer { condition.unlock() }
        while openStreams > 0 {
            if !condition.wait(until: deadline) { return openStreams == 0 }
        }
        return true
    }

    /// The last stderr lines (at most 3) joined, or nil if it printed nothing.
    var stderrTail: String? {
        condition.lock()
        defer { condition.unlock() }
        let tail = stderrLines.suffix(3).filter { !$0.isEmpty }
        return tail.isEmpty ? nil : tail.joined(separator: " / ")
    }
}
