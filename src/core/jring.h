/* A bounded lock-free ring of small fixed records: the pool's submission
 * inbox (pool.c), so that a submit needs no lock on its fast path. The
 * record (ID, argument, key) travels in the cell itself: a submitter writes
 * only the ring's cells (two to a cache line), never a job slot that a
 * worker's core last wrote, and the worker fills the slot on its side.
 *
 * The algorithm is Dmitry Vyukov's bounded MPMC array queue: every cell
 * carries a sequence number that says whose turn the cell is. For position
 * pos (cell pos & mask), seq == pos means "free for the pusher of pos",
 * seq == pos + 1 "holds the item of pos, for its popper"; the popper gives
 * the cell to the pusher of pos + cap by setting seq = pos + cap. A pusher
 * claims pos with a CAS on tail, a popper with a CAS on head; the item
 * itself moves under the cell's release/acquire pair, so no lock and no
 * fence is needed and TSan sees every handover.
 *
 * The pool adds two things:
 *   - closing (inbox): WP__JRING_CLOSED set in tail makes every later push
 *     fail (its CAS fails, it reloads, it sees the bit), and the value
 *     fetch_or returned is the end of what was ever pushed, so the one who
 *     closes can drain exactly what was accepted;
 *   - waiting instead of failing. The pool never has more items in the ring
 *     than it has credits (free slots), and cap >= slots, so the ring is
 *     never full; a cell can only
 *     be late: its previous popper claimed it and has not yet handed it on
 *     (or, for the popper, the pusher of its position has claimed it and not
 *     yet published). The pusher waits for that (pause, then yield: the late
 *     thread may need this core).
 *
 * Positions are size_t and never wrap in practice (2^63 items). */
#ifndef WPOOL_CORE_JRING_H
#define WPOOL_CORE_JRING_H

#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/internal.h"

#define WP__JRING_CLOSED ((size_t)1 << (sizeof(size_t) * 8 - 1))

/* One submission: what the submitter knows of a job. */
typedef struct wp__jitem {
  uint64_t id;
  void *arg;
  uint64_t key;
} wp__jitem;

typedef struct wp__jcell {
  atomic_size_t seq;
  wp__jitem item;
} wp__jcell;

/* tail, head and the read-only part each on a cache line of their own:
 * pushers and poppers are usually threads on different cores, and a line
 * written by one side costs the other a miss on every access. A struct
 * containing a ring must be allocated with that alignment
 * (wp__calloc_lines). */
typedef struct wp__jring {
  _Alignas(WP__CACHE_LINE) atomic_size_t tail;
  _Alignas(WP__CACHE_LINE) atomic_size_t head;
  _Alignas(WP__CACHE_LINE) wp__jcell *cells;
  size_t mask;
} wp__jring;

/* Room for at least n items (n >= 1); the cells are cache-line aligned, so
 * a cell never straddles two lines. 0, or -1 with nothing allocated. */
int wp__jring_init(wp__jring *r, size_t n);
void wp__jring_free(wp__jring *r);

/* How far ahead of its position a push or a pop asks for the cell's cache
 * line (wp__prefetch_w): far enough that the line has arrived when the
 * operation gets there (a transfer between cores takes ~100 ns here). */
#define WP__JRING_AHEAD 32

/* Pushes *item; any number of threads at once. 0, or -1 if the ring was
 * closed (item not pushed). */
