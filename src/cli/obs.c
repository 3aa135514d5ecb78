/* The observability of `wpool fetch`: see obs.h.
 *
 * Who calls what: the producer (wp__obs_new_job), the engine's loops (the
 * attempt hook), whichever thread delivers a result (wp__obs_result), and
 * main (start, finish, stop). The shared pieces are thread-safe on their
 * own: the registry (atomics), the logger (a mutex per record), the tracer
 * (a mutex per span). The producer's generator is the producer's alone.
 */
#include "cli/obs.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/internal.h" /* wp__unix_now_ns */
#include "core/utf8.h"     /* wp__hex */
#include "obs/serve.h"
#include "obs/trace.h"
#include "wpool/wpool.h"

const char wp__obs_help[] =
    "Observability:\n"
    "      --metrics ADDR       serve Prometheus metrics at "
    "http://ADDR/metrics; ADDR\n"
    "                           is PORT (on 127.0.0.1), HOST:PORT or "
    "[IPv6]:PORT;\n"
    "                           another interface than loopback must be "
    "named\n"
    "                           (0.0.0.0:9464); port 0 picks a free one "
    "(logged)\n"
    "      --metrics-linger DUR keep serving metrics for DUR after the run, "
    "so a\n"
    "                           scrape sees the final values (SIGINT/SIGTERM "
    "end it)\n"
    "      --log-format F       text (default), json or logfmt: one record "
    "per line\n"
    "      --log-level L        error, warn, info (default) or debug\n"
    "      --log-file PATH      write the log to PATH (appended; default "
    "standard\n"
    "                           error). Any --log-* option turns the log on.\n"
    "      --otlp-endpoint URL  export traces (a trace per job, a span per "
    "attempt)\n"
    "                           as OTLP/HTTP JSON to URL, e.g.\n"
    "                           http://127.0.0.1:4318/v1/traces; implies\n"
    "                           --traceparent\n"
    "      --traceparent        send a W3C traceparent header on every "
    "request\n";

void wp__obs_options_init(wp__obs_options *o) {
  memset(o, 0, sizeof *o);
  o->log_format = WP__LOG_TEXT;
  o->log_level = WP__LOG_INFO;
}

int wp__obs_option(wp__obs_options *o, int opt, const char *arg, char *err,
                   size_t errlen) {
  switch (opt) {
    case WP__OBS_OPT_METRICS: {
      struct sockaddr_storage ss;
      socklen_t sl;
      char why[256];
      if (wp__parse_listen_addr(arg, &ss, &sl, why, sizeof why) != 0) {
        snprintf(err, errlen, "--metrics: %s", why);
        return -1;
      }
      o->metrics_addr = arg;
      return 1;
    }
    case WP__OBS_OPT_METRICS_LINGER:
      if (wp__parse_duration(arg, &o->metrics_linger_ns) != 0) {
        snprintf(err, errlen,
                 "--metrics-linger: expected a duration like 250ms, 30s, 2m "
                 "or 1h, got '%s'",
                 arg);
        return -1;
      }
      return 1;
    case WP__OBS_OPT_LOG_FORMAT:
      o->log_on = true;
      if (wp__parse_log_format(arg, &o->log_format) != 0) {
        snprintf(err, errlen,
                 "--log-format: expected text, json or logfmt, got '%s'", arg);
        return -1;
      }
      return 1;
    case WP__OBS_OPT_LOG_LEVEL:
      o->log_on = true;
      if (wp__parse_log_level(arg, &o->log_level) != 0) {
        snprintf(err, errlen,
                 "--log-level: expected error, warn, info or debug, got '%s'",
                 arg);
        return -1;
      }
      return 1;
    case WP__OBS_OPT_LOG_FILE:
      o->log_on = true;
      o->log_file = arg;
      return 1;
    case WP__OBS_OPT_OTLP_ENDPOINT:
      if (strncmp(arg, "http://", 7) != 0 && strncmp(arg, "https://", 8) != 0) {
        snprintf(err, errlen,
                 "--otlp-endpoint: expected an http(s) URL, got '%s'", arg);
        return -1;
      }
      o->otlp_endpoint = arg;
      o->traceparent = true;
      return 1;
    case WP__OBS_OPT_TRACEPARENT:
      o->traceparent = true;
      return 1;
    default:
      return 0;
  }
}

