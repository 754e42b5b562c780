#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// The sockets of the connections being served, so that a stop can shut them all down.
///
/// A bitmap indexed by descriptor behind one mutex: a bit costs nothing per connection, and the
/// lock is taken twice per connection (open, close), never per message. A thread clears its bit
/// *before* closing its socket, so `shutDownAll` never touches a descriptor number that has been
/// closed and perhaps reused for something else.
final class OpenConnections: Sendable {
    private struct State {
        var bits: [UInt64] = []
        var stopped = false
    }

    private let state = Mutex(State())

    /// Records `fd` as open; false once `shutDownAll` has run (the caller then closes `fd` itself).
    func insert(_ fd: Int32) -> Bool {
        let (word, bit) = Self.position(of: fd)
        return state.withLock { state in
            guard !state.stopped else { return false }
            if word >= state.bits.count {
                // Grow geometrically; only the accept loop inserts, so only it allocates.
                state.bits.append(contentsOf: repeatElement(0, count: max(word + 1, 2 * state.bits.count) - state.bits.count))
            }
            state.bits[word] |= bit
            return true
        }
    }

    /// Forgets `fd`; call just before closing it.
    func remove(_ fd: Int32) {
        let (word, bit) = Self.position(of: fd)
        state.withLock { state in
            if word < state.bits.count { state.bits[word] &= ~bit }
        }
    }

    /// Refuses further inserts and shuts down every recorded socket in both directions, which
    /// wakes its thread's blocked `read` (0) or `write` (EPIPE). Returns how many it shut down.
    @discardableResult
    func shutDownAll() -> Int {
        state.withLock { state in
            state.stopped = true
            var count = 0
            for (index, word) in state.bits.enumerated() where word != 0 {
                var remaining = word
                while remaining != 0 {
                    let fd = Int32(index * 64 + remaining.trailingZeroBitCount)
                    shutdown(fd, Int32(SHUT_RDWR))
                    remaining &= remaining - 1
                    count += 1
                }
            }
            return count
        }
    }

    private static func position(of fd: Int32) -> (word: Int, bit: UInt64) {
        (Int(fd) / 64, 1 << UInt64(Int(fd) % 64))
    }
}
