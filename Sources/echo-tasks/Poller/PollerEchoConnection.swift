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
}
