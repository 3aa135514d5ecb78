/* pool_noop: the pool's own overhead, with a task that does nothing.
 *
 *   pool_noop [-j JOBS] [-w WORKERS] [-m callback|chan]
 *
 * Creates a pool of WORKERS task workers (default 1) whose task returns 0 at
 * once, max_outstanding left at its default (2 * workers), submits JOBS jobs
 * (default 1,000,000) with IDs 1..JOBS from the main thread with
 * wp_pool_submit(), collects every result, and shuts the pool down.
 *
 * Results are collected either
 *   - callback (default): cfg.on_result, called on the worker threads, adds
 *     to an atomic count and an atomic sum of IDs; or
 *   - chan: cfg.results is a wp_chan of wp_result (capacity 2 * workers, the
 *     Go peer's default buffer), drained by a collector thread that receives
 *     until WP_ECLOSED and counts in plain variables (it is the only
 *     receiver, as the Go peer's collector goroutine). The post's order:
 * wp_pool_shutdown(), close the results channel, join the collector.
 *
 * Timed (CLOCK_MONOTONIC): from just before the first submit (pool created,
 * workers and collector running) to the moment the last result is collected
 * (the one that brings the count to JOBS), as in the Go peer
 * (bench/peers/go-noop). Shutdown is done and checked but not timed.
 *
 * Checks: every call's return; every result arrived exactly once (count and
 * sum of IDs) and has err == 0. Prints one line and exits 0, or says what is
 * wrong on stderr and exits 1 (2 for bad usage):
 *
 *   wpool workers=W jobs=N mode=M seconds=S jobs_per_s=R
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wpool/wpool.h"

enum mode { MODE_CALLBACK, MODE_CHAN };

typedef struct bench {
  uint64_t jobs;
  _Atomic uint64_t count; /* results received */
  _Atomic uint64_t sum;   /* of their IDs */
  _Atomic uint64_t bad;   /* results with err != 0 */
  _Atomic int64_t end_ns; /* when count reached jobs; 0 until then */
  wp_chan *results;       /* chan mode */
  int recv_err;           /* chan mode: the collector's last receive */
} bench;

static int64_t now_ns(void) {
  struct timespec ts;
  /* CLOCK_MONOTONIC cannot fail here; a failure would show as a 0 time and
   * is reported by the caller's check on end_ns. */
  if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) return 0;
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int noop_task(wp_ctx *ctx, wp_job *job, void *wstate) {
  (void)ctx;
  (void)job;
  (void)wstate;
  return 0;
}

/* One result in callback mode: from many worker threads at once. */
static void account(bench *b, const wp_result *res) {
  if (res->err != 0)
    atomic_fetch_add_explicit(&b->bad, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&b->sum, res->id, memory_order_relaxed);
  if (atomic_fetch_add_explicit(&b->count, 1, memory_order_relaxed) + 1 ==
      b->jobs)
    atomic_store_explicit(&b->end_ns, now_ns(), memory_order_relaxed);
}

static void on_result(const wp_result *res, void *userdata) {
  account(userdata, res);
}

/* The only receiver: it counts in plain variables, as the Go peer's
 * collector goroutine does, and publishes them when the channel closes. */
static void *collector(void *arg) {
  bench *b = arg;
  wp_result res;
  uint64_t count = 0, sum = 0, bad = 0;
  int rc;
  while ((rc = wp_chan_recv(b->results, &res, NULL)) == 0) {
    if (res.err != 0) bad++;
    sum += res.id;
    if (++count == b->jobs)
      atomic_store_explicit(&b->end_ns, now_ns(), memory_order_relaxed);
  }
  atomic_store(&b->count, count);
  atomic_store(&b->sum, sum);
  atomic_store(&b->bad, bad);
  b->recv_err = rc; /* WP_ECLOSED is the normal end */
  return NULL;
}

static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out) {
  char *end;
  unsigned long long v;
  int e;
  if (s[0] < '0' || s[0] > '9') /* no sign, no space */
    return -1;
  errno = 0;
  v = strtoull(s, &end, 10);
  e = errno;
  if (e != 0 || *end != '\0' || v < min || v > max) return -1;
  *out = v;
  return 0;
}

/* strerror() is not thread-safe (CONVENTIONS.md): the XSI strerror_r. */
static const char *errstr(int e, char *buf, size_t len) {
  if (strerror_r(e, buf, len) != 0) snprintf(buf, len, "error %d", e);
  return buf;
}

static void usage(void) {
  fprintf(stderr,
          "usage: pool_noop [-j JOBS] [-w WORKERS(1-10000)] "
          "[-m callback|chan] [-M]\n"
          "  -M  the pool keeps its metrics (wp_pool_config.metrics)\n");
}

