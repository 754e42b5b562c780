import ArgumentParser
import EchoProtocol
import NIOCore
import NIOPosix

/// Where the connection tasks run: `--executor eventloop|global`.
enum ExecutorMode: String, ExpressibleByArgument, CaseIterable, Sendable {
    /// NIO's event-loop group becomes Swift concurrency's global executor, and each connection task
    /// prefers its channel's event loop as task executor (`EventLoopTaskExecutor`): a task resumed by
    /// a read runs on the thread that did the read, as a goroutine runs beside Go's netpoller.
    case eventloop
    /// Swift's cooperative pool runs the tasks; each message crosses from an event loop to the pool
    /// and back. Kept to show what that hop costs.
    case global

    /// Sizes NIO's singleton group and, for `eventloop`, makes it the global executor.
    /// Call once, on the main thread, before any asynchronous work and before the group is first used.
    func install(threads: Int) {
        NIOSingletons.groupLoopCountSuggestion = threads
        if self == .eventloop {
            guard NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor() else {
                Lifecycle.fail(tool: "echo-tasks", message: "cannot install NIO's event loops as the global executor")
            }
        }
    }
}

extension ExecutorMode {
    /// The task executor a connection on `loop` should prefer: its own event loop for `eventloop`,
    /// none (Swift's global executor) for `global`.
    func preference(for loop: any EventLoop, among executors: EventLoopTaskExecutor.Table) -> (any TaskExecutor)? {
        self == .eventloop ? executors[loop] : nil
    }
}
