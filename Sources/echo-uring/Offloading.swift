import EchoProtocol
#if canImport(Glibc)
import Glibc
#endif

/// `--offload`: the blocking call runs on the pool. Meanwhile the message waits in the
/// connection's backlog (its ring buffer goes back at once), the connection is not read (the
/// backpressure rule holds) and nothing is sent; when the call is done the pool writes the loop's
/// eventfd and `resumeOffloaded` sends the message.
extension RingLoop {
    func offloadBlockingCall(
        _ bytes: UnsafeRawBufferPointer, _ buffer: UInt16, _ fd: Int32, _ connection: UnsafeMutablePointer<Connection>
    ) {
        connection.pointee.state.insert(.offloaded)
        hold(bytes, fd, connection)
        giveBack(buffer)
        guard let offload, !connection.pointee.state.contains(.closing) else { return }
        let generation = connection.pointee.generation
        offload.submit { [self] in
            cost.blockingCall()
            offloadsDone.withLock { $0.append((fd, generation)) }
            wake()
        }
    }

    /// On the loop's thread: the offloaded calls are done; each connection sends its message.
    func resumeOffloaded() {
        let done = offloadsDone.withLock { done in
            defer { done.removeAll() }
            return done
        }
        for (fd, generation) in done {
            guard let connection = connections.live(fd, generation: generation) else { continue }
            connection.pointee.state.remove(.offloaded)
            if !connection.pointee.state.contains(.closing) { sendBacklog(fd, connection) }
            settle(fd, connection)
        }
    }
}
