/* Bounded MPMC channel with Go's close semantics.
 *
 * Design. The items live in a lock-free ring of capacity cells (Dmitry
 * Vyukov's bounded MPMC array queue, as src/core/jring.h, with the item
 * bytes in the cell): a send claims the tail position with a CAS, copies
 * its item in and publishes the cell; a receive claims the head position,
 * copies the item out and hands the cell on. The cell of position pos says
 * 2*pos when free for its sender, 2*pos+1 when it holds pos's item, and
 * 2*(pos+cap) when handed on: doubled, so that capacity 1 works (with pos
 * and pos+1, as jring.h counts, "holds 0" and "free for 1" would be one
 * value). While the channel is neither
 * full (for a send) nor empty (for a receive), an operation takes no lock.
 *
 * Waiting is the mutex's: a receiver that finds the channel empty, or a
 * sender that finds it full, takes mu, announces itself in recv_waiters /
 * send_waiters / bulk_waiters (seq_cst stores), looks at the ring once more
 * and sleeps on its condition variable. Empty and full are judged by head
 * and tail, not by the cells: the other side's claim (its CAS on tail or
 * head, seq_cst) comes before its read of those counts (seq_cst loads), so
 * one of the two always sees the other, and a waiter is never left asleep
 * with an item or a slot there for it. A cell claimed and not yet copied
 * (the count says it is there, the cell does not yet) is waited for without
 * sleeping: it is a few instructions away. So a cell is published and
 * handed on with plain release stores, and an operation costs one locked
 * instruction, its claim; a batch send claims its whole run of cells with
 * one. The waker takes mu to signal. A waiter rechecks in
 * a fixed order (receive: items, closed, context; send: closed, space,
 * context), so a waiter that was signalled never leaves an item or a slot
 * unclaimed for a context error.
 *
 * Close sets a bit in tail (under mu): every later send fails its CAS and
 * sees it. The value it replaced is the end of what was ever sent; a
 * receiver that finds the ring empty after close returns WP_ECLOSED only
 * once head has reached that end (a send that claimed its cell before the
 * close is finishing its copy, lock-free: it is waited for).
 *
 * A wait bounded by a context registers a done-hook that takes the mutex and
 * broadcasts; the hook is registered and removed with the mutex released
 * (the hook takes it: lock order is ctx hooks -> chan mutex).
 *
 * The optional descriptor (wp_chan_fd) is kept level-triggered: readable iff
 * len > 0 or closed. Once it exists every operation takes mu (fd_mode), so
 * the descriptor follows each transition; an operation that began lock-free
 * before fd_mode was set sees it afterwards (seq_cst) and updates the
 * descriptor itself.
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
#include <stddef.h>
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

#define CLOSED_BIT ((size_t)1 << (sizeof(size_t) * 8 - 1))

/* A cell: its sequence number, then the item (stride bytes in all). */
typedef struct cell {
  atomic_size_t seq;
} cell;

/* tail, head and the rest on cache lines of their own (senders and
 * receivers are threads on different cores); allocated so aligned. */
struct wp_chan {
  /* next position to send into; CLOSED_BIT once closed */
  _Alignas(WP__CACHE_LINE) atomic_size_t tail;
  _Alignas(WP__CACHE_LINE) atomic_size_t head; /* next position to receive */
  /* Read-only after creation: read by every operation, so on a line that
   * nothing writes. */
  _Alignas(WP__CACHE_LINE) unsigned char *cells; /* cap cells of stride bytes */
  size_t item_size, cap, stride;
  size_t bulk_mark; /* free slots that wake a batch sender: max(1, cap/2) */
  /* Waiters: changed under mu, read by the other side without it. */
  _Alignas(WP__CACHE_LINE) atomic_uint recv_waiters;
  atomic_uint send_waiters, bulk_waiters;
  /* A bulk wake was signalled and its sender has not run yet: receivers
   * need not lock again for it. Under mu; read without it. */
  atomic_bool bulk_woken;
  atomic_bool closed_m; /* closed; set under mu */
  atomic_size_t end;    /* with closed_m: the position of the last send + 1 */
  atomic_bool fd_mode;  /* the descriptor exists: every operation takes mu */
  atomic_uint spin_send, spin_recv; /* at most one spinner each way */
  _Alignas(WP__CACHE_LINE) pthread_mutex_t mu;
  pthread_cond_t not_empty, not_full, not_full_bulk;
  int fd_read, fd_write; /* -1 until wp_chan_fd */
  bool fd_ready;
};

