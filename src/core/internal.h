/* Internal helpers shared by the core's files (wp__ prefix). */
#ifndef WPOOL_CORE_INTERNAL_H
#define WPOOL_CORE_INTERNAL_H

#include <pthread.h>
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

#endif
