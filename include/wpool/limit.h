/* wpool: a smooth rate limiter (token bucket as GCRA). Pure functions: no
 * I/O, no clock reads, no global state; the caller passes the time. Not
 * thread-safe: one bucket is used under one lock (the pool's).
 *
 * Guarantee: over any interval of length t, at most burst + t * rate
 * starts are allowed; a caller that starts whenever allowed gets rate per
 * second on average, evenly spaced (one every 1/rate s) once the initial
 * burst is spent. The burst also absorbs the lateness of a caller that
 * wakes up a little after the allowed time, so that lateness does not
 * lower the rate. */
#ifndef WPOOL_LIMIT_H
#define WPOOL_LIMIT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wp_bucket {
  int64_t interval_ns; /* 1 / rate */
  int64_t tau_ns;      /* (burst - 1) * interval: how far ahead tat may be */
  int64_t tat_ns;      /* theoretical arrival time of the next start */
} wp_bucket;

/* The burst wp_bucket_init uses for burst 0: max(2, rate * 20 ms). */
unsigned wp_bucket_default_burst(double per_sec);

/* Sets up a bucket for per_sec starts per second (1e-6 to 1e9), of which
 * up to burst (0: the default) may happen at once; it starts full.
 * Returns 0 or WP_EINVAL. */
int wp_bucket_init(wp_bucket *b, double per_sec, unsigned burst);

/* How many starts are allowed at time now (wp_now_ns clock), at most max. */
unsigned wp_bucket_avail(const wp_bucket *b, int64_t now, unsigned max);

/* Records n starts at time now (n should not exceed wp_bucket_avail). */
void wp_bucket_take(wp_bucket *b, int64_t now, unsigned n);

/* The earliest time at which a start is allowed (<= now if one is now). */
int64_t wp_bucket_next(const wp_bucket *b);

#ifdef __cplusplus
}
#endif
#endif
