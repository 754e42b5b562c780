#if canImport(Glibc)
import Glibc
#endif

/// The error number `pthread_create` returned.
struct ThreadStartError: Error {
    var code: Int32
    var name: String { code == EAGAIN ? "EAGAIN" : code == ENOMEM ? "ENOMEM" : code == EPERM ? "EPERM" : "errno \(code)" }
    var description: String { "\(name) (\(String(cString: strerror(code))))" }
}

/// A thread's entry point, as `pthread_create` takes it.
typealias ThreadEntry = @convention(c) (UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer?

/// Starts a joinable POSIX thread with the default attributes — so the default stack size, which
/// glibc takes from RLIMIT_STACK (8 MiB here) — that runs `entry(context)`. The caller must
/// `pthread_join` it, and keep whatever `context` points to alive until then.
func startThread(entry: ThreadEntry, context: UnsafeMutableRawPointer?) -> Result<pthread_t, ThreadStartError> {
    var thread = pthread_t()
    let result = pthread_create(&thread, nil, entry, context)
    return result == 0 ? .success(thread) : .failure(ThreadStartError(code: result))
}

/// Starts a joinable POSIX thread (default attributes) that runs `body`.
/// The closure box is freed on the new thread, so that thread touches malloc (and glibc may give it
/// an arena); `sleepers` uses `startThread(entry:context:)` instead to keep its threads bare.
func startThread(_ body: @escaping @Sendable () -> Void) -> Result<pthread_t, ThreadStartError> {
    final class Body {
        let run: @Sendable () -> Void
        init(_ run: @escaping @Sendable () -> Void) { self.run = run }
    }
    let context = Unmanaged.passRetained(Body(body)).toOpaque()
    let started = startThread(entry: { raw in
        Unmanaged<Body>.fromOpaque(raw!).takeRetainedValue().run()
        return nil
    }, context: context)
    if case .failure = started { Unmanaged<Body>.fromOpaque(context).release() }
    return started
}

/// Waits for a thread started by `startThread` to end.
func joinThread(_ thread: pthread_t) {
    pthread_join(thread, nil)
}
