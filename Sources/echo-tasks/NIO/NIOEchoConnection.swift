import EchoProtocol
import NIOCore

/// One accepted connection and the code its task runs.
struct NIOEchoConnection: Sendable {
    let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
    let counters: ServerCounters

    /// The event loop that does this connection's I/O.
    var loop: any EventLoop { channel.channel.eventLoop }

    /// How a child channel is set up, from `--buffer-size`: the bounds that keep a connection's
    /// unsent bytes near one buffer.
    struct Limits: Sendable {
        /// Largest read, so one inbound chunk is at most one buffer.
        let receiveAllocator: ReceiveAllocator
        /// The channel stops accepting writes (and so the task stops reading) above `high` unsent bytes.
        let writeWatermark: ChannelOptions.Types.WriteBufferWaterMark

        init(bufferSize: Int) {
            // Reads grow from 64 B towards the largest power of two within --buffer-size when they
            // fill the buffer. The start is small on purpose: NIO keeps each channel's last receive
            // buffer for reuse, so an idle connection holds one buffer of the size it last needed.
            // NIO's default starts at 2 KiB, a quarter of an idle connection's memory.
            receiveAllocator = ReceiveAllocator(minimum: 64, initial: 64, maximum: bufferSize)
            writeWatermark = .init(low: max(bufferSize / 2, 1), high: bufferSize)
        }
    }

    /// Wraps a freshly accepted channel, on its event loop. Returns nil, having closed the channel,
    /// when `--max-connections` are already open.
    static func admit(_ channel: Channel, counters: ServerCounters, limit: Int) throws -> NIOEchoConnection? {
        guard counters.admit(limit: limit) else {
            channel.close(promise: nil)
            return nil
        }
        do {
            let wrapped = try NIOAsyncChannel<ByteBuffer, ByteBuffer>(
                wrappingChannelSynchronously: channel,
                configuration: .init(
                    // At most one chunk waits in the inbound buffer: the task takes it, and the
                    // channel reads again only when the task has asked for the next one.
                    backPressureStrategy: .init(lowWatermark: 1, highWatermark: 1),
                    // On the client's EOF the writer's end half-closes our side (see `echo()`).
                    isOutboundHalfClosureEnabled: true))
            return NIOEchoConnection(channel: wrapped, counters: counters)
        } catch {
            // Admitted, then lost: counted as refused, as the other servers count a connection
            // they could not take on.
            counters.refuseAdmitted()
            throw error
        }
    }

    /// The connection's whole life: echo every chunk in order until the client's EOF, send what is
    /// still pending, close. An error (reset, cancellation at shutdown) closes this connection only.
    func echo() async {
        defer { counters.closed() }
        do {
            try await channel.executeThenClose { inbound, outbound in
                for try await chunk in inbound {
                    let count = chunk.readableBytes
                    counters.received(count)
                    try await outbound.write(chunk)
                    counters.sent(count)
                }
                try await Self.drain(channel.channel)
            }
        } catch {
            // ECONNRESET, EPIPE, cancellation: nothing to tell the client; the channel is closed.
        }
    }

    /// The client half-closed. `executeThenClose` closes the channel at once, which would drop
    /// writes still queued in the channel; an empty write completes only after every earlier write
    /// has reached the socket, so wait for it first. If the server is stopping meanwhile, close now:
    /// a client that does not read must not hold up the exit.
    ///
    /// A function of its own, never inlined, on purpose: the closure around the echo loop is the
    /// frame that stays suspended while a connection idles, and everything inlined into it (the
    /// promise, the cancellation handler's closures) is allocated with it for the connection's
    /// whole life. Inlined there, it made that frame 336 bytes (256 without it) and the
    /// idle await chain took three 1 KiB task-allocator slabs instead of two: +1 KiB per idle connection.
    @inline(never)
    private static func drain(_ channel: any Channel) async throws {
        let sent = channel.eventLoop.makePromise(of: Void.self)
        channel.writeAndFlush(ByteBuffer(), promise: sent)
        try await withTaskCancellationHandler {
            try await sent.futureResult.get()
        } onCancel: {
            channel.close(promise: nil)
        }
    }
}
