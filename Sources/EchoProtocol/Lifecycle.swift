#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Process-wide set-up shared by the servers and the load generator.
public enum Lifecycle {
    /// Call first thing in `main`, before any thread starts:
    /// - SIGPIPE is ignored: a peer that vanished mid-write is an EPIPE to handle, not a death;
    /// - SIGINT and SIGTERM are blocked in this thread and every thread it later creates, so
    ///   `onStopSignal`'s thread receives them with `sigwait` instead of an async handler;
    /// - the open-files soft limit is raised to the hard limit (each connection is a descriptor).
    public static func prepare() {
        signal(SIGPIPE, SIG_IGN)
        var set = stopSignals
        pthread_sigmask(SIG_BLOCK, &set, nil)
        raiseOpenFileLimit()
    }

    /// Raises RLIMIT_NOFILE's soft limit to its hard limit; returns the new soft limit.
    @discardableResult
    public static func raiseOpenFileLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 0 }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
            getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        return Int(clamping: limit.rlim_cur)
    }

    /// Starts a thread that waits for SIGINT/SIGTERM and calls `handler` once.
    /// A second signal while stopping exits at once with status 1, for a user who has had enough.
    public static func onStopSignal(_ handler: @escaping @Sendable () -> Void) {
        let thread = Thread {
            var set = stopSignals
            var signalNumber: Int32 = 0
            guard sigwait(&set, &signalNumber) == 0 else { return }
            let second = Thread {
                var set = stopSignals
                var signalNumber: Int32 = 0
                if sigwait(&set, &signalNumber) == 0 { _exit(1) }
            }
            second.start()
            handler()
        }
        thread.name = "signals"
        thread.start()
    }

    /// Prints one line on stdout and flushes, so a reader on a pipe sees it at once.
    public static func printLine(_ line: String) {
        // write(2) rather than stdio: unbuffered, and safe from any thread.
        writeAll(STDOUT_FILENO, Array((line + "\n").utf8))
    }

    /// Prints one line on stderr, for conditions the operator should see but that do not stop the server.
    public static func warn(_ line: String) {
        writeAll(STDERR_FILENO, Array((line + "\n").utf8))
    }

    /// Prints `TOOL: MESSAGE` on stderr and exits 1.
    public static func fail(tool: String, message: String) -> Never {
        writeAll(STDERR_FILENO, Array("\(tool): \(message)\n".utf8))
        exit(1)
    }

    private static var stopSignals: sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        return set
    }
}
