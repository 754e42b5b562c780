import ArgumentParser

/// How echo-tasks waits for the network: `--io poller|nio`.
enum IOMode: String, ExpressibleByArgument, CaseIterable, Sendable {
    /// Our netpoller (module NetPoller): epoll loops that are Swift task executors, a task parked per
    /// waiting socket, as Go's runtime does it. What the tasks row of the comparison measures.
    case poller
    /// SwiftNIO's `NIOAsyncChannel`: the same task per connection, with NIO's channel pipeline and
    /// async bridge in between, to show what the framework adds on top of the task model.
    case nio
}
