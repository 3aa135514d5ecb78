/* Bounded MPMC channel with Go's close semantics.
 *
 * Design: a ring buffer of capacity fixed-size slots under one mutex, with
 * two condition variables (not_empty for receivers, not_full for senders).
 * A push signals one waiting receiver, a pop one waiting sender, and only if
 * someone waits; close broadcasts both. A waiter rechecks in a fixed order
 * (receive: items, closed, context; send: closed, space, context), so a
 * waiter that was signalled never leaves an item or a slot unclaimed for a
 * context error.
 *
 * A wait bounded by a context registers a done-hook that takes the mutex and
 * broadcasts; the hook is registered and removed with the mutex released
 * (the hook takes it: lock order is ctx hooks -> chan mutex).
 *
 * The optional descriptor (wp_chan_fd) is kept level-triggered under the
 * mutex: readable iff len > 0 or closed.
 *
 * The pool's batch sends (wp__chan_send_all: a worker's buffered results)
 * wait on a third condition, not_full_bulk, and are woken only once half of
 * the channel is free (or it closes), one at a time, each passing the wake
 * on while half is still free. Woken per freed slot, as a single send is,
 * 256 workers blocked on a full results channel each woke to push one
 * result and slept again: a futex round per result. A batch sender is
 * internal: no caller waits on it for a single slot, and the receiver's
 * draining always reaches the mark.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/eventfd.h>
#else
#include <fcntl.h>
#endif

#include "core/internal.h"
#include "wpool/chan.h"
#include "wpool/error.h"

struct wp_chan {
  pthread_mutex_t mu;
  pthread_cond_t not_empty, not_full, not_full_bulk;
  size_t item_size, cap;
  size_t head, len; /* guarded by mu */
  size_t bulk_mark; /* free slots that wake a batch sender: max(1, cap/2) */
  unsigned recv_waiters, send_waiters, bulk_waiters;
  bool closed;
  /* Mirrors for spinners, stored under mu (plain stores, no RMW). */
  atomic_size_t len_m;
  atomic_bool closed_m;
  atomic_uint spin_send, spin_recv; /* at most one spinner each way */
  int fd_read, fd_write;            /* -1 until wp_chan_fd */
  bool fd_ready;
  unsigned char *buf;
};

int wp_chan_create(size_t item_size, size_t capacity, wp_chan **out) {
  if (!out) return WP_EINVAL;
  *out = NULL;
  if (item_size == 0 || capacity == 0 || capacity > SIZE_MAX / item_size)
    return WP_EINVAL;
  wp_chan *c = calloc(1, sizeof *c);
  if (!c) return WP_ENOMEM;
  c->buf = malloc(item_size * capacity);
  if (!c->buf) goto nomem;
  if (wp__mutex_init_adaptive(&c->mu) != 0) goto fail_mu;
  if (pthread_cond_init(&c->not_empty, NULL) != 0) goto fail_ne;
  if (pthread_cond_init(&c->not_full, NULL) != 0) goto fail_nf;
  if (pthread_cond_init(&c->not_full_bulk, NULL) != 0) goto fail_nfb;
  c->item_size = item_size;
  c->cap = capacity;
  c->bulk_mark = capacity / 2 > 0 ? capacity / 2 : 1;
  c->fd_read = c->fd_write = -1;
  *out = c;
  return 0;
fail_nfb:
  pthread_cond_destroy(&c->not_full);
fail_nf:
  pthread_cond_destroy(&c->not_empty);
fail_ne:
  pthread_mutex_destroy(&c->mu);
fail_mu:
  free(c->buf);
  free(c);
  return WP_ESYSTEM;
nomem:
  free(c);
  return WP_ENOMEM;
}

void wp_chan_destroy(wp_chan *c) {
  if (!c) return;
  if (c->fd_read >= 0) close(c->fd_read);
  if (c->fd_write >= 0 && c->fd_write != c->fd_read) close(c->fd_write);
  pthread_cond_destroy(&c->not_full_bulk);
  pthread_cond_destroy(&c->not_full);
  pthread_cond_destroy(&c->not_empty);
  pthread_mutex_destroy(&c->mu);
  free(c->buf);
  free(c);
}

