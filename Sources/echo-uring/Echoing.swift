import CLibURing
import EchoProtocol
#if canImport(Glibc)
import Glibc
#endif

/// The echo, as completions. A connection's recv (multishot by default) lands each message in a
/// buffer of the loop's provided-buffer ring, so an idle connection holds no buffer; the message
/// goes straight back out of that buffer with one send, and the buffer returns to the ring when
/// the send completes. The EchoProtocol rules, in completion terms:
///
/// - One send in flight per connection: two sends on one socket could overtake each other.
/// - Backpressure: that send is made with MSG_DONTWAIT, so a full socket answers at once (short,
///   or EAGAIN) instead of keeping the ring's buffer. The rest is copied into the connection's
///   backlog, the buffer goes back, and the connection stops being read: its multishot recv is
///   cancelled and no recv is armed again until the backlog is sent (those sends may wait in the
///   kernel for the peer to read). A message that arrives while a send is in flight waits in the
///   backlog the same way.
/// - Out of ring buffers, a recv ends with ENOBUFS; the connection waits in `starved` and is armed
///   again once buffers come back (`rearmStarved`, once per pass).
/// - Half-close: a recv of 0 bytes ends reading; what is pending is sent, then the socket closes.
/// - Reset or error: close. An fd is closed only when none of its requests is in the kernel
///   (their completions would otherwise name a number the next accept reuses); the slot's
///   generation then moves on so a late completion finds nothing.
extension RingLoop {
    // MARK: Reading

    func resumeReading(_ fd: Int32, _ connection: UnsafeMutablePointer<Connection>) {
        let blocking: ConnectionState = [.recvArmed, .sendInFlight, .endOfStream, .closing, .offloaded, .starved]
        let state = connection.pointee.state
        guard state.contains(.open), state.isDisjoint(with: blocking), connection.pointee.backlog == nil else { return }
        connection.pointee.state.insert(.recvArmed)
        curing_recv(ring, fd, Self.bufferGroup, settings.multishotRecv ? 1 : 0,
                    UserData(.recv, fd: fd, generation: connection.pointee.generation).raw)
    }

    /// Cancels the connection's multishot recv; its final completion (ECANCELED) clears `recvArmed`.
    func stopReading(_ fd: Int32, _ connection: UnsafeMutablePointer<Connection>) {
        let state = connection.pointee.state
        guard state.contains(.recvArmed), !state.contains(.recvCancelled) else { return }
        connection.pointee.state.insert(.recvCancelled)
        curing_cancel(ring, UserData(.recv, fd: fd, generation: connection.pointee.generation).raw, UserData(.cancel).raw)
    }

    @inline(__always)
    func received(_ completion: curing_cqe, _ data: UserData) {
        let flags = completion.flags
        let hasBuffer = flags & UInt32(CURING_CQE_F_BUFFER) != 0
        let buffer = UInt16(truncatingIfNeeded: flags >> UInt32(CURING_CQE_BUFFER_SHIFT))
        if hasBuffer { freeBuffers -= 1 }
        let fd = data.fd
        guard let connection = connections.live(fd, generation: data.generation) else {
            if hasBuffer { giveBack(buffer) }  // for a connection that is gone
            return
        }
        let result = completion.res
        if flags & UInt32(CURING_CQE_F_MORE) == 0 {
            connection.pointee.state.subtract([.recvArmed, .recvCancelled, .bytesLeft])
        } else if result > 0 && flags & UInt32(CURING_CQE_F_SOCK_NONEMPTY) != 0 {
            if !connection.pointee.state.contains(.bytesLeft) {
                connection.pointee.state.insert(.bytesLeft)
                leftBytes.append((fd, connection.pointee.generation))
            }
        } else {
            connection.pointee.state.remove(.bytesLeft)
        }
        if result > 0 && hasBuffer {
            received += Int(result)
            if connection.pointee.state.contains(.closing) {
                giveBack(buffer)
            } else {
                echo(buffer, count: Int(result), fd, connection)
            }
        } else if result == 0 {
            connection.pointee.state.insert(.endOfStream)
        } else if result == -ENOBUFS {
            if !connection.pointee.state.contains(.closing) {
                connection.pointee.state.insert(.starved)
                starved.append((fd, connection.pointee.generation))
            }
        } else if result != -ECANCELED && result != -EINTR && result != -EAGAIN {
            close(fd, connection)  // reset or error
        }
        settle(fd, connection)
    }

