#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import EchoProtocol
import Testing

@testable import loadgen

struct ParsingTests {
    @Test func durationsAcceptMillisecondsSecondsAndMinutes() throws {
        #expect(try TextValues.duration("500ms") == .milliseconds(500))
        #expect(try TextValues.duration("10s") == .seconds(10))
        #expect(try TextValues.duration("2m") == .seconds(120))
        #expect(try TextValues.duration("1.5s") == .milliseconds(1500))
        #expect(try TextValues.duration("0") == .zero)
        for bad in ["", "-1s", "ten", "5x", "s", "+2s", "3"] {
            #expect(throws: ValidationError.self, "\(bad)") { try TextValues.duration(bad) }
        }
    }

    @Test func sourceAddressRangesExpandInOrder() throws {
        let range = try TextValues.addresses("127.0.0.1-127.0.0.32")
        #expect(range.count == 32)
        #expect(range.first?.host == "127.0.0.1" && range.last?.host == "127.0.0.32")
        #expect(try TextValues.addresses("127.0.0.9,127.0.1.255-127.0.2.0").map(\.host)
            == ["127.0.0.9", "127.0.1.255", "127.0.2.0"])
        for bad in ["127.0.0.5-127.0.0.1", "localhost", "127.0.0.1-", "1.2.3"] {
            #expect(throws: ValidationError.self, "\(bad)") { try TextValues.addresses(bad) }
        }
    }

    @Test func cpuListsAcceptNumbersAndRanges() throws {
        #expect(try TextValues.cpus("1") == [1])
        #expect(try TextValues.cpus("0,2-3") == [0, 2, 3])
        #expect(throws: ValidationError.self) { try TextValues.cpus("a") }
        #expect(throws: ValidationError.self) { try TextValues.cpus("3-1") }
    }

    @Test(arguments: [
        ["run", "-c", "0"], ["run", "-c", "-5"], ["run", "-c", "abc"], ["run", "--connections", "1.5"],
        ["run", "--duration", "-1s"], ["run", "--duration", "0s"], ["run", "--depth", "0"], ["run", "--rate", "0"],
        ["run", "--size", "0"], ["run", "--target", "nosuch.invalid:7"], ["run", "--target", "127.0.0.1"],
        ["run", "--cpus", "x"], ["run", "--server-pid", "1", "--server-stats", "127.0.0.1:9"],
        ["idle", "-c", "0"], ["idle", "--hold", "soon"],
    ])
    func badValuesAreUsageErrors(arguments: [String]) {
        do {
            _ = try Loadgen.parseAsRoot(arguments)
            Issue.record("accepted \(arguments)")
        } catch {
            #expect(Loadgen.exitCode(for: error) == .validationFailure, "\(arguments): \(error)")
        }
    }

    @Test func goodValuesParse() throws {
        let command = try Loadgen.parseAsRoot([
            "run", "--target", "127.0.0.1:9000", "-c", "100", "--size", "1K", "--depth", "4", "--duration", "2m",
            "--warmup", "500ms", "--source-addresses", "127.0.0.1-127.0.0.4", "--cpus", "1", "--threads", "2",
        ])
        let run = try #require(command as? Loadgen.Run)
        let settings = run.connection.settings
        #expect(settings.connections == 100 && settings.threads == 2 && settings.cpus == [1])
        #expect(settings.sourceAddresses.count == 4)
        #expect(run.size == 1024 && run.depth == 4 && run.duration == .seconds(120) && run.warmup == .milliseconds(500))
    }

    @Test func jainIndexIsOneWhenEvenAndOneOverNWhenOneConnectionGetsAll() {
        #expect(FairnessFigures(messagesPerConnection: [5, 5, 5, 5]).jainIndex == 1)
        #expect(FairnessFigures(messagesPerConnection: [8, 0, 0, 0]).jainIndex == 0.25)
        let spread = FairnessFigures(messagesPerConnection: [3, 1, 2])
        #expect(spread.minimum == 1 && spread.median == 2 && spread.maximum == 3)
    }

    @Test func listeningSocketInodesMatchTheTargetAddress() throws {
        let fd = try Listener.open(host: "127.0.0.1", port: 0, backlog: 1, nonBlocking: false)[0]
        defer { close(fd) }
        let address = Listener.boundAddress(of: fd)!
        #expect(ListeningSocketOwner.listeningInodes(port: address.port, address: address).count == 1)
        #expect(ListeningSocketOwner.listeningInodes(port: address.port, address: SocketAddress("127.0.0.2")!).isEmpty)
    }
}