static inline int wp__jring_push(wp__jring *r, const wp__jitem *item) {
  size_t pos = atomic_load_explicit(&r->tail, memory_order_relaxed);
  unsigned spins = 0;
  wp__prefetch_w(&r->cells[(pos + WP__JRING_AHEAD) & r->mask]);
  for (;;) {
    if (pos & WP__JRING_CLOSED) return -1;
    wp__jcell *c = &r->cells[pos & r->mask];
    size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
    if (seq == pos) {
      /* seq_cst: the claim is what a sleeper looks for (wp__jring_nonempty
       * reads tail), so that the pool's submitter, which reads the
       * workers' want_wake after pushing, needs no fence of its own: a
       * worker going to sleep stores want_wake and then reads tail (a
       * store-load pair on each side: both in the one total order). */
      if (atomic_compare_exchange_weak_explicit(&r->tail, &pos, pos + 1,
                                                memory_order_seq_cst,
                                                memory_order_relaxed)) {
        c->item = *item;
        atomic_store_explicit(&c->seq, pos + 1, memory_order_release);
        return 0;
      }
      /* pos was reloaded by the failed CAS */
    } else if ((ptrdiff_t)(seq - pos) < 0) {
      wp__backoff(&spins); /* the cell's last popper is not done */
      pos = atomic_load_explicit(&r->tail, memory_order_relaxed);
    } else {
      pos = atomic_load_explicit(&r->tail, memory_order_relaxed);
    }
  }
}

/* Pops the oldest item into *out if it is published; any number of threads
 * at once. false if the ring is empty or its oldest item is still being
 * pushed. */
static inline bool wp__jring_pop(wp__jring *r, wp__jitem *out) {
  size_t pos = atomic_load_explicit(&r->head, memory_order_relaxed);
  for (;;) {
    wp__jcell *c = &r->cells[pos & r->mask];
    size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
    ptrdiff_t dif = (ptrdiff_t)(seq - (pos + 1));
    if (dif == 0) {
      if (atomic_compare_exchange_weak_explicit(&r->head, &pos, pos + 1,
                                                memory_order_relaxed,
                                                memory_order_relaxed)) {
        *out = c->item;
        atomic_store_explicit(&c->seq, pos + r->mask + 1, memory_order_release);
        return true;
      }
    } else if (dif < 0) {
      return false;
    } else {
      pos = atomic_load_explicit(&r->head, memory_order_relaxed);
    }
  }
}

/* Anything pushed, or claimed by a push still copying, and not popped?
 * seq_cst: see wp__jring_push. */
static inline bool wp__jring_nonempty(wp__jring *r) {
  size_t t =
      atomic_load_explicit(&r->tail, memory_order_seq_cst) & ~WP__JRING_CLOSED;
  return t != atomic_load_explicit(&r->head, memory_order_seq_cst);
}

/* Pop for a ring with only one popper at a time (the caller holds a lock
 * that every popper holds): no CAS, just the cell's handover. The pushers
 * may be many threads, lock-free. */
static inline bool wp__jring_pop_1(wp__jring *r, wp__jitem *out) {
  size_t pos = atomic_load_explicit(&r->head, memory_order_relaxed);
  wp__jcell *c = &r->cells[pos & r->mask];
  wp__prefetch_w(&r->cells[(pos + WP__JRING_AHEAD) & r->mask]);
  if (atomic_load_explicit(&c->seq, memory_order_acquire) != pos + 1)
    return false;
  *out = c->item;
  atomic_store_explicit(&c->seq, pos + r->mask + 1, memory_order_release);
  atomic_store_explicit(&r->head, pos + 1, memory_order_release);
  return true;
}

/* Closes the ring to pushes; returns the end position: every push that
 * succeeded, or will (it claimed its position already), is below it. */
static inline size_t wp__jring_close(wp__jring *r) {
  return atomic_fetch_or_explicit(&r->tail, WP__JRING_CLOSED,
                                  memory_order_seq_cst) &
         ~WP__JRING_CLOSED;
}

/* Are the n oldest items there and published? A hint for a thread that
 * waits for a batch to gather, read without the poppers' lock (false for
 * n == 0 or n > the ring's room). */
static inline bool wp__jring_ready(wp__jring *r, size_t n) {
  if (n == 0 || n > r->mask + 1) return false;
  size_t pos = atomic_load_explicit(&r->head, memory_order_relaxed) + n - 1;
  return atomic_load_explicit(&r->cells[pos & r->mask].seq,
                              memory_order_relaxed) == pos + 1;
}

/* The position of the next pop. */
static inline size_t wp__jring_head(wp__jring *r) {
  return atomic_load_explicit(&r->head, memory_order_relaxed);
}

#endif
