#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// `--offload N`: N threads that run blocking calls for an event loop or a task, the article's
/// bounded fix ("bound and offload it"). A job waits in a queue when all N are busy, so at most N
/// blocking calls run at once however many connections ask.
public final class BlockingPool: Sendable {
    private let queue: JobQueue

    public init(threads: Int, name: String = "offload") {
        queue = JobQueue()
        for index in 0..<max(threads, 1) {
            let queue = self.queue
            let thread = Thread { while true { queue.take()() } }
            thread.name = "\(name)-\(index)"
            thread.start()
        }
    }

    /// Runs `job` on one of the pool's threads, soon or when one is free. Any thread.
    public func submit(_ job: @escaping @Sendable () -> Void) {
        queue.put(job)
    }

    /// A queue of jobs behind a mutex and a condition variable (the pool's threads sleep on it).
    private final class JobQueue: @unchecked Sendable {
        // @unchecked: `jobs` is only touched with `condition` locked.
        private let condition = NSCondition()
        private var jobs: [@Sendable () -> Void] = []

        func put(_ job: @escaping @Sendable () -> Void) {
            condition.lock()
            jobs.append(job)
            condition.signal()
            condition.unlock()
        }

        func take() -> @Sendable () -> Void {
            condition.lock()
            defer { condition.unlock() }
            while jobs.isEmpty { condition.wait() }
            return jobs.removeFirst()
        }
    }
}
