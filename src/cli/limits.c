/* Parsers and checks of the retry and limit options: see limits.h. */
#include "cli/limits.h"

#include <stdlib.h>
#include <string.h>

#include "cli/parse.h"

int wp__parse_backoff(const char *s, int64_t *base_ns, int64_t *cap_ns) {
  if (!s || !base_ns || !cap_ns) return -1;
  const char *comma = strchr(s, ',');
  if (!comma || strchr(comma + 1, ',')) return -1;
  size_t n = (size_t)(comma - s);
  char first[64];
  if (n == 0 || n >= sizeof first) return -1;
  memcpy(first, s, n);
  first[n] = '\0';
  int64_t b, c;
  if (wp__parse_duration(first, &b) != 0 ||
      wp__parse_duration(comma + 1, &c) != 0 || b <= 0 || c < b)
    return -1;
  *base_ns = b;
  *cap_ns = c;
  return 0;
}

int wp__parse_rate(const char *s, double *per_sec) {
  if (!s || !per_sec) return -1;
  size_t n = strlen(s);
  double div = 1;
  if (n >= 2 && strcmp(s + n - 2, "/s") == 0) {
    n -= 2;
  } else if (n >= 2 && strcmp(s + n - 2, "/m") == 0) {
    n -= 2;
    div = 60;
  }
  /* Digits with at most one '.', at least one digit: no sign, exponent,
   * hex, inf or nan, which strtod would take. */
  char num[32];
  if (n == 0 || n >= sizeof num) return -1;
  size_t digits = 0, dots = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] >= '0' && s[i] <= '9')
      digits++;
    else if (s[i] == '.')
      dots++;
    else
      return -1;
  }
  if (digits == 0 || dots > 1) return -1;
  memcpy(num, s, n);
  num[n] = '\0';
  double v = strtod(num, NULL) / div;
  if (!(v >= 1.0 / 3600 && v <= 1e6)) return -1;
  *per_sec = v;
  return 0;
}

int wp__parse_fail_limit(const char *s, wp__fail_limit *out) {
  if (!s || !out) return -1;
  size_t n = strlen(s);
  bool pct = n > 0 && s[n - 1] == '%';
  char num[24];
  if (pct) n--;
  if (n == 0 || n >= sizeof num) return -1;
  memcpy(num, s, n);
  num[n] = '\0';
  uint64_t v;
  if (wp__parse_uint(num, 1, pct ? 100 : UINT64_MAX, &v) != 0) return -1;
  out->n = v;
  out->percent = pct;
  return 0;
}

bool wp__fail_limit_hit(const wp__fail_limit *l, uint64_t failed,
                        uint64_t done) {
  if (!l || l->n == 0) return false;
  if (!l->percent) return failed >= l->n;
  if (done < WP__FAIL_LIMIT_MIN_DONE) return false;
  /* failed / done >= n / 100, in integers (failed <= done, n <= 100). */
  return failed * 100 >= l->n * done;
}

uint64_t wp__nofile_need(const wp__nofile_use *u) {
  uint64_t n = WP__NOFILE_BASE;
  n += u->workers;
  n += u->loop_fds;
  n += u->files;
  if (u->metrics) n += WP__NOFILE_METRICS;
  if (u->queue) n += WP__NOFILE_QUEUE;
  return n;
}

int wp__nofile_plan(uint64_t need, uint64_t soft, uint64_t hard, uint64_t *to) {
  if (soft >= need) return 0;
  if (hard < need) return -1;
  *to = hard == UINT64_MAX ? need : hard;
  return 1;
}
