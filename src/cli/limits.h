/* Pure parsers and checks for the retry and limit options of `wpool fetch`
 * (--backoff, --rate, --max-failures). No I/O, no globals; reentrant.
 * Tested in tests/unit/test_cli_limits.c. */
#ifndef WPOOL_CLI_LIMITS_H
#define WPOOL_CLI_LIMITS_H

#include <stdbool.h>
#include <stdint.h>

/* --backoff BASE,CAP: two durations (wp__parse_duration) with
 * 0 < BASE <= CAP. Returns 0 or -1 (both outputs untouched). */
int wp__parse_backoff(const char *s, int64_t *base_ns, int64_t *cap_ns);

/* --rate R[/s|/m]: a positive decimal number of attempts per second (no
 * suffix or "/s") or per minute ("/m"), converted to per second, within
 * [1/3600, 10^6] per second. Returns 0 or -1 (*per_sec untouched). */
int wp__parse_rate(const char *s, double *per_sec);

/* --max-failures N or N%: N an integer >= 1 (with '%', 1 to 100).
 * Returns 0 or -1. */
typedef struct wp__fail_limit {
  uint64_t n;   /* 0: no limit */
  bool percent; /* n is a percentage of the jobs done so far */
} wp__fail_limit;
int wp__parse_fail_limit(const char *s, wp__fail_limit *out);

/* The share form applies only after this many jobs are done. */
#define WP__FAIL_LIMIT_MIN_DONE 20

/* Is the limit reached, with `failed` of `done` jobs not ok? The count
 * form: failed >= n. The share form: done >= WP__FAIL_LIMIT_MIN_DONE and
 * failed / done >= n%. */
bool wp__fail_limit_hit(const wp__fail_limit *l, uint64_t failed,
                        uint64_t done);

#endif
