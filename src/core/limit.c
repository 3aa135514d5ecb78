/* The rate limiter: a token bucket written as GCRA (the "generic cell rate
 * algorithm" of ATM networks, also used by e.g. redis-cell): instead of a
 * token count refilled by a timer, one time, tat, when the next start would
 * be due at exactly the rate. A start at `now` is allowed while
 * tat - now <= tau = (burst - 1) * interval; each start moves tat to
 * max(tat, now) + interval. So unused time never accumulates beyond the
 * burst, and no refill arithmetic or timer is needed. Pure integers. */
#include "wpool/limit.h"

#include "wpool/error.h"

unsigned wp_bucket_default_burst(double per_sec) {
  double b = per_sec * 0.020;
  if (!(b > 2)) return 2;
  if (b > 1e6) return 1000000;
  return (unsigned)b;
}

int wp_bucket_init(wp_bucket *b, double per_sec, unsigned burst) {
  if (!b || !(per_sec >= 1e-6 && per_sec <= 1e9)) return WP_EINVAL;
  if (burst == 0) burst = wp_bucket_default_burst(per_sec);
  double iv = 1e9 / per_sec + 0.5;
  if (iv < 1) iv = 1;
  b->interval_ns = (int64_t)iv;
  double tau = (double)(burst - 1) * (double)b->interval_ns;
  /* Bounds that keep every sum below in range: tat - tau, now + tau. */
  b->tau_ns = tau > (double)(INT64_MAX / 4) ? INT64_MAX / 4 : (int64_t)tau;
  b->tat_ns = INT64_MIN / 4; /* long ago: the bucket starts full */
  return 0;
}

unsigned wp_bucket_avail(const wp_bucket *b, int64_t now, unsigned max) {
  int64_t tat = b->tat_ns > now ? b->tat_ns : now;
  int64_t room = now + b->tau_ns - tat; /* >= 0 means one start fits */
  if (room < 0 || max == 0) return 0;
  int64_t n = room / b->interval_ns + 1;
  return n >= (int64_t)max ? max : (unsigned)n;
}

void wp_bucket_take(wp_bucket *b, int64_t now, unsigned n) {
  if (n == 0) return;
  int64_t tat = b->tat_ns > now ? b->tat_ns : now;
  int64_t lim = INT64_MAX / 4;
  if ((int64_t)n > (lim - tat) / b->interval_ns) {
    b->tat_ns = lim; /* saturated: far in the future */
    return;
  }
  b->tat_ns = tat + (int64_t)n * b->interval_ns;
}

int64_t wp_bucket_next(const wp_bucket *b) { return b->tat_ns - b->tau_ns; }
