#if canImport(Glibc)
import Glibc
#endif
import EchoProtocol

/// What a connection thread is handed: one `malloc`ed block holding a small header (the shared
/// state and the socket) followed by the connection's read buffer of `--buffer-size` bytes.
///
/// One block per connection, allocated by the accept loop and freed by the thread when it is done.
/// Pages of the buffer the kernel never writes stay untouched and cost no memory, so an idle
/// connection holds one page of it, like the C server's `char buf[4096]` on its stack. (Swift cannot
/// put a buffer whose size is known only at run time on the stack: `withUnsafeTemporaryAllocation`
/// falls back to the heap above 1 KiB on Linux, and a per-thread `malloc` would give every thread
/// its own malloc arena and tcache.)
enum ConnectionBlock {
    static let headerSize = 16

    /// A block for `fd`, or nil when memory is exhausted.
    static func allocate(fd: Int32, bufferSize: Int, shared: Unmanaged<Acceptor>) -> UnsafeMutableRawPointer? {
        guard let block = malloc(headerSize + bufferSize) else { return nil }
        block.storeBytes(of: shared.toOpaque(), as: UnsafeMutableRawPointer.self)
        block.storeBytes(of: fd, toByteOffset: 8, as: Int32.self)
        return block
    }
}

/// The body of every connection thread: echo until EOF or an error, then close and free.
func connectionThreadMain(_ argument: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    let block = argument.unsafelyUnwrapped
    let acceptor = Unmanaged<Acceptor>.fromOpaque(block.load(as: UnsafeMutableRawPointer.self))
        .takeUnretainedValue()
    let fd = block.load(fromByteOffset: 8, as: Int32.self)
    let counters = acceptor.runtime.counters

    echo(fd, buffer: block + ConnectionBlock.headerSize, capacity: acceptor.bufferSize, counters: counters)

    acceptor.connections.remove(fd)
    close(fd)
    free(block)
    counters.closed()
    return nil
}

/// Blocking echo: read what is there (up to `capacity`), write all of it back, repeat.
/// While a write blocks nothing is read, so the connection never holds more than one buffer.
/// On EOF everything read has already been written back, so the caller can close at once.
private func echo(_ fd: Int32, buffer: UnsafeMutableRawPointer, capacity: Int, counters: ServerCounters) {
    while true {
        let received = read(fd, buffer, capacity)
        if received < 0 {
            if errno == EINTR { continue }
            return  // reset, or shut down by a stop
        }
        if received == 0 { return }  // EOF
        counters.received(received)
        var offset = 0
        while offset < received {
            let written = write(fd, buffer + offset, received - offset)
            if written < 0 {
                if errno == EINTR { continue }
                return  // EPIPE, reset: the peer is gone
            }
            offset += written
        }
        counters.sent(received)
    }
}
