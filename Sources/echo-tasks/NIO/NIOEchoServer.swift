import EchoProtocol
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// The server: one task that accepts connections and runs each in a child task of a discarding
/// task group, so a finished connection's task is freed at once and cancelling the server task
/// reaches every connection through the structure.
struct NIOEchoServer: Sendable {
    let runtime: ServerRuntime
    let group: MultiThreadedEventLoopGroup
    let executor: ExecutorMode

    private var options: ServerOptions { runtime.options }

    /// Binds, announces readiness, serves until `stopRequested` finishes (on SIGINT/SIGTERM), then
    /// returns with every connection closed.
    func runUntilStopped(_ stopRequested: AsyncStream<Never>) async {
        let listener = await bind()
        let local = listener.channel.localAddress
        let bound = local.flatMap { address in
            address.ipAddress.flatMap { EchoProtocol.SocketAddress($0, port: address.port ?? options.port) }
        }
        runtime.announce(listening: bound ?? EchoProtocol.SocketAddress("127.0.0.1", port: options.port)!)

        await withTaskGroup(of: Void.self) { group in
            group.addTask { await serve(listener) }
            group.addTask { for await _ in stopRequested {} }
            await group.next()  // a stop request, or the listener failed
            group.cancelAll()  // reaches every connection task through the server task
        }
    }

    /// Opens the listening channel; on failure prints `echo-tasks: cannot bind HOST:PORT: reason`, exits 1.
    private func bind() async -> NIOAsyncChannel<NIOEchoConnection?, Never> {
        let limits = NIOEchoConnection.Limits(bufferSize: options.bufferSize)
        let counters = runtime.counters
        let maxConnections = options.maxConnections
        // The address every server binds for --host (a name: its first address, IPv4 first).
        let host = (try? EchoProtocol.SocketAddress.resolve(options.host, port: 0).first?.host) ?? options.host
        do {
            return try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: Int32(clamping: options.backlog))
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.allowRemoteHalfClosure, value: true)
                .childChannelOption(.recvAllocator, value: limits.receiveAllocator)
                .childChannelOption(.writeBufferWaterMark, value: limits.writeWatermark)
                // One read per readiness event: with one chunk allowed in flight (see `admit`),
                // further reads in the same cycle would only pile up behind it.
                .childChannelOption(.maxMessagesPerRead, value: 1)
                .bind(host: host, port: options.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try NIOEchoConnection.admit(channel, counters: counters, limit: maxConnections)
                    }
                }
        } catch let error as IOError {
            Lifecycle.fail(
                tool: "echo-tasks",
                message: "cannot bind \(options.host):\(options.port): \(errnoDescription(error.errnoCode))")
        } catch {
            Lifecycle.fail(tool: "echo-tasks", message: "cannot bind \(options.host):\(options.port): \(error)")
        }
    }

    /// The server task: accept, spawn a child task per connection, until cancelled.
    private func serve(_ listener: NIOAsyncChannel<NIOEchoConnection?, Never>) async {
        let loopExecutors = EventLoopTaskExecutor.Table(group)
        do {
            try await withThrowingDiscardingTaskGroup { connections in
                try await listener.executeThenClose { accepted in
                    for try await connection in accepted {
                        guard let connection else { continue }  // refused by --max-connections, already closed
                        let preference = executor.preference(for: connection.loop, among: loopExecutors)
                        connections.addTask(executorPreference: preference) { await connection.echo() }
                    }
                }
            }
        } catch where Task.isCancelled {
            // Stopping: the listener and every connection are closed.
        } catch {
            Lifecycle.fail(tool: "echo-tasks", message: "accepting connections failed: \(error)")
        }
    }
}
