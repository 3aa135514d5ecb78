/* Traces of the wpool tool: spans exported as OTLP/HTTP JSON (POST
 * <endpoint>, normally .../v1/traces) in batches, from a background thread.
 *
 * Adding a span never waits for the collector: spans go into a bounded
 * buffer (capacity spans); when it is full a span is dropped and counted,
 * and a batch that the collector does not take (refused, unreachable, too
 * slow) is dropped and counted too. So a slow or absent collector costs
 * spans, never job time. The exporter is woken when a batch is full, and
 * exports what it has at least every second.
 *
 * Thread safety: wp__tracer_add from any thread; create and close from one.
 */
#ifndef WPOOL_OBS_TRACE_H
#define WPOOL_OBS_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cli/parse.h" /* wp__buf */
#include "wpool/metrics.h"

enum { WP__SPAN_INTERNAL = 1, WP__SPAN_CLIENT = 3 }; /* OTLP SpanKind */

typedef struct wp__span {
  uint8_t trace_id[16], span_id[8];
  uint8_t parent_id[8]; /* all zero: a root span */
  const char *name;     /* static */
  int kind;
  int64_t start_unix_ns, end_unix_ns;
  bool error;      /* status ERROR (with error_msg), else OK */
  char *url;       /* malloc'd, owned by the span; may be NULL */
  char *error_msg; /* malloc'd, owned by the span; may be NULL */
  uint64_t job_id;
  unsigned attempt; /* attempt spans: which; job spans: how many */
  int http_status;  /* -1: none */
} wp__span;

/* Frees the span's strings. */
void wp__span_clear(wp__span *s);

/* Appends the OTLP/JSON ExportTraceServiceRequest of spans[0..n) (one
 * resource "service.name"=service, one scope "wpool"). IDs in lower-case
 * hex, times as decimal strings (proto3 JSON of fixed64), strings escaped
 * with wp__json_string. Pure. */
void wp__otlp_json(wp__buf *b, const wp__span *spans, size_t n,
                   const char *service);

typedef struct wp__tracer wp__tracer;

/* Called once per tracer, when spans are first lost, with why (the buffer
 * is full, or the collector's error): on the exporter thread, or on the
 * thread whose wp__tracer_add found the buffer full. */
typedef void (*wp__tracer_report_cb)(const char *why, void *arg);

typedef struct wp__tracer_config {
  const char *endpoint; /* http(s) URL of the collector's /v1/traces */
  size_t capacity;      /* spans buffered at most; 0 = 8192 */
  size_t batch;         /* spans per request at most; 0 = 512 */
  int64_t timeout_ns;   /* per request; 0 = 5 s */
  wp_counter *exported, *dropped; /* optional metrics */
  wp__tracer_report_cb report;    /* optional */
  void *report_arg;
} wp__tracer_config;

/* Starts the exporter thread. Returns 0, or -1 with a message in err. */
int wp__tracer_create(const wp__tracer_config *cfg, wp__tracer **out, char *err,
                      size_t errlen);
/* Takes the span (and its strings, also when it is dropped). Never
 * blocks on the collector; returns false if the span was dropped. */
bool wp__tracer_add(wp__tracer *t, wp__span *s);
/* Exports what is buffered (giving up after grace_ns), stops the thread,
 * frees everything; stores the final counts of spans exported and dropped
 * (either pointer may be NULL). NULL t is a no-op (counts 0). */
void wp__tracer_close(wp__tracer *t, int64_t grace_ns, uint64_t *exported,
                      uint64_t *dropped);
/* Spans exported / dropped so far. */
uint64_t wp__tracer_exported(const wp__tracer *t);
uint64_t wp__tracer_dropped(const wp__tracer *t);

#endif
