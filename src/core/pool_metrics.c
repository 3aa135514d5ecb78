/* A pool's own metrics: see pool_metrics.h. */
#include "core/pool_metrics.h"

#include <string.h>

#include "wpool/error.h"

#define MAX_CONST_LABELS 16

/* The job duration buckets: 1 ms to 60 s. */
static const double duration_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025,
                                         0.05,  0.1,    0.25,  0.5,  1,
                                         2.5,   5,      10,    30,   60};

/* labels + one more pair (name NULL: none) into out[]; -1 if too many. */
static int with_label(const char *const *labels, const char *name,
                      const char *value, const char *out[]) {
  size_t n = 0;
  for (; labels && labels[n]; n += 2) {
    if (n >= (size_t)2 * MAX_CONST_LABELS) return -1;
    out[n] = labels[n];
    out[n + 1] = labels[n + 1];
  }
  if (name) {
    out[n++] = name;
    out[n++] = value;
  }
  out[n] = NULL;
  return 0;
}

int wp__pool_metrics_init(wp__pool_metrics *pm, wp_metrics *reg,
                          const char *const *labels, wp_pool *pool) {
  memset(pm, 0, sizeof *pm);
  if (!reg) return 0;
  const char *l[2 * MAX_CONST_LABELS + 3];
  static const char *const outcomes[] = {"ok", "failed", "canceled"};
  if (with_label(labels, NULL, NULL, l) != 0) return WP_EINVAL;
  const char *const *cl = l;
  int rc = 0;
#define REG(call) \
  if (rc == 0) rc = (call)
  REG(wp_metrics_counter(reg, "wpool_jobs_submitted_total",
                         "Jobs accepted by the pool.", cl, &pm->submitted));
  for (int i = 0; i < 3; i++) {
    const char *lo[2 * MAX_CONST_LABELS + 3];
    with_label(labels, "outcome", outcomes[i], lo);
    REG(wp_metrics_counter(reg, "wpool_jobs_completed_total",
                           "Jobs completed (one result each), by outcome: "
                           "ok, failed or canceled.",
                           lo, &pm->completed[i]));
  }
  REG(wp_metrics_histogram(
      reg, "wpool_job_duration_seconds",
      "Time from the start of a job's first attempt to its result, retries "
      "and their backoff included; jobs that never ran are not counted.",
      cl, duration_bounds, sizeof duration_bounds / sizeof duration_bounds[0],
      &pm->duration));
  REG(wp_metrics_counter(reg, "wpool_attempts_total",
                         "Attempts started (a job's first and its retries).",
                         cl, &pm->attempts));
  REG(wp_metrics_counter(reg, "wpool_retries_total",
                         "Attempts that failed and were scheduled again.", cl,
                         &pm->retries));
  REG(wp_metrics_gauge(reg, "wpool_queue_depth",
                       "Jobs queued, waiting for a worker.", cl, &pm->queue));
  REG(wp_metrics_gauge(reg, "wpool_in_flight",
                       "Jobs held by workers: running now.", cl,
                       &pm->in_flight));
  REG(wp_metrics_gauge(reg, "wpool_workers", "Worker threads of the pool.", cl,
                       &pm->workers));
  REG(wp_metrics_gauge(reg, "wpool_retry_waiting",
                       "Jobs waiting out a retry backoff (holding no worker).",
                       cl, &pm->waiting));
#undef REG
  if (rc != 0) {
    memset(pm, 0, sizeof *pm);
    return rc;
  }
  pm->reg = reg;
  pm->pool = pool;
  return 0;
}

static void collect(void *arg) {
  wp__pool_metrics *pm = arg;
  wp_pool_stats st;
  wp_pool_stats_get(pm->pool, &st);
  wp_gauge_set(pm->queue, (double)st.queued);
  wp_gauge_set(pm->in_flight, (double)st.running);
  wp_gauge_set(pm->waiting, (double)st.waiting);
  wp_gauge_set(pm->workers, (double)st.workers);
}

int wp__pool_metrics_start(wp__pool_metrics *pm) {
  if (!pm->reg) return 0;
  int rc = wp_metrics_add_collector(pm->reg, collect, pm);
  if (rc == 0) pm->collecting = 1;
  return rc;
}

void wp__pool_metrics_stop(wp__pool_metrics *pm) {
  if (!pm->collecting) return;
  wp_metrics_remove_collector(pm->reg, collect, pm);
  pm->collecting = 0;
  collect(pm);
  wp_gauge_set(pm->workers, 0);
}

void wp__pool_metrics_result(wp__pool_metrics *pm, const wp_result *r,
                             unsigned outcome) {
  if (!pm->reg) return;
  wp_counter_add(pm->completed[outcome], 1);
  if (r->attempts > 0)
    wp_histogram_observe(pm->duration, (double)r->elapsed_ns / 1e9);
}
