#if canImport(Glibc)
import Glibc
#endif
import EchoProtocol
import NetPoller
import Synchronization

/// `--metrics-port`: a minimal HTTP/1.1 server on its own thread answering `GET /metrics` with
/// Prometheus' text format (404 for any other path, 405 for any other method), one request per
/// connection. Blocking sockets with short timeouts: a scrape every few seconds needs nothing more,
/// and a stuck client can hold it up one second at most.
final class MetricsServer: @unchecked Sendable {
    // @unchecked: `thread` is set in init and taken by stop(), both on the thread that owns the server.
    let address: SocketAddress
    private let listenFD: Int32
    private let stopped = Atomic<Bool>(false)
    private var thread: PosixThread?

    init(host: String, port: Int, metrics: LiveMetrics) throws(StartupError) {
        listenFD = try Listener.open(host: host, port: port, backlog: 16, nonBlocking: false)[0]
        guard let bound = Listener.boundAddress(of: listenFD) else {
            close(listenFD)
            throw StartupError("cannot read the metrics port's address")
        }
        address = bound
        do {
            thread = try PosixThread(name: "loadgen-metrics") { [self] in self.serve(metrics) }
        } catch {
            close(listenFD)
            throw StartupError(error.description)
        }
    }

    /// Ends the thread and closes the port.
    func stop() {
        stopped.store(true, ordering: .relaxed)
        thread?.join()
        thread = nil
        close(listenFD)
    }

    private func serve(_ metrics: LiveMetrics) {
        // This thread may start before loadgen blocks SIGINT and SIGTERM for its signal thread:
        // it must never be the one a signal is delivered to.
        var all = sigset_t()
        sigfillset(&all)
        pthread_sigmask(SIG_BLOCK, &all, nil)
        while !stopped.load(ordering: .relaxed) {
            var ready = pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0)
            guard poll(&ready, 1, 100) > 0 else { continue }
            let client = accept(listenFD, nil, nil)
            if client >= 0 { _ = fcntl(client, F_SETFD, FD_CLOEXEC) }  // never into a server the sweep starts
            guard client >= 0 else { continue }
            var timeout = timeval(tv_sec: 1, tv_usec: 0)
            setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            if let request = Self.readRequestHead(client) {
                _ = writeAll(client, Array(Self.response(to: request, metrics: metrics).utf8))
            }
            close(client)
        }
    }

    /// The request line and headers (up to the blank line), or nil if the client sent none in time.
    static func readRequestHead(_ fd: Int32) -> String? {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 2048)
        while bytes.count < 16_384 {
            let count = recv(fd, &buffer, buffer.count, 0)
            guard count > 0 else { return nil }
            bytes += buffer[0..<count]
            if bytes.count >= 4 && String(decoding: bytes.suffix(count + 3), as: UTF8.self).contains("\r\n\r\n") { break }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func response(to head: String, metrics: LiveMetrics) -> String {
        let requestLine = head.split(separator: "\r\n", maxSplits: 1).first.map(String.init) ?? ""
        let parts = requestLine.split(separator: " ")
        guard parts.count >= 2 else { return reply("400 Bad Request", "bad request\n") }
        let path = parts[1].split(separator: "?", maxSplits: 1).first.map(String.init) ?? ""
        guard parts[0] == "GET" || parts[0] == "HEAD" else { return reply("405 Method Not Allowed", "GET /metrics\n") }
        guard path == "/metrics" else { return reply("404 Not Found", "loadgen serves /metrics\n") }
        let body = metrics.exposition()
        return reply("200 OK", parts[0] == "HEAD" ? "" : body, type: "text/plain; version=0.0.4; charset=utf-8",
                     length: body.utf8.count)
    }

    static func reply(_ status: String, _ body: String, type: String = "text/plain; charset=utf-8", length: Int? = nil) -> String {
        "HTTP/1.1 \(status)\r\nContent-Type: \(type)\r\nContent-Length: \(length ?? body.utf8.count)\r\nConnection: close\r\n\r\n" + body
    }
}
