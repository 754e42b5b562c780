#if canImport(Glibc)
import Glibc
#endif
import EchoProtocol
import ForeignProcess
import Foundation
import Synchronization

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
        // Close-on-exec from the start: our ends must not leak into this or any other child (another
        // thread may start one at any moment; a copy of a write end would hold our reader open).
        guard c_pipe2(&stdoutPipe, O_CLOEXEC) == 0 else { throw SweepFailure("pipe: \(errnoDescription(errno))") }
        guard c_pipe2(&stderrPipe, O_CLOEXEC) == 0 else {
            stdoutPipe.forEach { close($0) }
            throw SweepFailure("pipe: \(errnoDescription(errno))")
        }

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

/// A child's stdout and stderr, each drained on a thread of its own (a full pipe would block the
/// child): the first stdout lines and the last few stderr lines.
struct ProcessOutput: Sendable {
    let stdout: OutputLines
    let stderr: OutputLines

    /// Reads both descriptors until end of file, then closes them.
    init(stdout: Int32, stderr: Int32) {
        self.stdout = OutputLines(reading: stdout, keep: .first(1000), threadName: "sweep-output")
        self.stderr = OutputLines(reading: stderr, keep: .last(20), threadName: "sweep-output")
    }

    /// The first stdout line matching `predicate`, waiting up to `timeout` seconds; nil if none came.
    func waitForLine(timeout: Double, where predicate: (String) -> Bool) -> String? {
        stdout.waitForLine(timeout: timeout, where: predicate)
    }

    /// Waits until both pipes are closed, up to `timeout` seconds.
    func waitForEnd(timeout: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        return stdout.waitForEnd(timeout: timeout)
            && stderr.waitForEnd(timeout: max(0, deadline.timeIntervalSinceNow))
    }

    /// The first non-empty line on stderr, or nil if it printed none: a server that refuses its
    /// options says why there.
    var stderrFirst: String? { stderr.firstNonBlankLine }

    /// The last stderr lines (at most 3) joined, or nil if it printed nothing.
    var stderrTail: String? {
        let tail = stderr.lines.suffix(3).filter { !$0.isEmpty }
        return tail.isEmpty ? nil : tail.joined(separator: " / ")
    }
}
