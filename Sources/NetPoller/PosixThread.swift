#if canImport(Glibc)
import Glibc
#endif

/// A POSIX thread that its starter joins (Foundation's `Thread` cannot be joined) or detaches: the
/// package's one thread wrapper, for the servers' loops, loadgen's client loops and handoff's
/// parties. It lives here, in the module with no dependencies, so that every executable can use it.
public struct PosixThread: Sendable {
    private let thread: pthread_t

    /// `pthread_create` failed (pid_max, RLIMIT_NPROC, memory for the stack): "cannot start thread
    /// NAME: reason".
    public struct StartError: Error, CustomStringConvertible, Sendable {
        /// The error number `pthread_create` returned.
        public let code: Int32
        public let thread: String

        public var description: String { "cannot start thread \(thread): \(String(cString: strerror(code)))" }

        /// The error number by name and in words, e.g. "EAGAIN (Resource temporarily unavailable)".
        public var reason: String {
            let name = code == EAGAIN ? "EAGAIN" : code == ENOMEM ? "ENOMEM" : code == EPERM ? "EPERM" : "errno \(code)"
            return "\(name) (\(String(cString: strerror(code))))"
        }
    }

    /// Starts `body` on a new thread with the default attributes, named `name` (cut to Linux's 15
    /// bytes; shown by `top -H` and /proc/PID/task/*/comm).
    public init(name: String, _ body: @escaping @Sendable () -> Void) throws(StartError) {
        let context = Unmanaged.passRetained(Body(name: name, run: body)).toOpaque()
        do {
            try self.init(bare: { context in
                let body = Unmanaged<Body>.fromOpaque(context!).takeRetainedValue()
                _ = c_pthread_setname_np(pthread_self(), String(body.name.utf8.prefix(15))!)
                body.run()
                return nil
            }, context: context, name: name)
        } catch {
            Unmanaged<Body>.fromOpaque(context).release()
            throw error
        }
    }

    /// Starts a thread that runs `entry(context)` and nothing else: no closure box to free and no
    /// name to set, so the new thread touches no malloc (and glibc gives it no arena). For threads
    /// that are themselves what is measured; the caller keeps what `context` points to alive.
    public init(
        bare entry: @convention(c) (UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer?,
        context: UnsafeMutableRawPointer?, name: String
    ) throws(StartError) {
        var thread = pthread_t()
        let result = pthread_create(&thread, nil, entry, context)
        guard result == 0 else { throw StartError(code: result, thread: name) }
        self.thread = thread
    }

    /// Waits until the thread has returned.
    public func join() {
        pthread_join(thread, nil)
    }

    /// Lets the thread give back its stack as soon as it returns, as a thread nobody joins must.
    public func detach() {
        pthread_detach(thread)
    }

    private final class Body: Sendable {
        let name: String
        let run: @Sendable () -> Void

        init(name: String, run: @escaping @Sendable () -> Void) {
            self.name = name
            self.run = run
        }
    }
}

@_silgen_name("pthread_setname_np")
private func c_pthread_setname_np(_ thread: pthread_t, _ name: UnsafePointer<CChar>) -> Int32