/* ---- the run's observability ------------------------------------------------
 */

struct wp__obs {
  wp__obs_options o;
  wp__log *log;
  wp_metrics *metrics;
  wp__metrics_server *server;
  wp__tracer *tracer;
  wp_counter *spans_exported, *spans_dropped;
  bool head;    /* the requests' method, for the spans' names */
  uint64_t rng; /* the producer's */
};

static uint64_t next_rand(uint64_t *s) { /* splitmix64 */
  uint64_t z = (*s += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

static void tracer_report(const char *why, void *arg) {
  wp__obs *ob = arg;
  wp__log_field f[] = {WP__FSTR("error", why),
                       WP__FSTR("endpoint", ob->o.otlp_endpoint)};
  wp__obs_log(ob, WP__LOG_WARN,
              "trace spans dropped (reported once; the summary counts them)", f,
              2);
}

int wp__obs_start(wp__obs **out, const wp__obs_options *o, char *err,
                  size_t errlen) {
  *out = NULL;
  wp__obs *ob = calloc(1, sizeof *ob);
  if (!ob) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  ob->o = *o;
  ob->rng = (uint64_t)wp__unix_now_ns() ^ ((uint64_t)getpid() << 32) ^
            (uint64_t)(uintptr_t)ob;
  if (o->log_on && wp__log_open(&ob->log, o->log_format, o->log_level,
                                o->log_file, err, errlen) != 0)
    goto fail;
  if (o->metrics_addr) {
    if (wp_metrics_create(&ob->metrics) != 0 ||
        wp_metrics_add_process(ob->metrics) != 0) {
      snprintf(err, errlen, "out of memory");
      goto fail;
    }
    if (o->otlp_endpoint) {
      wp_metrics_counter(ob->metrics, "wpool_trace_spans_exported_total",
                         "Spans the OTLP collector accepted.", NULL,
                         &ob->spans_exported);
      wp_metrics_counter(ob->metrics, "wpool_trace_spans_dropped_total",
                         "Spans lost: the buffer was full or the collector "
                         "did not take them.",
                         NULL, &ob->spans_dropped);
    }
  }
  if (o->otlp_endpoint) {
    wp__tracer_config tc = {.endpoint = o->otlp_endpoint,
                            .exported = ob->spans_exported,
                            .dropped = ob->spans_dropped,
                            .report = tracer_report,
                            .report_arg = ob};
    if (wp__tracer_create(&tc, &ob->tracer, err, errlen) != 0) goto fail;
  }
  if (o->metrics_addr) {
    char bound[80], why[256];
    if (wp__metrics_serve(ob->metrics, o->metrics_addr, &ob->server, bound,
                          sizeof bound, why, sizeof why) != 0) {
      snprintf(err, errlen, "--metrics: %s", why);
      goto fail;
    }
    /* Say where, always: with port 0 nobody knows otherwise. */
    if (ob->log) {
      wp__log_field f[] = {WP__FSTR("addr", bound)};
      wp__obs_log(ob, WP__LOG_INFO, "serving metrics", f, 1);
    }
    if (!wp__obs_owns_stderr(ob))
      fprintf(stderr, "wpool: serving metrics at http://%s/metrics\n", bound);
  }
  *out = ob;
  return 0;
fail:
  wp__obs_stop(ob);
  return -1;
}

bool wp__obs_owns_stderr(const wp__obs *ob) {
  return ob && ob->log && ob->o.log_format != WP__LOG_TEXT &&
         (!ob->o.log_file || strcmp(ob->o.log_file, "-") == 0);
}

void wp__obs_log(wp__obs *ob, enum wp__log_level level, const char *msg,
                 const wp__log_field *fields, size_t n) {
  if (ob) wp__log_write(ob->log, level, msg, fields, n);
}

static bool tracing(const wp__obs *ob) { return ob->o.traceparent; }

/* The trace_id field: the job's trace, or null when not tracing. */
static wp__log_field trace_field(const wp__obs *ob, const wp__fetch_req *req,
                                 char buf[33]) {
  if (!tracing(ob)) return WP__FNULL("trace_id");
  wp__hex(buf, req->trace_id, 16);
  buf[32] = '\0';
  return WP__FSTR("trace_id", buf);
}

static wp__log_field status_field(int status) {
  return status > 0 ? WP__FINT("status", status) : WP__FNULL("status");
}

static wp__log_field error_field(const char *e) {
  return e && *e ? WP__FSTR("error", e) : WP__FNULL("error");
}

static char *dup_or_null(const char *s) { return s && *s ? strdup(s) : NULL; }

static void on_attempt(const wp__fetch_attempt *a, void *userdata) {
  wp__obs *ob = userdata;
  wp__fetch_req *req = a->req;
  char tid[33];
  if (!a->ended) {
    if (a->attempt <= 1) {
      req->started_unix_ns = a->start_unix_ns;
      return;
    }
    if (wp__log_enabled(ob->log, WP__LOG_WARN)) {
      /* req still holds the outputs of the attempt that failed. */
      wp__log_field f[] = {
          WP__FUINT("id", a->id),           WP__FSTR("url", req->url),
          WP__FUINT("attempt", a->attempt), status_field(req->status),
          error_field(req->error),          trace_field(ob, req, tid)};
      wp__log_write(ob->log, WP__LOG_WARN, "retry", f, 6);
    }
    return;
  }
  if (ob->tracer) {
    wp__span s;
    memset(&s, 0, sizeof s);
    memcpy(s.trace_id, req->trace_id, 16);
    memcpy(s.span_id, a->span_id, 8);
    memcpy(s.parent_id, req->span_id, 8);
    s.name = ob->head ? "HEAD" : "GET";
    s.kind = WP__SPAN_CLIENT;
    s.start_unix_ns = a->start_unix_ns;
    s.end_unix_ns = a->end_unix_ns;
    s.error = a->err != 0;
    s.error_msg = s.error ? dup_or_null(req->error) : NULL;
    s.url = dup_or_null(req->url);
    s.job_id = a->id;
    s.attempt = a->attempt;
    s.http_status = req->status;
    wp__tracer_add(ob->tracer, &s);
  }
  if (wp__log_enabled(ob->log, WP__LOG_DEBUG)) {
    wp__log_field f[] = {WP__FUINT("id", a->id),
                         WP__FSTR("url", req->url),
                         WP__FUINT("attempt", a->attempt),
                         status_field(req->status),
                         error_field(a->err ? req->error : NULL),
                         WP__FDBL("elapsed_ms", (double)a->elapsed_ns / 1e6),
                         trace_field(ob, req, tid)};
    wp__log_write(ob->log, WP__LOG_DEBUG, "attempt", f, 7);
  }
}

void wp__obs_fetch_config(wp__obs *ob, wp__fetch_config *fc) {
  if (!ob) return;
  ob->head = fc->head;
  fc->metrics = ob->metrics;
  fc->trace = tracing(ob);
  fc->userdata = ob;
  /* The hook writes spans (the tracer), "retry" warnings and "attempt"
   * debug records; only spans and "attempt" records need the times. */
  bool times = ob->tracer || wp__log_enabled(ob->log, WP__LOG_DEBUG);
  if (times || wp__log_enabled(ob->log, WP__LOG_WARN)) {
    fc->on_attempt = on_attempt;
    fc->attempt_times = times;
  }
}

void wp__obs_new_job(wp__obs *ob, wp__fetch_req *req) {
  if (!ob || !tracing(ob)) return;
  uint64_t r[3];
  do {
    r[0] = next_rand(&ob->rng);
    r[1] = next_rand(&ob->rng);
  } while ((r[0] | r[1]) == 0);
  do r[2] = next_rand(&ob->rng);
  while (r[2] == 0);
  memcpy(req->trace_id, r, 16);
  memcpy(req->span_id, &r[2], 8);
}

void wp__obs_result(wp__obs *ob, const wp_result *res, const wp__fetch_req *req,
                    size_t url_len) {
  if (!ob) return;
  const char *error = NULL;
  if (res->err == WP_ECANCELED)
    error = "canceled";
  else if (res->err != 0)
    error = req->error ? req->error : wp_strerror(res->err);
  const char *outcome = res->err == 0              ? "ok"
                        : res->err == WP_ECANCELED ? "canceled"
                                                   : "failed";
  if (ob->tracer) {
    int64_t now = wp__unix_now_ns();
    wp__span s;
    memset(&s, 0, sizeof s);
    memcpy(s.trace_id, req->trace_id, 16);
    memcpy(s.span_id, req->span_id, 8);
    s.name = "job";
    s.kind = WP__SPAN_INTERNAL;
    s.start_unix_ns =
        res->attempts > 0 && req->started_unix_ns ? req->started_unix_ns : now;
    s.end_unix_ns = now;
    s.error = res->err != 0;
    s.error_msg = dup_or_null(error);
    s.url = dup_or_null(req->url);
    s.job_id = res->id;
    s.attempt = res->attempts;
    s.http_status = req->status;
    wp__tracer_add(ob->tracer, &s);
  }
  enum wp__log_level lv =
      res->err != 0 && res->err != WP_ECANCELED ? WP__LOG_WARN : WP__LOG_DEBUG;
  if (!wp__log_enabled(ob->log, lv)) return;
  char tid[33];
  wp__log_field f[] = {WP__FUINT("id", res->id),
                       WP__FBYTES("url", req->url, url_len),
                       WP__FSTR("outcome", outcome),
                       WP__FUINT("attempts", res->attempts),
                       status_field(req->status),
                       error_field(error),
                       WP__FDBL("elapsed_ms", (double)res->elapsed_ns / 1e6),
                       trace_field(ob, req, tid)};
  wp__log_write(ob->log, lv, lv == WP__LOG_WARN ? "giving up" : "job done", f,
                8);
}

void wp__obs_finish(wp__obs *ob, const wp__log_field *summary, size_t n) {
  if (!ob) return;
  if (ob->tracer) {
    uint64_t exported, dropped;
    wp__tracer_close(ob->tracer, 2000000000LL, &exported, &dropped);
    ob->tracer = NULL;
    /* The summary gains the span counts, final now. */
    wp__log_field *f = calloc(n + 2, sizeof *f);
    if (f) {
      memcpy(f, summary, n * sizeof *f);
      f[n] = WP__FUINT("spans_exported", exported);
      f[n + 1] = WP__FUINT("spans_dropped", dropped);
      wp__obs_log(ob, WP__LOG_INFO, "run summary", f, n + 2);
      free(f);
    }
  } else {
    wp__obs_log(ob, WP__LOG_INFO, "run summary", summary, n);
  }
  if (ob->server && ob->o.metrics_linger_ns > 0) {
    wp__log_field f[] = {
        WP__FDBL("linger_ms", (double)ob->o.metrics_linger_ns / 1e6)};
    wp__obs_log(ob, WP__LOG_INFO, "metrics linger", f, 1);
    /* The caller blocks these signals in every thread: wait for one. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    struct timespec end;
    clock_gettime(CLOCK_MONOTONIC, &end);
    int64_t until = (int64_t)end.tv_sec * 1000000000 + end.tv_nsec +
                    ob->o.metrics_linger_ns;
    for (;;) {
      struct timespec now;
      clock_gettime(CLOCK_MONOTONIC, &now);
      int64_t left = until - ((int64_t)now.tv_sec * 1000000000 + now.tv_nsec);
      if (left <= 0) break;
      struct timespec ts = {.tv_sec = (time_t)(left / 1000000000),
                            .tv_nsec = (long)(left % 1000000000)};
      int sig = sigtimedwait(&set, NULL, &ts);
      if (sig == SIGINT || sig == SIGTERM) break;
      if (sig < 0 && errno != EINTR && errno != EAGAIN) break;
    }
  }
}

wp_metrics *wp__obs_metrics(wp__obs *ob) { return ob ? ob->metrics : NULL; }

void wp__obs_stop(wp__obs *ob) {
  if (!ob) return;
  wp__metrics_server_stop(ob->server);
  wp__tracer_close(ob->tracer, 0, NULL, NULL);
  wp_metrics_destroy(ob->metrics);
  wp__log_close(ob->log);
  free(ob);
}
