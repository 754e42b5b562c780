// An echo server with one deliberate defect, chosen by --defect. The conformance suite runs its
// checks against it to prove each check fails when the behaviour it guards is missing.
// Thread per connection, blocking I/O: the simplest server in which to plant each defect.
import ArgumentParser
import EchoProtocol
import Foundation

#if canImport(Glibc)
import Glibc
#endif

enum Defect: String, ExpressibleByArgument, CaseIterable {
    case none  // a correct server: the control
    case dropByte = "drop-byte"  // loses the byte at stream offset 1000
    case noClose = "no-close"  // echoes, but never closes after the client's half-close
    case unbounded  // keeps reading while the client does not read, buffering without limit
}

@main
struct BrokenEcho: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "broken-echo", abstract: "An echo server with one deliberate defect, for testing the tests.")

    @OptionGroup var server: ServerOptions
    @Option(help: "The defect: \(Defect.allCases.map(\.rawValue).joined(separator: ", ")).")
    var defect: Defect

    func run() throws {
        let runtime = ServerRuntime.start(variant: "broken-\(defect.rawValue)", options: server)
        let listener = runtime.orExit {
            try Listener.open(host: server.host, port: server.port, backlog: server.backlog, nonBlocking: false)[0]
        }
        runtime.announce(listening: listener)
        runtime.onStop {
            runtime.finish()
            Glibc.exit(0)
        }
        let defect = self.defect
        while true {
            let fd = Listener.accept(listener, nonBlocking: false)
            guard fd >= 0 else { continue }
            guard runtime.counters.admit(limit: server.maxConnections) else {
                close(fd)
                continue
            }
            Thread { Connection(fd: fd, counters: runtime.counters, defect: defect).serve() }.start()
        }
    }
}

struct Connection {
    let fd: Int32
    let counters: ServerCounters
    let defect: Defect

    func serve() {
        if defect == .unbounded { return serveUnbounded() }
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        var offset = 0
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            counters.received(count)
            var chunk = Array(buffer[0..<count])
            if defect == .dropByte, (offset..<offset + count).contains(1000) { chunk.remove(at: 1000 - offset) }
            offset += count
            guard writeAll(fd, chunk) else { break }
            counters.sent(chunk.count)
        }
        counters.closed()
        if defect == .noClose { return }  // the defect: the descriptor stays open, the client waits
        close(fd)
    }

    /// Reads on this thread into an ever-growing buffer; another thread writes it out.
    private func serveUnbounded() {
        let pending = PendingBytes()
        let writer = Thread { [fd, counters] in
            while let chunk = pending.take() {
                guard writeAll(fd, chunk) else { break }
                counters.sent(chunk.count)
            }
        }
        writer.start()
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            counters.received(count)
            pending.add(Array(buffer[0..<count]))
        }
        pending.finish()
        pending.waitUntilDrained()
        counters.closed()
        close(fd)
    }
}

/// The unbounded queue between the reader and the writer of `unbounded`.
final class PendingBytes: @unchecked Sendable {
    // @unchecked: all state is guarded by `condition`.
    private let condition = NSCondition()
    private var chunks: [[UInt8]] = []
    private var finished = false
    private var writerDone = false

    func add(_ chunk: [UInt8]) {
        condition.lock()
        chunks.append(chunk)
        condition.broadcast()
        condition.unlock()
    }

    func finish() {
        condition.lock()
        finished = true
        condition.broadcast()
        condition.unlock()
    }

    /// The next chunk, or nil once finished and empty.
    func take() -> [UInt8]? {
        condition.lock()
        defer { condition.unlock() }
        while chunks.isEmpty && !finished { condition.wait() }
        if chunks.isEmpty {
            writerDone = true
            condition.broadcast()
            return nil
        }
        return chunks.removeFirst()
    }

    func waitUntilDrained() {
        condition.lock()
        while !writerDone { condition.wait() }
        condition.unlock()
    }
}
