import ArgumentParser
import EchoProtocol
import Testing

/// The one home for option values and output fields (Units.swift, TextFormat.swift).
struct UnitsTests {
    @Test func durationsReadAsWrittenEverywhere() throws {
        #expect(try DurationText.parse("250us") == .microseconds(250))
        #expect(try DurationText.parse("100ns") == .nanoseconds(100))
        #expect(try DurationText.parse("1.5s") == .milliseconds(1500))
        #expect(try DurationText.parse("2") == .seconds(2))
        for bad in ["", "-1s", "+1s", "1d", "ms", "1e300s"] {
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
        #expect(TextFormat.csvField("a\r\nb") == "\"a\r\nb\"")
        #expect(TextFormat.csvField("say \"hi\"") == "\"say \"\"hi\"\"\"")
    }
}
