#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import EchoProtocol
import Testing

/// The one home for option values and output fields (Units.swift, TextFormat.swift).
struct UnitsTests {
    @Test func durationsReadAsWrittenEverywhere() throws {
        #expect(try DurationText.parse("250us") == .microseconds(250))
        #expect(try DurationText.parse("100ns") == .nanoseconds(100))
        #expect(try DurationText.parse("1.5s") == .milliseconds(1500))
        #expect(try DurationText.parse("0") == .zero)
        for bad in ["", "-1s", "+1s", "1d", "ms", "1e300s", "2"] {
            #expect(throws: ValidationError.self, "\(bad)") { try DurationText.parse(bad) }
        }
    }

    @Test func aSleepNeedsItsUnit() throws {
        #expect(try DurationText.parseWithUnit("100ms") == .milliseconds(100))
        #expect(try DurationText.parseWithUnit("0") == .zero)
        #expect(throws: ValidationError.self) { try DurationText.parseWithUnit("100") }
    }

    @Test func durationsAreDescribedByTheirShortestExactSpelling() {
        #expect(DurationText.describe(.seconds(120)) == "2m")
        #expect(DurationText.describe(.seconds(10)) == "10s")
        #expect(DurationText.describe(.milliseconds(500)) == "500ms")
        #expect(DurationText.describe(.microseconds(250)) == "250us")
        #expect(DurationText.describe(.nanoseconds(7)) == "7ns")
        #expect(DurationText.describe(.zero) == "0s")
    }

    @Test func cpuListsAsTasksetWritesThem() {
        #expect(CPUList.value(of: "0,2-3") == [0, 2, 3])
        #expect(CPUList.value(of: "3-1") == nil)
        #expect(CPUList.value(of: "1024") == nil)
        #expect(CPUList.value(of: "") == nil)
    }

    @Test func numbersAndFieldsAreWrittenOneWay() {
        #expect(TextFormat.fixed(3.14159, 2) == "3.14")
        #expect(TextFormat.fixed(.nan, 2) == "-")
        #expect(TextFormat.trimmed(0.03120) == "0.0312")
        #expect(TextFormat.trimmed(-0.00001) == "0")
        #expect(TextFormat.grouped(-1234567) == "-1,234,567")
        #expect(TextFormat.latency(microseconds: 95.44) == "95.4 µs")
        #expect(TextFormat.latency(microseconds: 9876.54) == "9,876.5 µs")
        #expect(TextFormat.latency(microseconds: 12_345) == "12.35 ms")
        #expect(TextFormat.latency(microseconds: 1_706_033.2) == "1,706.03 ms")
        #expect(TextFormat.groupedFixed(-1234567.891, 2) == "-1,234,567.89")
        #expect(TextFormat.csvField("a\r\nb") == "\"a\r\nb\"")
        #expect(TextFormat.csvField("say \"hi\"") == "\"say \"\"hi\"\"\"")
    }
}

/// Addresses as people type them (SocketAddress).
struct SocketAddressTests {
    @Test func numericAddressesOfBothFamiliesRoundTrip() {
        #expect(SocketAddress(hostAndPort: "127.0.0.1:7007")?.description == "127.0.0.1:7007")
        #expect(SocketAddress(hostAndPort: "[::1]:7007")?.description == "[::1]:7007")
        #expect(SocketAddress(hostAndPort: "[::1]:7007")?.family == AF_INET6)
        #expect(SocketAddress(hostAndPort: "::1:7007") == nil)  // the port cannot be told apart
        #expect(SocketAddress(hostAndPort: "127.0.0.1:70000") == nil)
        #expect(SocketAddress(hostAndPort: "localhost:7007") == nil)  // names need resolve
    }

    @Test func namesResolveIPv4First() throws {
        let addresses = try SocketAddress.resolve(hostAndPort: "localhost:7007")
        #expect(addresses.first?.description == "127.0.0.1:7007")
        #expect(addresses.allSatisfy { $0.port == 7007 })
    }

    @Test func anUnknownNameIsOneLine() {
        #expect(throws: StartupError.self) { try SocketAddress.resolve("nosuch.invalid", port: 1) }
        do {
            _ = try SocketAddress.resolve("nosuch.invalid", port: 1)
        } catch {
            #expect(error.description.hasPrefix("cannot resolve 'nosuch.invalid': "))
            #expect(!error.description.contains("\n"))
        }
    }

    @Test func aBoundIPv6SocketReportsItsAddress() throws {
        let fd = try Listener.open(host: "::1", port: 0, backlog: 1, nonBlocking: false)[0]
        defer { close(fd) }
        let local = try #require(Listener.boundAddress(of: fd))
        #expect(local.host == "::1" && local.port > 0)
    }
}
