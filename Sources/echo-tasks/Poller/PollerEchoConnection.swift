import EchoProtocol
import NetPoller

/// One connection's whole life, as the blocking version would be written: read what came, write it
/// all back, until the client's EOF; then close. While the write waits (the client is not reading),
/// the connection is not read: that is the backpressure rule, for free.
///
/// The bytes go through the loop's scratch buffer, shared by every connection on the loop: nothing
/// holds it across a suspension but `write(all:)`, which copies what it must wait to send.
///
/// What an idle connection holds, and why the chain is kept short: its task object and, in the
/// task's allocator, the frames of the awaits it is parked in (this function's, `read`'s,
/// `PollDescriptor.park`'s and the cancellation handler's and continuation's). No existential or
/// generic async layer sits on that chain and no large local is held across the `await`, so the
/// frames fit in the task's first allocator slab.
enum PollerEchoConnection {
    static func echo(_ connection: PollConnection, tally: LocalTally, counters: ServerCounters) async {
        defer {
            connection.close()
            counters.closed()
        }
        let buffer = connection.descriptor.loop.scratch
        do {
            while let count = try await connection.read(into: buffer) {
                tally.received(count)
                try await connection.write(all: UnsafeRawBufferPointer(rebasing: buffer[..<count]))
                tally.sent(count)
            }
        } catch {
            // A reset, or cancellation at shutdown: nothing to tell the client; the socket closes.
        }
    }

    /// The same life with `--work` / `--block` on every message (MessageCost), after its read and
    /// before its echo. A function of its own so the plain echo's idle frame stays as it is.
    /// `--block-mode inline`: the blocking call holds the loop's thread, and every task of the loop
    /// waits, as on an event loop. `handoff` (the default) makes it through the loop's bracket: a
    /// call longer than `--handoff-after` hands the loop to a spare thread, as Go's runtime does. With `--offload`,
    /// the task awaits the pool instead and its loop runs the others. Either way the connection
    /// is not read meanwhile.
    static func echo(
        _ connection: PollConnection, tally: LocalTally, counters: ServerCounters, cost: MessageCost,
        offload: BlockingPool?, blockMode: BlockMode
    ) async {
        defer {
            connection.close()
            counters.closed()
        }
        let buffer = connection.descriptor.loop.scratch
        do {
            while let count = try await connection.read(into: buffer) {
                tally.received(count)
                let bytes = UnsafeRawBufferPointer(rebasing: buffer[..<count])
                cost.work()
                if tally.blocks(cost) {  // counted per loop, as echo-libev counts
                    if let offload {
                        try await echoAfter({ try await onPool(offload, cost) }, bytes, on: connection)
                        tally.sent(count)
                        continue
                    }
                    if blockMode == .handoff {
                        try await echoAfter({ await connection.descriptor.loop.blocking { cost.blockingCall() } }, bytes, on: connection)
                        tally.sent(count)
                        continue
                    }
                    cost.blockingCall()
                }
                try await connection.write(all: bytes)
                tally.sent(count)
            }
        } catch {
            // As above.
        }
    }

    /// The bytes sit in the loop's scratch buffer, which other tasks on the loop reuse while this
    /// one waits for its blocking call (on the pool, or on a thread the loop was handed away from):
    /// so they are copied first, and echoed from the copy once `call` returns.
    @inline(never)
    private static func echoAfter(
        _ call: () async throws -> Void, _ bytes: UnsafeRawBufferPointer, on connection: PollConnection
    ) async throws {
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 1)
        defer { copy.deallocate() }
        copy.copyMemory(from: bytes)
        try await call()
        try await connection.write(all: UnsafeRawBufferPointer(copy))
    }

    /// `--offload`: the call on the pool; the task goes back to its loop's queue (its executor
    /// preference) when it is done. The wait is not cancellable (the call runs to its end), so a
    /// server that is stopping does not queue another one.
    private static func onPool(_ pool: BlockingPool, _ cost: MessageCost) async throws {
        try Task.checkCancellation()
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            pool.submit {
                cost.blockingCall()
                done.resume()
            }
        }
    }
}
