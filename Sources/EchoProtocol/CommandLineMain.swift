#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Foundation

/// Every executable's entry point: ArgumentParser's own, with a usage error said once. A value an
/// `OptionValue` parser refuses already names its option (`--rate must be a number above 0, got -1`);
/// ArgumentParser would wrap it as `The value '-1' is invalid for '--rate <msgs/s>': --rate must …`.
///
/// ```
/// @main struct EchoLibev: ParsableCommand {
///     static func main() { CommandLineMain.run(Self.self) }
/// ```
public enum CommandLineMain {
    public static func run(_ root: ParsableCommand.Type) -> Never {
        do {
            var command = try root.parseAsRoot()
            try command.run()
            Glibc.exit(0)
        } catch {
            fail(root, error)
        }
    }

    /// The same for a root whose subcommands may be async.
    public static func run(_ root: AsyncParsableCommand.Type) async -> Never {
        do {
            var command = try root.parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            Glibc.exit(0)
        } catch {
            fail(root, error)
        }
    }

    /// Prints what ArgumentParser would (help on stdout, errors on stderr) and exits with its status.
    public static func fail(_ root: ParsableCommand.Type, _ error: Error) -> Never {
        let code = root.exitCode(for: error)
        let message = plain(root.fullMessage(for: error))
        if !message.isEmpty {
            writeAll(code == .success ? STDOUT_FILENO : STDERR_FILENO, Array((message + "\n").utf8))
        }
        Glibc.exit(code.rawValue)
    }

    /// `Error: The value '-1' is invalid for '--rate <msgs/s>': --rate must be …` → `Error: --rate must be …`:
    /// only when the reason itself starts with the option (or argument) it is about.
    static func plain(_ message: String) -> String {
        var lines = message.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard let first = lines.first, first.hasPrefix("Error: The value '"),
            let invalidFor = first.range(of: "' is invalid for '"),
            let reasonStart = first.range(of: "': ", range: invalidFor.upperBound..<first.endIndex)
        else { return message }
        let reason = first[reasonStart.upperBound...]
        guard reason.hasPrefix("-") || reason.hasPrefix("N ") else { return message }
        lines[0] = "Error: " + reason
        return lines.joined(separator: "\n")
    }
}

/// What `--version` prints on every executable, and what loadgen's results carry as provenance:
/// the package's version and the git commit of the checkout the binary was built in.
public enum BuildVersion {
    public static let package = "echo-lab 1"

    /// `echo-lab 1 (git f149065…)`, or without the commit when no checkout is found.
    public static var text: String {
        gitCommit.map { "\(package) (git \($0))" } ?? package
    }

    /// HEAD of the repository whose `.build/<config>/TOOL` this is, read without running git.
    public static let gitCommit: String? = {
        var directory = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<4 {
            var gitDirectory = directory.appendingPathComponent(".git")
            // A worktree's .git is a file naming its git directory.
            if let pointer = try? String(contentsOf: gitDirectory, encoding: .utf8), pointer.hasPrefix("gitdir: ") {
                let path = pointer.dropFirst(8).trimmingCharacters(in: .whitespacesAndNewlines)
                gitDirectory = URL(fileURLWithPath: path, relativeTo: directory)
            }
            if let head = try? String(contentsOf: gitDirectory.appendingPathComponent("HEAD"), encoding: .utf8) {
                let line = head.trimmingCharacters(in: .whitespacesAndNewlines)
                guard line.hasPrefix("ref: ") else { return line.count == 40 ? line : nil }
                let ref = String(line.dropFirst(5))
                // A worktree keeps HEAD; its branches live in the common directory.
                let common = (try? String(contentsOf: gitDirectory.appendingPathComponent("commondir"), encoding: .utf8))
                    .map { URL(fileURLWithPath: $0.trimmingCharacters(in: .whitespacesAndNewlines), relativeTo: gitDirectory) }
                for base in [gitDirectory, common].compactMap({ $0 }) {
                    if let hash = try? String(contentsOf: base.appendingPathComponent(ref), encoding: .utf8) {
                        return hash.trimmingCharacters(in: .whitespacesAndNewlines)
                    }
                    let packed = (try? String(contentsOf: base.appendingPathComponent("packed-refs"), encoding: .utf8)) ?? ""
                    if let line = packed.split(separator: "\n").first(where: { $0.hasSuffix(" " + ref) }) {
                        return String(line.prefix(40))
                    }
                }
                return nil
            }
            directory.deleteLastPathComponent()
        }
        return nil
    }()
}
