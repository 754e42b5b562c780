#if canImport(Glibc)
import Glibc
#endif
import EchoProtocol

/// Checks made before any load: each failure is one line a person can act on.
enum Preflight {
    /// Descriptors loadgen needs besides one per connection (epoll, eventfd per loop, stdio, probes).
    static let spareDescriptors = 16

    /// Enough descriptors and local ports for `settings.connections`; raises the soft fd limit first.
    static func checkResources(_ settings: ConnectionSettings) throws(StartupError) {
        let limit = Lifecycle.raiseOpenFileLimit()
        let needed = settings.connections + 2 * settings.threads + spareDescriptors
        let sources = max(1, settings.sourceAddresses.count)
        let ports = localPortCount()
        let portHint =
            ports * sources < settings.connections
            ? "; more than \(ports) connections to one target also need more source addresses, e.g. --source-addresses 127.0.0.1-127.0.0.\(min(254, (settings.connections + ports - 1) / ports))"
            : ""
        if limit < needed {
            var hard = rlimit()
            getrlimit(Int32(RLIMIT_NOFILE.rawValue), &hard)
            throw StartupError(
                "\(settings.connections) connections need \(needed) open files but RLIMIT_NOFILE allows \(limit) (hard limit \(hard.rlim_max)): raise it with `ulimit -n \(needed)` (as root beyond the hard limit) or ask for fewer connections\(portHint)")
        }
        if ports * sources < settings.connections {
            throw StartupError(
                "\(settings.connections) connections to one target need more than the \(ports) local ports of \(sources == 1 ? "one source address" : "\(sources) source addresses"): spread them with --source-addresses 127.0.0.1-127.0.0.\(min(254, (settings.connections + ports - 1) / ports))")
        }
    }

    /// The machine's TcpExt ListenOverflows counter (/proc/net/netstat), or 0 when unreadable.
    static func listenOverflows() -> Int {
        guard let text = readText("/proc/net/netstat") else { return 0 }
        let lines = text.split(separator: "\n")
        for (names, values) in zip(lines, lines.dropFirst()) where names.hasPrefix("TcpExt:") && values.hasPrefix("TcpExt:") {
            for (name, value) in zip(names.split(separator: " "), values.split(separator: " ")) where name == "ListenOverflows" {
                return Int(value) ?? 0
            }
        }
        return 0
    }

    /// Ports in /proc/sys/net/ipv4/ip_local_port_range (28232 by default).
    static func localPortCount() -> Int {
        let fields = readText("/proc/sys/net/ipv4/ip_local_port_range")?.split(whereSeparator: \.isWhitespace)
            .compactMap { Int($0) } ?? []
        guard fields.count == 2, fields[1] >= fields[0] else { return 28232 }
        return fields[1] - fields[0] + 1
    }

    /// One blocking connection attempt (from the first source address, if any), bounded by `timeout`:
    /// the target must answer before anything else starts. Throws `cannot connect to HOST:PORT: reason`.
    static func checkReachable(_ settings: ConnectionSettings) throws(StartupError) {
        let target = settings.target
        let fd = ClientSocket.open(for: target)
        guard fd >= 0 else { throw StartupError("cannot create a socket: \(errnoDescription(errno))") }
        defer { close(fd) }
        if let source = settings.sourceAddresses.first {
            guard ClientSocket.bind(fd, to: source, portAtConnect: false) else {
                throw StartupError("cannot bind source address \(source.host): \(errnoDescription(errno))")
            }
        }
        let started = ClientSocket.startConnect(fd, to: target)
        if started == 0 { return }
        guard started == EINPROGRESS else {
            throw StartupError("cannot connect to \(target): \(errnoDescription(started))")
        }
        var poll = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        let milliseconds = Int32(clamping: settings.connectTimeout.nanoseconds / 1_000_000)
        var ready: Int32
        repeat { ready = Glibc.poll(&poll, 1, milliseconds) } while ready < 0 && errno == EINTR
        guard ready > 0 else {
            throw StartupError("cannot connect to \(target): no answer within \(settings.connectTimeout.shortDescription)")
        }
        let error = ClientSocket.connectResult(fd)
        // A reset means something accepted and then dropped us: the target is there, and what it does
        // to real connections is for the run to count.
        if error != 0 && error != ECONNRESET {
            throw StartupError("cannot connect to \(target): \(errnoDescription(error))")
        }
    }
}
