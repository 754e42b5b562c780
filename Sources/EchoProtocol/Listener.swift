#if canImport(Glibc)
import Glibc
#endif

/// A startup failure a person can act on; printed as one line, `TOOL: MESSAGE`.
public struct StartupError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Opening listening sockets, and configuring accepted ones.
public enum Listener {
    /// Opens `count` listening sockets on one address. One socket is plain (SO_REUSEADDR); several
    /// share the port through SO_REUSEPORT so the kernel spreads connections among them.
    ///
    /// SO_REUSEPORT would also let a second *process* join the group silently, so before building a
    /// group on a fixed port we bind a plain probe socket there: it fails if anyone already listens.
    /// With port 0 the kernel picks the port for the first socket and the others join it.
    public static func open(
        host: String, port: Int, backlog: Int, count: Int = 1, nonBlocking: Bool
    ) throws(StartupError) -> [Int32] {
        // A name (localhost) listens on its first address, IPv4 before IPv6 (see SocketAddress.resolve).
        let address: SocketAddress
        do {
            address = try SocketAddress.resolve(host, port: port)[0]
        } catch {
            throw StartupError("cannot listen on \(host):\(port): \(error)")
        }
        if count > 1 && port != 0 {
            let probe = try bound(address, reusePort: false, nonBlocking: false)
            close(probe)
        }
        var fds: [Int32] = []
        var groupAddress = address
        do throws(StartupError) {
            for _ in 0..<count {
                let fd = try bound(groupAddress, reusePort: count > 1, nonBlocking: nonBlocking)
                fds.append(fd)
                guard listen(fd, Int32(clamping: backlog)) == 0 else {
                    throw StartupError("cannot listen on \(groupAddress): \(errnoDescription(errno))")
                }
                if groupAddress.port == 0, let local = SocketAddress.local(of: fd) { groupAddress = local }
            }
        } catch {
            fds.forEach { close($0) }
            throw error
        }
        return fds
    }

    private static func bound(_ address: SocketAddress, reusePort: Bool, nonBlocking: Bool) throws(StartupError)
        -> Int32
    {
        var type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        if nonBlocking { type |= Int32(SOCK_NONBLOCK.rawValue) }
        let fd = socket(address.family, type, 0)
        guard fd >= 0 else { throw StartupError("cannot create a socket for \(address): \(errnoDescription(errno))") }
        setOption(fd, SOL_SOCKET, SO_REUSEADDR, 1)
        if reusePort { setOption(fd, SOL_SOCKET, SO_REUSEPORT, 1) }
        let result = address.withSockaddr { bind(fd, $0, $1) }
        guard result == 0 else {
            let code = errno
            close(fd)
            throw StartupError("cannot bind \(address): \(errnoDescription(code))")
        }
        return fd
    }

    /// The port a listening socket really got (differs from the requested one when that was 0).
    public static func boundAddress(of fd: Int32) -> SocketAddress? { SocketAddress.local(of: fd) }

    /// Accepts one connection, retrying EINTR. Returns the new fd, or -1 with `errno` set.
    /// The new socket is close-on-exec, nonblocking when asked, and has TCP_NODELAY: an echo
    /// server answers small messages and must not wait for Nagle's timer.
    @inline(__always)
    public static func accept(_ listenFD: Int32, nonBlocking: Bool) -> Int32 {
        var flags = Int32(SOCK_CLOEXEC.rawValue)
        if nonBlocking { flags |= Int32(SOCK_NONBLOCK.rawValue) }
        while true {
            let fd = c_accept4(listenFD, nil, nil, flags)
            if fd >= 0 {
                setOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
                return fd
            }
            if errno != EINTR { return -1 }
        }
    }

    @discardableResult
    public static func setOption(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32) -> Bool {
        var value = value
        return setsockopt(fd, level, name, &value, socklen_t(MemoryLayout<Int32>.size)) == 0
    }
}

/// accept4(2) sets the new socket's flags in the same call; Glibc's module map hides it behind
/// _GNU_SOURCE, so it is declared here.
@_silgen_name("accept4")
private func c_accept4(
    _ fd: Int32, _ address: UnsafeMutablePointer<sockaddr>?, _ length: UnsafeMutablePointer<socklen_t>?,
    _ flags: Int32
) -> Int32
