/* wpool: backoff arithmetic. Pure functions: no I/O, no global state;
 * thread-safe as long as each generator is used by one thread at a time. */
#ifndef WPOOL_RETRY_H
#define WPOOL_RETRY_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A small, fast pseudo-random generator (xoshiro256**), seeded with
 * splitmix64. Not for cryptography. */
typedef struct wp_rng {
  uint64_t s[4];
} wp_rng;

void wp_rng_seed(wp_rng *r, uint64_t seed);
uint64_t wp_rng_next(wp_rng *r);
/* Uniform in [0, bound]; bound may be any value. */
uint64_t wp_rng_below_eq(wp_rng *r, uint64_t bound);

/* The ceiling of the delay before retry number n (1 for the first retry):
 * min(cap, base * 2^(n-1)), computed without overflow; 0 if base <= 0. */
int64_t wp_backoff_ceiling(int64_t base_ns, int64_t cap_ns, unsigned n);

/* Full jitter: a uniform draw in [0, wp_backoff_ceiling(base, cap, n)]. */
int64_t wp_backoff_full_jitter(int64_t base_ns, int64_t cap_ns, unsigned n,
                               wp_rng *r);

#ifdef __cplusplus
}
#endif
#endif
