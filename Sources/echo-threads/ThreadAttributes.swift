#if canImport(Glibc)
import Glibc
#endif
import EchoProtocol

/// The `pthread_attr_t` every connection thread is created with: detached, and with the requested
/// stack size when one was given (otherwise glibc's default, which follows RLIMIT_STACK).
///
/// Built once by the main thread and only read after that (`pthread_create` copies what it needs),
/// so the unsafe pointer is shared safely.
final class ThreadAttributes: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<pthread_attr_t>
    /// The stack each connection thread gets, for the announcement.
    let effectiveStackSize: Int

    init(stackSize: Int?) {
        pointer = .allocate(capacity: 1)
        pthread_attr_init(pointer)
        pthread_attr_setdetachstate(pointer, Int32(PTHREAD_CREATE_DETACHED))
        if let stackSize {
            // validate() has checked the size against PTHREAD_STACK_MIN, so this cannot fail.
            pthread_attr_setstacksize(pointer, stackSize)
            effectiveStackSize = stackSize
        } else {
            effectiveStackSize = Self.defaultStackSize
        }
    }

    deinit {
        pthread_attr_destroy(pointer)
        pointer.deallocate()
    }

    /// PTHREAD_STACK_MIN, which glibc 2.34+ computes at run time (`sysconf(_SC_THREAD_STACK_MIN)`).
    static var minimumStackSize: Int {
        let value = sysconf(Int32(_SC_THREAD_STACK_MIN))
        return value > 0 ? value : 16 * 1024
    }

    /// The stack size glibc gives a thread created without a size: RLIMIT_STACK at start-up
    /// (2 MiB when that is unlimited), as `pthread_getattr_default_np` reports it.
    static var defaultStackSize: Int {
        var attributes = pthread_attr_t()
        var size = 0
        if c_pthread_getattr_default_np(&attributes) == 0 {
            pthread_attr_getstacksize(&attributes, &size)
            pthread_attr_destroy(&attributes)
        }
        return size
    }

    /// Creates and joins one thread with `stackSize`; returns why that failed, or nil if it worked.
    /// glibc refuses a stack too small for the static thread-local storage with EINVAL, and one
    /// it cannot map with EAGAIN or ENOMEM.
    static func trialThreadFailure(stackSize: Int) -> String? {
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        if pthread_attr_setstacksize(&attributes, stackSize) != 0 { return "pthread_attr_setstacksize refused it" }
        var thread = pthread_t()
        let result = pthread_create(&thread, &attributes, { _ in nil }, nil)
        guard result == 0 else {
            let hint = result == EINVAL ? " (too small for this program's thread-local storage)" : ""
            return "pthread_create failed: \(errnoDescription(result))\(hint)"
        }
        pthread_join(thread, nil)
        return nil
    }
}

/// Glibc's module map hides it behind _GNU_SOURCE, so it is declared here (glibc ≥ 2.18).
@_silgen_name("pthread_getattr_default_np")
private func c_pthread_getattr_default_np(_ attributes: UnsafeMutablePointer<pthread_attr_t>) -> Int32