/* Caller holds mu. Keeps the descriptor readable iff a receive won't block. */
static void fd_update(wp_chan *c) {
  if (c->fd_read < 0) return;
  bool want = c->len > 0 || c->closed;
  if (want == c->fd_ready) return;
  ssize_t n;
  if (want) {
    uint64_t one = 1;
    do {
      n = write(c->fd_write, &one, c->fd_write == c->fd_read ? 8 : 1);
    } while (n < 0 && errno == EINTR);
  } else {
    unsigned char drain[64];
    do {
      n = read(c->fd_read, drain, sizeof drain);
    } while (n > 0 || (n < 0 && errno == EINTR));
  }
  c->fd_ready = want;
}

static void push(wp_chan *c, const void *item) {
  size_t tail = c->head + c->len;
  if (tail >= c->cap) tail -= c->cap;
  memcpy(c->buf + tail * c->item_size, item, c->item_size);
  c->len++;
  atomic_store_explicit(&c->len_m, c->len, memory_order_relaxed);
  if (c->recv_waiters) pthread_cond_signal(&c->not_empty);
  fd_update(c);
}

/* Caller holds mu: a batch sender waits and half the channel is free. */
static void wake_bulk(wp_chan *c) {
  if (c->bulk_waiters && c->cap - c->len >= c->bulk_mark)
    pthread_cond_signal(&c->not_full_bulk);
}

static void pop(wp_chan *c, void *item) {
  memcpy(item, c->buf + c->head * c->item_size, c->item_size);
  if (++c->head == c->cap) c->head = 0;
  c->len--;
  atomic_store_explicit(&c->len_m, c->len, memory_order_relaxed);
  if (c->send_waiters) pthread_cond_signal(&c->not_full);
  wake_bulk(c);
  fd_update(c);
}

static void wake_all(void *arg) {
  wp_chan *c = arg;
  pthread_mutex_lock(&c->mu);
  pthread_cond_broadcast(&c->not_empty);
  pthread_cond_broadcast(&c->not_full);
  pthread_cond_broadcast(&c->not_full_bulk);
  pthread_mutex_unlock(&c->mu);
}

/* Called with mu held, returns with it held. If nobody spins this way
 * already, releases mu and looks for up to WP__SPIN_NS for what the caller
 * waits for (space to send, an item to receive) before it sleeps. Returns
 * true if it spun (the caller rechecks under mu). */
static bool spin(wp_chan *c, bool sending, wp_ctx *ctx) {
  atomic_uint *spinners = sending ? &c->spin_send : &c->spin_recv;
  unsigned zero = 0;
  if (!atomic_compare_exchange_strong(spinners, &zero, 1)) return false;
  pthread_mutex_unlock(&c->mu);
  int64_t until = wp_now_ns() + WP__SPIN_NS;
  for (unsigned i = 1;; i++) {
    size_t len = atomic_load_explicit(&c->len_m, memory_order_relaxed);
    if ((sending ? len < c->cap : len > 0) ||
        atomic_load_explicit(&c->closed_m, memory_order_relaxed) ||
        (ctx && wp_ctx_err(ctx)))
      break;
    wp__cpu_relax();
    if ((i & 63) == 0) {
      if (wp_now_ns() > until) break;
      sched_yield(); /* on a busy core, let the other side run */
    }
  }
  pthread_mutex_lock(&c->mu);
  atomic_store(spinners, 0);
  return true;
}

/* One blocking operation: send *item, or receive into item. The direction
 * is a flag, not "which pointer is NULL", so no path can reach a copy with
 * a NULL item (GCC 12 at -O3 warned that one could). */
static int chan_op(wp_chan *c, bool sending, void *item, wp_ctx *ctx) {
  if (!c || !item) return WP_EINVAL;
  bool cancelable = ctx && ctx != wp_ctx_background();
  bool hooked = false, spun = false;
  wp_ctx_hook hook;
  int rc;
  pthread_mutex_lock(&c->mu);
  for (;;) {
    if (sending) {
      if (c->closed) {
        rc = WP_ECLOSED;
        break;
      }
      if (c->len < c->cap) {
        push(c, item);
        rc = 0;
        break;
      }
    } else {
      if (c->len > 0) {
        pop(c, item);
        rc = 0;
        break;
      }
      if (c->closed) {
        rc = WP_ECLOSED;
        break;
      }
    }
    if (cancelable) {
      rc = wp_ctx_err(ctx);
      if (rc != 0) break;
      if (!hooked) {
        pthread_mutex_unlock(&c->mu);
        wp_ctx_on_done(ctx, &hook, wake_all, c);
        hooked = true;
        pthread_mutex_lock(&c->mu);
        continue; /* recheck: things may have changed meanwhile */
      }
    }
    if (!spun) {
      spun = true;
      if (spin(c, sending, cancelable ? ctx : NULL)) continue;
    }
    if (sending) {
      c->send_waiters++;
      pthread_cond_wait(&c->not_full, &c->mu);
      c->send_waiters--;
    } else {
      c->recv_waiters++;
      pthread_cond_wait(&c->not_empty, &c->mu);
      c->recv_waiters--;
    }
  }
  pthread_mutex_unlock(&c->mu);
  if (hooked) wp_ctx_hook_remove(&hook);
  return rc;
}

