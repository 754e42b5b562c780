#if canImport(Glibc)
import Glibc
#endif
import EchoProtocol

// Glibc's module map leaves out <sys/epoll.h>, <sys/eventfd.h> and the GNU scheduler calls, so the few
// the engine needs are declared here, as EchoProtocol's Listener declares accept4. Every argument is an
// Int32 or a pointer, for which Swift's and C's calling conventions agree.

@_silgen_name("epoll_create1")
func c_epoll_create1(_ flags: Int32) -> Int32

@_silgen_name("epoll_ctl")
func c_epoll_ctl(_ epfd: Int32, _ op: Int32, _ fd: Int32, _ event: UnsafeMutableRawPointer?) -> Int32

@_silgen_name("epoll_pwait2")
func c_epoll_pwait2(
    _ epfd: Int32, _ events: UnsafeMutableRawPointer, _ maxEvents: Int32, _ timeout: UnsafePointer<timespec>?,
    _ sigmask: UnsafeRawPointer?
) -> Int32

@_silgen_name("eventfd")
func c_eventfd(_ initial: UInt32, _ flags: Int32) -> Int32

@_silgen_name("sched_setaffinity")
func c_sched_setaffinity(_ pid: Int32, _ size: Int, _ mask: UnsafeRawPointer) -> Int32

@_silgen_name("sched_getaffinity")
func c_sched_getaffinity(_ pid: Int32, _ size: Int, _ mask: UnsafeMutableRawPointer) -> Int32

/// The constants of <sys/epoll.h> and <sys/eventfd.h> (the same on every Linux architecture Swift runs on).
enum Epoll {
    static let input: UInt32 = 0x001  // EPOLLIN
    static let output: UInt32 = 0x004  // EPOLLOUT
    static let error: UInt32 = 0x008  // EPOLLERR
    static let hangUp: UInt32 = 0x010  // EPOLLHUP
    static let add: Int32 = 1  // EPOLL_CTL_ADD
    static let delete: Int32 = 2  // EPOLL_CTL_DEL
    static let modify: Int32 = 3  // EPOLL_CTL_MOD
    static let closeOnExec: Int32 = 0o2000000  // EPOLL_CLOEXEC, EFD_CLOEXEC
    static let nonBlocking: Int32 = 0o4000  // EFD_NONBLOCK

    /// `struct epoll_event` is packed on x86-64 (12 bytes: u32 events, u64 data) and 16 bytes elsewhere;
    /// the engine reads and writes it through these offsets rather than a Swift struct.
    #if arch(x86_64)
    static let eventSize = 12
    static let dataOffset = 4
    #else
    static let eventSize = 16
    static let dataOffset = 8
    #endif

    /// Registers or changes interest in `fd`; `token` comes back with each of its events.
    @inline(__always)
    @discardableResult
    static func control(_ epfd: Int32, _ op: Int32, _ fd: Int32, events: UInt32, token: UInt64) -> Int32 {
        var raw: (UInt64, UInt64) = (0, 0)
        return withUnsafeMutableBytes(of: &raw) { bytes in
            bytes.storeBytes(of: events, toByteOffset: 0, as: UInt32.self)
            bytes.storeBytes(of: token, toByteOffset: dataOffset, as: UInt64.self)
            return c_epoll_ctl(epfd, op, fd, bytes.baseAddress)
        }
    }
}

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

/// The CPUs the calling thread may run on (its affinity mask); nil if the kernel would not say.
func currentAffinity() -> [Int]? {
    var set = cpu_set_t()
    return withUnsafeMutableBytes(of: &set) { bytes in
        guard c_sched_getaffinity(0, bytes.count, bytes.baseAddress!) == 0 else { return nil }
        let words = bytes.bindMemory(to: UInt.self)
        return (0..<words.count * UInt.bitWidth).filter { words[$0 / UInt.bitWidth] & (1 << UInt($0 % UInt.bitWidth)) != 0 }
    }
}

/// Runs a closure on a new pthread that can be joined, which Foundation's Thread cannot.
final class JoinableThread {
    private var thread = pthread_t()

    private final class Body {
        let run: () -> Void
        init(_ run: @escaping () -> Void) { self.run = run }
    }

    /// Starts `body` at once. The closure may touch state that is not Sendable: the thread that starts
    /// it hands that state over and touches it again only after `join()`.
    init(_ body: @escaping () -> Void) {
        let box = Unmanaged.passRetained(Body(body)).toOpaque()
        let result = pthread_create(&thread, nil, { raw in
            let body = Unmanaged<Body>.fromOpaque(raw!).takeRetainedValue()
            body.run()
            return nil
        }, box)
        precondition(result == 0, "pthread_create failed: \(errnoDescription(result))")
    }

    func join() {
        pthread_join(thread, nil)
    }
}
