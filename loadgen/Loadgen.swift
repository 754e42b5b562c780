import ArgumentParser
import EchoProtocol

@main
struct Loadgen: ParsableCommand {
    static func main() { CommandLineMain.run(Self.self) }

    static let configuration = CommandConfiguration(
        commandName: "loadgen",
        abstract: "Load generator for TCP echo servers: verifies every echoed byte, measures latency and what the server spends.",
        discussion: """
            Start a server, then point loadgen at it, e.g.
              .build/release/echo-libev --port 7007 &
              loadgen run --target 127.0.0.1:7007 -c 1000 --size 64 --duration 10s
              loadgen idle --target 127.0.0.1:7007 -c 10000 --hold 30s
            For repeatable figures on a small machine pin both: `taskset -c 0 SERVER ...` and `loadgen ... --cpus 1`.
            Exit status: 0 when the command measured what it was asked and every byte came back as sent; \
            1 otherwise, with one line saying why; 64 on bad usage (found before the first connection); \
            130 when interrupted, after printing the partial results.
            Durations need their unit (10s); sizes take K, M, G (powers of 1024), counts and rates k, M, G \
            (powers of 1000). The reference, JSON included: docs/loadgen.md.
            """,
        version: BuildVersion.text,
        subcommands: [Run.self, Idle.self, Churn.self, Curve.self, Sweep.self, Merge.self, AB.self])
}
