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

/* ---- file descriptors (RLIMIT_NOFILE) ------------------------------------
 *
 * What a run opens, counted so that --workers 10000 under a low limit is
 * refused (or the soft limit raised) before anything starts, never EMFILE
 * mid-run (which libcurl reports as "Couldn't connect"). */
typedef struct wp__nofile_use {
  unsigned workers;  /* transfers in flight: one socket each */
  uint64_t loop_fds; /* the event loops' (wp__fetch_fds) */
  uint64_t files;    /* input FILEs: all are opened at the start */
  bool metrics;      /* --metrics: the listener, its epoll set, scrapers */
  bool queue;        /* wpool work: PostgreSQL connections, an eventfd */
} wp__nofile_use;

/* Always: standard streams, the output, the log file, the state file
 * (SQLite's file, -wal and -shm for two connections, the lock), the trace
 * exporter's connection, and slack for libc (name resolution reads
 * /etc/hosts) and a second socket while a dual-stack host is connected
 * to (happy eyeballs), which lasts only until one of them answers. */
#define WP__NOFILE_BASE 32
/* --metrics: the listener, libmicrohttpd's epoll set and pipe, at most 64
 * scrapers at once (src/obs/serve.c). */
#define WP__NOFILE_METRICS 68
/* wpool work: three connections (claims, results, heartbeat), the
 * runner's eventfd. */
#define WP__NOFILE_QUEUE 4

/* The descriptors the run needs (an estimate with the margins above). */
uint64_t wp__nofile_need(const wp__nofile_use *u);

/* What to do with the limit (soft, hard; UINT64_MAX = unlimited) for a
 * run that needs `need`: 0 enough as it is; 1 raise the soft limit to
 * *to (the hard limit; `need` when the hard one is unlimited); -1 the hard
 * limit is below `need`: the run cannot start. */
int wp__nofile_plan(uint64_t need, uint64_t soft, uint64_t hard, uint64_t *to);

#endif