/* The cell at index idx (< cap). */
static inline cell *cell_ix(const wp_chan *c, size_t idx) {
  return (cell *)(void *)(c->cells + idx * c->stride);
}

static inline cell *cell_at(const wp_chan *c, size_t pos) {
  return cell_ix(c, pos % c->cap);
}

static inline unsigned char *cell_item(cell *x) {
  return (unsigned char *)x + sizeof(cell);
}

/* Sends up to n items (contiguous) while there is room, claiming their
 * cells with one CAS. Returns how many were sent; 0 with *rc WP_EAGAIN
 * (full, or the receiver of the next cell is still copying out) or
 * WP_ECLOSED. */
static size_t ring_push_n(wp_chan *c, const unsigned char *items, size_t n,
                          int *rc) {
  size_t pos = atomic_load_explicit(&c->tail, memory_order_relaxed);
  for (;;) {
    if (pos & CLOSED_BIT) {
      *rc = WP_ECLOSED;
      return 0;
    }
    /* The run of cells free for pos, pos + 1, ...: at most n. One division
     * for the run (cap need not be a power of two), then a wrapping index. */
    size_t first = pos % c->cap, idx = first, k = 0;
    ptrdiff_t dif = 0;
    while (k < n) {
      cell *x = cell_ix(c, idx);
      size_t seq = atomic_load_explicit(&x->seq, memory_order_acquire);
      dif = (ptrdiff_t)(seq - 2 * (pos + k));
      if (dif != 0) break;
      k++;
      if (++idx == c->cap) idx = 0;
    }
    if (k > 0) {
      if (atomic_compare_exchange_weak_explicit(&c->tail, &pos, pos + k,
                                                memory_order_seq_cst,
                                                memory_order_relaxed)) {
        idx = first;
        for (size_t i = 0; i < k; i++) {
          cell *x = cell_ix(c, idx);
          memcpy(cell_item(x), items + i * c->item_size, c->item_size);
          atomic_store_explicit(&x->seq, 2 * (pos + i) + 1,
                                memory_order_release);
          if (++idx == c->cap) idx = 0;
        }
        *rc = 0;
        return k;
      }
    } else if (dif < 0) {
      *rc = WP_EAGAIN;
      return 0;
    } else {
      pos = atomic_load_explicit(&c->tail, memory_order_relaxed);
    }
  }
}

/* Sends item if there is room. 0, WP_EAGAIN (full, or the receiver of the
 * last free cell is still copying out), or WP_ECLOSED. */
static int ring_push(wp_chan *c, const void *item) {
  int rc;
  ring_push_n(c, item, 1, &rc);
  return rc;
}

/* Receives the oldest item if it is there. 0, or WP_EAGAIN (empty, or its
 * sender is still copying in). */
static int ring_pop(wp_chan *c, void *item) {
  size_t pos = atomic_load_explicit(&c->head, memory_order_relaxed);
  for (;;) {
    cell *x = cell_at(c, pos);
    size_t seq = atomic_load_explicit(&x->seq, memory_order_acquire);
    ptrdiff_t dif = (ptrdiff_t)(seq - (2 * pos + 1));
    if (dif == 0) {
      if (atomic_compare_exchange_weak_explicit(&c->head, &pos, pos + 1,
                                                memory_order_seq_cst,
                                                memory_order_relaxed)) {
        memcpy(item, cell_item(x), c->item_size);
        atomic_store_explicit(&x->seq, 2 * (pos + c->cap),
                              memory_order_release);
        return 0;
      }
    } else if (dif < 0) {
      return WP_EAGAIN;
    } else {
      pos = atomic_load_explicit(&c->head, memory_order_relaxed);
    }
  }
}

