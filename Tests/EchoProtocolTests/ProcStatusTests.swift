#if canImport(Glibc)
import Glibc
#endif
import Foundation
import EchoProtocol
import ForeignProcess
import Testing

struct ProcStatusTests {
    static let sample = """
        Name:\techo-libev
        Umask:\t0022
        State:\tS (sleeping)
        VmPeak:\t  300100 kB
        VmSize:\t  293396 kB
        VmHWM:\t   21580 kB
        VmRSS:\t   21480 kB
        Threads:\t4
        voluntary_ctxt_switches:\t512
        nonvoluntary_ctxt_switches:\t17
        """

    @Test func parsesMemoryThreadsAndContextSwitches() {
        let status = ProcStatus(parsing: Self.sample)
        #expect(status.vmSizeKiB == 293_396)
        #expect(status.vmHWMKiB == 21_580)
        #expect(status.vmRSSKiB == 21_480)
        #expect(status.threads == 4)
        #expect(status.voluntaryContextSwitches == 512)
        #expect(status.involuntaryContextSwitches == 17)
    }

    @Test func missingFieldsStayZeroAndGarbageIsSkipped() {
        let status = ProcStatus(parsing: "Name:\tkthreadd\nThreads:\tnot-a-number\nno colon here\nVmRSS:\n")
        #expect(status == ProcStatus())
    }

    @Test func readsThisProcessFromProc() throws {
        let status = try #require(ProcStatus.read())
        #expect(status.vmRSSKiB > 0)
        #expect(status.vmSizeKiB >= status.vmRSSKiB)
        #expect(status.threads >= 1)
    }

    /// Other suites open and close descriptors in this process meanwhile, a hundred at a time (a
    /// conformance check's clients): the count, read both ways, must rise by the 20 opened here,
    /// give or take what they did, in one of five tries.
    @Test func countsOpenDescriptors() throws {
        var tries: [String] = []
        for _ in 0..<5 {
            let before = try #require(openFileDescriptorCount())
            var pipes = [[Int32]](repeating: [-1, -1], count: 10)
            for index in pipes.indices { #expect(pipe(&pipes[index]) == 0) }
            let counts = [openFileDescriptorCount(), openFileDescriptorCount(pid: getpid())].map { $0 ?? -1 }
            for fd in pipes.joined() where fd >= 0 { close(fd) }
            if counts.allSatisfy({ $0 >= before + 20 && $0 <= before + 20 + 64 }) { return }
            tries.append("\(before) before, \(counts) with 20 more")
            usleep(50_000)
        }
        Issue.record("the count did not rise by 20 in five tries: \(tries.joined(separator: "; "))")
    }

    @Test func sumsContextSwitchesOverThreads() throws {
        let pid = getpid()
        let total = try #require(ProcStatus.contextSwitchesOfAllThreads(pid: pid))
        let main = try #require(ProcStatus.read(pid: pid))
        #expect(total.voluntary >= main.voluntaryContextSwitches)
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// A server made of several processes is read as its whole tree (issue 12).
struct ProcessTreeTests {
    @Test func aProcessTreeIsSummedOverItsDescendants() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "sleep 30 & sleep 30 & wait"]
        try process.run()
        defer {
            // End what this test started, by PID: the two sleeps, then the shell (SIGKILL: a signal
            // mask inherited from the test runner may block SIGTERM).
            for child in ServerSnapshot.descendants(of: process.processIdentifier) { kill(child, SIGKILL) }
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        var children: [Int32] = []
        for _ in 0..<100 where children.count < 2 {
            usleep(20_000)
            children = ServerSnapshot.descendants(of: process.processIdentifier)
        }
        #expect(children.count == 2)
        let tree = try #require(ServerSnapshot.ofProcess(pid: process.processIdentifier))
        let shell = try #require(ProcStatus.read(pid: process.processIdentifier))
        let sleeper = try #require(ProcStatus.read(pid: children[0]))
        #expect(tree.threads == 3)
        #expect(tree.memory.rssKiB >= shell.vmRSSKiB + sleeper.vmRSSKiB)
        #expect(tree.openFDs >= 3 * 3)
    }
}
