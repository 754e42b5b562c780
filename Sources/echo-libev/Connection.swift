import CLibev
import EchoProtocol
#if canImport(Glibc)
import Glibc
#endif

/// Everything one connection owns: its libev watcher, which also holds the fd, and the bytes a
/// write left behind, which exist only while the peer's socket is full. 56 bytes in one malloc
/// chunk; reads use the loop's shared buffer.
struct Connection {
    var watcher: ev_io
    var pending: PendingBytes?
}

/// Bytes read from a peer that its socket would not take back yet: one malloc'd block holding the
/// range still to send, then the bytes. At most `--buffer-size` bytes, because a connection that
/// holds any is not read until they are sent.
struct PendingBytes {
    private let block: UnsafeMutableRawPointer
    private static let headerSize = 2 * MemoryLayout<Int>.stride

    /// Copies `bytes` into a new block; nil when memory is exhausted.
    init?(copying bytes: UnsafeRawBufferPointer) {
        guard let block = malloc(Self.headerSize + bytes.count) else { return nil }
        self.block = block
        start = 0
        end = bytes.count
        (block + Self.headerSize).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
    }

    /// The bytes still to send.
    var unsent: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: block + Self.headerSize + start, count: end - start)
    }

    /// Marks `count` more bytes as sent.
    func consume(_ count: Int) {
        start += count
    }

    func free() {
        Glibc.free(block)
    }

    private var start: Int {
        get { block.load(as: Int.self) }
        nonmutating set { block.storeBytes(of: newValue, as: Int.self) }
    }

    private var end: Int {
        get { block.load(fromByteOffset: MemoryLayout<Int>.stride, as: Int.self) }
        nonmutating set { block.storeBytes(of: newValue, toByteOffset: MemoryLayout<Int>.stride, as: Int.self) }
    }
}

/// The echo itself. A connection is in one of two states:
/// - reading (watching EV_READ): read once into the loop's buffer and write it straight back;
/// - draining (watching EV_WRITE only): the last write was partial, the rest waits in `pending`.
///   Not reading is the backpressure: a client that does not read its echo stops being read, and
///   costs at most one pending buffer plus the kernel's socket buffers.
/// End of stream is only seen in the reading state, so bytes pending at a half-close are sent
/// before the connection closes. Any error closes it.
extension EventLoop {
    /// Takes on an accepted, nonblocking socket; false if memory is exhausted.
    func open(_ fd: Int32) -> Bool {
        guard let raw = malloc(MemoryLayout<Connection>.size) else { return false }
        let connection = raw.bindMemory(to: Connection.self, capacity: 1)
        connection.initialize(to: Connection(watcher: ev_io(), pending: nil))
        let watcher = connection.watcher
        clibev_io_init(watcher, connectionReady, fd, clibev_read())
        clibev_set_data(watcher, connection)
        ev_io_start(loop, watcher)
        register(connection, fd: fd)
        return true
    }

    /// Reads once and echoes what came. Level-triggered: if more is queued, libev calls again.
    @inline(__always)
    func readAndEcho(_ connection: UnsafeMutablePointer<Connection>) {
        let fd = connection.pointee.watcher.fd
        let count = read(fd, readBuffer.baseAddress, readBuffer.count)
        if count > 0 {
            tally.pointee.received += count
            let bytes = UnsafeRawBufferPointer(rebasing: readBuffer[0..<count])
            if !cost.isNone {
                cost.work()
                if cost.blocks(&messages) {
                    if offload != nil { return offloadBlockingCall(then: bytes, on: connection) }
                    cost.blockingCall()  // on the loop's thread: every connection of the loop waits
                }
            }
            send(bytes, on: connection)
        } else if count == 0 {
            close(connection)  // end of stream; nothing is pending, or we would not have read
        } else if errno != EAGAIN && errno != EINTR {
            close(connection)  // reset or error
        }
    }

