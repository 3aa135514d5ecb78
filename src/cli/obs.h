/* The observability of `wpool fetch`: its options (--metrics,
 * --metrics-linger, --log-format, --log-level, --log-file, --otlp-endpoint,
 * --traceparent) and the glue between the run and the metrics registry and
 * its /metrics server, the structured log and the span exporter.
 *
 * The run calls in at a few points: the producer for each job (trace IDs),
 * the engine's attempt hook (set up by wp__obs_fetch_config), the result
 * callback, and the run's start and end. Everything here is thread-safe
 * where the run calls it from several threads (attempts, results, logs).
 */
#ifndef WPOOL_CLI_OBS_H
#define WPOOL_CLI_OBS_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>

#include "fetch/fetch.h"
#include "obs/log.h"

typedef struct wp__obs_options {
  const char *metrics_addr; /* NULL: no metrics */
  int64_t metrics_linger_ns;
  bool log_on; /* any --log-* given */
  enum wp__log_format log_format;
  enum wp__log_level log_level;
  const char *log_file; /* NULL: standard error */
  const char *otlp_endpoint;
  bool traceparent; /* send traceparent even without --otlp-endpoint */
} wp__obs_options;

enum {
  WP__OBS_OPT_METRICS = 600,
  WP__OBS_OPT_METRICS_LINGER,
  WP__OBS_OPT_LOG_FORMAT,
  WP__OBS_OPT_LOG_LEVEL,
  WP__OBS_OPT_LOG_FILE,
  WP__OBS_OPT_OTLP_ENDPOINT,
  WP__OBS_OPT_TRACEPARENT
};

/* Entries for getopt_long's table. */
#define WP__OBS_LONG_OPTIONS                                                   \
  {"metrics", required_argument, NULL, WP__OBS_OPT_METRICS},                   \
      {"metrics-linger", required_argument, NULL, WP__OBS_OPT_METRICS_LINGER}, \
      {"log-format", required_argument, NULL, WP__OBS_OPT_LOG_FORMAT},         \
      {"log-level", required_argument, NULL, WP__OBS_OPT_LOG_LEVEL},           \
      {"log-file", required_argument, NULL, WP__OBS_OPT_LOG_FILE},             \
      {"otlp-endpoint", required_argument, NULL, WP__OBS_OPT_OTLP_ENDPOINT}, { \
    "traceparent", no_argument, NULL, WP__OBS_OPT_TRACEPARENT                  \
  }

/* The options' part of `wpool fetch --help`. */
extern const char wp__obs_help[];

void wp__obs_options_init(wp__obs_options *o);
/* Handles option opt if it is one of ours: returns 1 (taken), -1 (a bad
 * value; err says why, naming the flag), or 0 (not ours). */
int wp__obs_option(wp__obs_options *o, int opt, const char *arg, char *err,
                   size_t errlen);

typedef struct wp__obs wp__obs;

/* Opens the log, starts the metrics server and the span exporter as the
 * options say. Returns 0, or -1 with a message in err (nothing left
 * running). */
int wp__obs_start(wp__obs **out, const wp__obs_options *o, char *err,
                  size_t errlen);
/* Hooks the engine: metrics, the attempt hook (logs, spans), traceparent.
 * Sets fc->userdata. */
void wp__obs_fetch_config(wp__obs *ob, wp__fetch_config *fc);
/* The producer read a job: its trace and span IDs (when tracing). */
void wp__obs_new_job(wp__obs *ob, wp__fetch_req *req);
/* A job's result (any thread): the job's span, and its log record. */
void wp__obs_result(wp__obs *ob, const wp_result *res, const wp__fetch_req *req,
                    size_t url_len);
/* A log record (NULL ob or logs off: nothing). */
void wp__obs_log(wp__obs *ob, enum wp__log_level level, const char *msg,
                 const wp__log_field *fields, size_t n);
/* Do the structured logs take standard error (json or logfmt there), so
 * that the one-line summary must not go there too? */
bool wp__obs_owns_stderr(const wp__obs *ob);
/* The run is over: flushes spans (a bounded wait), logs the summary
 * record, then serves the final metrics for --metrics-linger (a SIGINT or
 * SIGTERM ends that wait). */
void wp__obs_finish(wp__obs *ob, const wp__log_field *summary, size_t n);
/* The metrics registry (--metrics), for a command's own series; NULL when
 * there are no metrics (updating a NULL series is a no-op). */
wp_metrics *wp__obs_metrics(wp__obs *ob);
/* Stops everything, frees. NULL is a no-op. */
void wp__obs_stop(wp__obs *ob);

#endif
