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

    /// Processes started and not yet reaped.
    var running: Set<Int32> { pids.withLock { $0 } }

    /// Sends `signal` to every process still registered.
    func signalAll(_ signal: Int32) {
        for pid in pids.withLock({ $0 }) { kill(pid, signal) }
    }
}

/// One running server: started, waited for until it listens, pinned, measured, and stopped.
final class RunningServer {
    let server: SweptServer
    let child: ChildProcess
    let address: IPv4Address
    /// From the readiness line; nil for a foreign server (read from /proc).
    let statsAddress: IPv4Address?

    var pid: Int32 { child.pid }

    /// Starts `server`; returns when it accepts connections. Throws a `SweepFailure` naming what
    /// went wrong (executable missing, no readiness line, exited at once) after reaping it.
    init(_ server: SweptServer, pinTo cpus: CPUSet?, readyTimeout: Double = 20) throws(SweepFailure) {
        self.server = server
        var port = 0
        let executable: String
        let arguments: [String]
        switch server.launch {
        case .variant(let path, let variantArguments):
            guard FileManager.default.isExecutableFile(atPath: path) else {
                let product = (path as NSString).lastPathComponent
                throw SweepFailure("\(path) does not exist; build it first (swift build --product \(product))")
            }
            (executable, arguments) = (path, variantArguments)
        case .foreign(let command):
            guard let free = Self.freePort() else { throw SweepFailure("cannot find a free port for \(server.name)") }
            port = free
            // `exec` makes the shell become the server, so the PID we hold is the server's.
            (executable, arguments) = ("/bin/sh", ["-c", "exec " + command.replacingOccurrences(of: "{port}", with: String(free))])
        }
        do {
            child = try ChildProcess(executable: executable, arguments: arguments)
        } catch {
            throw SweepFailure("cannot start \(server.commandLine): \(error)")
        }

        var ready: (IPv4Address, IPv4Address?)?
        switch server.launch {
        case .variant:
            if let line = child.output.waitForLine(timeout: readyTimeout, where: { ReadinessLine(parsing: $0) != nil }),
                let readiness = ReadinessLine(parsing: line)
            {
                ready = (readiness.listening, readiness.stats)
            }
        case .foreign:
            let target = IPv4Address("127.0.0.1", port: port)!
            if Self.waitUntilAccepting(target, while: { [child] in child.isRunning }, timeout: readyTimeout) {
                ready = (target, nil)
            }
        }
        guard let ready else {
            let status = child.stop()
            throw SweepFailure(
                "\(server.name) did not get ready within \(Int(readyTimeout)) s (it \(status.description))"
                    + (child.output.stderrTail.map { "; stderr: \($0)" } ?? ""))
        }
        (address, statsAddress) = ready
        if let cpus, !cpus.pin(process: child.pid) {
            _ = child.stop()
            throw SweepFailure("cannot pin \(server.name) to CPU \(cpus)")
        }
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

    var isRunning: Bool { child.isRunning }

    /// `; it exited with status 1: echo-threads: …` when the server has died, else empty.
    var exitNote: String {
        guard let status = child.exitStatus else { return "" }
        return "; it \(status.description)" + (child.output.stderrTail.map { ": \($0)" } ?? "")
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace` seconds; always reaps.
    /// Returns nil when it exited as it should (status 0; for a foreign server, also death by SIGTERM,
    /// since a server without a handler dies of it), or the reason it did not.
    func stop(grace: Double = 10) -> String? {
        let status = child.stop(grace: grace)
        switch (status, server.launch) {
        case (.exited(0), _): return nil
        case (.signalled(SIGTERM), .foreign): return nil
        case (.killed, _):
            return "\(server.name) \(status.description)" + (child.output.stderrTail.map { ": \($0)" } ?? "")
        default:
            return "\(server.name) \(status.description) after SIGTERM" + (child.output.stderrTail.map { ": \($0)" } ?? "")
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

/// A child process started with posix_spawn, so that it starts clean: loadgen blocks SIGINT and
/// SIGTERM (a thread receives them with sigwait) and ignores SIGPIPE, and a child would inherit
/// both: a foreign server would then never die of SIGTERM. Foundation's Process offers no way to reset
/// them. Registered in `StartedProcesses` from spawn to reaping.
final class ChildProcess: @unchecked Sendable {
    // @unchecked: `reaped` is guarded by `lock`; everything else is set once in init.
    let pid: pid_t
    let output: ProcessOutput
    private let lock = NSLock()
    private var reaped: ExitStatus?

    /// How a process ended, in words a person reads.
    enum ExitStatus: Equatable, Sendable, CustomStringConvertible {
        case exited(Int32)
        case signalled(Int32)
        case killed(afterSeconds: Double)

        var description: String {
            switch self {
            case .exited(let code): "exited with status \(code)"
            case .signalled(let signal): "died of signal \(signal) (\(String(cString: strsignal(signal))))"
            case .killed(let seconds): "did not exit within \(Int(seconds)) s of SIGTERM and was killed"
            }
        }
    }

    init(executable: String, arguments: [String]) throws(SweepFailure) {
        var stdoutPipe: [Int32] = [-1, -1]
        var stderrPipe: [Int32] = [-1, -1]
        guard pipe(&stdoutPipe) == 0 else { throw SweepFailure("pipe: \(errnoDescription(errno))") }
        guard pipe(&stderrPipe) == 0 else {
            stdoutPipe.forEach { close($0) }
            throw SweepFailure("pipe: \(errnoDescription(errno))")
        }
        // Our ends must not leak into this or any later child.
        for fd in stdoutPipe + stderrPipe { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, stdoutPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, stderrPipe[1], 2)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGPIPE, SIGINT, SIGTERM] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var child: pid_t = 0
        let result = posix_spawn(&child, executable, &actions, &attributes, argv, environ)
        close(stdoutPipe[1])
        close(stderrPipe[1])
        guard result == 0 else {
            close(stdoutPipe[0])
            close(stderrPipe[0])
            throw SweepFailure("cannot start \(executable): \(errnoDescription(result))")
        }
        pid = child
        StartedProcesses.shared.add(child)
        output = ProcessOutput(stdout: stdoutPipe[0], stderr: stderrPipe[0])
    }

    deinit {
        // A last resort: stop() reaps in the normal course.
        if isRunning {
            kill(pid, SIGKILL)
            _ = waitForExit(timeout: 5)
        }
    }

    /// How it ended, or nil while it runs (reaps it if it has ended).
    var exitStatus: ExitStatus? {
        lock.lock()
        defer { lock.unlock() }
        if let reaped { return reaped }
        var status: Int32 = 0
        guard waitpid(pid, &status, WNOHANG) == pid else { return nil }
        // WIFEXITED / WEXITSTATUS / WTERMSIG, which Swift cannot import as macros.
        let signal = status & 0x7f
        reaped = signal == 0 ? .exited((status >> 8) & 0xff) : .signalled(signal)
        StartedProcesses.shared.remove(pid)
        return reaped
    }

    var isRunning: Bool { exitStatus == nil }

    /// Waits up to `timeout` seconds; how it ended, or nil if it still runs.
    func waitForExit(timeout: Double) -> ExitStatus? {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let status = exitStatus { return status }
            if Date() >= deadline { return nil }
            usleep(5_000)
        }
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace` seconds; always reaps and drains its output.
    func stop(grace: Double = 10) -> ExitStatus {
        if exitStatus == nil { kill(pid, SIGTERM) }
        var status = waitForExit(timeout: grace)
        if status == nil {
            kill(pid, SIGKILL)
            _ = waitForExit(timeout: 30)
            status = .killed(afterSeconds: grace)
        }
        _ = output.waitForEnd(timeout: 2)
        return status!
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

    /// Reads both descriptors until end of file, then closes them.
    init(stdout: Int32, stderr: Int32) {
        start(stdout, isStdout: true)
        start(stderr, isStdout: false)
    }

    private func start(_ fd: Int32, isStdout: Bool) {
        let thread = Thread { [self] in
            var partial: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                condition.lock()
                if count <= 0 {
                    close(fd)
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
