import Foundation

/// The memory the kernel holds that a process's RSS does not show: thread kernel stacks, page
/// tables, unreclaimable slab (socket and task structures) and TCP buffers. Machine-wide figures
/// (other processes change them too), read from /proc/meminfo and /proc/net/sockstat.
struct KernelMemory: Codable, Sendable, Equatable {
    var kernelStackKiB: Int
    var pageTablesKiB: Int
    var slabUnreclaimableKiB: Int
    /// sockstat's `TCP: … mem N`, in pages, as KiB.
    var tcpMemKiB: Int

    var totalKiB: Int { kernelStackKiB + pageTablesKiB + slabUnreclaimableKiB + tcpMemKiB }

    static func read() -> KernelMemory? {
        guard let meminfo = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
            let sockstat = try? String(contentsOfFile: "/proc/net/sockstat", encoding: .utf8)
        else { return nil }
        return parse(meminfo: meminfo, sockstat: sockstat, pageKiB: Int(sysconf(Int32(_SC_PAGESIZE))) / 1024)
    }

    static func parse(meminfo: String, sockstat: String, pageKiB: Int = 4) -> KernelMemory? {
        var fields: [Substring: Int] = [:]
        for line in meminfo.split(separator: "\n") {
            let parts = line.split(whereSeparator: { $0 == ":" || $0 == " " })
            if parts.count >= 2, let value = Int(parts[1]) { fields[parts[0]] = value }
        }
        guard let stack = fields["KernelStack"], let tables = fields["PageTables"], let slab = fields["SUnreclaim"] else {
            return nil
        }
        // `TCP: inuse 5 orphan 0 tw 2 alloc 7 mem 1`
        let tcp = sockstat.split(separator: "\n").first { $0.hasPrefix("TCP:") }?.split(separator: " ") ?? []
        let mem = tcp.firstIndex(of: "mem").flatMap { $0 + 1 < tcp.count ? Int(tcp[$0 + 1]) : nil } ?? 0
        return KernelMemory(kernelStackKiB: stack, pageTablesKiB: tables, slabUnreclaimableKiB: slab, tcpMemKiB: mem * pageKiB)
    }
}

/// The change in kernel memory from before the first connection to with N open, per connection.
/// Machine-wide: every process on the machine adds to it (the client's own sockets included), so it
/// is noisy and an upper bound of what the server alone costs.
struct KernelPerConnection: Codable, Sendable, Equatable {
    var machineWide = true
    var kernelStackKiB: Double
    var pageTablesKiB: Double
    var slabUnreclaimableKiB: Double
    var tcpMemKiB: Double
    var totalKiB: Double

    init?(before: KernelMemory?, after: KernelMemory?, connections: Int) {
        guard let before, let after, connections > 0 else { return nil }
        let n = Double(connections)
        kernelStackKiB = Double(after.kernelStackKiB - before.kernelStackKiB) / n
        pageTablesKiB = Double(after.pageTablesKiB - before.pageTablesKiB) / n
        slabUnreclaimableKiB = Double(after.slabUnreclaimableKiB - before.slabUnreclaimableKiB) / n
        tcpMemKiB = Double(after.tcpMemKiB - before.tcpMemKiB) / n
        totalKiB = Double(after.totalKiB - before.totalKiB) / n
    }
}
