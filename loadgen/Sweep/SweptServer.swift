#if canImport(Glibc)
import Glibc
#endif
import EchoProtocol
import Foundation
import Synchronization

/// A server the sweep measures, and how to start it.
struct SweptServer: Sendable, Equatable {
    enum Launch: Sendable, Equatable {
        /// One of this package's servers (`echo-NAME` beside loadgen), started with `--port 0`;
        /// it announces its port and stats port on its readiness line.
        case variant(executable: String, arguments: [String])
        /// Any other server: a shell command in which `{port}` is replaced by a free port. Its figures
        /// are read from /proc.
        case foreign(command: String)
    }

    var name: String
    var launch: Launch
    /// `--scenario NAME=…`: the scenario this run of the server belongs to; `name` is then
    /// `SERVER/SCENARIO` and `base` the server's own name.
    var scenario: String? = nil
    var base: String { Self.baseName(name, scenario: scenario) }

    /// `libev/block` under scenario `block` → `libev`.
    static func baseName(_ name: String, scenario: String?) -> String {
        guard let scenario, name.hasSuffix("/" + scenario) else { return name }
        return String(name.dropLast(scenario.count + 1))
    }

    /// The same server with a scenario's options added at the end of its command line. A foreign
    /// server gets them too (go-echo takes `--work`, `--block`, `--block-every` after its port), so
    /// Go is measured under the same switches; one that does not know them must refuse them (the C
    /// peers do), and its step fails with that reason rather than running without the scenario.
    func under(_ scenario: SweepScenario) -> SweptServer {
        var copy = self
        copy.name = "\(name)/\(scenario.name)"
        copy.scenario = scenario.name
        switch launch {
        case .variant(let executable, let arguments):
            copy.launch = .variant(executable: executable, arguments: arguments + scenario.options)
        case .foreign(let command):
            copy.launch = .foreign(command: ([command] + scenario.options).joined(separator: " "))
        }
        return copy
    }

    /// `threads` → echo-threads in `directory`, with a connection limit no sweep reaches.
    static func variant(_ name: String, in directory: URL) -> SweptServer {
        SweptServer(
            name: name,
            launch: .variant(
                executable: directory.appendingPathComponent("echo-\(name)").path,
                arguments: ["--port", "0", "--max-connections", "1000000"]))
    }

    /// Parses `NAME=COMMAND {port}`.
    init?(foreign text: String) {
        guard let equals = text.firstIndex(of: "="), equals != text.startIndex else { return nil }
        let command = text[text.index(after: equals)...].trimmingCharacters(in: .whitespaces)
        guard !command.isEmpty, command.contains("{port}") else { return nil }
        self.init(name: String(text[..<equals]), launch: .foreign(command: command))
    }

    init(name: String, launch: Launch, scenario: String? = nil) {
        self.name = name
        self.launch = launch
        self.scenario = scenario
    }

    /// The command line, for results.json (`{port}` left in for a foreign server).
    var commandLine: String {
        switch launch {
        case .variant(let executable, let arguments): ([executable] + arguments).joined(separator: " ")
        case .foreign(let command): command
        }
    }

    /// The folder holding this package's built executables: the one loadgen itself runs from
    /// (or the test runner, which SwiftPM puts in the same folder). `ECHO_LAB_BIN_DIR` overrides it.
    static var productsDirectory: URL {
        if let override = ProcessInfo.processInfo.environment["ECHO_LAB_BIN_DIR"], !override.isEmpty {
            return URL(fileURLWithPath: override)
        }
        var url = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        // A test bundle's runner may sit inside NAME.xctest/; the products are beside that folder.
        while url.pathExtension == "xctest" { url.deleteLastPathComponent() }
        return url
    }
}
