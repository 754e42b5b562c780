import ArgumentParser

/// How echo-tasks (`--io poller`) makes `--block`'s call: `--block-mode handoff|inline`.
enum BlockMode: String, ExpressibleByArgument, CaseIterable, Sendable {
    /// Through the netpoller's bracket (`PollLoop.blocking`, Go's entersyscall/exitsyscall): if the
    /// call outlasts `--handoff-after`, the loop's monitor hands the loop to a spare thread, so the loop's other
    /// connections are served meanwhile, as Go's sysmon does for a goroutine in a syscall.
    case handoff
    /// On the loop's thread, unmarked: every connection of the loop waits, as on an event loop.
    case inline
}