    /// Applies --work/--block, then sends the message back out of its ring buffer, or keeps it
    /// behind what is still unsent.
    @inline(__always)
    func echo(_ buffer: UInt16, count: Int, _ fd: Int32, _ connection: UnsafeMutablePointer<Connection>) {
        let bytes = UnsafeRawBufferPointer(start: curing_buffer(ring, buffer), count: count)
        if !cost.isNone {
            cost.work()
            if cost.blocks(&messages) {
                if offload != nil { return offloadBlockingCall(bytes, buffer, fd, connection) }
                cost.blockingCall()  // on the loop's thread: every connection of the loop waits
            }
        }
        let state = connection.pointee.state
        if state.contains(.sendInFlight) || state.contains(.offloaded) || connection.pointee.backlog != nil {
            hold(bytes, fd, connection)
            giveBack(buffer)
            return
        }
        connection.pointee.state.insert([.sendInFlight, .sendFromRing])
        connection.pointee.ringBuffer = buffer
        connection.pointee.sendCount = Int32(count)
        curing_send(ring, fd, bytes.baseAddress, UInt32(count), Int32(MSG_DONTWAIT),
                    UserData(.send, fd: fd, generation: connection.pointee.generation).raw)
    }

    /// Keeps `bytes` at the end of the backlog and stops reading the connection.
    func hold(_ bytes: UnsafeRawBufferPointer, _ fd: Int32, _ connection: UnsafeMutablePointer<Connection>) {
        if connection.pointee.backlog == nil {
            connection.pointee.backlog = Backlog(bytes)
            if connection.pointee.backlog == nil { return close(fd, connection) }
        } else if !connection.pointee.backlog!.appendGrowing(bytes) {
            return close(fd, connection)
        }
        stopReading(fd, connection)
    }

    // MARK: Sending

    @inline(__always)
    func sent(_ completion: curing_cqe, _ data: UserData) {
        let fd = data.fd
        // Always live: a connection is freed only once its send has completed.
        guard let connection = connections.live(fd, generation: data.generation) else { return }
        let state = connection.pointee.state
        connection.pointee.state.subtract([.sendInFlight, .sendFromRing])
        let result = completion.res
        let failed = result < 0 && result != -EAGAIN && result != -EINTR
        if failed && !state.contains(.closing) { close(fd, connection) }
        let done = Int(max(result, 0))
        sent += done

        if state.contains(.sendFromRing) {
            let buffer = connection.pointee.ringBuffer
            let count = Int(connection.pointee.sendCount)
            if done < count && !failed && !state.contains(.closing) {
                // The socket is full: the rest goes ahead of anything held meanwhile, and reading stops.
                let rest = UnsafeRawBufferPointer(start: curing_buffer(ring, buffer)! + done, count: count - done)
                let held = connection.pointee.backlog
                if let backlog = Backlog(rest, then: held?.unsent ?? UnsafeRawBufferPointer(start: nil, count: 0)) {
                    held?.free()
                    connection.pointee.backlog = backlog
                    stopReading(fd, connection)
                } else {
                    close(fd, connection)
                }
            }
            giveBack(buffer)
        } else if done > 0 {
            connection.pointee.backlog?.consume(done)
        }

        if let backlog = connection.pointee.backlog, backlog.isEmpty {
            backlog.free()
            connection.pointee.backlog = nil
        }
        if connection.pointee.backlog != nil && connection.pointee.state.isDisjoint(with: [.closing, .offloaded]) {
            sendBacklog(fd, connection)
        }
        settle(fd, connection)
    }

    /// Sends what the backlog holds. Without MSG_DONTWAIT: if the socket is full, the kernel keeps
    /// the request until the peer reads; the backlog is the connection's own memory.
    func sendBacklog(_ fd: Int32, _ connection: UnsafeMutablePointer<Connection>) {
        guard let unsent = connection.pointee.backlog?.unsent, !connection.pointee.state.contains(.sendInFlight) else {
            return
        }
        connection.pointee.state.insert(.sendInFlight)
        curing_send(ring, fd, unsent.baseAddress, UInt32(unsent.count), 0,
                    UserData(.send, fd: fd, generation: connection.pointee.generation).raw)
    }

