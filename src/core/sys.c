/* What the core asks of the system beyond its own logic: glibc's adaptive
 * mutex where available (the one thing past POSIX: it falls back to a
 * plain mutex elsewhere), cache-line-aligned memory, and the wall clock. */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "wpool/error.h"

int wp__mutex_init_adaptive(pthread_mutex_t *mu) {
#ifdef PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP
  pthread_mutexattr_t a;
  if (pthread_mutexattr_init(&a) != 0) return WP_ESYSTEM;
  pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ADAPTIVE_NP);
  int rc = pthread_mutex_init(mu, &a);
  pthread_mutexattr_destroy(&a);
  return rc == 0 ? 0 : WP_ESYSTEM;
#else
  return pthread_mutex_init(mu, NULL) == 0 ? 0 : WP_ESYSTEM;
#endif
}

void *wp__calloc_lines(size_t size) {
  size_t n = (size + WP__CACHE_LINE - 1) & ~(size_t)(WP__CACHE_LINE - 1);
  if (n < size) return NULL;
  void *p = aligned_alloc(WP__CACHE_LINE, n);
  if (p) memset(p, 0, n);
  return p;
}

int64_t wp__unix_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
