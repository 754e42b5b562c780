import EchoProtocol
import ForeignProcess
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

struct ServerSnapshotTests {
    @Test func jsonRoundTripsEveryField() throws {
        let counters = ServerCounters()
        #expect(counters.admit(limit: 10))
        counters.received(100)
        counters.sent(90)
        let snapshot = ServerSnapshot.ofSelf(variant: "test", counters: counters, startedAt: .now)
        let decoded = try ServerSnapshot.decode(Array(snapshot.jsonLine().utf8))
        #expect(decoded == snapshot)
        #expect(decoded.counters == ConnectionCounts(active: 1, accepted: 1, refused: 0, bytesIn: 100, bytesOut: 90))
        #expect(!snapshot.jsonLine().contains("\n"))
    }

    @Test func admitRefusesBeyondTheLimit() {
        let counters = ServerCounters()
        #expect(counters.admit(limit: 2))
        #expect(counters.admit(limit: 2))
        #expect(!counters.admit(limit: 2))
        counters.closed()
        #expect(counters.admit(limit: 2))
        #expect(counters.snapshot == ConnectionCounts(active: 2, accepted: 3, refused: 1, bytesIn: 0, bytesOut: 0))
    }

    @Test func foreignProcessIsReadFromProc() throws {
        let snapshot = try #require(ServerSnapshot.ofProcess(pid: getpid()))
        #expect(snapshot.counters == nil)
        #expect(snapshot.memory.rssKiB > 0)
        #expect(snapshot.threads >= 1)
        #expect(snapshot.openFDs > 0)
        #expect(snapshot.usage.cpuSeconds > 0)
    }

    @Test func statsEndpointServesDecodableSnapshots() throws {
        let counters = ServerCounters()
        counters.received(5)
        let address = try StatsEndpoint.start(host: "127.0.0.1", port: 0) {
            ServerSnapshot.ofSelf(variant: "endpoint-test", counters: counters, startedAt: .now)
        }
        let snapshot = try StatsEndpoint.fetch(from: address)
        #expect(snapshot.variant == "endpoint-test")
        #expect(snapshot.counters?.bytesIn == 5)
    }
}

struct ReadinessLineTests {
    @Test func roundTripsThroughText() throws {
        let line = ReadinessLine(
            listening: try #require(SocketAddress("127.0.0.1", port: 40000)),
            stats: try #require(SocketAddress("127.0.0.1", port: 40001)), pid: 1234, variant: "libev")
        #expect(line.description == "listening 127.0.0.1:40000 stats=127.0.0.1:40001 pid=1234 variant=libev")
        #expect(ReadinessLine(parsing: line.description) == line)
    }

    @Test(arguments: ["", "listening", "listening 127.0.0.1 stats=x pid=1 variant=a", "final-stats {}"])
    func rejectsOtherLines(_ text: String) {
        #expect(ReadinessLine(parsing: text) == nil)
    }
}

struct ListenerTests {
    @Test func portZeroGetsARealPortAndAGroupSharesIt() throws {
        let fds = try Listener.open(host: "127.0.0.1", port: 0, backlog: 16, count: 3, nonBlocking: true)
        defer { fds.forEach { close($0) } }
        let ports = fds.compactMap { Listener.boundAddress(of: $0)?.port }
        #expect(ports.count == 3)
        #expect(ports[0] != 0)
        #expect(Set(ports).count == 1)
    }

    @Test(arguments: [1, 2])
    func portInUseIsOneLineNamingIt(_ count: Int) throws {
        let first = try Listener.open(host: "127.0.0.1", port: 0, backlog: 16, nonBlocking: false)
        defer { first.forEach { close($0) } }
        let port = try #require(Listener.boundAddress(of: first[0])).port
        do {
            let second = try Listener.open(host: "127.0.0.1", port: port, backlog: 16, count: count, nonBlocking: false)
            second.forEach { close($0) }
            Issue.record("a second listener on \(port) was allowed")
        } catch {
            #expect(error.message == "cannot bind 127.0.0.1:\(port): Address already in use")
        }
    }
}
