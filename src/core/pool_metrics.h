/* The metrics a pool keeps about itself (wp_pool_config.metrics): series
 * registered at creation, counters updated on the hot path with one relaxed
 * atomic each, gauges read from the pool's statistics at each render. */
#ifndef WPOOL_CORE_POOL_METRICS_H
#define WPOOL_CORE_POOL_METRICS_H

#include "wpool/metrics.h"
#include "wpool/pool.h"

typedef struct wp__pool_metrics {
  wp_metrics *reg; /* NULL: no metrics (every series below is NULL) */
  wp_pool *pool;
  wp_counter *submitted, *completed[3], *attempts, *retries;
  wp_histogram *duration;
  wp_gauge *queue, *in_flight, *workers, *waiting;
  int collecting; /* the collector is registered */
} wp__pool_metrics;

/* Registers the series in reg (NULL: leaves pm empty) with the constant
 * labels (NULL or name, value pairs, NULL-terminated). Returns 0 or a WP_E*
 * code; nothing needs undoing on failure (series live in the registry). */
int wp__pool_metrics_init(wp__pool_metrics *pm, wp_metrics *reg,
                          const char *const *labels, wp_pool *pool);
/* Starts reading the pool's gauges at each render. Returns 0 or WP_ENOMEM. */
int wp__pool_metrics_start(wp__pool_metrics *pm);
/* Reads the gauges a last time, sets wpool_workers to 0 and stops reading:
 * the pool may then be freed. */
void wp__pool_metrics_stop(wp__pool_metrics *pm);
/* A result is delivered (outcome: 0 ok, 1 failed, 2 canceled). */
void wp__pool_metrics_result(wp__pool_metrics *pm, const wp_result *r,
                             unsigned outcome);

#endif
