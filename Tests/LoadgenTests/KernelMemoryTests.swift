import Foundation
import Testing

@testable import loadgen

/// Kernel memory per connection and the RSS slope (issue 12's memory figures).
struct KernelMemoryTests {
    static let meminfo = """
        MemTotal:       24578192 kB
        Slab:             412340 kB
        SReclaimable:     300100 kB
        SUnreclaim:       112240 kB
        KernelStack:       16384 kB
        PageTables:        20480 kB
        """

    @Test func meminfoAndSockstatAreParsed() throws {
        let sockstat = "sockets: used 900\nTCP: inuse 5 orphan 0 tw 2 alloc 7 mem 3\nUDP: inuse 1 mem 0\n"
        let memory = try #require(KernelMemory.parse(meminfo: Self.meminfo, sockstat: sockstat, pageKiB: 4))
        #expect(memory == KernelMemory(kernelStackKiB: 16384, pageTablesKiB: 20480, slabUnreclaimableKiB: 112240, tcpMemKiB: 12))
        #expect(memory.totalKiB == 16384 + 20480 + 112240 + 12)
        #expect(KernelMemory.parse(meminfo: "MemTotal: 1 kB", sockstat: sockstat) == nil)
    }

    @Test func theDifferenceIsPerConnection() throws {
        let before = KernelMemory(kernelStackKiB: 100, pageTablesKiB: 100, slabUnreclaimableKiB: 100, tcpMemKiB: 0)
        let after = KernelMemory(kernelStackKiB: 1100, pageTablesKiB: 600, slabUnreclaimableKiB: 2100, tcpMemKiB: 400)
        let perConnection = try #require(KernelPerConnection(before: before, after: after, connections: 100))
        #expect(perConnection.kernelStackKiB == 10 && perConnection.pageTablesKiB == 5)
        #expect(perConnection.slabUnreclaimableKiB == 20 && perConnection.tcpMemKiB == 4 && perConnection.totalKiB == 39)
        #expect(perConnection.machineWide)
        #expect(KernelPerConnection(before: before, after: after, connections: 0) == nil)
    }

    @Test func thisMachinesProcIsReadable() {
        #expect(KernelMemory.read() != nil)
    }

    /// `loadgen idle` reports the kernel's growth per held connection beside the server's RSS.
    @Test func idleReportsKernelMemoryPerConnection() throws {
        let server = try TestEchoServer()
        defer { server.stop() }
        var settings = ConnectionSettings(target: server.address, connections: 200)
        settings.connectTimeout = .seconds(2)
        var idle = IdleRun(connection: settings)
        idle.hold = .milliseconds(100)
        let result = try idle.run()
        let kernel = try #require(result.kernelPerConnection)
        #expect(kernel.machineWide)
        // 200 sockets on each side: the socket slabs and TCP memory grow (other processes add noise).
        #expect(kernel.totalKiB.isFinite)
        let json = String(decoding: try JSONEncoder().encode(result), as: UTF8.self)
        #expect(json.contains("kernelPerConnection") && json.contains("machineWide"))
    }

    /// A fixed cost does not leak into the slope: RSS = 20 MiB + 1.5 KiB × N.
    @Test func slopeIgnoresTheFixedCost() throws {
        let points = [100.0, 1000, 5000].map { (x: $0, y: 20480 + 1.5 * $0) }
        let slope = try #require(SweepResults.leastSquaresSlope(points))
        #expect(abs(slope - 1.5) < 1e-9)
        #expect(SweepResults.leastSquaresSlope([(x: 1, y: 1)]) == nil)
        #expect(SweepResults.leastSquaresSlope([(x: 1, y: 1), (x: 1, y: 2)]) == nil)
    }
}