int main(int argc, char **argv) {
  uint64_t jobs = 1000000, workers = 1, queue = 0;
  enum mode mode = MODE_CALLBACK;
  wp_metrics *metrics = NULL;
  bench b;
  wp_pool_config cfg;
  wp_pool *pool = NULL;
  pthread_t coll;
  char ebuf[128];
  int coll_started = 0, failed = 0, rc, opt;
  uint64_t submitted = 0, count, sum, bad, want_sum;
  int64_t start_ns = 0, end_ns;
  double secs;

  while ((opt = getopt(argc, argv, "j:w:m:q:M")) != -1) {
    switch (opt) {
      case 'M':
        if (!metrics && wp_metrics_create(&metrics) != 0) {
          fprintf(stderr, "pool_noop: wp_metrics_create failed\n");
          return 1;
        }
        break;
      case 'j':
        /* the sum of IDs 1..jobs must fit in 64 bits */
        if (parse_u64(optarg, 1, UINT64_C(4000000000), &jobs) != 0) {
          usage();
          return 2;
        }
        break;
      case 'w':
        if (parse_u64(optarg, 1, 10000, &workers) != 0) {
          usage();
          return 2;
        }
        break;
      case 'q':
        if (parse_u64(optarg, 1, 1u << 24, &queue) != 0) {
          usage();
          return 2;
        }
        break;
      case 'm':
        if (strcmp(optarg, "callback") == 0) {
          mode = MODE_CALLBACK;
        } else if (strcmp(optarg, "chan") == 0) {
          mode = MODE_CHAN;
        } else {
          usage();
          return 2;
        }
        break;
      default:
        usage();
        return 2;
    }
  }
  if (optind != argc) {
    usage();
    return 2;
  }

  memset(&b, 0, sizeof b);
  b.jobs = jobs;
  atomic_init(&b.count, 0);
  atomic_init(&b.sum, 0);
  atomic_init(&b.bad, 0);
  atomic_init(&b.end_ns, 0);

  memset(&cfg, 0, sizeof cfg);
  cfg.workers = (unsigned)workers;
  cfg.max_outstanding = (size_t)queue; /* -q; 0: the default, 2 * workers */
  cfg.task = noop_task;
  cfg.userdata = &b;
  cfg.metrics = metrics; /* -M; NULL: none */
  if (mode == MODE_CHAN) {
    rc =
        wp_chan_create(sizeof(wp_result),
                       queue ? (size_t)queue : 2 * (size_t)workers, &b.results);
    if (rc != 0) {
      fprintf(stderr, "pool_noop: wp_chan_create: %s\n", wp_strerror(rc));
      return 1;
    }
    cfg.results = b.results;
  } else {
    cfg.on_result = on_result;
  }

  rc = wp_pool_create(&cfg, &pool);
  if (rc != 0) {
    fprintf(stderr, "pool_noop: wp_pool_create: %s\n", wp_strerror(rc));
    wp_chan_destroy(b.results);
    return 1;
  }
  if (mode == MODE_CHAN) {
    rc = pthread_create(&coll, NULL, collector, &b);
    if (rc != 0) {
      fprintf(stderr, "pool_noop: pthread_create: %s\n",
              errstr(rc, ebuf, sizeof ebuf));
      failed = 1; /* the pool's results would block: shut down at once */
      rc = wp_pool_shutdown_now(pool, NULL);
      if (rc != 0)
        fprintf(stderr, "pool_noop: wp_pool_shutdown_now: %s\n",
                wp_strerror(rc));
      goto cleanup;
    }
    coll_started = 1;
  }

  start_ns = now_ns();
  for (uint64_t id = 1; id <= jobs; id++) {
    rc = wp_pool_submit(pool, id, NULL, NULL);
    if (rc != 0) {
      fprintf(stderr, "pool_noop: wp_pool_submit(%" PRIu64 "): %s\n", id,
              wp_strerror(rc));
      failed = 1;
      break;
    }
    submitted++;
  }

  rc = wp_pool_shutdown(pool, NULL);
  if (rc != 0) {
    fprintf(stderr, "pool_noop: wp_pool_shutdown: %s\n", wp_strerror(rc));
    failed = 1;
  }

cleanup:
  if (mode == MODE_CHAN) {
    /* Shutdown has joined every worker: nothing sends any more. */
    rc = wp_chan_close(b.results);
    if (rc != 0) {
      fprintf(stderr, "pool_noop: wp_chan_close: %s\n", wp_strerror(rc));
      failed = 1;
    }
    if (coll_started) {
      rc = pthread_join(coll, NULL);
      if (rc != 0) {
        fprintf(stderr, "pool_noop: pthread_join: %s\n",
                errstr(rc, ebuf, sizeof ebuf));
        return 1; /* the collector may still use the channel */
      }
      if (b.recv_err != WP_ECLOSED) {
        fprintf(stderr, "pool_noop: wp_chan_recv: %s\n",
                wp_strerror(b.recv_err));
        failed = 1;
      }
    }
  }
  wp_pool_destroy(pool);
  wp_chan_destroy(b.results);
  if (metrics && !failed) { /* the pool counted every job */
    char *text = NULL;
    if (wp_metrics_render(metrics, &text, NULL) != 0 ||
        !strstr(text, "wpool_jobs_completed_total{outcome=\"ok\"} ")) {
      fprintf(stderr, "pool_noop: no metrics rendered\n");
      failed = 1;
    }
    free(text);
  }
  wp_metrics_destroy(metrics);
  if (failed) return 1;

  count = atomic_load(&b.count);
  sum = atomic_load(&b.sum);
  bad = atomic_load(&b.bad);
  end_ns = atomic_load(&b.end_ns);
  want_sum = jobs % 2 == 0 ? jobs / 2 * (jobs + 1) : (jobs + 1) / 2 * jobs;
  if (submitted != jobs || count != jobs || sum != want_sum || bad != 0 ||
      end_ns <= start_ns) {
    fprintf(stderr,
            "pool_noop: results wrong: submitted=%" PRIu64 " count=%" PRIu64
            " (want %" PRIu64 ") sum=%" PRIu64 " (want %" PRIu64
            ") errors=%" PRIu64 "\n",
            submitted, count, jobs, sum, want_sum, bad);
    return 1;
  }
  secs = (double)(end_ns - start_ns) / 1e9;
  if (printf("wpool workers=%" PRIu64 " jobs=%" PRIu64
             " mode=%s seconds=%.6f jobs_per_s=%.0f\n",
             workers, jobs, mode == MODE_CHAN ? "chan" : "callback", secs,
             (double)jobs / secs) < 0 ||
      fflush(stdout) != 0)
    return 1;
  return 0;
}
