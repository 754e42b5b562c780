// Swift cannot call C function-like macros, and most of libev's watcher API is macros
// (ev_io_init, ev_async_init, ...). Each one used by echo-lab is wrapped here in a static
// inline function with the same name plus a `clibev_` prefix; the real functions
// (ev_io_start, ev_run, ...) are called from Swift directly.
#ifndef CLIBEV_H
#define CLIBEV_H

#include <ev.h>

typedef void (*clibev_io_cb)(struct ev_loop *loop, ev_io *w, int revents);
typedef void (*clibev_async_cb)(struct ev_loop *loop, ev_async *w, int revents);
typedef void (*clibev_timer_cb)(struct ev_loop *loop, ev_timer *w, int revents);
typedef void (*clibev_check_cb)(struct ev_loop *loop, ev_check *w, int revents);

static inline void clibev_io_init(ev_io *w, clibev_io_cb cb, int fd, int events) {
    ev_io_init(w, cb, fd, events);
}

/// Changes only the event mask (libev >= 4.25 has ev_io_modify; this works on any version).
static inline void clibev_io_modify(ev_io *w, int events) {
    ev_io_set(w, w->fd, events);
}

static inline int clibev_is_active(const void *w) {
    return ev_is_active((const ev_watcher *)w);
}

static inline void clibev_async_init(ev_async *w, clibev_async_cb cb) {
    ev_async_init(w, cb);
}

static inline void clibev_timer_init(ev_timer *w, clibev_timer_cb cb, double after, double repeat) {
    ev_timer_init(w, cb, after, repeat);
}

/// Sets a stopped timer's delay. Needed before every restart of a one-shot timer: libev keeps an
/// expired timer's `at` relative to when it fired (about 0), so a plain ev_timer_start would fire at once.
static inline void clibev_timer_set(ev_timer *w, double after, double repeat) {
    ev_timer_set(w, after, repeat);
}

/// An ev_check watcher runs once per loop iteration, right after that iteration's callbacks.
static inline void clibev_check_init(ev_check *w, clibev_check_cb cb) {
    ev_check_init(w, cb);
}

/// The opaque user pointer every watcher carries.
static inline void clibev_set_data(void *w, void *data) { ((ev_watcher *)w)->data = data; }
static inline void *clibev_get_data(const void *w) { return ((const ev_watcher *)w)->data; }

static inline unsigned int clibev_backend_epoll(void) { return EVBACKEND_EPOLL; }
static inline int clibev_read(void) { return EV_READ; }
static inline int clibev_write(void) { return EV_WRITE; }
static inline int clibev_break_all(void) { return EVBREAK_ALL; }

#endif
