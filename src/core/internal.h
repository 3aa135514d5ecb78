/* Internal helpers shared by the core's files (wp__ prefix); the tool's
 * files (src/obs, src/fetch, src/cli) use the clocks too. */
#ifndef WPOOL_CORE_INTERNAL_H
#define WPOOL_CORE_INTERNAL_H

#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <signal.h>
#include <stdint.h>
#include <time.h>

/* A condition variable that measures time with CLOCK_MONOTONIC. */
int wp__cond_init_monotonic(pthread_cond_t *cv);
/* pthread_cond_wait, or timedwait until deadline_ns (wp_now_ns clock) unless
 * it is INT64_MAX. Returns pthread's code. */
int wp__cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu,
                        int64_t deadline_ns);
void wp__ns_to_timespec(int64_t ns, struct timespec *ts);
/* Wall-clock time (CLOCK_REALTIME) in ns since the Unix epoch: for
 * timestamps in records and spans, and HTTP dates; never for intervals or
 * deadlines (those are wp_now_ns's, which does not jump). Thread-safe. */
int64_t wp__unix_now_ns(void);

/* Spin-then-sleep: how long a waiter looks before it sleeps, when no other
 * waiter spins already. A short task hands over work in far less than a
 * futex round trip, so a short look saves a sleep and a wake per item. */
#define WP__SPIN_NS 30000

static inline void wp__cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ volatile("yield" ::: "memory");
#endif
}

/* Waiting for another thread that is a few instructions from done (a ring
 * cell claimed and still being copied): pause, and every 64th time yield,
 * since that thread may need this core. */
static inline void wp__backoff(unsigned *spins) {
  if (++*spins < 64) {
    wp__cpu_relax();
  } else {
    *spins = 0;
    sched_yield();
  }
}

/* Asks for the cache line at addr in exclusive state ahead of a store (or
 * a load and then a store) to it: a ring's next cells were last written on
 * another core, and a locked instruction after the store would wait for
 * the line to arrive. Only a hint: no effect on other targets. */
static inline void wp__prefetch_w(const void *addr) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __asm__ volatile("prefetchw %0" ::"m"(*(const char *)addr));
#elif defined(__GNUC__) || defined(__clang__)
  __builtin_prefetch(addr, 1, 3);
#else
  (void)addr;
#endif
}

struct wp_chan;
/* Sends n items (each the channel's item size, contiguous) in order, waiting
 * for room as wp_chan_send(c, item, NULL) would, with one lock round while
 * room lasts. Returns 0 or WP_ECLOSED (the rest were not sent). */
int wp__chan_send_all(struct wp_chan *c, const void *items, size_t n);
/* Receivers announced as waiting (for tests). */
size_t wp__chan_recv_waiters(struct wp_chan *c);

/* Fields written by different threads go on different cache lines. */
#define WP__CACHE_LINE 64
/* calloc for a struct with cache-line-aligned members: zeroed, aligned to
 * WP__CACHE_LINE; free() it. NULL if out of memory. */
void *wp__calloc_lines(size_t size);

/* A mutex for hot, briefly held locks: glibc's adaptive kind spins a little
 * on contention before it sleeps (a plain mutex sleeps at once, and then
 * every contended handover costs two system calls). */
int wp__mutex_init_adaptive(pthread_mutex_t *mu);

#endif
