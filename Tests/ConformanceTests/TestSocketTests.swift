import EchoProtocol
import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The test client itself. The suites run in parallel in one process, so a descriptor it closed
/// twice would be, the second time, whatever another thread had opened under that number by then.
struct TestSocketTests {
    /// A connect that fails closes the socket once: the initializer closed it and then, the class's
    /// initializer having thrown with every property set, deinit closed the number again. Another
    /// thread opens and closes pipes meanwhile; each must stay open until its owner closes it.
    @Test func aFailedConnectClosesItsSocketOnce() throws {
        let listener = try Listener.open(host: "127.0.0.1", port: 0, backlog: 1, nonBlocking: false)[0]
        let address = try #require(Listener.boundAddress(of: listener))
        close(listener)  // nothing listens there now: every connect is refused at once
        let churn = DescriptorChurn()
        for _ in 0..<5000 {
            #expect(throws: ConformanceFailure.self) { _ = try TestSocket(connectingTo: address) }
        }
        let (rounds, harmed) = churn.stop()
        #expect(rounds > 0)
        #expect(harmed == 0, "\(harmed) of another thread's descriptors were closed under it")
    }
}

/// A thread that opens a pipe, holds it a moment, checks that both descriptors are still the ones it
/// opened, and closes them, over and over until `stop()`: what the other suites' threads do.
final class DescriptorChurn: Sendable {
    private let stopping = Atomic<Bool>(false)
    private let rounds = Atomic<Int>(0)
    private let harmed = Atomic<Int>(0)
    private let done = DispatchSemaphore(value: 0)

    init() {
        Thread { [self] in
            while !stopping.load(ordering: .relaxed) {
                var fds: [Int32] = [-1, -1]
                guard c_pipe2(&fds, O_CLOEXEC) == 0 else { continue }
                var opened = [stat(), stat()]
                for index in 0..<2 { fstat(fds[index], &opened[index]) }
                for _ in 0..<20 { sched_yield() }
                for index in 0..<2 {
                    var now = stat()
                    if fstat(fds[index], &now) != 0 || now.st_ino != opened[index].st_ino {
                        harmed.add(1, ordering: .relaxed)
                    }
                    if close(fds[index]) != 0 { harmed.add(1, ordering: .relaxed) }
                }
                rounds.add(1, ordering: .relaxed)
                for _ in 0..<20 { sched_yield() }  // and let the numbers go to others a moment
            }
            done.signal()
        }.start()
    }

    /// Stops the thread; how many pipes it opened, and how many of their descriptors were harmed.
    func stop() -> (rounds: Int, harmed: Int) {
        stopping.store(true, ordering: .relaxed)
        done.wait()
        return (rounds.load(ordering: .relaxed), harmed.load(ordering: .relaxed))
    }
}

/// pipe2(2), which Glibc's module map leaves out: a pipe that is close-on-exec from the start.
@_silgen_name("pipe2")
private func c_pipe2(_ fds: UnsafeMutablePointer<Int32>, _ flags: Int32) -> Int32
