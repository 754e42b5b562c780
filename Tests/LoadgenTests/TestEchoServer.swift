#if canImport(Glibc)
import Glibc
#endif
import EchoProtocol
import Foundation
import NetPoller
import Synchronization

@testable import loadgen

/// A small echo server inside the test process: one thread, poll(2), blocking sockets. It can misbehave
/// on purpose, and it records what it saw. `stop()` ends its thread and closes every socket; call it
/// in `defer`.
final class TestEchoServer: @unchecked Sendable {
    // @unchecked Sendable: `thread` and the descriptors are set in init and touched again only by stop();
    // what the server thread records sits behind `recorded`, a Mutex.

    enum Behaviour: Sendable {
        case echo
        /// Flips the byte at this stream offset of the first connection that sends anything
        /// (not the first accepted: loadgen's reachability probe sends nothing).
        case corruptByte(at: Int)
        /// Closes the first connection that sends anything once it has echoed this many bytes.
        case closeFirstAfter(bytes: Int)
        /// Closes every connection and the listener once this many bytes were echoed in all: a server that dies.
        case dieAfter(totalBytes: Int)
        /// Accepts and reads, but never answers.
        case silent
        /// Resets every connection right after accepting it (SO_LINGER 0, then close).
        case resetOnAccept
        /// Echoes, but spends this many microseconds (asleep) per 64 bytes first: a server that
        /// saturates near 1,000,000 / µs messages of 64 B a second.
        case slow(microsecondsPer64Bytes: Int)
        /// Answers whatever it reads with one HTTP error page, then closes: an HTTP server, not an echo server.
        case http
    }

    static let httpAnswer = Array("HTTP/1.0 400 Bad Request\r\nContent-Type: text/html\r\nContent-Length: 22\r\n\r\n<h1>Bad Request</h1>\r\n".utf8)

    struct Record: Sendable {
        var peers: [SocketAddress] = []
        var bytesEchoed = 0
        var statsServed = 0
        /// Connections open at each stats request.
        var openAtStats: [Int] = []
    }

    let address: SocketAddress
    private(set) var statsAddress: SocketAddress?
    private let behaviour: Behaviour
    private let listenFD: Int32
    private let statsFD: Int32
    private let wake: [Int32]
    private var thread: PosixThread?
    private let recorded = Mutex(Record())

    init(_ behaviour: Behaviour = .echo, statsEndpoint: Bool = false, host: String = "127.0.0.1") throws {
        self.behaviour = behaviour
        listenFD = try Listener.open(host: host, port: 0, backlog: 1024, nonBlocking: false)[0]
        address = Listener.boundAddress(of: listenFD)!
        if statsEndpoint {
            statsFD = try Listener.open(host: "127.0.0.1", port: 0, backlog: 16, nonBlocking: false)[0]
            statsAddress = Listener.boundAddress(of: statsFD)
        } else {
            statsFD = -1
        }
        var fds: [Int32] = [0, 0]
        precondition(c_pipe2(&fds, O_CLOEXEC) == 0)
        wake = fds
        thread = try PosixThread(name: "test-echo") { [self] in serve() }
    }

    /// Stops the server thread, closes every socket, and returns what it recorded.
    @discardableResult
    func stop() -> Record {
        if let thread {
            var byte: UInt8 = 1
            _ = write(wake[1], &byte, 1)
            thread.join()
            self.thread = nil
            wake.forEach { close($0) }
            if statsFD >= 0 { close(statsFD) }
        }
        return recorded.withLock { $0 }
    }

    var record: Record { recorded.withLock { $0 } }

    private struct Client {
        var fd: Int32
        var number: Int
        var echoed = 0
    }

    private func serve() {
        var clients: [Client] = []
        var listening = true
        var accepted = 0
        var victim: Int? = nil
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        defer {
            clients.forEach { close($0.fd) }
            if listening { close(listenFD) }
        }
        while true {
            var polls = [pollfd(fd: wake[0], events: Int16(POLLIN), revents: 0)]
            if listening { polls.append(pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0)) }
            if statsFD >= 0 { polls.append(pollfd(fd: statsFD, events: Int16(POLLIN), revents: 0)) }
            let fixed = polls.count
            polls += clients.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
            guard poll(&polls, nfds_t(polls.count), 10_000) >= 0 || errno == EINTR else { return }
            if polls[0].revents != 0 { return }
            for poll in polls[1..<fixed] where poll.revents != 0 {
                if poll.fd == listenFD {
                    var peer = sockaddr_in()
                    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
                    let fd = withUnsafeMutablePointer(to: &peer) {
                        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { accept(listenFD, $0, &length) }
                    }
                    guard fd >= 0 else { continue }
                    Listener.setOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
                    recorded.withLock { $0.peers.append(SocketAddress(peer)) }
                    if case .resetOnAccept = behaviour {
                        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
                        setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
                        close(fd)
                        continue
                    }
                    clients.append(Client(fd: fd, number: accepted))
                    accepted += 1
                } else {
                    let fd = accept(statsFD, nil, nil)
                    guard fd >= 0 else { continue }
                    let snapshot = ServerSnapshot.ofSelf(variant: "test", counters: ServerCounters(), startedAt: .now)
                    _ = writeAll(fd, Array((snapshot.jsonLine() + "\n").utf8))
                    close(fd)
                    recorded.withLock {
                        $0.statsServed += 1
                        $0.openAtStats.append(clients.count)
                    }
                }
            }
            var closing: Set<Int32> = []
            for (index, poll) in polls[fixed...].enumerated() where poll.revents != 0 {
                var client = clients[index]
                let count = read(client.fd, &buffer, buffer.count)
                if count <= 0 {
                    closing.insert(client.fd)
                    continue
                }
                var length = count
                var closeAfter = false
                if victim == nil { victim = client.number }
                switch behaviour {
                case .echo, .dieAfter, .resetOnAccept:
                    break
                case .slow(let microseconds):
                    usleep(UInt32(max(1, count / 64) * microseconds))
                case .silent:
                    continue
                case .http:
                    _ = writeAll(client.fd, Self.httpAnswer)
                    closing.insert(client.fd)
                    continue
                case .corruptByte(let offset):
                    if client.number == victim && client.echoed <= offset && offset < client.echoed + count {
                        buffer[offset - client.echoed] ^= 0xFF
                    }
                case .closeFirstAfter(let bytes):
                    if client.number == victim && client.echoed + count >= bytes {
                        length = bytes - client.echoed
                        closeAfter = true
                    }
                }
                _ = buffer.withUnsafeBytes { send(client.fd, $0.baseAddress, length, Int32(MSG_NOSIGNAL)) }
                client.echoed += length
                clients[index] = client
                if closeAfter { closing.insert(client.fd) }
                let total = recorded.withLock {
                    $0.bytesEchoed += length
                    return $0.bytesEchoed
                }
                if case .dieAfter(let limit) = behaviour, total >= limit, listening {
                    clients.forEach { closing.insert($0.fd) }
                    close(listenFD)
                    listening = false
                }
            }
            for fd in closing { close(fd) }
            clients.removeAll { closing.contains($0.fd) }
        }
    }
}
