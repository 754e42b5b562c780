import EchoProtocol
import ForeignProcess
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// bench/peers/go-echo takes our servers' `--work`, `--block` and `--block-every` after its port,
/// as `loadgen sweep --scenario` appends them, with the same meaning (MessageCostTests). Built here
/// with `go build` when Go is installed; skipped when it is not (CI has no Go).
@Suite(.serialized, .enabled(if: GoEcho.goPath != nil, "go is not installed (apt-get install -y golang-go)"))
struct GoEchoPeerTests {
    /// `--block-every 3`: the first two messages are quick, the third waits.
    @Test func onlyEveryNthMessageBlocks() throws {
        let server = try GoEcho(["--block", "200ms", "--block-every", "3"])
        defer { server.stop() }
        let socket = try server.connect()
        let times = try (0..<3).map { _ in try MessageCostTests.echoSeconds(on: socket) }
        #expect(times[0] < 0.15 && times[1] < 0.15, "\(times)")
        #expect(times[2] >= 0.19, "\(times)")
    }

    /// Counted for the whole server, as our servers count per loop: of two connections' first
    /// messages, one blocks.
    @Test func everyNthMessageIsCountedOverConnections() throws {
        let server = try GoEcho(["--block", "200ms", "--block-every", "2"])
        defer { server.stop() }
        let first = try server.connect()
        let second = try server.connect()
        let times = [try MessageCostTests.echoSeconds(on: first), try MessageCostTests.echoSeconds(on: second)]
        #expect(times.filter { $0 >= 0.19 }.count == 1, "\(times)")
    }

    /// Every message waits out the spin, and the spin is CPU time, not a sleep. (The CPU bound is
    /// loose: the spin is timed on the clock, so on a busy machine it gets less than its length.)
    @Test func workSpinsOnEveryMessage() throws {
        let server = try GoEcho(["--work", "2ms"])
        defer { server.stop() }
        let socket = try server.connect()
        let before = try server.cpuSeconds()
        let times = try (0..<100).map { _ in try MessageCostTests.echoSeconds(on: socket) }
        let used = try server.cpuSeconds() - before
        #expect(times.min()! >= 0.0019, "the quickest echo took \(times.min()!) s with --work 2ms")
        #expect(used >= 0.02, "100 messages with --work 2ms used \(used) s of go-echo's CPU")
    }

    @Test(arguments: [["--bogus"], ["--block", "-1ms"], ["--block", "1ms", "--block-every", "0"], ["--block-every", "3"], ["extra"]])
    func badOptionsAreRefused(_ options: [String]) throws {
        let server = try GoEcho(options)
        defer { server.stop() }
        #expect(server.waitForExit(timeout: 10) == 2, "go-echo \(options)")
    }
}

/// go-echo started on a free port with options after the port.
final class GoEcho: @unchecked Sendable {
    static let goPath: String? = {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/go" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }()

    /// Built once per test process into a temporary folder.
    static let executable: Result<String, ConformanceFailure> = {
        guard let goPath else { return .failure(ConformanceFailure("go is not installed")) }
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../bench/peers/go-echo").standardized
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("go-echo-test-\(getpid())")
        let output = folder.appendingPathComponent("go-echo").path
        let build = Process()
        build.executableURL = URL(fileURLWithPath: goPath)
        build.arguments = ["build", "-o", output, "."]
        build.currentDirectoryURL = source
        var environment = ProcessInfo.processInfo.environment
        environment["GOCACHE"] = folder.appendingPathComponent("cache").path
        environment["GOFLAGS"] = "-mod=mod"
        build.environment = environment
        do {
            try build.run()
            build.waitUntilExit()
        } catch {
            return .failure(ConformanceFailure("go build: \(error)"))
        }
        guard build.terminationStatus == 0 else { return .failure(ConformanceFailure("go build failed in \(source.path)")) }
        return .success(output)
    }()

    let process = Process()
    let port: UInt16

    init(_ options: [String]) throws {
        port = try Self.freePort()
        process.executableURL = URL(fileURLWithPath: try Self.executable.get())
        process.arguments = ["\(port)"] + options
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    /// go-echo prints no readiness line: connect until it listens.
    func connect() throws -> TestSocket {
        guard let address = SocketAddress("127.0.0.1", port: Int(port)) else { throw ConformanceFailure("no address") }
        let deadline = Date().addingTimeInterval(10)
        while true {
            do {
                return try TestSocket(connectingTo: address)
            } catch {
                guard process.isRunning, Date() < deadline else { throw error }
                usleep(10_000)
            }
        }
    }

    func cpuSeconds() throws -> Double {
        guard let snapshot = ServerSnapshot.ofProcess(pid: process.processIdentifier) else {
            throw ConformanceFailure("go-echo \(process.processIdentifier) is gone")
        }
        return snapshot.usage.userSeconds + snapshot.usage.systemSeconds
    }

    func waitForExit(timeout: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(5_000) }
        return process.isRunning ? nil : process.terminationStatus
    }

    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// A port the kernel just handed out and nobody holds; go-echo binds it a moment later.
    private static func freePort() throws -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ConformanceFailure("socket(): \(errno)") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else { throw ConformanceFailure("bind(): \(errno)") }
        return UInt16(bigEndian: address.sin_port)
    }
}
