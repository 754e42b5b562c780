import EchoProtocol
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The one accept policy every accept loop follows: what each accept(2) failure means, and the spare
/// descriptor that refuses queued clients when the process is out of descriptors.
struct AcceptPolicyTests {
    /// A loopback listener with `queued` clients connected and waiting in its queue.
    static func listener(nonBlocking: Bool, queued: Int) throws -> (listener: Int32, clients: [Int32]) {
        let listener = try Listener.open(host: "127.0.0.1", port: 0, backlog: 16, nonBlocking: nonBlocking)[0]
        let address = try #require(Listener.boundAddress(of: listener))
        let clients = (0..<queued).map { _ in socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        for client in clients { #expect(address.withSockaddr { connect(client, $0, $1) } == 0) }
        usleep(50_000)  // the handshakes complete in the kernel
        return (listener, clients)
    }

    @Test func failuresAreSortedAsTheLoopsActOnThem() {
        #expect(AcceptPolicy.failure(EAGAIN) == .queueEmpty)
        #expect(AcceptPolicy.failure(EMFILE) == .outOfDescriptors)
        #expect(AcceptPolicy.failure(ENFILE) == .outOfDescriptors)
        for code in [ECONNABORTED, EPROTO, EPERM, ENETDOWN, EHOSTUNREACH, ENETUNREACH, EINTR] {
            #expect(AcceptPolicy.failure(code) == .failedInQueue, "errno \(code)")
        }
        for code in [ENOBUFS, ENOMEM, EBADF, EINVAL] {
            #expect(AcceptPolicy.failure(code) == .other, "errno \(code)")
        }
    }

    /// On a blocking listener (echo-threads', echo-uring's) the refusal drains the queue without
    /// waiting for the next client, counts each as refused, and leaves the listener blocking.
    @Test func theSpareRefusesWhatIsQueuedAndComesBack() throws {
        let (listener, clients) = try Self.listener(nonBlocking: false, queued: 3)
        defer { ([listener] + clients).forEach { close($0) } }
        var spare = SpareDescriptor()
        defer { spare.close() }
        let counters = ServerCounters()
        #expect(spare.refuseQueued(on: listener, batch: 128, counters: counters) == .drained)
        #expect(counters.snapshot.refused == 3)
        #expect(spare.fd >= 0)
        #expect(fcntl(listener, F_GETFL) & O_NONBLOCK == 0)
        var byte: UInt8 = 0
        for client in clients { #expect(read(client, &byte, 1) == 0, "a refused client reads end of file") }
        #expect(spare.refuseQueued(on: listener, batch: 2, counters: counters) == .drained)
    }

    @Test func aFullBatchSaysMoreMayWait() throws {
        let (listener, clients) = try Self.listener(nonBlocking: true, queued: 3)
        defer { ([listener] + clients).forEach { close($0) } }
        var spare = SpareDescriptor()
        defer { spare.close() }
        let counters = ServerCounters()
        #expect(spare.refuseQueued(on: listener, batch: 2, counters: counters) == .more)
        #expect(spare.refuseQueued(on: listener, batch: 2, counters: counters) == .drained)
        #expect(counters.snapshot.refused == 3)
    }
}