/* Items sent (or being sent) and not yet received: exact when quiet. */
static size_t ring_len(wp_chan *c) {
  size_t h = atomic_load_explicit(&c->head, memory_order_seq_cst);
  size_t t = atomic_load_explicit(&c->tail, memory_order_seq_cst) & ~CLOSED_BIT;
  size_t n = t - h;
  return n > c->cap ? c->cap : n;
}

/* Closed, and every send that got in has been received. */
static bool drained_closed(wp_chan *c) {
  return atomic_load_explicit(&c->closed_m, memory_order_seq_cst) &&
         atomic_load_explicit(&c->head, memory_order_seq_cst) >=
             atomic_load_explicit(&c->end, memory_order_relaxed);
}

int wp_chan_create(size_t item_size, size_t capacity, wp_chan **out) {
  if (!out) return WP_EINVAL;
  *out = NULL;
  if (item_size == 0 || capacity == 0 || capacity > SIZE_MAX / item_size ||
      item_size > SIZE_MAX / 2)
    return WP_EINVAL;
  size_t stride = (sizeof(cell) + item_size + 7) & ~(size_t)7;
  if (capacity > SIZE_MAX / 4 / stride) return WP_EINVAL;
  wp_chan *c = wp__calloc_lines(sizeof *c);
  if (!c) return WP_ENOMEM;
  c->cells = malloc(capacity * stride);
  if (!c->cells) goto nomem;
  if (wp__mutex_init_adaptive(&c->mu) != 0) goto fail_mu;
  if (pthread_cond_init(&c->not_empty, NULL) != 0) goto fail_ne;
  if (pthread_cond_init(&c->not_full, NULL) != 0) goto fail_nf;
  if (pthread_cond_init(&c->not_full_bulk, NULL) != 0) goto fail_nfb;
  c->item_size = item_size;
  c->cap = capacity;
  c->stride = stride;
  for (size_t i = 0; i < capacity; i++) atomic_init(&cell_at(c, i)->seq, 2 * i);
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
  free(c->cells);
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
  free(c->cells);
  free(c);
}

