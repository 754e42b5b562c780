#if canImport(Glibc)
import Glibc
#endif
import EchoProtocol

/// A client socket as loadgen opens every one (ClientLoop's connections, churn's lives, the
/// reachability probe): nonblocking and close-on-exec, bound to a source address when one is given,
/// its connect started without waiting and its outcome read once the socket is writable.
enum ClientSocket {
    /// A new nonblocking TCP socket for `target`'s family; -1 with errno set.
    static func open(for target: SocketAddress) -> Int32 {
        socket(target.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    }

    /// Binds `fd` to `source`. With `portAtConnect` the port is left to connect()
    /// (IP_BIND_ADDRESS_NO_PORT), so one source address's ports are shared by connections to
    /// different targets. False with errno set.
    static func bind(_ fd: Int32, to source: SocketAddress, portAtConnect: Bool = true) -> Bool {
        if portAtConnect { Listener.setOption(fd, Int32(IPPROTO_IP), IP_BIND_ADDRESS_NO_PORT, 1) }
        return source.withSockaddr { Glibc.bind(fd, $0, $1) } == 0
    }

    /// Starts connecting `fd` to `target`: 0 when connected at once, EINPROGRESS while under way
    /// (wait for the socket to be writable, then `connectResult`), else the errno.
    static func startConnect(_ fd: Int32, to target: SocketAddress) -> Int32 {
        target.withSockaddr { connect(fd, $0, $1) } == 0 ? 0 : errno
    }

    /// How a connect under way ended, once its socket is writable (or in error): 0, or the errno.
    static func connectResult(_ fd: Int32) -> Int32 {
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
        return error
    }
}
