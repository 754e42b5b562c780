import ArgumentParser
import EchoProtocol
import NIOCore
import NIOPosix

/// Where the connection tasks run: `--executor eventloop|global`.
enum TaskExecutor: String, ExpressibleByArgument, CaseIterable, Sendable {
    /// NIO's event-loop group becomes Swift concurrency's global executor: a task resumed by a read
    /// runs on the event loop that did the read, as a goroutine runs beside Go's netpoller.
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
