/* Fault injection by link-time wrapping: see failalloc.h. */
#define _GNU_SOURCE
#include "failalloc.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
int __real_pthread_create(pthread_t *t, const pthread_attr_t *a,
                          void *(*fn)(void *), void *arg);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *a,
                          void *(*fn)(void *), void *arg);

static atomic_long allocs, threads, alloc_at, thread_at;
static atomic_bool happened;

void wp_fail_at(long alloc_n, long thread_m) {
  atomic_store(&alloc_at, 0);
  atomic_store(&thread_at, 0);
  atomic_store(&allocs, 0);
  atomic_store(&threads, 0);
  atomic_store(&happened, false);
  atomic_store(&alloc_at, alloc_n);
  atomic_store(&thread_at, thread_m);
}

long wp_fail_allocs(void) { return atomic_load(&allocs); }
long wp_fail_threads(void) { return atomic_load(&threads); }
bool wp_fail_happened(void) { return atomic_load(&happened); }

static bool fail_alloc(void) {
  long at = atomic_load(&alloc_at);
  long c = atomic_fetch_add(&allocs, 1) + 1;
  if (at > 0 && c == at) {
    atomic_store(&happened, true);
    return true;
  }
  return false;
}

void *__wrap_malloc(size_t n) {
  if (fail_alloc()) {
    errno = ENOMEM;
    return NULL;
  }
  return __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size) {
  if (fail_alloc()) {
    errno = ENOMEM;
    return NULL;
  }
  return __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n) {
  if (fail_alloc()) {
    errno = ENOMEM;
    return NULL;
  }
  return __real_realloc(p, n);
}

char *__wrap_strdup(const char *s) {
  if (fail_alloc()) {
    errno = ENOMEM;
    return NULL;
  }
  size_t n = strlen(s) + 1;
  char *d = __real_malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *a,
                          void *(*fn)(void *), void *arg) {
  long at = atomic_load(&thread_at);
  long c = atomic_fetch_add(&threads, 1) + 1;
  if (at > 0 && c == at) {
    atomic_store(&happened, true);
    return EAGAIN;
  }
  return __real_pthread_create(t, a, fn, arg);
}

static const char *report_path;

static void report(void) {
  FILE *f = fopen(report_path, "w");
  if (!f) return;
  fprintf(f, "allocs=%ld threads=%ld failed=%d\n", wp_fail_allocs(),
          wp_fail_threads(), wp_fail_happened() ? 1 : 0);
  fclose(f);
}

__attribute__((constructor)) static void from_env(void) {
  const char *a = getenv("WP_FAIL_ALLOC"), *t = getenv("WP_FAIL_THREAD");
  wp_fail_at(a ? strtol(a, NULL, 10) : 0, t ? strtol(t, NULL, 10) : 0);
  report_path = getenv("WP_FAIL_REPORT");
  if (report_path && *report_path) atexit(report);
}
