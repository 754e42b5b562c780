import EchoProtocol
import Testing

/// Every server executable of the package, in every mode it offers. A server that is missing or
/// does not echo fails here; nothing is skipped, except echo-uring where the kernel refuses io_uring
/// (the test is then cancelled with the server's one-line reason: see `ServerProcess.started`).
let allServers: [ServerSpec] = [
    ServerSpec("echo-threads"),
    ServerSpec("echo-libev", ["--loops", "1"]),
    ServerSpec("echo-libev", ["--loops", "2"]),
    ServerSpec("echo-tasks", ["--io", "poller", "--loops", "1"]),
    ServerSpec("echo-tasks", ["--io", "poller", "--loops", "2"]),
    ServerSpec("echo-tasks", ["--io", "nio", "--executor", "eventloop"]),
    ServerSpec("echo-tasks", ["--io", "nio", "--executor", "global"]),
    ServerSpec("echo-uring", ["--loops", "1"]),
    ServerSpec("echo-uring", ["--loops", "2"]),
]

/// Serialized: several checks watch a server's memory and timing, which parallel load would blur.
@Suite(.serialized)
struct ConformanceSuite {
    @Test(arguments: allServers)
    func echoesOneByte(_ spec: ServerSpec) throws {
        try withServer(spec) { try Conformance.echoesExactly($0, size: 1) }
    }

    @Test(arguments: allServers)
    func echoes64KiB(_ spec: ServerSpec) throws {
        try withServer(spec) { try Conformance.echoesExactly($0, size: 64 * 1024) }
    }

    @Test(arguments: allServers)
    func echoes8MiBWhileSending(_ spec: ServerSpec) throws {
        try withServer(spec) { try Conformance.echoesExactly($0, size: 8 << 20) }
    }

    @Test(arguments: allServers)
    func serves500ConcurrentConnections(_ spec: ServerSpec) throws {
        try withServer(spec) { try Conformance.servesConcurrentConnections($0) }
    }

    @Test(arguments: allServers)
    func halfCloseEchoesPendingThenCloses(_ spec: ServerSpec) throws {
        try withServer(spec) { try Conformance.halfCloseEchoesPendingThenCloses($0) }
    }

    @Test(arguments: allServers)
    func urgentDataDoesNotStallTheEcho(_ spec: ServerSpec) throws {
        try withServer(spec) { try Conformance.urgentDataDoesNotStallTheEcho($0) }
    }

    @Test(arguments: allServers)
    func survives200ResetsMidEcho(_ spec: ServerSpec) throws {
        try withServer(spec) { try Conformance.survivesResetsMidEcho($0) }
    }

    @Test(arguments: allServers)
    func clientThatNeverReadsCostsOneBuffer(_ spec: ServerSpec) throws {
        try withServer(spec) { try Conformance.boundsMemoryOfClientThatNeverReads($0) }
    }

    @Test(arguments: allServers)
    func refusesConnectionBeyondMax(_ spec: ServerSpec) throws {
        try Conformance.refusesBeyondMaxConnections(spec)
    }

    @Test(arguments: allServers)
    func statsMatchTraffic(_ spec: ServerSpec) throws {
        try withServer(spec) { try Conformance.statsMatchTraffic($0) }
    }

    @Test(arguments: allServers)
    func sigtermWithOpenConnectionsExitsZero(_ spec: ServerSpec) throws {
        try withServer(spec) { try Conformance.stopsOnSigtermWithOpenConnections($0) }
    }

    /// `--host` as people type it: IPv6 loopback, and a name (its IPv4 address first). The stats
    /// endpoint follows the family: ::1 for an IPv6-only host.
    @Test(arguments: allServers)
    func listensOnIPv6AndOnNames(_ spec: ServerSpec) throws {
        for (host, expected) in [("::1", "::1"), ("localhost", "127.0.0.1")] {
            try withServer(spec, extra: ["--host", host]) { server in
                #expect(server.address.host == expected, "--host \(host) listened on \(server.address)")
                #expect(server.ready?.stats.host == expected, "--host \(host): stats on \(server.ready!.stats)")
                try Conformance.echoesExactly(server, size: 1000)
                #expect(try server.snapshot().counters?.accepted == 1)
            }
        }
    }

    /// The stats endpoint tells anyone who connects the server's pid, memory and counters, so it
    /// stays on loopback whatever `--host` is, unless `--stats-host` names an address. 127.0.0.2
    /// stands in for "another interface" (`--host 0.0.0.0`) without leaving the machine.
    @Test(arguments: allServers)
    func statsEndpointStaysOnLoopback(_ spec: ServerSpec) throws {
        try withServer(spec, extra: ["--host", "127.0.0.2"]) { server in
            let stats = try #require(server.ready?.stats)
            #expect(server.address.host == "127.0.0.2")
            #expect(stats.host == "127.0.0.1", "--host 127.0.0.2 put the stats endpoint on \(stats)")
            #expect(try StatsEndpoint.fetch(from: stats).pid == server.pid)
            var elsewhere = stats
            elsewhere.ip = SocketAddress("127.0.0.2")!.ip
            #expect(throws: (any Error).self, "the stats port answered on --host's address") {
                try StatsEndpoint.fetch(from: elsewhere, timeoutSeconds: 2)
            }
        }
        try withServer(spec, extra: ["--host", "127.0.0.2", "--stats-host", "127.0.0.3"]) { server in
            let stats = try #require(server.ready?.stats)
            #expect(stats.host == "127.0.0.3", "--stats-host 127.0.0.3 put the stats endpoint on \(stats)")
            #expect(try StatsEndpoint.fetch(from: stats).pid == server.pid)
        }
    }

    @Test(arguments: allServers)
    func secondServerOnSamePortFails(_ spec: ServerSpec) throws {
        try Conformance.secondServerOnSamePortFails(spec)
    }
}
