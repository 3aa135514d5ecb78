/* Fault injection for tests: in a program linked with failalloc.c and
 * -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup,
 * --wrap=pthread_create (tests/fault/CMakeLists.txt), the Nth call made by
 * the project's own code (the libwpool and wpool_tool archives, main.c)
 * fails: malloc/calloc/realloc/strdup return NULL with ENOMEM,
 * pthread_create returns EAGAIN. Only that one call fails; the calls
 * before and after succeed. libcurl's own allocations are not counted
 * (it is a shared library; curl tests its own out-of-memory paths).
 *
 * Set by wp_fail_at() or, at start-up, by the environment:
 *   WP_FAIL_ALLOC=N   the Nth allocation fails
 *   WP_FAIL_THREAD=N  the Nth thread creation fails
 *   WP_FAIL_REPORT=PATH  at exit, writes "allocs=A threads=T failed=F"
 *                     (calls counted, and whether the failure happened).
 * Thread-safe (atomics). */
#ifndef WPOOL_TEST_FAILALLOC_H
#define WPOOL_TEST_FAILALLOC_H

#include <stdbool.h>

/* Arms the Nth allocation and the Mth thread creation from now (0: none)
 * and resets the counts. */
void wp_fail_at(long alloc_n, long thread_m);
/* Calls counted since the last wp_fail_at. */
long wp_fail_allocs(void);
long wp_fail_threads(void);
/* Did the armed failure happen? */
bool wp_fail_happened(void);

#endif
