#if canImport(Glibc)
import Glibc
#endif

/// N netpoller loops, one thread each: Go's GOMAXPROCS Ps, each with its own poller.
///
/// `run()` turns the calling thread into loop 0 and starts the others on threads of their own, so a
/// server's main thread is one of its loops rather than a thread that only waits.
///
/// The group's `LoopMonitor` (Go's sysmon) runs on a thread of its own: it hands a loop whose thread
/// is stuck in a `PollLoop.blocking` call to a spare thread, and reports a loop stuck in a job.
/// So a loop is not tied to one thread for life, as a P is not tied to an M.
public final class PollLoopGroup: Sendable {
    public let loops: [PollLoop]
    let monitor: LoopMonitor

    /// `warn` prints the monitor's one-line reports (a loop stuck in a job); a `PollLoop.blocking`
    /// call longer than `handOffAfterNanoseconds` is handed off.
    public init(
        count: Int, scratchBytes: Int, shortReadDrains: Bool = true,
        handOffAfterNanoseconds: UInt64 = LoopMonitor.defaultHandOffAfterNanoseconds,
        warn: @escaping @Sendable (String) -> Void = { print($0) }
    ) throws(SocketError) {
        precondition(count >= 1, "a group needs a loop")
        var loops: [PollLoop] = []
        for index in 0..<count {
            loops.append(try PollLoop(index: index, scratchBytes: scratchBytes, shortReadDrains: shortReadDrains))
        }
        self.loops = loops
        monitor = LoopMonitor(loops: loops, handOffAfterNanoseconds: handOffAfterNanoseconds, warn: warn)
        for loop in loops { loop.monitor = monitor }
    }

    /// Loops handed from a thread stuck in a blocking call to another thread so far.
    public var handOffs: Int { monitor.handOffs.load(ordering: .relaxed) }

    /// Starts every loop but loop 0 on a thread of its own; then `run()` runs loop 0 on the calling
    /// thread. Separate, so that a server can fail with one line before anything runs.
    public func startOtherLoops() throws(PosixThread.StartError) -> [PosixThread] {
        try monitor.start()
        var threads: [PosixThread] = []
        for loop in loops.dropFirst() {
            threads.append(try PosixThread(name: "poller-\(loop.index)") { [monitor] in monitor.runThread(startingWith: loop) })
        }
        return threads
    }

    /// Runs loop 0 on the calling thread (which may end up running another loop, or none, after
    /// a hand-off); returns when every loop has stopped (`stop()`) and every thread has ended.
    public func run(joining others: [PosixThread]) {
        monitor.runThread(startingWith: loops[0])
        others.forEach { $0.join() }
        monitor.joinThreads()
    }

    /// Asks every loop to stop once it has no ready job. Any thread.
    public func stop() {
        loops.forEach { $0.requestStop() }
    }
}

