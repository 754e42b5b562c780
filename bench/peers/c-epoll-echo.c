// c-epoll-echo: a nonblocking, level-triggered epoll echo server with one loop, in C.
//
//   usage: c-epoll-echo PORT      (listens on 127.0.0.1)
//
// One thread waits on every socket at once. A connection costs a small struct; reads land in one
// shared buffer and are written straight back. When the socket will not take all of it, the rest is
// kept in a buffer of the connection's own and the connection waits for EPOLLOUT instead of EPOLLIN:
// it is not read again until that is sent, so a client that never reads costs at most one buffer.
#define _GNU_SOURCE  // accept4
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUFFER_SIZE (16 * 1024)

struct connection {
    int fd;
    char *pending;  // bytes the socket did not take yet, or NULL
    size_t start, end;
};

static int loop;
static char buffer[BUFFER_SIZE];

static void watch(struct connection *c, uint32_t events) {
    struct epoll_event event = {.events = events, .data.ptr = c};
    epoll_ctl(loop, EPOLL_CTL_MOD, c->fd, &event);
}

static void finish(struct connection *c) {
    close(c->fd);  // also removes it from the epoll set
    free(c->pending);
    free(c);
}

// Writes bytes[0..<count]; keeps what the socket refuses and switches to EPOLLOUT. 0: closed.
static int send_or_keep(struct connection *c, const char *bytes, size_t count) {
    size_t sent = 0;
    while (sent < count) {
        ssize_t w = write(c->fd, bytes + sent, count - sent);
        if (w > 0) { sent += (size_t)w; continue; }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno == EAGAIN) break;
        return 0;
    }
    if (sent == count) return 1;
    if (!(c->pending = malloc(count - sent))) return 0;
    memcpy(c->pending, bytes + sent, count - sent);
    c->start = 0;
    c->end = count - sent;
    watch(c, EPOLLOUT);
    return 1;
}

static void ready(struct connection *c) {
    if (c->pending) {  // draining: send the rest; once it is all gone, read again
        while (c->start < c->end) {
            ssize_t w = write(c->fd, c->pending + c->start, c->end - c->start);
            if (w > 0) { c->start += (size_t)w; continue; }
            if (w < 0 && errno == EINTR) continue;
            if (w < 0 && errno == EAGAIN) return;  // still full: wait for the next EPOLLOUT
            finish(c);
            return;
        }
        free(c->pending);
        c->pending = NULL;
        watch(c, EPOLLIN);
        return;
    }
    ssize_t n = read(c->fd, buffer, sizeof buffer);
    if (n > 0) {
        if (!send_or_keep(c, buffer, (size_t)n)) finish(c);
    } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        finish(c);  // end of stream (nothing is pending, or we would not have read) or reset
    }
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s PORT\n", argv[0]); return 2; }
    // `loadgen sweep --scenario` appends options such as --block: refuse them rather than run
    // without them under the scenario's name.
    for (int i = 2; i < argc; i++) {
        if (argv[i][0] == '-') { fprintf(stderr, "c-epoll-echo: no option %s\n", argv[i]); return 2; }
    }
    signal(SIGPIPE, SIG_IGN);
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1])),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(listener, (struct sockaddr *)&address, sizeof address) < 0 || listen(listener, 4096) < 0) {
        perror("c-epoll-echo: bind/listen");
        return 1;
    }
    loop = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event event = {.events = EPOLLIN, .data.ptr = NULL};  // NULL: the listener
    epoll_ctl(loop, EPOLL_CTL_ADD, listener, &event);

    struct epoll_event events[256];
    for (;;) {
        int count = epoll_wait(loop, events, 256, -1);
        for (int i = 0; i < count; i++) {
            struct connection *c = events[i].data.ptr;
            if (c) { ready(c); continue; }
            for (int accepted = 0; accepted < 128; accepted++) {
                int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0) {
                    // Out of descriptors the connection stays queued and the listener readable:
                    // rest a little rather than spin (echo-libev does better; this is a yardstick).
                    if (errno == EMFILE || errno == ENFILE) usleep(10000);
                    break;
                }
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                struct connection *c = calloc(1, sizeof *c);
                if (!c) { close(fd); continue; }
                c->fd = fd;
                struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
                if (epoll_ctl(loop, EPOLL_CTL_ADD, fd, &e) < 0) { close(fd); free(c); }
            }
        }
    }
}
