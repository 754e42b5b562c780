// The one file that includes liburing.h: see include/CLibURing.h for why.
#include "CLibURing.h"

#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>

_Static_assert(CURING_SETUP_COOP_TASKRUN == IORING_SETUP_COOP_TASKRUN, "IORING_SETUP_COOP_TASKRUN");
_Static_assert(CURING_SETUP_SINGLE_ISSUER == IORING_SETUP_SINGLE_ISSUER, "IORING_SETUP_SINGLE_ISSUER");
_Static_assert(CURING_SETUP_DEFER_TASKRUN == IORING_SETUP_DEFER_TASKRUN, "IORING_SETUP_DEFER_TASKRUN");
_Static_assert(CURING_CQE_F_BUFFER == IORING_CQE_F_BUFFER, "IORING_CQE_F_BUFFER");
_Static_assert(CURING_CQE_F_MORE == IORING_CQE_F_MORE, "IORING_CQE_F_MORE");
_Static_assert(CURING_CQE_F_SOCK_NONEMPTY == IORING_CQE_F_SOCK_NONEMPTY, "IORING_CQE_F_SOCK_NONEMPTY");
_Static_assert(CURING_CQE_BUFFER_SHIFT == IORING_CQE_BUFFER_SHIFT, "IORING_CQE_BUFFER_SHIFT");

struct curing_ring {
    struct io_uring ring;
    // The provided-buffer ring: the kernel takes buffers from its head, we return them at its tail.
    struct io_uring_buf_ring *buffer_ring;
    unsigned char *buffers;
    unsigned buffer_size;
    unsigned buffer_mask;
    // One timespec per ring: the kernel reads it when the timeout is submitted.
    struct __kernel_timespec timeout;
};

int curing_ring_create(curing_ring **out, unsigned entries, unsigned cq_entries, unsigned flags) {
    curing_ring *ring = calloc(1, sizeof *ring);
    if (!ring) return -ENOMEM;
    struct io_uring_params params;
    memset(&params, 0, sizeof params);
    params.flags = flags | IORING_SETUP_CQSIZE;
    params.cq_entries = cq_entries;
    int result = io_uring_queue_init_params(entries, &ring->ring, &params);
    if (result < 0) {
        free(ring);
        return result;
    }
    // Every io_uring_enter then names the ring by its registered index instead of an fd the
    // kernel must look up (Linux 5.18+; where it fails, liburing keeps using the fd).
    io_uring_register_ring_fd(&ring->ring);
    *out = ring;
    return 0;
}

void curing_ring_destroy(curing_ring *ring) {
    io_uring_queue_exit(&ring->ring);
    free(ring);
}

int curing_buffers_create(curing_ring *ring, uint16_t group, unsigned count, unsigned size) {
    size_t ring_bytes = count * sizeof(struct io_uring_buf);
    void *ring_memory = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (ring_memory == MAP_FAILED) return -errno;
    size_t buffer_bytes = (size_t)count * size;
    void *buffers = mmap(NULL, buffer_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE | MAP_POPULATE, -1, 0);
    if (buffers == MAP_FAILED) {
        int code = errno;
        munmap(ring_memory, ring_bytes);
        return -code;
    }
    ring->buffer_ring = ring_memory;
    ring->buffers = buffers;
    ring->buffer_size = size;
    ring->buffer_mask = (unsigned)io_uring_buf_ring_mask(count);
    io_uring_buf_ring_init(ring->buffer_ring);

    struct io_uring_buf_reg registration;
    memset(&registration, 0, sizeof registration);
    registration.ring_addr = (unsigned long)ring_memory;
    registration.ring_entries = count;
    registration.bgid = group;
    int result = io_uring_register_buf_ring(&ring->ring, &registration, 0);
    if (result < 0) return result;
    for (unsigned bid = 0; bid < count; bid++) {
        io_uring_buf_ring_add(ring->buffer_ring, ring->buffers + (size_t)bid * size, size, (unsigned short)bid,
                              (int)ring->buffer_mask, (int)bid);
    }
    io_uring_buf_ring_advance(ring->buffer_ring, (int)count);
    return 0;
}

void *curing_buffer(curing_ring *ring, uint16_t bid) {
    return ring->buffers + (size_t)bid * ring->buffer_size;
}

void curing_buffer_give_back(curing_ring *ring, uint16_t bid) {
    io_uring_buf_ring_add(ring->buffer_ring, curing_buffer(ring, bid), ring->buffer_size, bid,
                          (int)ring->buffer_mask, 0);
    io_uring_buf_ring_advance(ring->buffer_ring, 1);
}

/// A free submission slot; when the queue is full, what is queued is submitted to make room.
static struct io_uring_sqe *slot(curing_ring *ring) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring->ring);
    while (!sqe) {
        io_uring_submit(&ring->ring);
        sqe = io_uring_get_sqe(&ring->ring);
    }
    return sqe;
}

void curing_multishot_accept(curing_ring *ring, int listen_fd, uint64_t user_data) {
    struct io_uring_sqe *sqe = slot(ring);
    io_uring_prep_multishot_accept(sqe, listen_fd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, user_data);
}

void curing_recv(curing_ring *ring, int fd, uint16_t group, int multishot, uint64_t user_data) {
    struct io_uring_sqe *sqe = slot(ring);
    if (multishot) {
        io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
    } else {
        io_uring_prep_recv(sqe, fd, NULL, 0, 0);
    }
    io_uring_sqe_set_flags(sqe, IOSQE_BUFFER_SELECT);
    sqe->buf_group = group;
    io_uring_sqe_set_data64(sqe, user_data);
}

void curing_send(curing_ring *ring, int fd, const void *bytes, unsigned count, int msg_flags, uint64_t user_data) {
    struct io_uring_sqe *sqe = slot(ring);
    io_uring_prep_send(sqe, fd, bytes, count, msg_flags);
    io_uring_sqe_set_data64(sqe, user_data);
}

void curing_cancel(curing_ring *ring, uint64_t target, uint64_t user_data) {
    struct io_uring_sqe *sqe = slot(ring);
    io_uring_prep_cancel64(sqe, target, 0);
    io_uring_sqe_set_data64(sqe, user_data);
}

void curing_read(curing_ring *ring, int fd, void *buffer, unsigned count, uint64_t user_data) {
    struct io_uring_sqe *sqe = slot(ring);
    io_uring_prep_read(sqe, fd, buffer, count, 0);
    io_uring_sqe_set_data64(sqe, user_data);
}

void curing_timeout(curing_ring *ring, int64_t nanoseconds, uint64_t user_data) {
    ring->timeout.tv_sec = nanoseconds / 1000000000;
    ring->timeout.tv_nsec = nanoseconds % 1000000000;
    struct io_uring_sqe *sqe = slot(ring);
    io_uring_prep_timeout(sqe, &ring->timeout, 0, 0);
    io_uring_sqe_set_data64(sqe, user_data);
}

int curing_eventfd(void) {
    return eventfd(0, EFD_CLOEXEC);
}

int curing_submit_and_wait(curing_ring *ring, unsigned wait_nr) {
    return io_uring_submit_and_wait(&ring->ring, wait_nr);
}

unsigned curing_reap(curing_ring *ring, curing_cqe *out, unsigned max) {
    unsigned head;
    unsigned count = 0;
    struct io_uring_cqe *cqe;
    io_uring_for_each_cqe(&ring->ring, head, cqe) {
        if (count == max) break;
        out[count].user_data = cqe->user_data;
        out[count].res = cqe->res;
        out[count].flags = cqe->flags;
        count++;
    }
    io_uring_cq_advance(&ring->ring, count);
    return count;
}
