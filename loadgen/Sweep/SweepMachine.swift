#if canImport(Glibc)
import Glibc
#endif
import EchoProtocol
import Foundation

/// The machine a sweep ran on, for the charts' footer and results.json: a figure means little without it.
struct SweepMachine: Codable, Sendable, Equatable {
    var cpus: Int
    var kernel: String
    var hostname: String
    /// ISO 8601, UTC.
    var date: String

    static func current() -> SweepMachine {
        var names = utsname()
        uname(&names)
        func field<T>(_ value: T) -> String {
            withUnsafeBytes(of: value) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
        }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return SweepMachine(
            cpus: CPUSet.available().count,
            kernel: "\(field(names.sysname)) \(field(names.release)) \(field(names.machine))",
            hostname: field(names.nodename), date: formatter.string(from: Date()))
    }

    /// `2 CPUs · Linux 6.1.0 x86_64 · 2025-11-29T13:00:00Z`
    var summary: String { "\(cpus) CPU\(cpus == 1 ? "" : "s") · \(kernel) · \(date)" }
}

/// A set of CPU numbers, written as `taskset -c` and /proc write them: `0`, `0-1`, `0,2-3`.
struct CPUSet: Codable, Sendable, Equatable, CustomStringConvertible {
    var cpus: [Int]

    init(_ cpus: [Int]) { self.cpus = Array(Set(cpus)).sorted() }

    var count: Int { cpus.count }
    var isEmpty: Bool { cpus.isEmpty }

    /// Parses `0`, `0-3`, `0,2-3` (`CPUList`); nil for anything else.
    init?(parsing text: String) {
        guard let cpus = CPUList.value(of: text) else { return nil }
        self.init(cpus)
    }

    /// Ranges collapsed: `[0, 1, 2, 5]` → `0-2,5`.
    var description: String {
        var parts: [String] = []
        var index = 0
        while index < cpus.count {
            var end = index
            while end + 1 < cpus.count && cpus[end + 1] == cpus[end] + 1 { end += 1 }
            parts.append(end == index ? "\(cpus[index])" : "\(cpus[index])-\(cpus[end])")
            index = end + 1
        }
        return parts.joined(separator: ",")
    }

    /// The CPUs the calling thread may run on (its affinity mask), which is what can be split between
    /// server and client; falls back to the online count.
    static func available() -> CPUSet {
        if let cpus = CPUList.affinity(), !cpus.isEmpty { return CPUSet(cpus) }
        return CPUSet(Array(0..<max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))))
    }

    /// Sets the affinity of every thread of process `pid` (threads it creates later inherit it).
    /// True if at least one thread was pinned (a thread may exit meanwhile: that is not an error).
    @discardableResult
    func pin(process pid: Int32) -> Bool {
        guard let threads = directoryEntries("/proc/\(pid)/task") else { return false }
        var pinnedAny = false
        for tid in threads.compactMap({ Int32($0) }) where pin(thread: tid) { pinnedAny = true }
        return pinnedAny
    }

    /// Sets the affinity of one thread (a TID; 0 is the calling thread).
    func pin(thread tid: Int32) -> Bool {
        setAffinity(thread: tid, to: cpus)
    }

    /// The CPUs a process is allowed on now, from /proc (`Cpus_allowed_list`), to check a pinning.
    static func allowed(process pid: Int32) -> CPUSet? {
        guard let status = readText("/proc/\(pid)/status") else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("Cpus_allowed_list:") {
            return CPUSet(parsing: line.dropFirst("Cpus_allowed_list:".count).trimmingCharacters(in: .whitespaces))
        }
        return nil
    }
}

/// Which CPUs the servers and the client get, and how that is said in the chart footers.
struct SweepPinning: Codable, Sendable, Equatable {
    var server: CPUSet?
    var client: CPUSet?

    /// The default: the server gets the first half of the available CPUs, the client the rest
    /// (on 2 CPUs: server 0, client 1). One CPU cannot be split, so nothing is pinned.
    static func split(_ available: CPUSet) -> SweepPinning {
        guard available.count >= 2 else { return SweepPinning(server: nil, client: nil) }
        let half = available.count / 2
        return SweepPinning(
            server: CPUSet(Array(available.cpus.prefix(half))), client: CPUSet(Array(available.cpus.dropFirst(half))))
    }

    var summary: String {
        switch (server, client) {
        case (nil, nil): return "not pinned"
        case let (server?, client?): return "server pinned to CPU \(server), client to CPU \(client)"
        case let (server?, nil): return "server pinned to CPU \(server), client not pinned"
        case let (nil, client?): return "server not pinned, client pinned to CPU \(client)"
        }
    }
}