    /// Writes `bytes` back; whatever the socket does not take is kept and the connection switches to
    /// draining.
    @inline(__always)
    func send(_ bytes: UnsafeRawBufferPointer, on connection: UnsafeMutablePointer<Connection>) {
        let fd = connection.pointee.watcher.fd
        var sent = 0
        while sent < bytes.count {
            let count = write(fd, bytes.baseAddress! + sent, bytes.count - sent)
            if count > 0 {
                sent += count
            } else if count < 0 && errno == EINTR {
                continue
            } else if count < 0 && errno == EAGAIN {
                break
            } else {
                tally.pointee.sent += sent
                close(connection)
                return
            }
        }
        tally.pointee.sent += sent
        guard sent < bytes.count else { return }
        guard let pending = PendingBytes(copying: UnsafeRawBufferPointer(rebasing: bytes[sent...])) else {
            close(connection)
            return
        }
        connection.pointee.pending = pending
        watch(connection, for: clibev_write())
    }

    /// Sends pending bytes as the socket takes them; once all are sent, reads again.
    func drain(_ connection: UnsafeMutablePointer<Connection>, _ pending: PendingBytes) {
        let fd = connection.pointee.watcher.fd
        while true {
            let unsent = pending.unsent
            if unsent.isEmpty { break }
            let count = write(fd, unsent.baseAddress, unsent.count)
            if count > 0 {
                tally.pointee.sent += count
                pending.consume(count)
            } else if count < 0 && errno == EINTR {
                continue
            } else if count < 0 && errno == EAGAIN {
                return  // still full; libev calls again when it is writable
            } else {
                close(connection)
                return
            }
        }
        pending.free()
        connection.pointee.pending = nil
        watch(connection, for: clibev_read())
    }

    /// `--offload`: the blocking call runs on the pool. Meanwhile the connection's watcher is stopped
    /// (neither read nor written: the backpressure rule holds) and the bytes wait in `pending`, the
    /// read buffer being the loop's; when the call is done, `resumeOffloaded` sends them.
    func offloadBlockingCall(then bytes: UnsafeRawBufferPointer, on connection: UnsafeMutablePointer<Connection>) {
        guard let offload, let pending = PendingBytes(copying: bytes) else {
            close(connection)
            return
        }
        connection.pointee.pending = pending
        ev_io_stop(loop, connection.watcher)
        let address = UInt(bitPattern: connection)
        offload.submit { [self] in
            cost.blockingCall()
            offloadsDone.withLock { $0.append(address) }
            ev_async_send(loop, offloadWatcher)
        }
    }

    /// On the loop's thread: the offloaded calls are done; each connection drains its pending
    /// bytes (watching EV_WRITE, which the draining path turns back to EV_READ when they are sent).
    func resumeOffloaded() {
        let done = offloadsDone.withLock { done in
            defer { done.removeAll() }
            return done
        }
        for address in done {
            guard let connection = UnsafeMutablePointer<Connection>(bitPattern: address) else { continue }
            watch(connection, for: clibev_write())
        }
    }

    /// Closes the socket and frees everything the connection owned.
    func close(_ connection: UnsafeMutablePointer<Connection>) {
        let fd = connection.pointee.watcher.fd
        ev_io_stop(loop, connection.watcher)
        Glibc.close(fd)
        unregister(fd: fd)
        connection.pointee.pending?.free()
        connection.deinitialize(count: 1)
        free(connection)
        counters.closed()
    }

    /// Switches what the watcher waits for (libev requires a stopped watcher to change it).
    private func watch(_ connection: UnsafeMutablePointer<Connection>, for events: Int32) {
        ev_io_stop(loop, connection.watcher)
        clibev_io_modify(connection.watcher, events)
        ev_io_start(loop, connection.watcher)
    }
}

extension UnsafeMutablePointer<Connection> {
    /// The address of the connection's watcher, which libev keeps while it is started.
    var watcher: UnsafeMutablePointer<ev_io> {
        pointer(to: \.watcher)!
    }
}

/// libev calls this whenever a connection's socket is ready for what its watcher waits for.
func connectionReady(_ loop: OpaquePointer?, _ watcher: UnsafeMutablePointer<ev_io>?, _ revents: Int32) {
    let connection = clibev_get_data(watcher).assumingMemoryBound(to: Connection.self)
    EventLoop.with(loop) { eventLoop in
        if let pending = connection.pointee.pending {
            eventLoop.drain(connection, pending)
        } else {
            eventLoop.readAndEcho(connection)
        }
    }
}
