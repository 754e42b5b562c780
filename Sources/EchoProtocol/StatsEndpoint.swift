#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// The stats port: connect, read one JSON `ServerSnapshot`, the server closes.
/// Served by one blocking thread, so it costs the echo path nothing until somebody asks.
public enum StatsEndpoint {
    /// Listens on `host:port` and answers each connection with `snapshot()` on a background thread.
    /// Returns the bound address (the real port when `port` is 0).
    public static func start(host: String, port: Int, snapshot: @escaping @Sendable () -> ServerSnapshot)
        throws(StartupError) -> SocketAddress
    {
        let fd = try Listener.open(host: host, port: port, backlog: 64, nonBlocking: false)[0]
        guard let address = Listener.boundAddress(of: fd) else {
            throw StartupError("cannot read the stats port's address: \(errnoDescription(errno))")
        }
        let thread = Thread {
            while true {
                let client = Listener.accept(fd, nonBlocking: false)
                guard client >= 0 else {
                    switch AcceptPolicy.failure(errno) {
                    case .failedInQueue:
                        continue
                    case .outOfDescriptors:
                        // No spare here: the echo loops refuse clients; a stats client waits its turn.
                        usleep(100_000)
                        continue
                    case .queueEmpty, .other:
                        return  // a blocking listener that fails otherwise is gone
                    }
                }
                let json = Array(snapshot().jsonLine().utf8) + [UInt8(ascii: "\n")]
                _ = writeAll(client, json)
                close(client)
            }
        }
        thread.name = "stats"
        thread.start()
        return address
    }

    /// Reads one snapshot from a stats endpoint; used by tests and the load generator.
    public static func fetch(from address: SocketAddress, timeoutSeconds: Int = 5) throws -> ServerSnapshot {
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw StartupError("cannot create a socket: \(errnoDescription(errno))") }
        defer { close(fd) }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard address.withSockaddr({ connect(fd, $0, $1) }) == 0 else {
            throw StartupError("cannot reach stats endpoint \(address): \(errnoDescription(errno))")
        }
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count < 0 {
                throw StartupError("reading stats endpoint \(address): \(errnoDescription(errno))")
            }
            if count == 0 { break }
            data.append(contentsOf: chunk[0..<count])
        }
        do {
            return try ServerSnapshot.decode(data)
        } catch {
            throw StartupError("stats endpoint \(address) sent no snapshot: \(error)")
        }
    }
}
