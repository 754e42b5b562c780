#if canImport(Glibc)
import Glibc
#endif
import EchoProtocol
import ForeignProcess

/// Where the server's own figures come from, in the order loadgen tries them:
/// the stats endpoint (`--server-stats`), /proc of a given process (`--server-pid`), or /proc of the
/// process that owns the target's listening socket on this machine.
struct ServerProbe: Sendable, Equatable {
    enum Method: String, Codable, Sendable {
        case statsEndpoint = "stats-endpoint"
        case pid
        case listeningSocket = "listening-socket"
    }

    var method: Method
    var statsAddress: SocketAddress?
    var pid: Int32?

    static func statsEndpoint(_ address: SocketAddress) -> ServerProbe {
        ServerProbe(method: .statsEndpoint, statsAddress: address, pid: nil)
    }

    static func process(_ pid: Int32) -> ServerProbe { ServerProbe(method: .pid, statsAddress: nil, pid: pid) }

    /// The probe the options ask for; without either option, the owner of `target`'s listening socket.
    /// Nil (with the reason) when no server process can be found.
    static func choose(statsAddress: SocketAddress?, pid: Int32?, target: SocketAddress) -> (ServerProbe?, String?) {
        if let statsAddress { return (.statsEndpoint(statsAddress), nil) }
        if let pid { return (.process(pid), nil) }
        if let owner = ListeningSocketOwner.find(target) {
            return (ServerProbe(method: .listeningSocket, statsAddress: nil, pid: owner), nil)
        }
        return (nil, "no server figures: no process of this user listens on \(target); give --server-stats or --server-pid")
    }

    /// The server now; throws when it cannot be read (stats endpoint unreachable, process gone).
    /// `proportional`: a foreign server's PSS too (see ServerSnapshot.ofProcess).
    func snapshot(proportional: Bool = false) throws(StartupError) -> ServerSnapshot {
        if let statsAddress {
            do {
                return try StatsEndpoint.fetch(from: statsAddress, timeoutSeconds: 2)
            } catch let error as StartupError {
                throw error
            } catch {
                throw StartupError("stats endpoint \(statsAddress): \(error)")
            }
        }
        // A process that has exited but not been reaped (a zombie) still has a /proc entry, all zeros.
        if let pid, let stat = readText("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") {
            let state = stat[stat.index(after: close)...].drop(while: { $0 == " " }).first
            if state == "Z" || state == "X" {
                throw StartupError("the server process \(pid) has exited")
            }
        }
        // A foreign server is named by its command name (/proc/PID/comm), e.g. `c-epoll-echo`.
        let name = pid.flatMap { readText("/proc/\($0)/comm") }?.split(separator: "\n").first.map(String.init)
        guard let pid, let snapshot = ServerSnapshot.ofProcess(pid: pid, variant: name ?? "foreign", proportional: proportional) else {
            throw StartupError("cannot read /proc/\(pid.map(String.init) ?? "?"): the server process is gone")
        }
        return snapshot
    }

    var description: String {
        switch method {
        case .statsEndpoint: "stats endpoint \(statsAddress.map(\.description) ?? "?")"
        case .pid: "pid \(pid ?? 0)"
        case .listeningSocket: "pid \(pid ?? 0), owner of the listening socket"
        }
    }
}

/// Finds the process listening on an address through /proc/net/tcp (the socket's inode) and
/// /proc/*/fd (which process holds a socket with that inode). Only processes this user may inspect are
/// found. Cheap even on a machine with tens of thousands of sockets: /proc/net/tcp is read only as far
/// as its listening sockets, and descriptors are compared by inode with fstatat, without strings.
enum ListeningSocketOwner {
    static func find(_ target: SocketAddress) -> Int32? {
        let inodes = Set(listeningInodes(port: target.port, address: target))
        guard !inodes.isEmpty, let processes = directoryEntries("/proc") else { return nil }
        for name in processes {
            guard let pid = Int32(name), holdsSocket(pid: pid, inodes: inodes) else { continue }
            return pid
        }
        return nil
    }

    private static func holdsSocket(pid: Int32, inodes: Set<UInt64>) -> Bool {
        guard let directory = opendir("/proc/\(pid)/fd") else { return false }
        defer { closedir(directory) }
        let fd = dirfd(directory)
        var info = stat()
        while let entry = readdir(directory) {
            let found = withUnsafePointer(to: entry.pointee.d_name) { name in
                name.withMemoryRebound(to: CChar.self, capacity: 256) { name -> Bool in
                    guard name[0] != 46 /* "." */, fstatat(fd, name, &info, 0) == 0 else { return false }
                    return info.st_mode & S_IFMT == S_IFSOCK && inodes.contains(UInt64(info.st_ino))
                }
            }
            if found { return true }
        }
        return false
    }

    /// Inodes of sockets in state LISTEN (0A) on `port`, bound to the address or to any address.
    static func listeningInodes(port: Int, address: SocketAddress) -> [UInt64] {
        let portHex = String(hex: port, width: 4)
        // /proc/net/tcp{,6} print an address as 32-bit words in host byte order, in hex.
        let addressHex: String
        if let value = address.ipv4NetworkOrder {
            addressHex = String(hex: value, width: 8)
        } else {
            let bytes = address.ipv6Bytes ?? []
            addressHex = stride(from: 0, to: bytes.count, by: 4).map { offset in
                String(hex: bytes[offset..<offset + 4].reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) }, width: 8)
            }.joined()
        }
        let any4 = "00000000"
        let any6 = String(repeating: "0", count: 32)
        let mapped = "0000000000000000FFFF0000" + addressHex
        var inodes: [UInt64] = []
        for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
            forEachListeningLine(file) { fields in
                let local = fields[1].split(separator: ":")
                guard local.count == 2, local[1] == portHex, let inode = UInt64(fields[9]) else { return }
                let host = local[0]
                if host == any4 || host == addressHex || host == any6 || host == mapped { inodes.append(inode) }
            }
        }
        return inodes
    }

    /// Calls `body` with the fields of each LISTEN line. The kernel prints every listening socket before
    /// the first connection, so reading stops at the first line in another state.
    private static func forEachListeningLine(_ path: String, _ body: ([Substring]) -> Void) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var pending: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        var header = true
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return }
            pending += chunk[0..<count]
            var lineStart = 0
            while let newline = pending[lineStart...].firstIndex(of: 10) {
                let line = String(decoding: pending[lineStart..<newline], as: UTF8.self)
                lineStart = newline + 1
                if header {
                    header = false
                    continue
                }
                let fields = line.split(separator: " ")
                guard fields.count > 9 else { continue }
                guard fields[3] == "0A" else { return }
                body(fields)
            }
            pending.removeFirst(lineStart)
        }
    }
}

extension String {
    /// Upper-case hex, zero-padded to `width` digits, as /proc/net/tcp prints numbers.
    fileprivate init(hex value: some BinaryInteger, width: Int) {
        let digits = String(value, radix: 16, uppercase: true)
        self = String(repeating: "0", count: Swift.max(0, width - digits.count)) + digits
    }
}
