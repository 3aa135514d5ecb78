/* Backoff arithmetic: exponential with full jitter (AWS architecture blog,
 * "Exponential Backoff And Jitter"): delay = random(0, min(cap, base*2^n)).
 * Pure functions; the generator is xoshiro256** seeded with splitmix64. */
#include "wpool/retry.h"

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void wp_rng_seed(wp_rng *r, uint64_t seed) {
  for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t wp_rng_next(wp_rng *r) {
  uint64_t *s = r->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

uint64_t wp_rng_below_eq(wp_rng *r, uint64_t bound) {
  if (bound == UINT64_MAX) return wp_rng_next(r);
  uint64_t n = bound + 1;
  /* Rejection sampling, no modulo bias: accept the largest multiple of n
   * values; rem = 2^64 mod n. */
  uint64_t rem = (UINT64_MAX % n + 1) % n;
  uint64_t x;
  do {
    x = wp_rng_next(r);
  } while (x > UINT64_MAX - rem);
  return x % n;
}

int64_t wp_backoff_ceiling(int64_t base_ns, int64_t cap_ns, unsigned n) {
  if (base_ns <= 0 || cap_ns <= 0) return 0;
  if (n == 0) n = 1;
  int64_t v = base_ns;
  for (unsigned i = 1; i < n; i++) {
    if (v >= cap_ns || v > INT64_MAX / 2) return cap_ns;
    v *= 2;
  }
  return v < cap_ns ? v : cap_ns;
}

int64_t wp_backoff_full_jitter(int64_t base_ns, int64_t cap_ns, unsigned n,
                               wp_rng *r) {
  int64_t ceil = wp_backoff_ceiling(base_ns, cap_ns, n);
  if (ceil <= 0) return 0;
  return (int64_t)wp_rng_below_eq(r, (uint64_t)ceil);
}
