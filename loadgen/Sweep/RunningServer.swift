#if canImport(Glibc)
import Glibc
#endif
import EchoProtocol
import ForeignProcess
import Foundation
import Synchronization

/// One running server: started, waited for until it listens, pinned, measured, and stopped.
final class RunningServer {
    let server: SweptServer
    let child: ChildProcess
    let address: SocketAddress
    /// From the readiness line; nil for a foreign server (read from /proc).
    let statsAddress: SocketAddress?

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

        var ready: (SocketAddress, SocketAddress?)?
        switch server.launch {
        case .variant:
            if let line = child.output.waitForLine(timeout: readyTimeout, where: { ReadinessLine(parsing: $0) != nil }),
                let readiness = ReadinessLine(parsing: line)
            {
                ready = (readiness.listening, readiness.stats)
            }
        case .foreign:
            let target = SocketAddress("127.0.0.1", port: port)!
            if Self.waitUntilAccepting(target, while: { [child] in child.isRunning }, timeout: readyTimeout) {
                ready = (target, nil)
            }
        }
        guard let ready else {
            let exitedEarly = !child.isRunning
            let status = child.stop()
            // Its own words first: a server that refused its options said why on its first stderr line.
            throw SweepFailure(
                exitedEarly
                    ? "\(server.name) \(status.description) before it listened" + (child.output.stderrFirst.map { ": \($0)" } ?? "")
                    : "\(server.name) did not get ready within \(Int(readyTimeout)) s (it \(status.description))"
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
    static func waitUntilAccepting(_ target: SocketAddress, while alive: () -> Bool, timeout: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline && alive() {
            let fd = socket(target.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
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
