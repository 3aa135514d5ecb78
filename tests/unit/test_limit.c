/* Unit tests of the rate limiter (wpool/limit.h), on simulated time: the
 * bucket is a pure function of the times passed in, so no clock and no
 * sleep is involved.
 *
 *  - it starts full: `burst` starts at once, then one per interval;
 *  - over any window of length t, at most burst + t * rate starts (checked
 *    for every window between two recorded starts of a long run);
 *  - a greedy caller that wakes late by up to (burst - 1) intervals still
 *    gets the full rate: lateness is absorbed, not lost;
 *  - idle time does not accumulate beyond the burst;
 *  - the default burst, and refused configurations. */
#include <stdint.h>

#include "wp_test.h"
#include "wp_test_util.h"
#include "wpool/error.h"
#include "wpool/limit.h"

#define MS 1000000LL
#define SEC 1000000000LL

TEST(starts_full_then_one_per_interval) {
  wp_bucket b;
  ASSERT_OK(wp_bucket_init(&b, 100, 3)); /* 10 ms interval */
  int64_t t0 = 5 * SEC;
  ASSERT_EQ(wp_bucket_avail(&b, t0, 10), 3);
  ASSERT_EQ(wp_bucket_avail(&b, t0, 2), 2); /* capped by max */
  wp_bucket_take(&b, t0, 3);
  ASSERT_EQ(wp_bucket_avail(&b, t0, 10), 0);
  ASSERT_EQ(wp_bucket_next(&b), t0 + 10 * MS);
  ASSERT_EQ(wp_bucket_avail(&b, t0 + 10 * MS - 1, 10), 0);
  ASSERT_EQ(wp_bucket_avail(&b, t0 + 10 * MS, 10), 1);
  wp_bucket_take(&b, t0 + 10 * MS, 1);
  ASSERT_EQ(wp_bucket_next(&b), t0 + 20 * MS);
  /* Long idle: back to full, never more than the burst. */
  ASSERT_EQ(wp_bucket_avail(&b, t0 + 3600 * SEC, 100), 3);
  ASSERT(wp_bucket_next(&b) <= t0 + 3600 * SEC);
}

TEST(default_burst_and_bad_configs) {
  ASSERT_EQ(wp_bucket_default_burst(1), 2);
  ASSERT_EQ(wp_bucket_default_burst(50), 2);
  ASSERT_EQ(wp_bucket_default_burst(1000), 20); /* 20 ms worth */
  ASSERT_EQ(wp_bucket_default_burst(1e6), 20000);
  wp_bucket b;
  ASSERT_EQ(wp_bucket_init(&b, 0, 1), WP_EINVAL);
  ASSERT_EQ(wp_bucket_init(&b, -5, 1), WP_EINVAL);
  ASSERT_EQ(wp_bucket_init(&b, 2e9, 1), WP_EINVAL);
  ASSERT_EQ(wp_bucket_init(&b, 0.0 / 0.0, 1), WP_EINVAL);
  ASSERT_EQ(wp_bucket_init(NULL, 1, 1), WP_EINVAL);
  ASSERT_OK(wp_bucket_init(&b, 1e-6, 0)); /* one per 11.6 days */
  ASSERT_EQ(wp_bucket_avail(&b, 0, 5), 2);
  ASSERT_OK(wp_bucket_init(&b, 1e9, 0)); /* one per ns */
  ASSERT_EQ(wp_bucket_avail(&b, 0, 100), 100);
}

/* A greedy caller at random (late) wake-ups over `secs` simulated seconds;
 * returns how many started, recording start times in ts (cap n). */
static size_t simulate(double rate, unsigned burst, int64_t max_late,
                       int secs, uint64_t *seed, int64_t *ts, size_t n) {
  wp_bucket b;
  ASSERT_OK(wp_bucket_init(&b, rate, burst));
  int64_t t = 1000 * SEC, end = t + secs * SEC;
  size_t count = 0;
  while (t < end) {
    unsigned a = wp_bucket_avail(&b, t, 1000);
    if (a > 0) {
      wp_bucket_take(&b, t, a);
      for (unsigned i = 0; i < a && count < n; i++) ts[count++] = t;
    }
    /* Sleep until the next allowed time, and wake a little late. */
    int64_t next = wp_bucket_next(&b);
    if (next <= t) next = t + 1;
    t = next + (max_late ? (int64_t)(rng_next(seed) % (uint64_t)max_late) : 0);
  }
  return count;
}

TEST(no_window_exceeds_burst_plus_rate) {
  uint64_t seed = wp_test_seed();
  static int64_t ts[20000];
  const double rates[] = {10, 50, 333, 1000};
  const unsigned bursts[] = {1, 2, 5, 0};
  for (size_t i = 0; i < 4; i++)
    for (size_t k = 0; k < 4; k++) {
      double rate = rates[i];
      unsigned burst = bursts[k] ? bursts[k] : wp_bucket_default_burst(rate);
      int64_t iv = (int64_t)(1e9 / rate + 0.5);
      size_t n = simulate(rate, burst, iv * 3, 10, &seed, ts, 20000);
      ASSERT(n < 20000);
      /* Every window [ts[a], ts[b]] holds b - a + 1 starts; allowed:
       * burst + (ts[b] - ts[a]) / interval. */
      for (size_t a = 0; a < n; a++)
        for (size_t c = a; c < n && c < a + burst + 64; c++) {
          int64_t allowed = (int64_t)burst + (ts[c] - ts[a]) / iv;
          if ((int64_t)(c - a + 1) > allowed)
            WP_FAIL_("rate %.0f burst %u: %zu starts in %lld ns", rate, burst,
                     c - a + 1, (long long)(ts[c] - ts[a]));
        }
    }
}

TEST(lateness_within_the_burst_does_not_lower_the_rate) {
  uint64_t seed = wp_test_seed();
  static int64_t ts[200000];
  const double rates[] = {40, 200, 1000, 5000};
  for (size_t i = 0; i < 4; i++) {
    double rate = rates[i];
    unsigned burst = wp_bucket_default_burst(rate);
    int64_t iv = (int64_t)(1e9 / rate + 0.5);
    /* Wake-ups up to (burst - 1) intervals late (1 ms granularity of epoll
     * and more): the run still gets rate * secs starts, within one burst. */
    int64_t late = (int64_t)(burst - 1) * iv;
    size_t n = simulate(rate, burst, late, 20, &seed, ts, 200000);
    double want = rate * 20;
    if ((double)n < want - burst || (double)n > want + burst + 1)
      WP_FAIL_("rate %.0f burst %u late <= %lld ns: %zu starts in 20 s, "
               "want %.0f",
               rate, burst, (long long)late, n, want);
  }
}

TEST(take_saturates_far_in_the_future) {
  wp_bucket b;
  ASSERT_OK(wp_bucket_init(&b, 1e-6, 1));
  wp_bucket_take(&b, 0, 4000000000u); /* absurd, but no overflow */
  ASSERT_EQ(wp_bucket_avail(&b, INT64_MAX / 8, 1), 0);
  ASSERT(wp_bucket_next(&b) > INT64_MAX / 8);
}

int main(int argc, char **argv) { return wp_test_main(argc, argv); }
