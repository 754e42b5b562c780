#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import EchoProtocol

/// How every loadgen command ends, one table for all (docs/loadgen.md, "Exit status"):
///
/// | status | when |
/// |---|---|
/// | 0 | the command measured what it was asked and every byte came back right |
/// | 1 | anything else: errors counted, nothing measured, a step that failed, a refused input |
/// | 64 | bad usage, found before the first connection |
/// | 130 | interrupted (SIGINT or SIGTERM): what was measured is printed, labelled partial |
///
/// A failure is one line on stderr, `loadgen: …`, that says why.
enum ExitStatus {
    static let failure: Int32 = 1
    static let usage: Int32 = 64
    /// The shell's status for a process ended by SIGINT (128 + 2); also used after SIGTERM.
    static let interrupted: Int32 = 130

    /// The stop reason every interrupted command records.
    static let interruptedReason = "interrupted"

    /// Ends a command that printed its results: 130 when interrupted, 1 when it did not succeed.
    /// `why`, when the command failed without an error line of its own, is printed on stderr.
    static func finish(succeeded: Bool, interrupted: Bool, why: String? = nil) throws {
        if interrupted { throw ExitCode(ExitStatus.interrupted) }
        if let why, !succeeded { Lifecycle.warn("loadgen: \(why)") }
        if !succeeded { throw ExitCode(ExitStatus.failure) }
    }

    /// A command that could not measure anything: one line, then 130 if that was the user's doing, else 1.
    static func fail(_ error: StartupError, interrupted: Bool = false) -> Never {
        writeAll(STDERR_FILENO, Array("loadgen: \(error.oneLine)\n".utf8))
        exit(interrupted ? ExitStatus.interrupted : ExitStatus.failure)
    }
}

/// Why a run or churn that completed nothing completed nothing, in one line (nil when it completed
/// something, or was interrupted: then the partial result says so itself).
enum NothingCompleted {
    static func reason(_ result: LoadResult) -> String? {
        guard result.messages == 0, result.stopReason != ExitStatus.interruptedReason else { return nil }
        let phase = "no message came back in the \(TextFormat.fixed(result.measuredSeconds, 1)) s measured phase"
        if let first = result.errors.firstError { return "\(phase): \(first)" }
        if let stop = result.stopReason { return "\(phase): \(stop)" }
        return "\(phase): \(ByteCount.describe(result.settings.messageSize)) messages take longer than that to come back; give a longer --duration or a smaller --size"
    }

    static func reason(_ result: ChurnResult, lifeTimeout: Duration) -> String? {
        guard result.lives == 0, result.stopReason != ExitStatus.interruptedReason else { return nil }
        let phase = "no life completed in the \(TextFormat.fixed(result.measuredSeconds, 1)) s measured phase"
        if let first = result.errors.firstError { return "\(phase): \(first)" }
        if let stop = result.stopReason { return "\(phase): \(stop)" }
        return "\(phase): connected, but no echo came back (a life may wait \(lifeTimeout.shortDescription)); is it an echo server?"
    }
}
