// c-uring-echo: echo-uring's design in plain C with liburing, one loop, so we know whether the
// Swift version costs anything.
//
//   usage: c-uring-echo PORT [plain]      (listens on 127.0.0.1; "plain": no SINGLE_ISSUER,
//                                           DEFER_TASKRUN, COOP_TASKRUN)
//
// One ring with IORING_SETUP_SINGLE_ISSUER | DEFER_TASKRUN | COOP_TASKRUN (its fd registered); one
// multishot accept; per connection one multishot recv into a shared provided-buffer ring (1,024
// buffers of 4 KiB, touched at start), so an idle connection holds no buffer. Each message goes straight back out of
// its ring buffer with one send (MSG_DONTWAIT, one send in flight per connection), and the buffer
// returns to the ring when the send completes. A full socket (short send, EAGAIN) or a message
// arriving while a send is in flight: the bytes are copied into the connection's backlog, the
// buffer goes back, the recv is cancelled and not armed again until the backlog is sent (those
// sends wait in the kernel). ENOBUFS: the connection is re-armed when buffers come back. A recv
// whose completion says bytes were left in the socket (IORING_CQE_F_SOCK_NONEMPTY) with none
// following by the end of the pass is cancelled and armed again (urgent data can leave it
// waiting). An fd is closed only once none of its requests is in the kernel; user_data carries a
// generation.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUFFERS 1024
#define BUFFER_SIZE 4096
#define GROUP 1
#define BACKLOG_LIMIT (16 * 1024)

enum op { OP_ACCEPT = 1, OP_RECV, OP_SEND, OP_CANCEL };
enum {
    OPEN = 1 << 0, RECV_ARMED = 1 << 1, RECV_CANCELLED = 1 << 2, SEND_IN_FLIGHT = 1 << 3, SEND_FROM_RING = 1 << 4,
    END_OF_STREAM = 1 << 5, CLOSING = 1 << 6, STARVED = 1 << 7, BYTES_LEFT = 1 << 8,
};

struct connection {
    uint32_t generation;
    uint16_t state;
    uint16_t ring_buffer;
    int32_t send_count;
    char *backlog;  // bytes not sent yet, or NULL
    size_t start, end;
};

static struct io_uring ring;
static struct io_uring_buf_ring *buffer_ring;
static char *buffers;
static struct connection *connections;
static int listener, free_buffers = BUFFERS;
static int *starved, starved_count;
// Connections whose multishot recv said bytes were left in the socket (echo-uring's
// rearmWhereBytesWereLeft: at the urgent mark the kernel's retry can give up and wait for a
// wake-up that never comes); re-armed once the completion queue is drained.
static int *left, left_count, left_capacity;

static uint64_t user_data(enum op op, int fd, uint32_t generation) {
    return (uint64_t)op << 56 | (uint64_t)(generation & 0xFFFFFF) << 32 | (uint32_t)fd;
}

static struct io_uring_sqe *slot(void) {
    struct io_uring_sqe *sqe;
    while (!(sqe = io_uring_get_sqe(&ring))) io_uring_submit(&ring);
    return sqe;
}

static void give_back(uint16_t bid) {
    io_uring_buf_ring_add(buffer_ring, buffers + (size_t)bid * BUFFER_SIZE, BUFFER_SIZE, bid,
                          io_uring_buf_ring_mask(BUFFERS), 0);
    io_uring_buf_ring_advance(buffer_ring, 1);
    free_buffers++;
}

static void arm_accept(void) {
    struct io_uring_sqe *sqe = slot();
    io_uring_prep_multishot_accept(sqe, listener, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, user_data(OP_ACCEPT, 0, 0));
}

static void cancel(uint64_t target) {
    struct io_uring_sqe *sqe = slot();
    io_uring_prep_cancel64(sqe, target, 0);
    io_uring_sqe_set_data64(sqe, user_data(OP_CANCEL, 0, 0));
}

static void send_bytes(int fd, struct connection *c, const void *bytes, size_t count, int flags) {
    struct io_uring_sqe *sqe = slot();
    io_uring_prep_send(sqe, fd, bytes, count, flags);
    io_uring_sqe_set_data64(sqe, user_data(OP_SEND, fd, c->generation));
    c->state |= SEND_IN_FLIGHT;
}

static void resume_reading(int fd, struct connection *c) {
    if (!(c->state & OPEN) || c->backlog ||
        (c->state & (RECV_ARMED | SEND_IN_FLIGHT | END_OF_STREAM | CLOSING | STARVED)))
        return;
    struct io_uring_sqe *sqe = slot();
    io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = GROUP;
    io_uring_sqe_set_data64(sqe, user_data(OP_RECV, fd, c->generation));
    c->state |= RECV_ARMED;
}

