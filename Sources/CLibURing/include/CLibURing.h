// liburing's submission helpers (io_uring_prep_*, io_uring_get_sqe, the buffer-ring calls, the CQ
// walk) are static inline functions over C11 atomics and anonymous unions, and its flags are macros.
// This header gives Swift a small, plain API instead: an opaque ring, one function per operation
// echo-uring submits, and completions copied out in batches. Everything is implemented in
// CLibURing.c, the only file that includes liburing.h.
#ifndef CLIBURING_H
#define CLIBURING_H

#include <stdint.h>

/// One io_uring instance plus the provided-buffer ring registered with it. Opaque to Swift.
typedef struct curing_ring curing_ring;

/// A completion, copied out of the completion queue.
typedef struct curing_cqe {
    uint64_t user_data;
    int32_t res;
    uint32_t flags;
} curing_cqe;

// Set-up flags (IORING_SETUP_*), values of the kernel's ABI; CLibURing.c checks them against liburing.
enum {
    CURING_SETUP_COOP_TASKRUN = 1u << 8,
    CURING_SETUP_SINGLE_ISSUER = 1u << 12,
    CURING_SETUP_DEFER_TASKRUN = 1u << 13,
};

// Completion flags (IORING_CQE_F_*).
enum {
    CURING_CQE_F_BUFFER = 1u << 0,  // the upper 16 bits of flags are the provided buffer's id
    CURING_CQE_F_MORE = 1u << 1,    // a multishot request stays armed and will post more
    CURING_CQE_F_SOCK_NONEMPTY = 1u << 2,  // after a recv, bytes were still queued in the socket
    CURING_CQE_BUFFER_SHIFT = 16,
};

/// Creates a ring with `entries` submission slots, a completion queue of `cq_entries`, and `flags`.
/// Returns 0, or -errno (ENOSYS: no io_uring; EPERM: io_uring_disabled or a seccomp filter;
/// EINVAL: a flag this kernel lacks).
int curing_ring_create(curing_ring **out, unsigned entries, unsigned cq_entries, unsigned flags);

/// Tears the ring down (its requests are cancelled, its memory unmapped).
void curing_ring_destroy(curing_ring *ring);

/// Registers a provided-buffer ring of `count` buffers (a power of two) of `size` bytes as group `group`,
/// every page touched at once so its memory is the loop's from the start. Returns 0 or -errno.
int curing_buffers_create(curing_ring *ring, uint16_t group, unsigned count, unsigned size);

/// The address of buffer `bid`.
void *curing_buffer(curing_ring *ring, uint16_t bid);

/// Hands buffer `bid` back to the kernel (it goes to the tail of the buffer ring).
void curing_buffer_give_back(curing_ring *ring, uint16_t bid);

/// The operations. Each takes a submission slot, submitting the queued ones first when the queue
/// is full; the caller's `user_data` comes back in the completion.
void curing_multishot_accept(curing_ring *ring, int listen_fd, uint64_t user_data);
/// A recv into a buffer of `group`; `multishot` keeps it armed after each completion.
void curing_recv(curing_ring *ring, int fd, uint16_t group, int multishot, uint64_t user_data);
void curing_send(curing_ring *ring, int fd, const void *bytes, unsigned count, int msg_flags, uint64_t user_data);
/// Cancels the request whose user_data is `target`.
void curing_cancel(curing_ring *ring, uint64_t target, uint64_t user_data);
void curing_read(curing_ring *ring, int fd, void *buffer, unsigned count, uint64_t user_data);
/// A completion after `nanoseconds`.
void curing_timeout(curing_ring *ring, int64_t nanoseconds, uint64_t user_data);

/// A close-on-exec eventfd, the loop's wake-up from other threads (Glibc's Swift module hides eventfd).
int curing_eventfd(void);

/// Submits what is queued and waits for at least `wait_nr` completions. Returns >= 0 or -errno.
int curing_submit_and_wait(curing_ring *ring, unsigned wait_nr);

/// Copies up to `max` completions into `out`, marks them seen, returns how many.
unsigned curing_reap(curing_ring *ring, curing_cqe *out, unsigned max);

#endif
