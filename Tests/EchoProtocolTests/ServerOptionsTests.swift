import ArgumentParser
import EchoProtocol
import Testing

struct ServerOptionsTests {
    @Test func defaultsAreLoopbackAndPort7007() throws {
        let options = try ServerOptions.parse([])
        #expect(options.host == "127.0.0.1")
        #expect(options.port == 7007)
        #expect(options.statsPort == 0)
        #expect(options.bufferSize == 16 * 1024)
    }

    @Test(arguments: ["localhost", "::1", "::", "0.0.0.0", "127.0.0.2"])
    func hostTakesNamesAndBothFamilies(_ host: String) throws {
        #expect(try ServerOptions.parse(["--host", host]).host == host)
    }

    /// The stats endpoint's address: loopback in --host's family unless --stats-host names one.
    @Test(arguments: [
        (["--host", "0.0.0.0"], "127.0.0.1"), (["--host", "::"], "::1"), (["--host", "::1"], "::1"),
        (["--host", "localhost"], "127.0.0.1"), ([], "127.0.0.1"),
        (["--host", "0.0.0.0", "--stats-host", "0.0.0.0"], "0.0.0.0"),
    ])
    func statsStayOnLoopbackUnlessNamed(_ arguments: [String], _ expected: String) throws {
        #expect(try ServerOptions.parse(arguments).statsListenHost == expected)
    }

    @Test func bufferSizeAcceptsUnits() throws {
        #expect(try ServerOptions.parse(["--buffer-size", "64K"]).bufferSize == 65_536)
        #expect(try ServerOptions.parse(["--buffer-size", "1MiB"]).bufferSize == 1 << 20)
        #expect(try ServerOptions.parse(["--buffer-size", "100"]).bufferSize == 100)
    }

    @Test(arguments: [
        ["--port", "70000"], ["--port", "-1"], ["--port", "x"], ["--host", "nosuch.invalid"], ["--host", "1.2.3"],
        ["--backlog", "0"], ["--buffer-size", "0"], ["--buffer-size", "1T"], ["--buffer-size", "65M"],
        ["--max-connections", "0"], ["--stats-port", "65536"], ["--stats-host", "1.2.3"], ["--stats-host", "nosuch.invalid"], ["--port", "9000", "--stats-port", "9000"],
    ])
    func rejectsBadValues(_ arguments: [String]) {
        #expect(throws: (any Error).self) { try ServerOptions.parse(arguments) }
    }

    @Test func errorMessageNamesTheOption() {
        do {
            _ = try ServerOptions.parse(["--port", "70000"])
            Issue.record("--port 70000 was accepted")
        } catch {
            #expect(ServerOptions.message(for: error).contains("--port"))
        }
    }
}

struct ByteCountTests {
    @Test func parsesSuffixes() {
        #expect(ByteCount.value(of: "64K") == 64 * 1024)
        #expect(ByteCount.value(of: "64kib") == 64 * 1024)
        #expect(ByteCount.value(of: "8M") == 8 << 20)
        #expect(ByteCount.value(of: "1G") == 1 << 30)
        #expect(ByteCount.value(of: "512") == 512)
    }

    @Test(arguments: ["", "K", "-1K", "1.5M", "12Q", "99999999999999999999G"])
    func rejectsNonSizes(_ text: String) {
        #expect(ByteCount.value(of: text) == nil)
    }

    @Test func describesRoundSizes() {
        #expect(ByteCount.describe(8 << 20) == "8 MiB")
        #expect(ByteCount.describe(65_536) == "64 KiB")
        #expect(ByteCount.describe(1000) == "1000 B")
    }
}
