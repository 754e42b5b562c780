#if canImport(Glibc)
import Glibc
#endif

// Glibc's module map leaves out <sys/epoll.h>, <sys/eventfd.h> and <sys/timerfd.h>, so the calls the
// package needs are declared here, once, for the netpoller and the load generator alike. Every
// argument is an Int32, an integer or a pointer, for which Swift's and C's calling conventions agree.

@_silgen_name("epoll_create1")
public func c_epoll_create1(_ flags: Int32) -> Int32

@_silgen_name("epoll_ctl")
public func c_epoll_ctl(_ epfd: Int32, _ op: Int32, _ fd: Int32, _ event: UnsafeMutableRawPointer?) -> Int32

@_silgen_name("epoll_wait")
public func c_epoll_wait(_ epfd: Int32, _ events: UnsafeMutableRawPointer, _ maxEvents: Int32, _ timeout: Int32)
    -> Int32

@_silgen_name("epoll_pwait2")
public func c_epoll_pwait2(
    _ epfd: Int32, _ events: UnsafeMutableRawPointer, _ maxEvents: Int32, _ timeout: UnsafePointer<timespec>?,
    _ sigmask: UnsafeRawPointer?
) -> Int32

@_silgen_name("eventfd")
public func c_eventfd(_ initial: UInt32, _ flags: Int32) -> Int32

@_silgen_name("timerfd_create")
func c_timerfd_create(_ clock: Int32, _ flags: Int32) -> Int32

@_silgen_name("timerfd_settime")
func c_timerfd_settime(_ fd: Int32, _ flags: Int32, _ new: UnsafePointer<itimerspec>, _ old: UnsafeMutablePointer<itimerspec>?)
    -> Int32

/// The constants of <sys/epoll.h>, <sys/eventfd.h> and <sys/timerfd.h> (the same on every Linux
/// architecture Swift runs on), and `struct epoll_event`'s layout.
public enum Epoll {
    public static let input: UInt32 = 0x001  // EPOLLIN
    public static let priority: UInt32 = 0x002  // EPOLLPRI: TCP urgent data is queued
    public static let output: UInt32 = 0x004  // EPOLLOUT
    public static let error: UInt32 = 0x008  // EPOLLERR
    public static let hangUp: UInt32 = 0x010  // EPOLLHUP
    public static let readHangUp: UInt32 = 0x2000  // EPOLLRDHUP: the peer shut down its writing side
    public static let edgeTriggered: UInt32 = 1 << 31  // EPOLLET
    public static let add: Int32 = 1  // EPOLL_CTL_ADD
    public static let delete: Int32 = 2  // EPOLL_CTL_DEL
    public static let modify: Int32 = 3  // EPOLL_CTL_MOD
    public static let closeOnExec: Int32 = 0o2000000  // EPOLL_CLOEXEC, EFD_CLOEXEC, TFD_CLOEXEC
    public static let nonBlocking: Int32 = 0o4000  // EFD_NONBLOCK, TFD_NONBLOCK

    /// `struct epoll_event` is packed on x86-64 (12 bytes: u32 events, u64 data) and 16 bytes
    /// elsewhere; it is read and written through these offsets rather than a Swift struct.
    #if arch(x86_64)
    public static let eventSize = 12
    public static let dataOffset = 4
    #else
    public static let eventSize = 16
    public static let dataOffset = 8
    #endif

    /// Registers or changes interest in `fd`; `token` comes back with each of its events.
    @inline(__always)
    @discardableResult
    public static func control(_ epfd: Int32, _ op: Int32, _ fd: Int32, events: UInt32, token: UInt64) -> Int32 {
        var raw: (UInt64, UInt64) = (0, 0)
        return withUnsafeMutableBytes(of: &raw) { bytes in
            bytes.storeBytes(of: events, toByteOffset: 0, as: UInt32.self)
            bytes.storeBytes(of: token, toByteOffset: dataOffset, as: UInt64.self)
            return c_epoll_ctl(epfd, op, fd, bytes.baseAddress)
        }
    }

    /// The flags and token of event `index` in a buffer `epoll_wait` filled.
    @inline(__always)
    public static func event(_ index: Int, in buffer: UnsafeMutableRawPointer) -> (flags: UInt32, token: UInt64) {
        let event = buffer + index * eventSize
        return (event.loadUnaligned(as: UInt32.self), event.loadUnaligned(fromByteOffset: dataOffset, as: UInt64.self))
    }
}
