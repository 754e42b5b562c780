#if canImport(Glibc)
import Glibc
#endif

/// A connected, nonblocking socket on a netpoller loop, with calls that read like blocking ones:
///
/// ```
/// while let count = try await connection.read(into: buffer) {
///     try await connection.write(all: UnsafeRawBufferPointer(rebasing: buffer[..<count]))
/// }
/// ```
///
/// Each call tries the syscall first and parks the task only on EAGAIN, as Go's `net.Conn` does.
/// Use it from a task that runs on the descriptor's loop.
public struct PollConnection: Sendable {
    public let descriptor: PollDescriptor

    public init(_ descriptor: PollDescriptor) {
        self.descriptor = descriptor
    }

    public var fd: Int32 { descriptor.fd }

    /// Reads what is there, up to `buffer.count` bytes, waiting for some if there is none.
    /// Returns nil at the end of the stream. Throws `CancellationError` when the task is cancelled,
    /// `SocketError` on a reset or another error.
    public func read(into buffer: UnsafeMutableRawBufferPointer) async throws -> Int? {
        // Checked on every read, not only when parking: a connection that always has input never
        // parks, and must still stop when the server does.
        if Task.isCancelled { throw CancellationError() }
        // And it must let its loop-mates run: after a budget of reads in one go, it yields.
        if !descriptor.loop.spendBudget() { await descriptor.loop.yieldTurn() }
        // The last read came back short: no syscall until an event says more came.
        try await descriptor.waitUntilReadable()
        while true {
            let count = Glibc.read(descriptor.fd, buffer.baseAddress, buffer.count)
            if count > 0 {
                // Short means drained, unless the peer has closed or sent urgent data: then bytes
                // or the end of stream may sit behind these with no event to come for them.
                if descriptor.shortReadShowsDrained(count, capacity: buffer.count) {
                    descriptor.markDrained()
                }
                return count
            }
            if count == 0 { return nil }
            switch errno {
            case EAGAIN: try await descriptor.waitAfterEAGAIN(.read)
            case EINTR: continue
            case let code: throw SocketError(code: code, operation: "read")
            }
        }
    }

    /// Writes every byte, waiting while the socket is full.
    ///
    /// `bytes` may be the loop's scratch buffer, which other tasks on the loop reuse as soon as this
    /// one parks: so what the socket does not take at once is first copied into a block of this
    /// connection's own (at most one buffer; it exists only while the write waits).
    public func write(all bytes: UnsafeRawBufferPointer) async throws {
        let sent = try writeWhileItTakes(bytes)
        if sent < bytes.count {
            try await writeRest(copying: UnsafeRawBufferPointer(rebasing: bytes[sent...]))
        }
    }

    /// The slow path of `write(all:)`, after a write said EAGAIN, in a frame of its own so the fast
    /// path stays small.
    @inline(never)
    private func writeRest(copying rest: UnsafeRawBufferPointer) async throws {
        let pending = UnsafeMutableRawBufferPointer.allocate(byteCount: rest.count, alignment: 1)
        defer { pending.deallocate() }
        pending.copyMemory(from: rest)
        var sent = 0
        while sent < pending.count {
            try await descriptor.waitAfterEAGAIN(.write)
            sent += try writeWhileItTakes(UnsafeRawBufferPointer(rebasing: pending[sent...]))
        }
    }

    /// Writes as much of `bytes` as the socket takes now: all of it, or up to the write that says
    /// EAGAIN. Returns how many bytes went.
    @inline(__always)
    private func writeWhileItTakes(_ bytes: UnsafeRawBufferPointer) throws(SocketError) -> Int {
        var sent = 0
        while sent < bytes.count {
            let count = Glibc.write(descriptor.fd, bytes.baseAddress! + sent, bytes.count - sent)
            if count >= 0 {
                sent += count
                continue
            }
            switch errno {
            case EAGAIN: return sent
            case EINTR: continue
            case let code: throw SocketError(code: code, operation: "write")
            }
        }
        return sent
    }

    /// Closes the socket and forgets its registration.
    public func close() {
        descriptor.close()
    }
}
