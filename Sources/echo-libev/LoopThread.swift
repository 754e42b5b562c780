#if canImport(Glibc)
import Glibc
#endif
import EchoProtocol

/// A joinable POSIX thread running one closure: each event loop gets one, and `main` waits for all
/// of them before it prints the final stats. (Foundation's `Thread` cannot be joined.)
struct LoopThread {
    private let thread: pthread_t

    /// Starts `body` on a new thread named `name` (visible in `top -H` and /proc/PID/task/*/comm).
    static func start(name: String, _ body: @escaping @Sendable () -> Void) -> LoopThread {
        let context = Unmanaged.passRetained(Body(name: name, run: body)).toOpaque()
        var thread = pthread_t()
        let result = pthread_create(&thread, nil, { context in
            let body = Unmanaged<Body>.fromOpaque(context!).takeRetainedValue()
            // Linux limits thread names to 15 bytes; longer ones are refused, so cut them.
            _ = c_pthread_setname_np(pthread_self(), String(body.name.utf8.prefix(15))!)
            body.run()
            return nil
        }, context)
        if result != 0 {
            Unmanaged<Body>.fromOpaque(context).release()
            Lifecycle.fail(tool: "echo-libev", message: "cannot start thread \(name): \(String(cString: strerror(result)))")
        }
        return LoopThread(thread: thread)
    }

    /// Waits until the thread's closure has returned.
    func join() {
        pthread_join(thread, nil)
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

/// Glibc's module map hides pthread_setname_np behind _GNU_SOURCE, so it is declared here.
@_silgen_name("pthread_setname_np")
private func c_pthread_setname_np(_ thread: pthread_t, _ name: UnsafePointer<CChar>) -> Int32
