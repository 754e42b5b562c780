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
            Exit status: 0 when every byte came back as sent; 1 on any error; 64 on bad usage.
            """,
        version: BuildVersion.text,
        subcommands: [Run.self, Idle.self, Churn.self, Curve.self, Sweep.self, Merge.self, AB.self])
}
