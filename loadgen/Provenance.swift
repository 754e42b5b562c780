#if canImport(Glibc)
import Glibc
#endif
import EchoProtocol
import Foundation

/// Where a result came from, so a file read months later (or merged with another host's) says what
/// made it: loadgen's version and git commit when known, the command line, the machine.
struct Provenance: Codable, Sendable, Equatable {
    static let loadgenVersion = "echo-lab loadgen 1"

    var loadgen: String
    /// The commit of the checkout loadgen was built in, when it can be read from `.git`.
    var gitCommit: String?
    var commandLine: [String]
    var host: String
    var cpuModel: String?
    var kernel: String
    /// The CPUs the process was allowed to run on.
    var cpusAllowed: [Int]
    /// The process that wrote the result, and when (ISO 8601, UTC): with the host, they tell one run
    /// from another (`loadgen merge` refuses the same run twice). Nil in results written before.
    var pid: Int32? = nil
    var madeAt: String? = nil

    /// Now, in ISO 8601 with milliseconds: one process may write several results within a second.
    static func madeAtNow() -> String {
        let format = ISO8601DateFormatter()
        format.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return format.string(from: Date())
    }

    static func current() -> Provenance {
        var names = utsname()
        uname(&names)
        func field<T>(_ value: T) -> String {
            withUnsafeBytes(of: value) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        }
        let cpuModel = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("model name") }
            .flatMap { $0.split(separator: ":", maxSplits: 1).last }
            .map { $0.trimmingCharacters(in: .whitespaces) }
        return Provenance(
            loadgen: loadgenVersion, gitCommit: BuildVersion.gitCommit, commandLine: CommandLine.arguments,
            host: field(names.nodename), cpuModel: cpuModel,
            kernel: "\(field(names.sysname)) \(field(names.release)) \(field(names.machine))",
            cpusAllowed: CPUList.affinity() ?? [], pid: getpid(), madeAt: Self.madeAtNow())
    }
}
