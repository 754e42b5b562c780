import Foundation
import Synchronization
import Testing

@testable import NetPoller

#if canImport(Glibc)
import Glibc
#endif

/// A netpoller loop on a thread of its own for one test; `finish()` stops and joins it.
final class RunningLoop: Sendable {
    let loop: PollLoop
    private let thread: PosixThread

    init(shortReadDrains: Bool = true) throws {
        loop = try PollLoop(scratchBytes: 16 * 1024, shortReadDrains: shortReadDrains)
        let loop = self.loop
        thread = try PosixThread(name: "test-poller") { loop.run() }
    }

    func finish() {
        loop.requestStop()
        thread.join()
    }

    /// Runs `body` in a task on the loop and waits (at most `timeout` seconds) for its result.
    func onLoop<T: Sendable>(timeout: Double = 5, _ body: @escaping @Sendable () async throws -> T) throws -> T {
        let outcome = Outcome<T>()
        Task(executorPreference: loop) { outcome.deliver(await Result { try await body() }) }
        return try outcome.wait(timeout: timeout).get()
    }

    /// Starts `body` in a task on the loop without waiting; its result lands in the returned outcome.
    func start<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) -> (Task<Void, Never>, Outcome<T>) {
        let outcome = Outcome<T>()
        let task = Task(executorPreference: loop) { outcome.deliver(await Result { try await body() }) }
        return (task, outcome)
    }

    /// Polls `condition` on the loop until it holds, for at most `timeout` seconds.
    func waitUntil(_ what: String, timeout: Double = 5, _ condition: @escaping @Sendable () -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try onLoop({ condition() }) { return }
            usleep(2_000)
        }
        throw HarnessFailure("timed out waiting for \(what)")
    }
}

/// The results a task delivered, counted: a waiter resumed twice would deliver twice.
final class Outcome<T: Sendable>: Sendable {
    private let results = Mutex<[Result<T, any Error>]>([])
    private let arrived = DispatchSemaphore(value: 0)

    func deliver(_ result: Result<T, any Error>) {
        results.withLock { $0.append(result) }
        arrived.signal()
    }

    /// The first result, waiting at most `timeout` seconds for it.
    func wait(timeout: Double) throws -> Result<T, any Error> {
        guard arrived.wait(timeout: .now() + timeout) == .success else {
            throw HarnessFailure("no result after \(timeout) s: a waiter was never resumed")
        }
        return results.withLock { $0[0] }
    }

    var count: Int { results.withLock { $0.count } }
}

struct HarnessFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

extension Result where Failure == any Error {
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}

/// A connected pair of nonblocking stream sockets (AF_UNIX): `near` for the loop, `far` for the test.
struct SocketPair {
    let near: Int32
    let far: Int32

    init(sendBuffer: Int32? = nil) throws {
        var fds: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            throw HarnessFailure("socketpair: \(String(cString: strerror(errno)))")
        }
        near = fds[0]
        far = fds[1]
        if var size = sendBuffer {
            for fd in fds { setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, 4) }
        }
    }

    /// The far end, blocking again, for the test's plain reads and writes.
    func farBlocking() -> Int32 {
        _ = fcntl(far, F_SETFL, fcntl(far, F_GETFL) & ~O_NONBLOCK)
        return far
    }
}

/// Descriptor numbers for a test that frees one and takes it back: far above the lowest free
/// number, which is the one every socket(), pipe() or open() in the process gets. The suites run in
/// parallel in one process, so a low number a test frees is soon another thread's (a conformance
/// check's socket, a Pipe that a Process is about to hand to its child); taking it back with dup2
/// silently closed that descriptor under its owner, whose next call failed with EBADF.
enum HighDescriptor {
    /// Where the numbers start: half the soft RLIMIT_NOFILE, at most 10,000.
    static let floor: Int32 = {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 512 }
        return Int32(clamping: min(UInt64(limit.rlim_cur) / 2, 10_000))
    }()

    /// Moves `fd` to the lowest free number at or above `atLeast`, close-on-exec, and closes `fd`.
    /// F_DUPFD takes only a free number: unlike dup2 it never closes what another thread holds.
    static func move(_ fd: Int32, atLeast: Int32 = floor) throws -> Int32 {
        let moved = fcntl(fd, F_DUPFD_CLOEXEC, atLeast)
        let code = errno
        close(fd)
        guard moved >= 0 else { throw HarnessFailure("F_DUPFD_CLOEXEC \(atLeast): \(String(cString: strerror(code)))") }
        return moved
    }
}

/// Bytes that differ with position and seed, so a misplaced chunk shows.
func pattern(_ count: Int, seed: UInt8) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8) &+ seed }
}

/// Reads exactly `count` bytes from a blocking fd (with a receive timeout of `timeout` seconds).
func receive(_ fd: Int32, exactly count: Int, timeout: Int = 5) throws -> [UInt8] {
    var limit = timeval(tv_sec: timeout, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
    var bytes = [UInt8](repeating: 0, count: count)
    var got = 0
    while got < count {
        let n = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + got, count - got) }
        guard n > 0 else { throw HarnessFailure("read \(got) of \(count) bytes, then \(n < 0 ? String(cString: strerror(errno)) : "EOF")") }
        got += n
    }
    return bytes
}

/// A count several threads bump (an `Atomic` local cannot be captured by escaping closures).
final class Counter: Sendable {
    private let value = Atomic<Int>(0)
    func add(_ count: Int) { value.add(count, ordering: .relaxed) }
    var count: Int { value.load(ordering: .relaxed) }
}
