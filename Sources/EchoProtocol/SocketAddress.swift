#if canImport(Glibc)
import Glibc
#endif

/// An IPv4 or IPv6 address and a port, convertible to and from `sockaddr_in` / `sockaddr_in6`:
/// the one home for addresses as people type them (`127.0.0.1:7007`, `[::1]:7007`, `localhost:7007`).
public struct SocketAddress: Sendable, Hashable, CustomStringConvertible {
    public enum IP: Sendable, Hashable {
        /// Network byte order, as in `sockaddr_in.sin_addr.s_addr`.
        case v4(UInt32)
        /// The 16 bytes of `in6_addr`, as two words loaded in memory order.
        case v6(UInt64, UInt64)
    }

    public var ip: IP
    public var port: Int

    /// A numeric address, `127.0.0.1` or `::1`; nil for anything else (names need `resolve`).
    public init?(_ host: String, port: Int = 0) {
        var v4 = in_addr()
        var v6 = in6_addr()
        if inet_pton(AF_INET, host, &v4) == 1 {
            ip = .v4(v4.s_addr)
        } else if inet_pton(AF_INET6, host, &v6) == 1 {
            ip = withUnsafeBytes(of: v6) { .v6($0.load(as: UInt64.self), $0.load(fromByteOffset: 8, as: UInt64.self)) }
        } else {
            return nil
        }
        self.port = port
    }

