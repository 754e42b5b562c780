#if canImport(Glibc)
import Glibc
#endif
import EchoProtocol

/// The one writer of live progress lines on stderr (`run`'s figures, the sweep's step): each call
/// rewrites the line in place (carriage return, erase line), and only on a terminal, so a log or a
/// pipe never fills with escape codes.
struct TerminalLine: Sendable {
    let enabled: Bool

    init(enabled: Bool) { self.enabled = enabled && isatty(STDERR_FILENO) == 1 }

    func show(_ text: String) {
        if enabled { writeAll(STDERR_FILENO, Array(("\r\u{1B}[2K" + text).utf8)) }
    }

    func clear() {
        if enabled { writeAll(STDERR_FILENO, Array("\r\u{1B}[2K".utf8)) }
    }
}