static void stop_reading(int fd, struct connection *c) {
    if ((c->state & RECV_ARMED) && !(c->state & RECV_CANCELLED)) {
        c->state |= RECV_CANCELLED;
        cancel(user_data(OP_RECV, fd, c->generation));
    }
}

static void finish_closing(int fd, struct connection *c) {
    if (c->state & (RECV_ARMED | SEND_IN_FLIGHT)) return;
    close(fd);
    free(c->backlog);
    c->backlog = NULL;
    c->state = 0;
    c->generation++;
}

static void close_connection(int fd, struct connection *c) {
    if (c->state & CLOSING) return;
    stop_reading(fd, c);
    c->state |= CLOSING;
    if (c->state & SEND_IN_FLIGHT) cancel(user_data(OP_SEND, fd, c->generation));
    finish_closing(fd, c);
}

/// Appends to the backlog (after `front`, when given), stops reading; -1 when memory is exhausted.
static int hold(int fd, struct connection *c, const char *front, size_t front_count, const char *bytes, size_t count) {
    size_t held = c->backlog ? c->end - c->start : 0;
    char *block = malloc(front_count + held + count > 0 ? front_count + held + count : 1);
    if (!block) return -1;
    memcpy(block, front, front_count);
    if (held) memcpy(block + front_count, c->backlog + c->start, held);
    memcpy(block + front_count + held, bytes, count);
    free(c->backlog);
    c->backlog = block;
    c->start = 0;
    c->end = front_count + held + count;
    stop_reading(fd, c);
    return 0;
}

static void settle(int fd, struct connection *c) {
    if (!(c->state & OPEN)) return;
    if (c->state & CLOSING) return finish_closing(fd, c);
    int pending = (c->state & SEND_IN_FLIGHT) || c->backlog;
    if (c->state & END_OF_STREAM) {
        if (!pending) close_connection(fd, c);
        return;
    }
    if (!pending) resume_reading(fd, c);
}

static void received(struct io_uring_cqe *cqe, int fd, uint32_t generation) {
    struct connection *c = &connections[fd];
    int has_buffer = cqe->flags & IORING_CQE_F_BUFFER;
    uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
    if (has_buffer) free_buffers--;
    if (!(c->state & OPEN) || (c->generation & 0xFFFFFF) != generation) {
        if (has_buffer) give_back(bid);
        return;
    }
    if (!(cqe->flags & IORING_CQE_F_MORE)) {
        c->state &= ~(RECV_ARMED | RECV_CANCELLED | BYTES_LEFT);
    } else if (cqe->res > 0 && (cqe->flags & IORING_CQE_F_SOCK_NONEMPTY)) {
        if (!(c->state & BYTES_LEFT) && left_count < left_capacity) {
            left[left_count++] = fd;
            c->state |= BYTES_LEFT;
        }
    } else {
        c->state &= ~BYTES_LEFT;
    }
    if (cqe->res > 0 && has_buffer) {
        char *bytes = buffers + (size_t)bid * BUFFER_SIZE;
        if (c->state & CLOSING) {
            give_back(bid);
        } else if ((c->state & SEND_IN_FLIGHT) || c->backlog) {
            if (hold(fd, c, NULL, 0, bytes, (size_t)cqe->res) < 0) close_connection(fd, c);
            give_back(bid);
        } else {
            c->state |= SEND_FROM_RING;
            c->ring_buffer = bid;
            c->send_count = cqe->res;
            send_bytes(fd, c, bytes, (size_t)cqe->res, MSG_DONTWAIT);
        }
    } else if (cqe->res == 0) {
        c->state |= END_OF_STREAM;
    } else if (cqe->res == -ENOBUFS) {
        if (!(c->state & CLOSING)) {
            c->state |= STARVED;
            starved[starved_count++] = fd;
        }
    } else if (cqe->res != -ECANCELED && cqe->res != -EINTR && cqe->res != -EAGAIN) {
        close_connection(fd, c);
    }
    settle(fd, c);
}

static void sent(struct io_uring_cqe *cqe, int fd) {
    struct connection *c = &connections[fd];
    uint16_t state = c->state;
    c->state &= ~(SEND_IN_FLIGHT | SEND_FROM_RING);
    int failed = cqe->res < 0 && cqe->res != -EAGAIN && cqe->res != -EINTR;
    if (failed) close_connection(fd, c);
    size_t done = cqe->res > 0 ? (size_t)cqe->res : 0;
    if (state & SEND_FROM_RING) {
        char *bytes = buffers + (size_t)c->ring_buffer * BUFFER_SIZE;
        if (done < (size_t)c->send_count && !failed && !(state & CLOSING)) {
            if (hold(fd, c, bytes + done, (size_t)c->send_count - done, NULL, 0) < 0) close_connection(fd, c);
        }
        give_back(c->ring_buffer);
    } else if (c->backlog) {
        c->start += done;
    }
    if (c->backlog && c->start == c->end) {
        free(c->backlog);
        c->backlog = NULL;
    }
    if (c->backlog && !(c->state & CLOSING) && !(c->state & SEND_IN_FLIGHT))
        send_bytes(fd, c, c->backlog + c->start, c->end - c->start, 0);
    settle(fd, c);
}

