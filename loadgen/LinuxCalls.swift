#if canImport(Glibc)
import Glibc
#endif
import EchoProtocol

// epoll and eventfd come from NetPoller, the package's one binding, and the affinity mask from
// EchoProtocol's CPUList; sched_setaffinity, which Glibc's module map also leaves out, is declared
// here. Every argument is an Int32 or a pointer.

@_silgen_name("sched_setaffinity")
func c_sched_setaffinity(_ pid: Int32, _ size: Int, _ mask: UnsafeRawPointer) -> Int32

/// pipe2(2): a pipe that is close-on-exec (O_CLOEXEC) from the start, with no moment in which a
/// child started by another thread inherits it.
@_silgen_name("pipe2")
func c_pipe2(_ fds: UnsafeMutablePointer<Int32>, _ flags: Int32) -> Int32

/// CLOCK_MONOTONIC in nanoseconds: the one clock the engine and its timestamps use.
@inline(__always)
func monotonicNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) &* 1_000_000_000 &+ UInt64(now.tv_nsec)
}

/// Sleeps until the CLOCK_MONOTONIC instant `deadline` (nanoseconds), or not at all if it has passed.
func sleep(untilNanoseconds deadline: UInt64) {
    var until = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
    while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, nil) == EINTR {}
}

/// Pins the calling thread to the given CPUs; false if the kernel refused (e.g. a CPU that does not exist).
@discardableResult
func pinCurrentThread(to cpus: [Int]) -> Bool {
    setAffinity(thread: 0, to: cpus)
}

/// Sets the CPUs thread `tid` (0: the calling thread) may run on; false if the kernel refused.
func setAffinity(thread tid: Int32, to cpus: [Int]) -> Bool {
    var set = cpu_set_t()
    return withUnsafeMutableBytes(of: &set) { bytes in
        let words = bytes.bindMemory(to: UInt.self)
        for cpu in cpus where cpu >= 0 && cpu < words.count * UInt.bitWidth {
            words[cpu / UInt.bitWidth] |= 1 << UInt(cpu % UInt.bitWidth)
        }
        return c_sched_setaffinity(tid, bytes.count, bytes.baseAddress!) == 0
    }
}

/// CPU time of the calling thread (CLOCK_THREAD_CPUTIME_ID).
func threadCPUNanoseconds() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}