/* Caller holds mu. Keeps the descriptor readable iff a receive won't block. */
static void fd_update(wp_chan *c) {
  if (c->fd_read < 0) return;
  bool want = ring_len(c) > 0 ||
              atomic_load_explicit(&c->closed_m, memory_order_relaxed);
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

static bool fd_mode(wp_chan *c) {
  return atomic_load_explicit(&c->fd_mode, memory_order_relaxed);
}

/* Caller holds mu: a batch sender waits, half the channel is free, and no
 * wake is on its way to one already. */
static void wake_bulk_locked(wp_chan *c) {
  if (atomic_load_explicit(&c->bulk_waiters, memory_order_relaxed) &&
      !atomic_load_explicit(&c->bulk_woken, memory_order_relaxed) &&
      c->cap - ring_len(c) >= c->bulk_mark) {
    atomic_store_explicit(&c->bulk_woken, true, memory_order_relaxed);
    pthread_cond_signal(&c->not_full_bulk);
  }
}

/* After a send of n items (caller holds mu): up to n receivers may go on,
 * and a woken receiver does not pass the wake on. */
static void sent_locked(wp_chan *c, size_t n) {
  if (n > 0 && atomic_load_explicit(&c->recv_waiters, memory_order_relaxed)) {
    if (n == 1)
      pthread_cond_signal(&c->not_empty);
    else
      pthread_cond_broadcast(&c->not_empty);
  }
  fd_update(c);
}

/* After a receive (caller holds mu). */
static void received_locked(wp_chan *c) {
  if (atomic_load_explicit(&c->send_waiters, memory_order_relaxed))
    pthread_cond_signal(&c->not_full);
  wake_bulk_locked(c);
  fd_update(c);
}

/* After a lock-free send: the lock only if a receiver sleeps (or the
 * descriptor must follow). seq_cst, paired with the waiter's (top). */
static void sent(wp_chan *c, size_t n) {
  if (atomic_load_explicit(&c->recv_waiters, memory_order_seq_cst) ||
      atomic_load_explicit(&c->fd_mode, memory_order_seq_cst)) {
    pthread_mutex_lock(&c->mu);
    sent_locked(c, n);
    pthread_mutex_unlock(&c->mu);
  }
}

/* After a lock-free receive: the lock only if a sender sleeps that this
 * slot can wake (a batch sender only at half free, and only if no wake is
 * on its way to one) or the descriptor must follow. */
static void received(wp_chan *c) {
  if (atomic_load_explicit(&c->send_waiters, memory_order_seq_cst) ||
      (atomic_load_explicit(&c->bulk_waiters, memory_order_seq_cst) &&
       !atomic_load_explicit(&c->bulk_woken, memory_order_seq_cst) &&
       c->cap - ring_len(c) >= c->bulk_mark) ||
      atomic_load_explicit(&c->fd_mode, memory_order_seq_cst)) {
    pthread_mutex_lock(&c->mu);
    received_locked(c);
    pthread_mutex_unlock(&c->mu);
  }
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
    size_t len = ring_len(c);
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

/* One try under mu: 0 (done), WP_ECLOSED, or WP_EAGAIN (would wait: full
 * or empty by head and tail, see the top). A cell claimed by the other side
 * and still being copied is waited for here (it needs no lock); so are, on
 * a closed channel, the last sends still copying in. */
static int try_locked(wp_chan *c, bool sending, void *item) {
  unsigned spins = 0;
  if (sending) {
    for (;;) {
      int rc = ring_push(c, item);
      if (rc == 0) sent_locked(c, 1);
      if (rc != WP_EAGAIN || ring_len(c) >= c->cap) return rc;
      wp__backoff(&spins); /* a receiver is copying out the next cell */
    }
  }
  for (;;) {
    if (ring_pop(c, item) == 0) {
      received_locked(c);
      return 0;
    }
    if (atomic_load_explicit(&c->closed_m, memory_order_relaxed)) {
      if (drained_closed(c)) return WP_ECLOSED;
    } else if (ring_len(c) == 0) {
      return WP_EAGAIN;
    }
    wp__backoff(&spins); /* a sender is copying into the next cell */
  }
}

/* One blocking operation: send *item, or receive into item. The direction
 * is a flag, not "which pointer is NULL", so no path can reach a copy with
 * a NULL item (GCC 12 at -O3 warned that one could). */
static int chan_op(wp_chan *c, bool sending, void *item, wp_ctx *ctx) {
  if (!c || !item) return WP_EINVAL;
  if (!fd_mode(c)) { /* lock-free while neither full nor empty */
    if (sending) {
      int rc = ring_push(c, item);
      if (rc == 0) sent(c, 1);
      if (rc != WP_EAGAIN) return rc;
    } else if (ring_pop(c, item) == 0) {
      received(c);
      return 0;
    }
  }
  bool cancelable = ctx && ctx != wp_ctx_background();
  bool hooked = false, spun = false;
  atomic_uint *waiters = sending ? &c->send_waiters : &c->recv_waiters;
  wp_ctx_hook hook;
  int rc;
  pthread_mutex_lock(&c->mu);
  for (;;) {
    rc = try_locked(c, sending, item);
    if (rc != WP_EAGAIN) break;
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
    /* Announce, then look once more: an operation of the other side that
     * finished before the announcement was visible did not come to wake
     * us (see the top). */
    atomic_fetch_add_explicit(waiters, 1, memory_order_seq_cst);
    rc = try_locked(c, sending, item);
    if (rc == WP_EAGAIN)
      pthread_cond_wait(sending ? &c->not_full : &c->not_empty, &c->mu);
    atomic_fetch_sub_explicit(waiters, 1, memory_order_relaxed);
    if (rc != WP_EAGAIN) break;
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
  if (!fd_mode(c)) {
    int rc = ring_push(c, item);
    if (rc == 0) sent(c, 1);
    return rc;
  }
  pthread_mutex_lock(&c->mu);
  int rc = try_locked(c, true, (void *)(uintptr_t)item);
  pthread_mutex_unlock(&c->mu);
  return rc;
}

int wp_chan_try_recv(wp_chan *c, void *item) {
  if (!c || !item) return WP_EINVAL;
  if (!fd_mode(c)) {
    if (ring_pop(c, item) == 0) {
      received(c);
      return 0;
    }
    if (!atomic_load_explicit(&c->closed_m, memory_order_seq_cst))
      return WP_EAGAIN;
  }
  pthread_mutex_lock(&c->mu);
  int rc = try_locked(c, false, item);
  pthread_mutex_unlock(&c->mu);
  return rc;
}

int wp_chan_close(wp_chan *c) {
  if (!c) return WP_EINVAL;
  int rc = 0;
  pthread_mutex_lock(&c->mu);
  if (atomic_load_explicit(&c->closed_m, memory_order_relaxed)) {
    rc = WP_ECLOSED;
  } else {
    size_t end =
        atomic_fetch_or_explicit(&c->tail, CLOSED_BIT, memory_order_seq_cst);
    atomic_store_explicit(&c->end, end & ~CLOSED_BIT, memory_order_relaxed);
    atomic_store_explicit(&c->closed_m, true, memory_order_seq_cst);
    pthread_cond_broadcast(&c->not_empty);
    pthread_cond_broadcast(&c->not_full);
    pthread_cond_broadcast(&c->not_full_bulk);
    fd_update(c);
  }
  pthread_mutex_unlock(&c->mu);
  return rc;
}

size_t wp_chan_len(wp_chan *c) { return ring_len(c); }

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
      /* From here on every operation takes mu and updates the descriptor;
       * one already under way sees fd_mode when it ends (see the top). */
      atomic_store_explicit(&c->fd_mode, true, memory_order_seq_cst);
      c->fd_ready = false;
      fd_update(c);
    }
  }
  if (rc == 0) *fd = c->fd_read;
  pthread_mutex_unlock(&c->mu);
  return rc;
}

