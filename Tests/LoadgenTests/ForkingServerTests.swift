#if canImport(Glibc)
import Glibc
#endif
import EchoProtocol
import ForeignProcess
import Foundation
import Testing

@testable import loadgen

/// A foreign server that forks a process per connection (as an inetd does) is measured as its whole
/// process tree: the parent only accepts, the children hold the connections and do the echoing.
/// The server is Python's socketserver.ForkingTCPServer (python3 is on every machine this runs on).
@Suite(.serialized) struct ForkingServerTests {
    final class ForkingServer {
        let process = Process()
        let port: Int

        init() throws {
            let script = """
                import socketserver
                class Echo(socketserver.BaseRequestHandler):
                    def handle(self):
                        while True:
                            data = self.request.recv(65536)
                            if not data: break
                            self.request.sendall(data)
                server = socketserver.ForkingTCPServer(("127.0.0.1", 0), Echo)
                print(server.server_address[1], flush=True)
                server.serve_forever()
                """
            let output = Pipe()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", "-c", script]
            process.standardOutput = output
            try process.run()
            let line = String(decoding: output.fileHandleForReading.availableData, as: UTF8.self)
            guard let port = Int(line.trimmingCharacters(in: .whitespacesAndNewlines)) else {
                process.terminate()
                throw ServerFailure(description: "the forking server printed \(line.debugDescription), not its port")
            }
            self.port = port
        }

        /// `connections` to this server, read through --server-pid.
        func settings(connections: Int) -> ConnectionSettings {
            var settings = ConnectionSettings(target: SocketAddress("127.0.0.1", port: port)!, connections: connections)
            settings.serverPID = process.processIdentifier
            return settings
        }

        /// Ends the children, then the parent, by PID (SIGKILL: a signal mask inherited from the test
        /// runner may block SIGTERM).
        func stop() {
            for child in ServerSnapshot.descendants(of: process.processIdentifier) { kill(child, SIGKILL) }
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    struct ServerFailure: Error, CustomStringConvertible { var description: String }

    @Test func idleConnectionsAreCountedInTheChildren() throws {
        let server = try ForkingServer()
        defer { server.stop() }
        var idle = IdleRun(connection: server.settings(connections: 8))
        idle.hold = .milliseconds(300)  // the last children are forked after their first echo
        let result = try idle.run()
        #expect(result.heldOpen == 8)
        let figures = try #require(result.server)
        // The parent alone would not change: one process per connection joins the tree, each with a
        // thread, its socket and a resident interpreter. (The "before" read may already include
        // the child serving loadgen's reachability check, which is on its way out.)
        #expect(figures.after.threads == 1 + 8)
        #expect(figures.before.threads <= 2)
        #expect(figures.after.openFDs >= figures.before.openFDs + 7)
        #expect(figures.after.rssKiB >= figures.before.rssKiB + 7 * 1024)
        // PSS splits the interpreter's shared pages between the processes: far less per connection
        // than summed RSS, yet each child's own pages still show.
        let pss = try #require(figures.pssPerConnectionKiB)
        #expect(pss > 50 && pss < figures.rssPerConnectionKiB)
    }

    @Test func theChildrensWorkIsTheServersWork() throws {
        let server = try ForkingServer()
        defer { server.stop() }
        var load = LoadRun(connection: server.settings(connections: 4))
        load.duration = .milliseconds(800)
        load.warmup = .milliseconds(300)
        let result = try load.run()
        #expect(result.messages > 100)
        let figures = try #require(result.server)
        // Every echo is a child's recv that blocks, then sendall: its CPU and a switch per message.
        // The parent, asleep in select, has neither.
        #expect(figures.cpuMicrosecondsPerMessage > 1)
        #expect(figures.contextSwitchesPerMessage > 0.5)
        #expect(figures.threads == 5)
    }
}
