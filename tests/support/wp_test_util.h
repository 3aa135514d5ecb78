/* Helpers shared by the unit tests: bounded waits (a lost wakeup fails
 * with a message instead of hanging), threads that can be joined with a
 * bound, a seeded generator, and descriptor checks. */
#ifndef WPOOL_TEST_UTIL_H
#define WPOOL_TEST_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <time.h>

#include "wp_test.h"

static inline void sem_wait_bounded(sem_t *s, int secs, const char *what) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += secs;
  while (sem_timedwait(s, &ts) != 0) {
    int e = errno;
    if (e == EINTR) continue;
    if (e == ETIMEDOUT) WP_FAIL_("%s: not done within %d s", what, secs);
    WP_FAIL_("sem_timedwait failed: errno %d", e);
  }
}

/* A thread whose end can be awaited with a bound. */
typedef struct thr {
  pthread_t tid;
  void (*fn)(void *);
  void *arg;
  sem_t done;
} thr;

static inline void *thr_main(void *p) {
  thr *t = p;
  t->fn(t->arg);
  sem_post(&t->done);
  return NULL;
}

static inline void thr_start(thr *t, void (*fn)(void *), void *arg) {
  t->fn = fn;
  t->arg = arg;
  ASSERT_EQ(sem_init(&t->done, 0, 0), 0);
  ASSERT_EQ(pthread_create(&t->tid, NULL, thr_main, t), 0);
}

static inline void thr_join(thr *t, int secs, const char *what) {
  sem_wait_bounded(&t->done, secs, what);
  ASSERT_EQ(pthread_join(t->tid, NULL), 0);
  sem_destroy(&t->done);
}

static inline uint64_t rng_next(uint64_t *s) { /* splitmix64 */
  uint64_t z = (*s += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

static inline uint32_t rng_below(uint64_t *s, uint32_t n) {
  return (uint32_t)(rng_next(s) % n);
}

/* 1 if fd is readable now (poll with a zero timeout). */
static inline int fd_readable(int fd) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  int r;
  do r = poll(&p, 1, 0);
  while (r < 0 && errno == EINTR);
  ASSERT(r >= 0);
  ASSERT(!(p.revents & POLLNVAL));
  return r == 1 && (p.revents & POLLIN) != 0;
}

static inline int fd_is_open(int fd) {
  return fcntl(fd, F_GETFD) != -1 || errno != EBADF;
}

/* n scaled by WP_TEST_SCALE, at least 1. */
static inline int scaled(int n) {
  int v = (int)(n * wp_test_scale());
  return v > 0 ? v : 1;
}

#endif
