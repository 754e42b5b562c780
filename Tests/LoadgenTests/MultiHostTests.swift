#if canImport(Glibc)
import Glibc
#endif
import EchoProtocol
import Foundation
import Testing

@testable import loadgen

/// bench/multi-host.sh (issue 21): two client "hosts" in network namespaces of their own, one server
/// in a third, their results merged. Runs where network namespaces can be created (root with iproute2);
/// skipped elsewhere, saying why.
@Suite(.serialized)
struct MultiHostTests {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// Nil when a namespace can be made (a probe one is created and deleted), else why not.
    static let namespaceProblem: String? = {
        guard geteuid() == 0 else { return "not root: network namespaces cannot be created" }
        let name = "elprobe\(getpid())"
        guard run("/usr/bin/env", ["ip", "netns", "add", name]) == 0 else {
            return "`ip netns add` failed (no iproute2, or namespaces not permitted here)"
        }
        _ = run("/usr/bin/env", ["ip", "netns", "del", name])
        return nil
    }()

    @discardableResult
    static func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                    output: Pipe? = nil) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        process.standardOutput = output ?? FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return -1 }
        process.waitUntilExit()
        return process.terminationStatus
    }

    static func namespaces() -> [String] {
        let pipe = Pipe()
        run("/usr/bin/env", ["ip", "netns", "list"], output: pipe)
        return String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .split(separator: "\n").map { String($0.split(separator: " ").first ?? "") }
    }

    @Test(.enabled(if: namespaceProblem == nil, "\(namespaceProblem ?? "")"))
    func twoHostsAreMergedAndTheNamespacesRemoved() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("multihost-\(getpid())-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: out) }
        let before = Set(Self.namespaces())
        var environment = ProcessInfo.processInfo.environment
        environment["BIN"] = SweptServer.productsDirectory.path
        environment["OUT"] = out.path
        environment["MERGE"] = "--json"
        let status = Self.run(
            Self.packageRoot.appendingPathComponent("bench/multi-host.sh").path,
            ["2", "-c", "4", "--duration", "1s", "--warmup", "200ms"], environment: environment)
        #expect(status == 0, "\((try? String(contentsOf: out.appendingPathComponent("host1.err"), encoding: .utf8)) ?? "")")
        // Each host reached the server at its own address, and the merge adds them up.
        let hosts = try (1...2).map { i in
            try JSONDecoder().decode(LoadResult.self, from: Data(contentsOf: out.appendingPathComponent("host\(i).json")))
        }
        #expect(hosts.map(\.target) == ["198.18.1.1:7007", "198.18.2.1:7007"])
        #expect(hosts.allSatisfy { $0.succeeded && $0.messages > 0 && $0.server != nil })
        let merged = try JSONDecoder().decode(LoadResult.self, from: Data(contentsOf: out.appendingPathComponent("merged.txt")))
        #expect(merged.messages == hosts[0].messages + hosts[1].messages)
        #expect(merged.connections.established == 8)
        // Nothing is left behind: the namespaces (and with them the veth pairs and addresses) are gone.
        #expect(Set(Self.namespaces()).subtracting(before).isEmpty, "\(Self.namespaces())")
    }

    /// merge takes runs that reached one server by different addresses (same port, same server process).
    @Test func mergeAcceptsOneServerReachedByTwoAddresses() throws {
        let server = try TestEchoServer()
        defer { server.stop() }
        let base = try LoadRunTests.run(server, connections: 2, duration: .milliseconds(300))
        try #require(base.server != nil)
        func copy(_ target: String, pid: Int32) -> LoadResult {
            var result = base
            result.target = target
            result.server?.pid = pid
            return result
        }
        #expect(RunMerge.sameServer(copy("198.18.1.1:7007", pid: 42), copy("198.18.2.1:7007", pid: 42)))
        #expect(!RunMerge.sameServer(copy("198.18.1.1:7007", pid: 42), copy("198.18.2.1:7007", pid: 43)))
        #expect(!RunMerge.sameServer(copy("198.18.1.1:7007", pid: 42), copy("198.18.2.1:7008", pid: 42)))
    }
}