static void accepted(struct io_uring_cqe *cqe, int *accept_armed) {
    if (!(cqe->flags & IORING_CQE_F_MORE)) *accept_armed = 0;
    if (cqe->res >= 0) {
        int fd = cqe->res, one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct connection *c = &connections[fd];
        c->generation++;
        c->state = OPEN;
        c->backlog = NULL;
        resume_reading(fd, c);
    } else if (cqe->res == -EMFILE || cqe->res == -ENFILE) {
        usleep(100000);  // the reference keeps it simple: rest, then try again
    }
    if (!*accept_armed) {
        arm_accept();
        *accept_armed = 1;
    }
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s PORT [plain]\n", argv[0]); return 2; }
    signal(SIGPIPE, SIG_IGN);
    struct rlimit limit;
    getrlimit(RLIMIT_NOFILE, &limit);
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
    connections = calloc(limit.rlim_cur, sizeof *connections);
    starved = calloc(2 * limit.rlim_cur, sizeof *starved);  // an fd closed while starved may come back
    left_capacity = (int)limit.rlim_cur;
    left = calloc(limit.rlim_cur, sizeof *left);

    struct io_uring_params params = {0};
    params.flags = IORING_SETUP_CQSIZE;
    params.cq_entries = 8192;
    if (argc < 3 || strcmp(argv[2], "plain") != 0)
        params.flags |= IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_COOP_TASKRUN;
    int result = io_uring_queue_init_params(1024, &ring, &params);
    if (result < 0) { fprintf(stderr, "c-uring-echo: io_uring_setup: %s\n", strerror(-result)); return 1; }
    io_uring_register_ring_fd(&ring);  // enter by registered index, as echo-uring does

    buffer_ring = mmap(NULL, BUFFERS * sizeof(struct io_uring_buf), PROT_READ | PROT_WRITE,
                       MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    buffers = mmap(NULL, (size_t)BUFFERS * BUFFER_SIZE, PROT_READ | PROT_WRITE,
                   MAP_ANONYMOUS | MAP_PRIVATE | MAP_POPULATE, -1, 0);
    struct io_uring_buf_reg registration = {.ring_addr = (unsigned long)buffer_ring, .ring_entries = BUFFERS, .bgid = GROUP};
    io_uring_buf_ring_init(buffer_ring);
    if ((result = io_uring_register_buf_ring(&ring, &registration, 0)) < 0) {
        fprintf(stderr, "c-uring-echo: buffer ring: %s\n", strerror(-result));
        return 1;
    }
    for (int bid = 0; bid < BUFFERS; bid++)
        io_uring_buf_ring_add(buffer_ring, buffers + (size_t)bid * BUFFER_SIZE, BUFFER_SIZE, (unsigned short)bid,
                              io_uring_buf_ring_mask(BUFFERS), bid);
    io_uring_buf_ring_advance(buffer_ring, BUFFERS);

    listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1])),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(listener, (struct sockaddr *)&address, sizeof address) < 0 || listen(listener, 4096) < 0) {
        perror("c-uring-echo: bind");
        return 1;
    }
    int accept_armed = 1;
    arm_accept();
    for (;;) {
        io_uring_submit_and_wait(&ring, 1);
        unsigned head, count = 0;
        struct io_uring_cqe *cqe;
        io_uring_for_each_cqe(&ring, head, cqe) {
            count++;
            int fd = (int)(uint32_t)cqe->user_data;
            uint32_t generation = (uint32_t)(cqe->user_data >> 32) & 0xFFFFFF;
            switch (cqe->user_data >> 56) {
            case OP_ACCEPT: accepted(cqe, &accept_armed); break;
            case OP_RECV: received(cqe, fd, generation); break;
            case OP_SEND: sent(cqe, fd); break;
            }
        }
        io_uring_cq_advance(&ring, count);
        for (int i = 0; i < left_count; i++) {
            struct connection *c = &connections[left[i]];
            if (!(c->state & BYTES_LEFT)) continue;
            c->state &= ~BYTES_LEFT;
            stop_reading(left[i], c);  // its final completion re-arms it (settle)
        }
        left_count = 0;
        // Out of buffers: re-arm as many starved connections as buffers came back.
        int rearm = starved_count < free_buffers ? starved_count : free_buffers;
        for (int i = 0; i < rearm; i++) {
            int fd = starved[i];
            connections[fd].state &= ~STARVED;
            settle(fd, &connections[fd]);
        }
        memmove(starved, starved + rearm, (size_t)(starved_count - rearm) * sizeof *starved);
        starved_count -= rearm;
    }
}
