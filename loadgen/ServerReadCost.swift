import EchoProtocol
import Foundation

/// How long the longest read of the server took, in wall time and in the reading thread's CPU.
/// The wall time includes waiting for a busy server to answer its stats port; only the CPU is taken
/// from the load.
struct ServerReadCost: Sendable, Equatable {
    var wallSeconds = 0.0
    var cpuSeconds = 0.0

    /// Adds a warning to `note` when the read cost loadgen more than 1% of the window's CPU: that CPU
    /// came from the load (or the server), so the rate and the per-message figures may be disturbed.
    func note(window seconds: Double, countedBy: ServerSnapshot.SwitchCounting?, into note: inout String?) {
        guard seconds > 0, cpuSeconds > 0.01 * seconds else { return }
        let warning = "reading the server took \(TextFormat.fixed(cpuSeconds * 1000, 0)) ms of CPU (\(countedBy?.rawValue ?? "?")) in a \(TextFormat.fixed(seconds, 1)) s window: the figures may be disturbed"
        note = [note, warning].compactMap { $0 }.joined(separator: "; ")
    }
}
