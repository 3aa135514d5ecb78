/* Unit tests of the backoff arithmetic (wpool/retry.h): exponential with
 * full jitter, delay = random(0, min(cap, base * 2^(n-1))) before retry n.
 *
 *  - the ceiling, for every retry number 1..200 and a table of bases and
 *    caps (including ones where base * 2^(n-1) overflows 64 bits), equals
 *    the exact value computed in 128-bit arithmetic;
 *  - every draw lies in [0, ceiling], for every retry number and cap;
 *  - with a seeded generator, the mean of 100,000 draws is within 2% of the
 *    expectation ceiling / 2, and the draws reach both ends of the range
 *    (the smallest below 1% of the ceiling, the largest above 99%): a
 *    halved, shifted or non-jittered delay fails one of these;
 *  - the generator's uniform draw on small ranges hits every value with
 *    about equal frequency (chi-square, no modulo bias). */
#include <stdint.h>

#include "wp_test.h"
#include "wpool/retry.h"

#define MS 1000000LL
#define SEC 1000000000LL

static int64_t exact_ceiling(int64_t base, int64_t cap, unsigned n) {
  if (base <= 0 || cap <= 0) return 0;
  if (n == 0) n = 1;
  if (n - 1 >= 64) return cap;
  unsigned __int128 v = (unsigned __int128)base << (n - 1);
  return v < (unsigned __int128)cap ? (int64_t)v : cap;
}

static const struct {
  int64_t base, cap;
} policies[] = {
    {100 * MS, 10 * SEC}, /* the CLI's default */
    {1, 1},
    {1, INT64_MAX},
    {3, 1000},
    {1 * MS, 5 * MS},
    {7 * SEC, 6 * SEC}, /* base above cap: the cap wins at once */
    {INT64_MAX / 2 + 1, INT64_MAX},
    {INT64_MAX, INT64_MAX},
    {0, 10 * SEC}, /* no base: no delay */
    {100 * MS, 0},
};

TEST(ceiling_is_min_of_cap_and_doubling_exactly) {
  for (size_t i = 0; i < sizeof policies / sizeof policies[0]; i++)
    for (unsigned n = 0; n <= 200; n++) {
      int64_t got = wp_backoff_ceiling(policies[i].base, policies[i].cap, n);
      int64_t want = exact_ceiling(policies[i].base, policies[i].cap, n);
      if (got != want)
        WP_FAIL_("policy %zu (base %lld cap %lld) retry %u: %lld, want %lld",
                 i, (long long)policies[i].base, (long long)policies[i].cap,
                 n, (long long)got, (long long)want);
    }
  /* The default policy, spelled out: 100ms, 200ms, 400ms ... 6.4s, 10s. */
  int64_t want[] = {100 * MS, 200 * MS, 400 * MS,  800 * MS,
                    1600 * MS, 3200 * MS, 6400 * MS, 10 * SEC, 10 * SEC};
  for (unsigned n = 1; n <= 9; n++)
    ASSERT_EQ(wp_backoff_ceiling(100 * MS, 10 * SEC, n), want[n - 1]);
}

TEST(every_draw_within_bounds_for_every_attempt_and_cap) {
  wp_rng r;
  wp_rng_seed(&r, wp_test_seed());
  for (size_t i = 0; i < sizeof policies / sizeof policies[0]; i++)
    for (unsigned n = 1; n <= 80; n++) {
      int64_t c = exact_ceiling(policies[i].base, policies[i].cap, n);
      for (int k = 0; k < 200; k++) {
        int64_t d =
            wp_backoff_full_jitter(policies[i].base, policies[i].cap, n, &r);
        if (d < 0 || d > c)
          WP_FAIL_("policy %zu retry %u: draw %lld outside [0, %lld]", i, n,
                   (long long)d, (long long)c);
      }
    }
}

/* The mean of 100,000 draws with a fixed seed, against ceiling / 2. */
static void check_mean(uint64_t seed, int64_t base, int64_t cap, unsigned n) {
  const int draws = 100000;
  wp_rng r;
  wp_rng_seed(&r, seed);
  int64_t c = wp_backoff_ceiling(base, cap, n);
  long double sum = 0;
  int64_t lo = INT64_MAX, hi = 0;
  for (int k = 0; k < draws; k++) {
    int64_t d = wp_backoff_full_jitter(base, cap, n, &r);
    ASSERT(d >= 0 && d <= c);
    sum += (long double)d;
    if (d < lo) lo = d;
    if (d > hi) hi = d;
  }
  long double mean = sum / draws, want = (long double)c / 2;
  long double rel = (mean - want) / want;
  if (rel < 0) rel = -rel;
  if (rel > 0.02L)
    WP_FAIL_("base %lld cap %lld retry %u: mean %.1Lf, want %.1Lf +- 2%%",
             (long long)base, (long long)cap, n, mean, want);
  /* Full jitter spans the whole range, not [c/2, c] nor a fixed c. */
  ASSERT_LT(lo, c / 100 + 1);
  ASSERT_GT(hi, c - c / 100 - 1);
}

TEST(mean_of_100k_seeded_draws_within_2_percent) {
  /* A fixed seed (the test is deterministic) and, to show it is not just
   * that seed, the run's seed too (printed; WP_TEST_SEED replays). */
  uint64_t seeds[] = {42, wp_test_seed()};
  for (size_t s = 0; s < 2; s++) {
    check_mean(seeds[s], 100 * MS, 10 * SEC, 1);  /* 100 ms */
    check_mean(seeds[s], 100 * MS, 10 * SEC, 4);  /* 800 ms */
    check_mean(seeds[s], 100 * MS, 10 * SEC, 12); /* capped: 10 s */
    check_mean(seeds[s], 1, 1000, 30);            /* tiny range */
    check_mean(seeds[s], 1, INT64_MAX, 64);       /* the whole range */
  }
}

TEST(uniform_draw_has_no_bias_on_small_ranges) {
  wp_rng r;
  wp_rng_seed(&r, 7);
  for (uint64_t bound = 1; bound <= 12; bound++) {
    uint64_t counts[13] = {0};
    const int draws = 130000;
    for (int k = 0; k < draws; k++) {
      uint64_t v = wp_rng_below_eq(&r, bound);
      ASSERT(v <= bound);
      counts[v]++;
    }
    double expect = (double)draws / (double)(bound + 1), chi = 0;
    for (uint64_t v = 0; v <= bound; v++) {
      double d = (double)counts[v] - expect;
      chi += d * d / expect;
    }
    /* 99.99th percentile of chi-square with <= 12 degrees of freedom is
     * below 40: a biased generator lands far above. */
    if (chi > 40) WP_FAIL_("bound %llu: chi-square %.1f", (unsigned long long)bound, chi);
  }
}

TEST(same_seed_same_draws) {
  wp_rng a, b;
  wp_rng_seed(&a, 12345);
  wp_rng_seed(&b, 12345);
  for (int k = 0; k < 1000; k++)
    ASSERT_EQ(wp_backoff_full_jitter(MS, SEC, 5, &a),
              wp_backoff_full_jitter(MS, SEC, 5, &b));
}

int main(int argc, char **argv) { return wp_test_main(argc, argv); }
