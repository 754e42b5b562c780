#if canImport(Glibc)
import Glibc
#endif
import EchoProtocol

/// The idle part of a sweep step: N connections, each echoed once (so the server has really taken it
/// on: accepted it, given it a thread, a watcher or a task, and touched its buffers), then held open
/// and silent while the server is measured and while the active connections load it.
///
/// Plain blocking sockets, opened in batches: connect and send on every connection of a batch, then
/// read every echo of the batch, so the server works on a batch at once instead of one round trip
/// per connection. Nothing here runs while the connections are held, so it costs no client CPU then.
final class IdlePopulation {
    static let batchSize = 256
    static let message = Array("idle-hello\n".utf8)
    /// Connections per source address. All connections go to one server port, so from one address each
    /// needs its own local port, and Linux's connect() slows down sharply once about half the port range
    /// is taken (it tries even ports first and rescans them for every new connection). Beyond this many,
    /// connections come from 127.0.0.2, 127.0.0.3, … (the whole 127/8 is loopback), each with a port range
    /// of its own.
    static let connectionsPerSourceAddress = 5000

    private(set) var descriptors: [Int32] = []
    /// Connections that got no echo: the server closed or reset them (e.g. it could not create a
    /// thread), or the echo did not come back in time.
    private(set) var notEchoed = 0
    /// Connections that could not be made at all (out of ports or descriptors, connect refused).
    private(set) var connectFailed = 0
    /// The first failure, in words.
    private(set) var firstError: String?

    var open: Int { descriptors.count }

    /// Opens up to `count` connections to `target`; `progress(open so far)` after each batch;
    /// `shouldStop()` ends it early (Ctrl-C). A batch's connections must be made within `timeoutSeconds`,
    /// and their echoes come back within `timeoutSeconds` more. Stops after the first batch in which a
    /// connection could not be made or none got its echo, since later ones would fail the same way.
    init(
        target: SocketAddress, count: Int, timeoutSeconds: Int = 10, progress: (Int) -> Void = { _ in },
        shouldStop: () -> Bool = { false }
    ) {
        descriptors.reserveCapacity(count)
        let sources = Self.sourceAddresses(for: count)
        var remaining = count
        var attempted = 0
        while remaining > 0 && !shouldStop() {
            let batch = min(remaining, Self.batchSize)
            remaining -= batch
            let timeout = UInt64(timeoutSeconds) * 1_000_000_000
            let connectDeadline = monotonicNanoseconds() + timeout
            var sent: [Int32] = []
            var connectsFailed = false
            for _ in 0..<batch {
                let source = sources.count > 1 ? sources[attempted % sources.count] : nil
                attempted += 1
                guard let fd = connectAndSend(target, from: source, deadline: connectDeadline) else {
                    connectsFailed = true
                    break
                }
                sent.append(fd)
            }
            let deadline = monotonicNanoseconds() + timeout
            var echoed = 0
            for fd in sent {
                if readEcho(fd, deadline: deadline, timeoutSeconds: timeoutSeconds) {
                    descriptors.append(fd)
                    echoed += 1
                } else {
                    close(fd)
                }
            }
            progress(descriptors.count)
            if echoed == 0 || connectsFailed { break }
        }
        if open < count && firstError == nil && !shouldStop() {
            firstError = "gave up with \(count - open) connections not open"
        }
    }

    deinit { closeAll() }

    /// 127.0.0.1, then 127.0.0.2, … : one per `connectionsPerSourceAddress` connections.
    static func sourceAddresses(for count: Int) -> [SocketAddress] {
        let needed = max(1, (count + connectionsPerSourceAddress - 1) / connectionsPerSourceAddress)
        return (1...min(needed, 254)).map { SocketAddress("127.0.0.\($0)")! }
    }

    /// Closes `count` of the held connections (the loaded phase replaces them by active ones, so the
    /// server keeps N connections in all).
    func release(_ count: Int) {
        for fd in descriptors.suffix(count) { close(fd) }
        descriptors.removeLast(min(count, descriptors.count))
    }

    func closeAll() {
        release(descriptors.count)
    }

    /// How the opening went, in words: `5000 of 5000 open` or `4096 of 5000 open; 904 closed by the server …`.
    func summary(requested: Int) -> String {
        var text = "\(open) of \(requested) open"
        if notEchoed > 0 { text += "; \(notEchoed) got no echo" }
        if connectFailed > 0 { text += "; \(connectFailed) could not connect" }
        if let firstError { text += " (first: \(firstError))" }
        return text
    }

    /// A connected socket on which the message has been sent, or nil (counted) if that failed by `deadline`.
    private func connectAndSend(_ target: SocketAddress, from source: SocketAddress?, deadline: UInt64) -> Int32? {
        let fd = socket(target.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else {
            fail(connect: "socket: \(errnoDescription(errno))")
            return nil
        }
        if let source {
            guard ClientSocket.bind(fd, to: source) else {
                fail(connect: "bind to \(source.host): \(errnoDescription(errno))")
                close(fd)
                return nil
            }
        }
        // A server that stops accepting or reading must not hang the sweep: on Linux SO_SNDTIMEO bounds
        // both a blocking connect (which then fails with EINPROGRESS) and a write.
        let now = monotonicNanoseconds()
        let left = deadline > now ? deadline - now : 1_000_000
        var timeout = timeval(tv_sec: Int(left / 1_000_000_000), tv_usec: max(1000, Int(left % 1_000_000_000 / 1000)))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        Listener.setOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
        var result: Int32
        repeat { result = target.withSockaddr { connect(fd, $0, $1) } } while result != 0 && errno == EINTR
        guard result == 0 else {
            let reason = errno == EINPROGRESS ? "timed out (the server does not accept)" : errnoDescription(errno)
            fail(connect: "connect to \(target): \(reason)")
            close(fd)
            return nil
        }
        guard writeAll(fd, Self.message) else {
            fail(noEcho: "write: \(errnoDescription(errno))")
            close(fd)
            return nil
        }
        return fd
    }

    /// Reads the echo of `message` by `deadline`; false (counted) if it does not come back whole and equal.
    private func readEcho(_ fd: Int32, deadline: UInt64, timeoutSeconds: Int) -> Bool {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: Self.message.count)
        while received.count < Self.message.count {
            let now = monotonicNanoseconds()
            var ready = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let waited = now < deadline ? poll(&ready, 1, Int32((deadline - now) / 1_000_000) + 1) : 0
            if waited < 0 && errno == EINTR { continue }
            guard waited > 0 else {
                fail(noEcho: "no echo within \(timeoutSeconds) s")
                return false
            }
            let wanted = Self.message.count - received.count
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, wanted) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 {
                fail(noEcho: count == 0 ? "the server closed the connection without echoing" : "read: \(errnoDescription(errno))")
                return false
            }
            received += buffer[0..<count]
        }
        guard received == Self.message else {
            fail(noEcho: "the echo differed from what was sent")
            return false
        }
        return true
    }

    private func fail(connect reason: String) {
        connectFailed += 1
        if firstError == nil { firstError = reason }
    }

    private func fail(noEcho reason: String) {
        notEchoed += 1
        if firstError == nil { firstError = reason }
    }
}
