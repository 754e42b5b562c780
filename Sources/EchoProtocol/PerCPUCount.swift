#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// A count many threads add to, kept as one slot per CPU on cache lines of their own and summed when
/// read: the kernel's per-CPU counters, Java's LongAdder. A thread adds to the slot of the CPU it runs
/// on, so two cores never write one line; the add stays atomic because a thread can be moved between
/// reading its CPU number and adding.
/// `@unchecked Sendable`: the slots are only ever touched through their atomics.
final class PerCPUCount: @unchecked Sendable {
    private static let lineSize = 64
    private let slots: Int
    private let lines: UnsafeMutableRawPointer

    init() {
        slots = max(1, min(Int(sysconf(Int32(_SC_NPROCESSORS_CONF))), 1024))
        lines = .allocate(byteCount: slots * Self.lineSize, alignment: Self.lineSize)
        for index in 0..<slots { slot(index).initialize(to: Atomic(0)) }
    }

    // Never freed: a server's counters live as long as the process.

    private func slot(_ index: Int) -> UnsafeMutablePointer<Atomic<Int>> {
        (lines + index * Self.lineSize).assumingMemoryBound(to: Atomic<Int>.self)
    }

    @inline(__always)
    func add(_ count: Int) {
        let cpu = Int(c_sched_getcpu())  // glibc reads it from rseq: no syscall
        slot(cpu >= 0 ? cpu % slots : 0).pointee.wrappingAdd(count, ordering: .relaxed)
    }

    var total: Int {
        (0..<slots).reduce(0) { $0 &+ slot($1).pointee.load(ordering: .relaxed) }
    }
}

@_silgen_name("sched_getcpu")
private func c_sched_getcpu() -> Int32
