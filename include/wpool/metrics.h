/* wpool: metrics (counters, gauges, histograms) in the Prometheus text
 * exposition format.
 *
 * A registry (wp_metrics) holds metric families; each family has a name, a
 * help text, a type and one series per set of label values. There is no
 * global registry: make one, register series in it, update them from any
 * thread, and render the lot whenever something scrapes (the wpool tool
 * serves it over HTTP; a library user can serve it, log it or read it).
 *
 * Cost: updating a series is one or two relaxed atomic operations, no lock
 * (a histogram: a bucket search and two atomics). Registering and rendering
 * take the registry's mutex; keep the series pointers instead of
 * registering on the hot path.
 *
 * A pool updates its own metrics when its configuration names a registry
 * (wp_pool_config.metrics, see pool.h): the wpool_* metrics listed there.
 *
 * Thread safety: every function is thread-safe. Series live as long as
 * their registry; a registry must outlive every pool that updates it.
 */
#ifndef WPOOL_METRICS_H
#define WPOOL_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wp_metrics wp_metrics;
typedef struct wp_counter wp_counter;
typedef struct wp_gauge wp_gauge;
typedef struct wp_histogram wp_histogram;

/* Makes an empty registry. Returns 0 or WP_EINVAL / WP_ENOMEM with *out =
 * NULL. */
int wp_metrics_create(wp_metrics **out);

/* Frees the registry and every series in it. NULL is a no-op. Nothing may
 * use its series, render it or update it any more. */
void wp_metrics_destroy(wp_metrics *m);

/* Registering. name: [a-zA-Z_:][a-zA-Z0-9_:]*. help: any bytes (escaped on
 * output; invalid UTF-8 is replaced by U+FFFD). labels: NULL or a
 * NULL-terminated array of name, value pairs, e.g.
 * (const char *[]){"outcome", "ok", NULL}; label names
 * [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__" (nor "le" on a histogram);
 * values any bytes (escaped, invalid UTF-8 replaced). Every string is
 * copied.
 *
 * The first registration of a name fixes its type and help text; a later
 * one with the same name and type adds a series (other label values) or
 * returns the existing one (the same label values, in the same order; a
 * histogram also needs the same bounds). Returns 0 and stores the series in
 * *out, or WP_EINVAL (a bad name, a name registered with another type,
 * other bounds) or WP_ENOMEM; *out is then NULL. */
int wp_metrics_counter(wp_metrics *m, const char *name, const char *help,
                       const char *const *labels, wp_counter **out);
int wp_metrics_gauge(wp_metrics *m, const char *name, const char *help,
                     const char *const *labels, wp_gauge **out);
/* bounds: the buckets' upper bounds, strictly increasing, finite, 1 to 64
 * of them; the +Inf bucket is implicit. */
int wp_metrics_histogram(wp_metrics *m, const char *name, const char *help,
                         const char *const *labels, const double *bounds,
                         size_t nbounds, wp_histogram **out);

/* Updating: lock-free, from any thread. A NULL series is a no-op, so code
 * can update optional metrics without a test. */
void wp_counter_add(wp_counter *c, uint64_t n);
uint64_t wp_counter_value(const wp_counter *c);
void wp_gauge_set(wp_gauge *g, double v);
void wp_gauge_add(wp_gauge *g, double delta);
double wp_gauge_value(const wp_gauge *g);
/* Counts v in the first bucket whose bound is >= v, and adds it to the sum.
 * NaN is ignored. */
void wp_histogram_observe(wp_histogram *h, double v);
/* Observations so far (the +Inf bucket, which is also _count). */
uint64_t wp_histogram_count(const wp_histogram *h);

/* A collector runs at the start of every render, with the registry's mutex
 * held, on the rendering thread: it may set gauges and add to counters (not
 * register, render or remove collectors). Used for values that are cheaper
 * to read at scrape time than to keep up to date (queue depth). Returns 0,
 * WP_EINVAL or WP_ENOMEM. */
typedef void (*wp_metrics_collect_cb)(void *arg);
int wp_metrics_add_collector(wp_metrics *m, wp_metrics_collect_cb cb,
                             void *arg);
/* Removes the collector registered with the same cb and arg; once this
 * returns it is not running and will not run again. Returns 0 or
 * WP_EINVAL (no such collector). */
int wp_metrics_remove_collector(wp_metrics *m, wp_metrics_collect_cb cb,
                                void *arg);

/* Adds the standard process_* metrics of the Prometheus client libraries,
 * read from the kernel at each render (Linux /proc): process_cpu_seconds_total,
 * process_resident_memory_bytes, process_virtual_memory_bytes,
 * process_open_fds, process_max_fds, process_start_time_seconds. Returns 0
 * or WP_ENOMEM. */
int wp_metrics_add_process(wp_metrics *m);

/* Renders every family in registration order in the Prometheus text format
 * 0.0.4 (# HELP, # TYPE, one line per series; a histogram's cumulative
 * _bucket{le="..."} lines ending with le="+Inf", then _sum and _count).
 * Returns 0 and a malloc'd, NUL-terminated text in *out (the caller frees
 * it) and its length in *len (len may be NULL); or WP_ENOMEM / WP_ESYSTEM
 * with *out = NULL. */
int wp_metrics_render(wp_metrics *m, char **out, size_t *len);

/* Writes the same text to f. Returns 0, or WP_ESYSTEM if a write failed. */
int wp_metrics_write(wp_metrics *m, FILE *f);

/* The content type of the rendered text, for an HTTP response. */
#define WP_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#ifdef __cplusplus
}
#endif
#endif
