#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// One output stream of a child process (its stdout or stderr pipe), read to the end on a thread of
/// its own, so that a full pipe never blocks the child, and kept as lines a caller can wait for:
/// the sweep waits for a server's readiness line and quotes its stderr, the tests do both.
public final class OutputLines: @unchecked Sendable {
    // @unchecked: every mutable field is guarded by `condition`.
    private let condition = NSCondition()
    private let keep: Keep
    private var collected: [String] = []
    private var firstNonBlank: String?
    private var ended = false

    /// Which lines are kept: a child that prints without end must not grow the reader without end.
    public enum Keep: Sendable {
        case all
        /// The first N (a readiness line comes first).
        case first(Int)
        /// The last N (what a failing child said last).
        case last(Int)
    }

    /// Starts reading `fd` until end of file, and closes it then: the descriptor is the reader's.
    public init(reading fd: Int32, keep: Keep = .all, threadName: String) {
        self.keep = keep
        let thread = Thread { [self] in
            var partial: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                condition.lock()
                if count <= 0 {
                    close(fd)
                    if !partial.isEmpty { append(String(decoding: partial, as: UTF8.self)) }
                    ended = true
                    condition.broadcast()
                    condition.unlock()
                    return
                }
                // Split on bytes, not on decoded text: a character may straddle two reads.
                partial += buffer[0..<count]
                while let newline = partial.firstIndex(of: UInt8(ascii: "\n")) {
                    append(String(decoding: partial[..<newline], as: UTF8.self))
                    partial.removeSubrange(...newline)
                }
                condition.broadcast()
                condition.unlock()
            }
        }
        thread.name = threadName
        thread.start()
    }

    /// Called with the lock held.
    private func append(_ line: String) {
        if firstNonBlank == nil, !line.trimmingCharacters(in: .whitespaces).isEmpty { firstNonBlank = line }
        switch keep {
        case .all:
            collected.append(line)
        case .first(let limit):
            if collected.count < limit { collected.append(line) }
        case .last(let limit):
            collected.append(line)
            if collected.count > limit { collected.removeFirst() }
        }
    }

    /// The lines kept so far.
    public var lines: [String] {
        condition.lock()
        defer { condition.unlock() }
        return collected
    }

    /// The first line that is not blank, kept whatever `keep` says: a child that refuses its
    /// options says why there. Nil if it printed none.
    public var firstNonBlankLine: String? {
        condition.lock()
        defer { condition.unlock() }
        return firstNonBlank
    }

    /// The first kept line matching `predicate`, waiting up to `timeout` seconds; nil if none came
    /// before the time ran out or the stream ended.
    public func waitForLine(timeout: Double, where predicate: (String) -> Bool) -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        condition.lock()
        defer { condition.unlock() }
        while true {
            if let line = collected.first(where: predicate) { return line }
            if ended || !condition.wait(until: deadline) { return collected.first(where: predicate) }
        }
    }

    /// Waits until the stream ends (the child and its children closed it), up to `timeout` seconds.
    public func waitForEnd(timeout: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        condition.lock()
        defer { condition.unlock() }
        while !ended {
            if !condition.wait(until: deadline) { return ended }
        }
        return true
    }
}
