#if canImport(Glibc)
import Glibc
#endif
import EchoProtocol

/// What a connection thread is handed: one anonymous mapping holding a small header (the shared
/// state and the socket) followed by the connection's read buffer of `--buffer-size` bytes.
///
/// The accept loop maps it and the thread unmaps it when done. Pages the kernel never writes stay
/// untouched and cost no memory, so an idle connection holds one page of it, like the C server's
/// `char buf[4096]` on its stack; and unmapping hands the memory back at once, which `free` would
/// not (glibc keeps freed chunks in the middle of its heap resident). Swift cannot put a buffer
/// whose size is known only at run time on the stack: `withUnsafeTemporaryAllocation` falls back
/// to the heap above 1 KiB on Linux.
///
/// The price is one more memory mapping per connection (three with the thread's stack and its
/// guard page), so vm.max_map_count (65,530) caps connections near 21,800; the fd cap is lower here.
struct ConnectionBlock {
    static let headerSize = 16
    /// Bytes mapped per connection: header plus buffer, rounded up to whole pages.
    let size: Int

    init(bufferSize: Int) {
        let page = sysconf(Int32(_SC_PAGESIZE))
        size = (Self.headerSize + bufferSize + page - 1) / page * page
    }

    /// A block for `fd`, or nil when the system has no memory (or mappings) left.
    func allocate(fd: Int32, shared: Unmanaged<Acceptor>) -> UnsafeMutableRawPointer? {
        let block = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let block, block != MAP_FAILED else { return nil }
        block.storeBytes(of: shared.toOpaque(), as: UnsafeMutableRawPointer.self)
        block.storeBytes(of: fd, toByteOffset: 8, as: Int32.self)
        return block
    }

    func free(_ block: UnsafeMutableRawPointer) {
        munmap(block, size)
    }
}

/// The body of every connection thread: echo until EOF or an error, then close and free.
func connectionThreadMain(_ argument: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    let block = argument.unsafelyUnwrapped
    let acceptor = Unmanaged<Acceptor>.fromOpaque(block.load(as: UnsafeMutableRawPointer.self))
        .takeUnretainedValue()
    let fd = block.load(fromByteOffset: 8, as: Int32.self)
    let counters = acceptor.runtime.counters

    echo(fd, buffer: block + ConnectionBlock.headerSize, capacity: acceptor.bufferSize, counters: counters,
         cost: acceptor.cost, messages: acceptor.messages)

    acceptor.connections.remove(fd)
    close(fd)
    acceptor.blocks.free(block)
    counters.closed()
    return nil
}

/// Blocking echo: read what is there (up to `capacity`), write all of it back, repeat.
/// While a write blocks nothing is read, so the connection never holds more than one buffer.
/// On EOF everything read has already been written back, so the caller can close at once.
/// `--work` and `--block` (MessageCost) run here, on the connection's own thread, after each read.
private func echo(
    _ fd: Int32, buffer: UnsafeMutableRawPointer, capacity: Int, counters: ServerCounters, cost: MessageCost,
    messages: MessageCost.SharedCount
) {
    while true {
        let received = read(fd, buffer, capacity)
        if received < 0 {
            if errno == EINTR { continue }
            return  // reset, or shut down by a stop
        }
        if received == 0 { return }  // EOF
        counters.received(received)
        cost.work()
        if cost.blocks(messages) { cost.blockingCall() }
        // Partial writes and EINTR are retried; false means EPIPE or a reset: the peer is gone.
        guard writeAll(fd, UnsafeRawBufferPointer(start: buffer, count: received)) else { return }
        counters.sent(received)
    }
}
