#if canImport(Glibc)
import Glibc
#endif
import EchoProtocol

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
    var statsAddress: IPv4Address?
    var pid: Int32?

    static func statsEndpoint(_ address: IPv4Address) -> ServerProbe {
        ServerProbe(method: .statsEndpoint, statsAddress: address, pid: nil)
    }

    static func process(_ pid: Int32) -> ServerProbe { ServerProbe(method: .pid, statsAddress: nil, pid: pid) }

    /// The probe the options ask for; without either option, the owner of `target`'s listening socket.
    /// Nil (with the reason) when no server process can be found.
    static func choose(statsAddress: IPv4Address?, pid: Int32?, target: IPv4Address) -> (ServerProbe?, String?) {
        if let statsAddress { return (.statsEndpoint(statsAddress), nil) }
        if let pid { return (.process(pid), nil) }
        if let owner = ListeningSocketOwner.find(target) {
            return (ServerProbe(method: .listeningSocket, statsAddress: nil, pid: owner), nil)
        }
        return (nil, "no server figures: no process of this user listens on \(target); give --server-stats or --server-pid")
    }

    /// The server now; throws when it cannot be read (stats endpoint unreachable, process gone).
    func snapshot() throws(StartupError) -> ServerSnapshot {
        if let statsAddress {
            do {
                return try StatsEndpoint.fetch(from: statsAddress, timeoutSeconds: 2)
            } catch let error as StartupError {
                throw error
            } catch {
                throw StartupError("stats endpoint \(statsAddress): \(error)")
            }
        }
        // A foreign server is named by its command name (/proc/PID/comm), e.g. `c-epoll-echo`.
        let name = pid.flatMap { readText("/proc/\($0)/comm") }?.split(separator: "\n").first.map(String.init)
        guard let pid, let snapshot = ServerSnapshot.ofProcess(pid: pid, variant: name ?? "foreign") else {
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
/// /proc/*/fd (which process holds `socket:[inode]`). Only processes this user may inspect are found.
enum ListeningSocketOwner {
    static func find(_ target: IPv4Address) -> Int32? {
        let inodes = listeningInodes(port: target.port, address: target)
        guard !inodes.isEmpty, let processes = directoryEntries("/proc") else { return nil }
        let wanted = Set(inodes.map { "socket:[\($0)]" })
        for name in processes {
            guard let pid = Int32(name), let fds = directoryEntries("/proc/\(pid)/fd") else { continue }
            for fd in fds where wanted.contains(link("/proc/\(pid)/fd/\(fd)")) {
                return pid
            }
        }
        return nil
    }

    /// Inodes of sockets in state LISTEN (0A) on `port`, bound to the address or to any address.
    static func listeningInodes(port: Int, address: IPv4Address) -> [String] {
        var inodes: [String] = []
        let portHex = String(hex: port, width: 4)
        // /proc/net/tcp prints the address as the 32-bit value in host byte order, in hex.
        let addressHex = String(hex: address.networkOrder, width: 8)
        for (file, anyAddress) in [("/proc/net/tcp", "00000000"), ("/proc/net/tcp6", "00000000000000000000000000000000")] {
            guard let text = readText(file) else { continue }
            for line in text.split(separator: "\n").dropFirst() {
                let fields = line.split(separator: " ")
                guard fields.count > 9, fields[3] == "0A" else { continue }
                let local = fields[1].split(separator: ":")
                guard local.count == 2, local[1] == portHex else { continue }
                let host = String(local[0])
                let v4Mapped = "0000000000000000FFFF0000" + addressHex
                if host == anyAddress || host == addressHex || host == v4Mapped { inodes.append(String(fields[9])) }
            }
        }
        return inodes
    }

    private static func link(_ path: String) -> String {
        var buffer = [CChar](repeating: 0, count: 64)
        let count = readlink(path, &buffer, buffer.count - 1)
        guard count > 0 else { return "" }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

extension String {
    /// Upper-case hex, zero-padded to `width` digits, as /proc/net/tcp prints numbers.
    fileprivate init(hex value: some BinaryInteger, width: Int) {
        let digits = String(value, radix: 16, uppercase: true)
        self = String(repeating: "0", count: Swift.max(0, width - digits.count)) + digits
    }
}
