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

    private(set) var descriptors: [Int32] = []
    /// Connections the server closed or reset instead of echoing (e.g. it could not create a thread).
    private(set) var refused = 0
    /// Connections that could not be made at all (out of ports or descriptors, connect refused).
    private(set) var connectFailed = 0
    /// The first failure, in words.
    private(set) var firstError: String?

    var open: Int { descriptors.count }

    /// Opens up to `count` connections to `target`; `progress(open so far)` after each batch;
    /// `shouldStop()` ends it early (Ctrl-C). Stops at the first batch in which no connection could be
    /// made, since every later one would fail the same way.
    init(
        target: IPv4Address, count: Int, timeoutSeconds: Int = 10, progress: (Int) -> Void = { _ in },
        shouldStop: () -> Bool = { false }
    ) {
        descriptors.reserveCapacity(count)
        var remaining = count
        while remaining > 0 && !shouldStop() {
            let batch = min(remaining, Self.batchSize)
            remaining -= batch
            var sent: [Int32] = []
            for _ in 0..<batch {
                guard let fd = connectAndSend(target, timeoutSeconds: timeoutSeconds) else { continue }
                sent.append(fd)
            }
            for fd in sent {
                if readEcho(fd) {
                    descriptors.append(fd)
                } else {
                    close(fd)
                }
            }
            progress(descriptors.count)
            if sent.isEmpty { break }
        }
        if remaining > 0 && firstError == nil && !shouldStop() {
            firstError = "gave up with \(remaining) connections left to open"
        }
    }

    deinit { closeAll() }

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
        if refused > 0 { text += "; \(refused) closed by the server instead of echoed" }
        if connectFailed > 0 { text += "; \(connectFailed) could not connect" }
        if let firstError { text += " (\(firstError))" }
        return text
    }

    private func connectAndSend(_ target: IPv4Address, timeoutSeconds: Int) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else {
            fail(connect: "socket: \(errnoDescription(errno))")
            return nil
        }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        Listener.setOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
        var result: Int32
        repeat { result = target.withSockaddr { connect(fd, $0, $1) } } while result != 0 && errno == EINTR
        guard result == 0 else {
            fail(connect: "connect to \(target): \(errnoDescription(errno))")
            close(fd)
            return nil
        }
        guard writeAll(fd, Self.message) else {
            fail(refused: "write: \(errnoDescription(errno))")
            close(fd)
            return nil
        }
        return fd
    }

    /// Reads the echo of `message`; false (counted) if it does not come back whole and equal.
    private func readEcho(_ fd: Int32) -> Bool {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: Self.message.count)
        while received.count < Self.message.count {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, Self.message.count - received.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 {
                let reason =
                    count == 0
                    ? "the server closed the connection without echoing"
                    : (errno == EAGAIN ? "no echo within the timeout" : "read: \(errnoDescription(errno))")
                fail(refused: reason)
                return false
            }
            received += buffer[0..<count]
        }
        guard received == Self.message else {
            fail(refused: "the echo differed from what was sent")
            return false
        }
        return true
    }

    private func fail(connect reason: String) {
        connectFailed += 1
        if firstError == nil { firstError = reason }
    }

    private func fail(refused reason: String) {
        refused += 1
        if firstError == nil { firstError = reason }
    }
}
