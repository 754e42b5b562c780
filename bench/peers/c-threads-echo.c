// c-threads-echo: the article's thread-per-connection echo server, in C.
//
//   usage: c-threads-echo PORT [STACK_KIB]      (listens on 127.0.0.1)
//
// The accept loop blocks in accept(); every connection gets a detached pthread that blocks in
// read() and write() until the client closes. Nothing else: no pool, no limit, so what you measure
// is what a kernel thread costs -- its stack (default: RLIMIT_STACK, 8 MiB of address space here,
// a few KiB touched), its kernel stack and a context switch per message.
#define _GNU_SOURCE  // accept4
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static void *serve(void *arg) {
    int fd = (int)(intptr_t)arg;
    char buffer[4096];  // on the thread's stack: the bytes an idle thread has touched
    for (;;) {
        ssize_t n = read(fd, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;  // end of stream or reset
        for (ssize_t sent = 0; sent < n;) {
            ssize_t w = write(fd, buffer + sent, (size_t)(n - sent));
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) goto done;
            sent += w;
        }
    }
done:
    close(fd);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s PORT [STACK_KIB]\n", argv[0]); return 2; }
    // `loadgen sweep --scenario` appends options such as --block: refuse them rather than run
    // without them under the scenario's name.
    for (int i = 2; i < argc; i++) {
        if (argv[i][0] == '-') { fprintf(stderr, "c-threads-echo: no option %s\n", argv[i]); return 2; }
    }
    signal(SIGPIPE, SIG_IGN);  // a vanished client is an EPIPE, not a death
    pthread_attr_t attributes;
    pthread_attr_init(&attributes);
    pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
    if (argc > 2 && pthread_attr_setstacksize(&attributes, (size_t)atol(argv[2]) * 1024) != 0) {
        fprintf(stderr, "c-threads-echo: unusable stack size %s KiB\n", argv[2]);
        return 2;
    }

    int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1])),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(listener, (struct sockaddr *)&address, sizeof address) < 0 || listen(listener, 4096) < 0) {
        perror("c-threads-echo: bind/listen");
        return 1;
    }
    for (;;) {
        int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) usleep(10000);  // out of descriptors: do not spin
            continue;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        pthread_t thread;
        if (pthread_create(&thread, &attributes, serve, (void *)(intptr_t)fd) != 0) close(fd);
    }
}