    @inline(__always)
    func giveBack(_ buffer: UInt16) {
        curing_buffer_give_back(ring, buffer)
        freeBuffers += 1
    }

    // MARK: What next

    /// After any completion: finish closing, close after a half-close once everything is sent, or
    /// read again when nothing is pending.
    @inline(__always)
    func settle(_ fd: Int32, _ connection: UnsafeMutablePointer<Connection>) {
        let state = connection.pointee.state
        guard state.contains(.open) else { return }  // already closed and freed
        if state.contains(.closing) { return finishClosing(fd, connection) }
        let pending = !state.isDisjoint(with: [.sendInFlight, .offloaded]) || connection.pointee.backlog != nil
        if state.contains(.endOfStream) {
            if !pending { close(fd, connection) }
            return
        }
        if !pending { resumeReading(fd, connection) }
    }

    /// A multishot recv that stops short with bytes still queued reads on at once, in the same
    /// pass of the kernel's task work, so their completion is normally in the queue beside the
    /// first. Not always: Linux stops a read at the urgent mark (MSG_OOB) once it has copied
    /// something, and the retry that would step over the mark comes back with EAGAIN when a signal
    /// is pending on the reading thread (tcp_recvmsg gives up at the mark then); a stop and
    /// continue (SIGSTOP, SIGCONT) made it happen here. The request then waits for a wake-up that
    /// no further byte brings, and the connection stalls with its bytes queued. So, once the
    /// completion queue is drained, a connection whose latest completion still says "bytes left"
    /// has its recv cancelled, and armed again once its send is done; a new recv reads at once.
    /// (A false alarm, after the kernel's cap on back-to-back reads, costs one re-arm.)
    func rearmWhereBytesWereLeft() {
        guard !leftBytes.isEmpty else { return }
        forEachStill(.bytesLeft, in: leftBytes) { fd, connection in stopReading(fd, connection) }
        leftBytes.removeAll(keepingCapacity: true)
    }

    /// Connections whose recv ran out of buffers, armed again as many as buffers came back.
    func rearmStarved() {
        guard !starved.isEmpty, freeBuffers > 0 else { return }
        let count = min(freeBuffers, starved.count)
        let batch = starved.prefix(count)
        starved.removeFirst(count)
        forEachStill(.starved, in: batch) { fd, connection in settle(fd, connection) }
    }

    /// The connections of a waiting list that are still open and still marked `mark` (a list
    /// entry outlives a close, or a mark cleared since), each with the mark taken off.
    func forEachStill(
        _ mark: ConnectionState, in list: some Sequence<(fd: Int32, generation: UInt32)>,
        _ body: (Int32, UnsafeMutablePointer<Connection>) -> Void
    ) {
        for (fd, generation) in list {
            guard let connection = connections.live(fd, generation: generation), connection.pointee.state.contains(mark)
            else { continue }
            connection.pointee.state.remove(mark)
            body(fd, connection)
        }
    }

    // MARK: Closing

    /// Starts closing: cancels what is in the kernel; the fd closes when the last completion is in.
    func close(_ fd: Int32, _ connection: UnsafeMutablePointer<Connection>) {
        guard !connection.pointee.state.contains(.closing) else { return }
        stopReading(fd, connection)
        connection.pointee.state.insert(.closing)
        if connection.pointee.state.contains(.sendInFlight) {
            curing_cancel(ring, UserData(.send, fd: fd, generation: connection.pointee.generation).raw, UserData(.cancel).raw)
        }
        finishClosing(fd, connection)
    }

    func finishClosing(_ fd: Int32, _ connection: UnsafeMutablePointer<Connection>) {
        guard connection.pointee.state.isDisjoint(with: [.recvArmed, .sendInFlight]) else { return }
        Glibc.close(fd)
        connection.pointee.backlog?.free()
        connection.pointee.backlog = nil
        connection.pointee.state = []
        connection.pointee.generation &+= 1
        counters.closed()
    }
}