    public init(_ address: sockaddr_in) {
        ip = .v4(address.sin_addr.s_addr)
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    public init(_ address: sockaddr_in6) {
        ip = withUnsafeBytes(of: address.sin6_addr) {
            .v6($0.load(as: UInt64.self), $0.load(fromByteOffset: 8, as: UInt64.self))
        }
        port = Int(UInt16(bigEndian: address.sin6_port))
    }

    /// An IPv4 address from its 32-bit value in network byte order (address ranges count in it).
    public init(ipv4NetworkOrder: UInt32, port: Int = 0) {
        ip = .v4(ipv4NetworkOrder)
        self.port = port
    }

    /// Parses a numeric `HOST:PORT`: `127.0.0.1:7007` or `[::1]:7007`.
    public init?(hostAndPort text: String) {
        guard let (host, port) = Self.split(hostAndPort: text) else { return nil }
        self.init(host, port: port)
    }

    /// `HOST:PORT` → (HOST, PORT), brackets removed: `[::1]:7007` → ("::1", 7007). An IPv6 address
    /// without brackets is refused: its last colon cannot be told from the port's.
    public static func split(hostAndPort text: String) -> (host: String, port: Int)? {
        var host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                return nil
            }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            guard !host.contains(":") else { return nil }
            portText = text[text.index(after: colon)...]
        }
        guard !host.isEmpty, let port = Int(portText), (0...65535).contains(port) else { return nil }
        return (String(host), port)
    }

    /// Every address `host` names: itself if numeric, else getaddrinfo's answers (IPv4 first, so a
    /// name such as `localhost` reaches a server on the default 127.0.0.1 first).
    public static func resolve(_ host: String, port: Int) throws(StartupError) -> [SocketAddress] {
        if let numeric = SocketAddress(host, port: port) { return [numeric] }
        // getaddrinfo would take `1.2.3` as inet_aton does (1.2.0.3): a typo, not a name.
        if host.allSatisfy({ $0.isNumber || $0 == "." }) {
            throw StartupError("'\(host)' is not an IP address")
        }
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, nil, &hints, &list)
        guard status == 0, let list else {
            throw StartupError("cannot resolve '\(host)': \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(list) }
        var found: [SocketAddress] = []
        var entry: UnsafeMutablePointer<addrinfo>? = list
        while let current = entry {
            if let raw = current.pointee.ai_addr, var address = SocketAddress(sockaddr: raw), !found.contains(address) {
                address.port = port
                found.append(address)
            }
            entry = current.pointee.ai_next
        }
        guard !found.isEmpty else { throw StartupError("cannot resolve '\(host)': no IPv4 or IPv6 address") }
        return found.filter(\.isIPv4) + found.filter { !$0.isIPv4 }
    }

    /// `HOST:PORT` with a host name or a numeric host, resolved (see `resolve`).
    public static func resolve(hostAndPort text: String) throws(StartupError) -> [SocketAddress] {
        guard let (host, port) = split(hostAndPort: text) else {
            throw StartupError("'\(text)' is not HOST:PORT (e.g. 127.0.0.1:7007, [::1]:7007, localhost:7007)")
        }
        return try resolve(host, port: port)
    }

    /// Reads a `sockaddr_in` or `sockaddr_in6`; nil for another family.
    public init?(sockaddr raw: UnsafePointer<sockaddr>) {
        switch Int32(raw.pointee.sa_family) {
        case AF_INET: self.init(UnsafeRawPointer(raw).load(as: sockaddr_in.self))
        case AF_INET6: self.init(UnsafeRawPointer(raw).loadUnaligned(as: sockaddr_in6.self))
        default: return nil
        }
    }

    public var isIPv4: Bool {
        if case .v4 = ip { return true }
        return false
    }

    /// The address family, for `socket(2)`.
    public var family: Int32 { isIPv4 ? AF_INET : AF_INET6 }

    /// The IPv4 address in network byte order; nil for IPv6.
    public var ipv4NetworkOrder: UInt32? {
        if case .v4(let value) = ip { return value }
        return nil
    }

    /// The 16 bytes of an IPv6 address; nil for IPv4.
    public var ipv6Bytes: [UInt8]? {
        guard case .v6(let high, let low) = ip else { return nil }
        return withUnsafeBytes(of: (high, low)) { Array($0) }
    }

    /// `127.0.0.1` or `::1`.
    public var host: String {
        switch ip {
        case .v4(let value):
            return withUnsafeBytes(of: value) { $0.map(String.init).joined(separator: ".") }
        case .v6:
            var address = sockaddr6
            var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            _ = inet_ntop(AF_INET6, &address.sin6_addr, &text, socklen_t(text.count))
            return String(cString: text)
        }
    }

    /// `127.0.0.1:7007` or `[::1]:7007`.
    public var description: String { isIPv4 ? "\(host):\(port)" : "[\(host)]:\(port)" }

    private var sockaddr4: sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = ipv4NetworkOrder ?? 0
        return address
    }

    private var sockaddr6: sockaddr_in6 {
        var address = sockaddr_in6()
        address.sin6_family = sa_family_t(AF_INET6)
        address.sin6_port = UInt16(port).bigEndian
        if case .v6(let high, let low) = ip {
            withUnsafeMutableBytes(of: &address.sin6_addr) {
                $0.storeBytes(of: high, as: UInt64.self)
                $0.storeBytes(of: low, toByteOffset: 8, as: UInt64.self)
            }
        }
        return address
    }

    /// Calls `body` with this address as a generic `sockaddr` pointer and its length.
    public func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) throws -> R) rethrows -> R {
        if isIPv4 {
            var address = sockaddr4
            return try withUnsafePointer(to: &address) {
                try $0.withMemoryRebound(to: Glibc.sockaddr.self, capacity: 1) {
                    try body($0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
        var address = sockaddr6
        return try withUnsafePointer(to: &address) {
            try $0.withMemoryRebound(to: Glibc.sockaddr.self, capacity: 1) {
                try body($0, socklen_t(MemoryLayout<sockaddr_in6>.size))
            }
        }
    }

    /// The local address a socket is bound to (`getsockname`).
    public static func local(of fd: Int32) -> SocketAddress? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        return withUnsafeMutablePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: Glibc.sockaddr.self, capacity: 1) { raw in
                getsockname(fd, raw, &length) == 0 ? SocketAddress(sockaddr: raw) : nil
            }
        }
    }
}

/// `strerror` as a Swift string.
public func errnoDescription(_ code: Int32) -> String {
    String(cString: strerror(code))
}
