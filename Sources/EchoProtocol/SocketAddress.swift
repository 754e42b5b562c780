#if canImport(Glibc)
import Glibc
#endif

/// An IPv4 address and port, convertible to and from `sockaddr_in`.
public struct IPv4Address: Sendable, Hashable, CustomStringConvertible {
    /// Network byte order, as in `sockaddr_in.sin_addr.s_addr`.
    public var networkOrder: UInt32
    public var port: Int

    /// Parses dotted-quad text (`127.0.0.1`); nil when it is not an IPv4 address.
    public init?(_ host: String, port: Int = 0) {
        var address = in_addr()
        guard inet_pton(AF_INET, host, &address) == 1 else { return nil }
        self.networkOrder = address.s_addr
        self.port = port
    }

    public init(_ address: sockaddr_in) {
        networkOrder = address.sin_addr.s_addr
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    /// Parses `HOST:PORT`.
    public init?(hostAndPort text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (0...65535).contains(port)
        else { return nil }
        self.init(String(text[..<colon]), port: port)
    }

    public var host: String {
        let bytes = withUnsafeBytes(of: networkOrder) { Array($0) }
        return bytes.map(String.init).joined(separator: ".")
    }

    public var description: String { "\(host):\(port)" }

    public var sockaddr: sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = networkOrder
        return address
    }

    /// Calls `body` with this address as a generic `sockaddr` pointer and its length.
    public func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) throws -> R) rethrows -> R {
        var address = sockaddr
        return try withUnsafePointer(to: &address) {
            try $0.withMemoryRebound(to: Glibc.sockaddr.self, capacity: 1) {
                try body($0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
    }

    /// The local address a socket is bound to (`getsockname`).
    public static func local(of fd: Int32) -> IPv4Address? {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let result = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: Glibc.sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return result == 0 ? IPv4Address(address) : nil
    }
}

/// `strerror` as a Swift string.
public func errnoDescription(_ code: Int32) -> String {
    String(cString: strerror(code))
}
