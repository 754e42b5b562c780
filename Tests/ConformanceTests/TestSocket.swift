import EchoProtocol
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A blocking TCP client socket for tests: every call is bounded by a receive/send timeout,
/// so a server that misbehaves fails a check instead of hanging the suite.
final class TestSocket: @unchecked Sendable {
    // @unchecked: one fd; tests use one reader and at most one writer thread per socket,
    // which the kernel allows.
    let fd: Int32
    private var isClosed = false

    init(connectingTo address: SocketAddress, timeout: Double = 10) throws {
        fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ConformanceFailure("socket(): \(errnoDescription(errno))") }
        setTimeout(timeout)
        let result = address.withSockaddr { connect(fd, $0, $1) }
        guard result == 0 else {
            let code = errno
            // closeNow, not close: an initializer of a class that throws once every property is set
            // still runs deinit, whose closeNow would otherwise close the number a second time, by
            // then perhaps another thread's descriptor (full runs saw EBADF in other suites' sockets
            // and pipes; GoEcho.connect fails here every 10 ms until go-echo listens).
            closeNow()
            throw ConformanceFailure("cannot connect to \(address): \(errnoDescription(code))")
        }
    }

    deinit { closeNow() }

    func setTimeout(_ seconds: Double) {
        var time = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - Double(Int(seconds))) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Writes all of `bytes`; throws if the peer fails or the send timeout passes.
    func send(_ bytes: [UInt8]) throws {
        let written = try sendUpTo(bytes)
        guard written == bytes.count else {
            throw ConformanceFailure("sent only \(written) of \(bytes.count) bytes: \(errnoDescription(errno))")
        }
    }

    /// Writes as much of `bytes` as the peer takes before an error or the send timeout.
    @discardableResult
    func sendUpTo(_ bytes: [UInt8]) throws -> Int {
        var offset = 0
        while offset < bytes.count {
            let count = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, min(bytes.count - offset, 1 << 20)) }
            if count < 0 {
                if errno == EINTR { continue }
                return offset
            }
            offset += count
        }
        return offset
    }

    /// Reads exactly `count` bytes; throws on EOF, error or timeout, saying how far it got.
    func receive(exactly count: Int) throws -> [UInt8] {
        var result = [UInt8](repeating: 0, count: count)
        var offset = 0
        while offset < count {
            let got = result.withUnsafeMutableBytes { read(fd, $0.baseAddress! + offset, count - offset) }
            if got < 0 && errno == EINTR { continue }
            if got == 0 { throw ConformanceFailure("connection closed after \(offset) of \(count) bytes") }
            if got < 0 {
                throw ConformanceFailure("read failed after \(offset) of \(count) bytes: \(errnoDescription(errno))")
            }
            offset += got
        }
        return result
    }

    /// What `read` sees next: `.data`, `.endOfFile`, `.reset` or `.timedOut`.
    enum ReadOutcome: Equatable { case data(Int), endOfFile, reset, timedOut, failed(Int32) }

    func readOutcome() -> ReadOutcome {
        var byte = [UInt8](repeating: 0, count: 4096)
        while true {
            let got = byte.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if got > 0 { return .data(got) }
            if got == 0 { return .endOfFile }
            switch errno {
            case EINTR: continue
            case ECONNRESET: return .reset
            case EAGAIN: return .timedOut
            default: return .failed(errno)
            }
        }
    }

    /// Half-close: no more data from us; the server should echo what it has, then close.
    func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }

    /// Closes with an RST instead of a FIN (SO_LINGER with a zero timeout).
    func reset() {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        closeNow()
    }

    func closeNow() {
        if !isClosed && fd >= 0 {
            isClosed = true
            close(fd)
        }
    }
}

/// `count` random bytes from a seeded generator, so a failure can be replayed.
func randomPayload(_ count: Int, seed: UInt64) -> [UInt8] {
    var state = seed &+ 0x9E37_79B9_7F4A_7C15
    var bytes = [UInt8](repeating: 0, count: count)
    var index = 0
    while index < count {
        // splitmix64
        state = state &+ 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        for shift in stride(from: 0, to: 64, by: 8) where index < count {
            bytes[index] = UInt8(truncatingIfNeeded: z >> UInt64(shift))
            index += 1
        }
    }
    return bytes
}

/// Runs `body` on a new thread; `join` waits for it and rethrows what it threw.
final class BackgroundWork: @unchecked Sendable {
    // @unchecked: `error` is written by the worker before `done` is signalled, read after.
    private let done = DispatchSemaphore(value: 0)
    private var error: Error?

    init(_ body: @escaping @Sendable () throws -> Void) {
        Thread { [self] in
            do { try body() } catch { self.error = error }
            done.signal()
        }.start()
    }

    func join(timeout: Double = 60) throws {
        guard done.wait(timeout: .now() + timeout) == .success else {
            throw ConformanceFailure("background work did not finish within \(timeout) s")
        }
        if let error { throw error }
    }
}
