import CLibURing
import EchoProtocol
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Which io_uring set-up flags the loops use, decided once at start by asking the kernel.
///
/// The flags decide the result (issue 20): with IORING_SETUP_SINGLE_ISSUER | DEFER_TASKRUN the
/// kernel runs completion work (the "task work" that posts a recv's completion) only when the
/// loop enters the kernel to wait, in one batch, instead of interrupting the thread whenever a
/// packet lands; COOP_TASKRUN likewise avoids the interrupt. A plain C echo server measured here
/// spent 1.6 times the CPU per message without them.
struct RingSetup {
    /// The flags the rings are created with.
    let flags: UInt32
    /// Wanted flags this kernel refused, for the one line that says so.
    let missing: [String]

    static let singleIssuer = UInt32(CURING_SETUP_SINGLE_ISSUER)
    static let deferTaskrun = UInt32(CURING_SETUP_DEFER_TASKRUN)
    static let coopTaskrun = UInt32(CURING_SETUP_COOP_TASKRUN)

    /// Asks the kernel for a small ring with `wanted` flags, dropping those it refuses (EINVAL)
    /// one at a time; throws one line when io_uring itself is refused.
    static func negotiate(wanted: UInt32) throws(StartupError) -> RingSetup {
        var candidates: [UInt32] = [wanted]
        // DEFER_TASKRUN needs SINGLE_ISSUER; COOP_TASKRUN is the cheaper thing to lose.
        for drop in [coopTaskrun, deferTaskrun, singleIssuer | deferTaskrun, wanted] {
            let flags = wanted & ~drop
            if !candidates.contains(flags) { candidates.append(flags) }
        }
        for flags in candidates {
            var ring: OpaquePointer?
            let result = curing_ring_create(&ring, 4, 8, flags)
            if result == 0 {
                curing_ring_destroy(ring)
                return RingSetup(flags: flags, missing: names(of: wanted & ~flags))
            }
            if result != -EINVAL { throw refusal(-result) }
        }
        throw StartupError("io_uring is unavailable: the kernel refuses every ring set-up tried (EINVAL)")
    }

    /// The one line for a kernel or sandbox that refuses io_uring.
    static func refusal(_ code: Int32) -> StartupError {
        var reason = errnoDescription(code)
        if code == EPERM, let read = try? String(contentsOfFile: "/proc/sys/kernel/io_uring_disabled", encoding: .utf8) {
            let disabled = read.trimmingCharacters(in: .whitespacesAndNewlines)
            // With the sysctl at 0 the kernel allows io_uring, so what refused it sits in between.
            reason += disabled == "0"
                ? " (kernel.io_uring_disabled = 0: a seccomp filter or container profile refuses it)"
                : " (kernel.io_uring_disabled = \(disabled))"
        }
        return StartupError("io_uring is unavailable: io_uring_setup failed: \(reason)")
    }

    static func names(of flags: UInt32) -> [String] {
        [(singleIssuer, "SINGLE_ISSUER"), (deferTaskrun, "DEFER_TASKRUN"), (coopTaskrun, "COOP_TASKRUN")]
            .filter { flags & $0.0 != 0 }.map { "IORING_SETUP_\($0.1)" }
    }

    var description: String { Self.names(of: flags).joined(separator: "|").nonEmpty ?? "none" }
}

extension String {
    var nonEmpty: String? { isEmpty ? nil : self }
}
