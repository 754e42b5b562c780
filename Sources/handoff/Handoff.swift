import ArgumentParser
import EchoProtocol

/// Reproduces the article's two experiments: what it costs to pass a turn between two
/// execution units (kernel threads vs Swift tasks), and what 100k sleeping units cost in memory.
@main
struct Handoff: AsyncParsableCommand {
    static func main() async { await CommandLineMain.run(Self.self) }

    static let configuration = CommandConfiguration(
        commandName: "handoff",
        abstract: "Measure turn handoffs (threads vs tasks) and the memory of many sleeping units.",
        discussion: """
            A handoff is one pass of a turn from one party to the other; a round trip is two \
            handoffs (A passes to B, B passes back). `pingpong N` and `tasks N` do N round trips, \
            i.e. 2N handoffs, and `local N` does the same 2N counter increments on one thread \
            with no handoff at all, as the baseline. Context switches come from \
            getrusage(RUSAGE_SELF) and cover the measured interval only.
            """,
        version: BuildVersion.text,
        subcommands: [Local.self, PingPong.self, Tasks.self, Sleepers.self]
    )
}