size_t wp__chan_recv_waiters(wp_chan *c) {
  return atomic_load(&c->recv_waiters);
}

int wp__chan_send_all(wp_chan *c, const void *items, size_t n) {
  const unsigned char *it = items;
  int rc = 0;
  if (!fd_mode(c)) { /* lock-free while there is room; one wake check */
    size_t sent_n = 0, k;
    while (n > 0 && (k = ring_push_n(c, it, n, &rc)) > 0) {
      it += k * c->item_size;
      n -= k;
      sent_n += k;
    }
    if (sent_n) sent(c, sent_n);
    if (n == 0 || rc == WP_ECLOSED) return rc;
    rc = 0;
  }
  bool spun = false;
  size_t pending = 0; /* sent since the last wake */
  pthread_mutex_lock(&c->mu);
  while (n > 0) {
    int r;
    size_t k = ring_push_n(c, it, n, &r);
    if (k > 0) {
      it += k * c->item_size;
      n -= k;
      pending += k;
      continue;
    }
    if (r == WP_ECLOSED) {
      rc = WP_ECLOSED;
      break;
    }
    sent_locked(c, pending); /* what went in so far: receivers may sleep */
    pending = 0;
    if (!spun) {
      spun = true;
      if (spin(c, true, NULL)) continue;
    }
    atomic_fetch_add_explicit(&c->bulk_waiters, 1, memory_order_seq_cst);
    while (!atomic_load_explicit(&c->closed_m, memory_order_relaxed) &&
           c->cap - ring_len(c) < c->bulk_mark) {
      pthread_cond_wait(&c->not_full_bulk, &c->mu);
      /* Whoever was meant, a wake has arrived: the next one may be sent. */
      atomic_store_explicit(&c->bulk_woken, false, memory_order_relaxed);
    }
    atomic_fetch_sub_explicit(&c->bulk_waiters, 1, memory_order_relaxed);
    spun = false;
  }
  sent_locked(c, pending);
  /* Half still free: the next batch sender goes on (see the top). */
  wake_bulk_locked(c);
  pthread_mutex_unlock(&c->mu);
  return rc;
}