int wp_chan_send(wp_chan *c, const void *item, wp_ctx *ctx) {
  /* chan_op only reads *item when sending. */
  return chan_op(c, true, (void *)(uintptr_t)item, ctx);
}

int wp_chan_recv(wp_chan *c, void *item, wp_ctx *ctx) {
  return chan_op(c, false, item, ctx);
}

int wp_chan_try_send(wp_chan *c, const void *item) {
  if (!c || !item) return WP_EINVAL;
  int rc = WP_EAGAIN;
  pthread_mutex_lock(&c->mu);
  if (c->closed) {
    rc = WP_ECLOSED;
  } else if (c->len < c->cap) {
    push(c, item);
    rc = 0;
  }
  pthread_mutex_unlock(&c->mu);
  return rc;
}

int wp_chan_try_recv(wp_chan *c, void *item) {
  if (!c || !item) return WP_EINVAL;
  int rc = WP_EAGAIN;
  pthread_mutex_lock(&c->mu);
  if (c->len > 0) {
    pop(c, item);
    rc = 0;
  } else if (c->closed) {
    rc = WP_ECLOSED;
  }
  pthread_mutex_unlock(&c->mu);
  return rc;
}

int wp_chan_close(wp_chan *c) {
  if (!c) return WP_EINVAL;
  int rc = 0;
  pthread_mutex_lock(&c->mu);
  if (c->closed) {
    rc = WP_ECLOSED;
  } else {
    c->closed = true;
    atomic_store(&c->closed_m, true);
    pthread_cond_broadcast(&c->not_empty);
    pthread_cond_broadcast(&c->not_full);
    pthread_cond_broadcast(&c->not_full_bulk);
    fd_update(c);
  }
  pthread_mutex_unlock(&c->mu);
  return rc;
}

size_t wp_chan_len(wp_chan *c) {
  pthread_mutex_lock(&c->mu);
  size_t n = c->len;
  pthread_mutex_unlock(&c->mu);
  return n;
}

size_t wp_chan_cap(const wp_chan *c) { return c->cap; }

int wp_chan_fd(wp_chan *c, int *fd) {
  if (!c || !fd) return WP_EINVAL;
  int rc = 0;
  pthread_mutex_lock(&c->mu);
  if (c->fd_read < 0) {
#ifdef __linux__
    int e = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (e >= 0) c->fd_read = c->fd_write = e;
#else
    int p[2];
    if (pipe(p) == 0) {
      for (int i = 0; i < 2; i++) {
        fcntl(p[i], F_SETFD, FD_CLOEXEC);
        fcntl(p[i], F_SETFL, O_NONBLOCK);
      }
      c->fd_read = p[0];
      c->fd_write = p[1];
    }
#endif
    if (c->fd_read < 0) {
      rc = WP_ESYSTEM;
    } else {
      c->fd_ready = false;
      fd_update(c);
    }
  }
  if (rc == 0) *fd = c->fd_read;
  pthread_mutex_unlock(&c->mu);
  return rc;
}

int wp__chan_send_all(wp_chan *c, const void *items, size_t n) {
  const unsigned char *it = items;
  int rc = 0;
  bool spun = false;
  pthread_mutex_lock(&c->mu);
  while (n > 0) {
    if (c->closed) {
      rc = WP_ECLOSED;
      break;
    }
    if (c->len < c->cap) {
      push(c, it);
      it += c->item_size;
      n--;
      continue;
    }
    if (!spun) {
      spun = true;
      if (spin(c, true, NULL)) continue;
    }
    c->bulk_waiters++;
    do {
      pthread_cond_wait(&c->not_full_bulk, &c->mu);
    } while (!c->closed && c->cap - c->len < c->bulk_mark);
    c->bulk_waiters--;
    spun = false;
  }
  /* Half still free: the next batch sender goes on (see the top). */
  wake_bulk(c);
  pthread_mutex_unlock(&c->mu);
  return rc;
}
