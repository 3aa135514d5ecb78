/* Span export as OTLP/HTTP JSON: see trace.h.
 *
 * Design. A ring of `capacity` spans under a mutex: adding is one lock
 * round and a copy, or a drop when the ring is full. The exporter thread
 * takes up to `batch` spans at a time, encodes them with the lock released
 * and POSTs them with its own libcurl easy handle (kept, so the connection
 * stays open). It sleeps until a batch is full, a second has passed since
 * spans arrived, or close; at close it exports what is left until the
 * grace period ends, and drops (counting) the rest.
 *
 * Lock order: the tracer's mu only; curl runs without it.
 */
#include "obs/trace.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "core/utf8.h" /* wp__hex */
#include "wpool/wpool.h"

#define FLUSH_EVERY_NS 1000000000LL

struct wp__tracer {
  wp__tracer_config cfg;
  char *endpoint;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  wp__span *ring;
  size_t head, len;
  bool closing;
  int64_t deadline_ns; /* of the grace period, once closing */
  pthread_t thread;
  atomic_uint_fast64_t exported, dropped;
  atomic_bool reported;
  CURL *easy;
  struct curl_slist *hdrs;
  char curl_err[CURL_ERROR_SIZE];
};

void wp__span_clear(wp__span *s) {
  free(s->url);
  free(s->error_msg);
  s->url = s->error_msg = NULL;
}

/* ---- OTLP/JSON --------------------------------------------------------------
 */

static void hex_id(wp__buf *b, const uint8_t *id, size_t n) {
  char out[32]; /* n <= 16: a trace ID at most */
  wp__hex(out, id, n);
  wp__buf_append(b, out, 2 * n);
}

static bool all_zero(const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i]) return false;
  return true;
}

static void attr_str(wp__buf *b, const char *key, const char *v, bool *first) {
  wp__buf_printf(b, "%s{\"key\":\"%s\",\"value\":{\"stringValue\":",
                 *first ? "" : ",", key);
  wp__json_string(b, v, strlen(v));
  wp__buf_puts(b, "}}");
  *first = false;
}

static void attr_int(wp__buf *b, const char *key, int64_t v, bool *first) {
  /* proto3 JSON writes int64 as a string. */
  wp__buf_printf(b,
                 "%s{\"key\":\"%s\",\"value\":{\"intValue\":\"%" PRId64 "\"}}",
                 *first ? "" : ",", key, v);
  *first = false;
}

void wp__otlp_json(wp__buf *b, const wp__span *spans, size_t n,
                   const char *service) {
  wp__buf_puts(b,
               "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":"
               "\"service.name\",\"value\":{\"stringValue\":");
  wp__json_string(b, service, strlen(service));
  wp__buf_printf(b,
                 "}}]},\"scopeSpans\":[{\"scope\":{\"name\":\"wpool\","
                 "\"version\":\"%s\"},\"spans\":[",
                 WPOOL_VERSION);
  for (size_t i = 0; i < n; i++) {
    const wp__span *s = &spans[i];
    wp__buf_puts(b, i ? ",{\"traceId\":\"" : "{\"traceId\":\"");
    hex_id(b, s->trace_id, 16);
    wp__buf_puts(b, "\",\"spanId\":\"");
    hex_id(b, s->span_id, 8);
    wp__buf_puts(b, "\"");
    if (!all_zero(s->parent_id, 8)) {
      wp__buf_puts(b, ",\"parentSpanId\":\"");
      hex_id(b, s->parent_id, 8);
      wp__buf_puts(b, "\"");
    }
    wp__buf_puts(b, ",\"name\":");
    wp__json_string(b, s->name ? s->name : "", s->name ? strlen(s->name) : 0);
    wp__buf_printf(b,
                   ",\"kind\":%d,\"startTimeUnixNano\":\"%" PRIu64
                   "\",\"endTimeUnixNano\":\"%" PRIu64 "\",\"attributes\":[",
                   s->kind,
                   (uint64_t)(s->start_unix_ns > 0 ? s->start_unix_ns : 0),
                   (uint64_t)(s->end_unix_ns > 0 ? s->end_unix_ns : 0));
    bool first = true;
    attr_int(b, "wpool.job.id", (int64_t)s->job_id, &first);
    attr_int(b, s->kind == WP__SPAN_CLIENT ? "wpool.attempt" : "wpool.attempts",
             s->attempt, &first);
    if (s->url) attr_str(b, "url.full", s->url, &first);
    if (s->http_status > 0)
      attr_int(b, "http.response.status_code", s->http_status, &first);
    wp__buf_puts(b, "],\"status\":{");
    if (s->error) {
      wp__buf_puts(b, "\"code\":2,\"message\":");
      const char *m = s->error_msg ? s->error_msg : "error";
      wp__json_string(b, m, strlen(m));
    } else {
      wp__buf_puts(b, "\"code\":1");
    }
    wp__buf_puts(b, "}}");
  }
  wp__buf_puts(b, "]}]}]}");
}

/* ---- the exporter
 * ------------------------------------------------------------ */

static void report_once(wp__tracer *t, const char *why) {
  if (!atomic_exchange(&t->reported, true) && t->cfg.report)
    t->cfg.report(why, t->cfg.report_arg);
}

static void count_dropped(wp__tracer *t, size_t n) {
  atomic_fetch_add(&t->dropped, n);
  wp_counter_add(t->cfg.dropped, n);
}

static size_t discard_body(char *p, size_t size, size_t nmemb, void *ud) {
  (void)p;
  (void)ud;
  return size * nmemb;
}

/* POSTs the batch; 0 if the collector took it. */
static int post(wp__tracer *t, const wp__buf *body, int64_t timeout_ns,
                char *why, size_t whylen) {
  CURL *e = t->easy;
  t->curl_err[0] = '\0';
  long ms = (long)(timeout_ns / 1000000);
  if (ms < 1) ms = 1;
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, body->data);
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, ms);
  CURLcode rc = curl_easy_perform(e);
  if (rc != CURLE_OK) {
    snprintf(why, whylen, "%s",
             t->curl_err[0] ? t->curl_err : curl_easy_strerror(rc));
    return -1;
  }
  long status = 0;
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
  if (status < 200 || status >= 300) {
    snprintf(why, whylen, "the collector answered HTTP %ld", status);
    return -1;
  }
  return 0;
}

static void *exporter(void *arg) {
  wp__tracer *t = arg;
  size_t cap = t->cfg.batch;
  wp__span *batch = malloc(cap * sizeof *batch);
  wp__buf body;
  wp__buf_init(&body);
  pthread_mutex_lock(&t->mu);
  int64_t since = wp_now_ns(); /* the last export */
  for (;;) {
    while (!t->closing && t->len < cap) {
      if (t->len == 0) {
        pthread_cond_wait(&t->cv, &t->mu);
        since = wp_now_ns();
      } else if (wp__cond_wait_until(&t->cv, &t->mu, since + FLUSH_EVERY_NS) ==
                 ETIMEDOUT) {
        break;
      }
    }
    if (t->len == 0 && t->closing) break;
    size_t n = t->len < cap ? t->len : cap;
    if (!batch) n = 0; /* no memory: everything is dropped below */
    for (size_t i = 0; i < n; i++) {
      batch[i] = t->ring[t->head];
      t->head = (t->head + 1) % t->cfg.capacity;
    }
    t->len -= n;
    bool closing = t->closing;
    int64_t deadline = t->deadline_ns;
    if (!batch) {
      for (; t->len > 0; t->len--, t->head = (t->head + 1) % t->cfg.capacity)
        wp__span_clear(&t->ring[t->head]);
    }
    pthread_mutex_unlock(&t->mu);

    if (n > 0) {
      int64_t timeout = t->cfg.timeout_ns;
      if (closing && deadline - wp_now_ns() < timeout)
        timeout = deadline - wp_now_ns();
      char why[CURL_ERROR_SIZE + 64];
      wp__buf_reset(&body);
      wp__otlp_json(&body, batch, n, "wpool");
      int ok = -1;
      if (body.oom)
        snprintf(why, sizeof why, "out of memory");
      else if (timeout <= 0)
        snprintf(why, sizeof why, "no time left at exit");
      else
        ok = post(t, &body, timeout, why, sizeof why);
      if (ok == 0) {
        atomic_fetch_add(&t->exported, n);
        wp_counter_add(t->cfg.exported, n);
      } else {
        count_dropped(t, n);
        report_once(t, why);
      }
      for (size_t i = 0; i < n; i++) wp__span_clear(&batch[i]);
    }
    since = wp_now_ns();
    pthread_mutex_lock(&t->mu);
  }
  pthread_mutex_unlock(&t->mu);
  wp__buf_free(&body);
  free(batch);
  return NULL;
}

int wp__tracer_create(const wp__tracer_config *cfg, wp__tracer **out, char *err,
                      size_t errlen) {
  *out = NULL;
  wp__tracer *t = calloc(1, sizeof *t);
  if (!t) goto oom;
  t->cfg = *cfg;
  if (!t->cfg.capacity) t->cfg.capacity = 8192;
  if (!t->cfg.batch) t->cfg.batch = 512;
  if (t->cfg.batch > t->cfg.capacity) t->cfg.batch = t->cfg.capacity;
  if (!t->cfg.timeout_ns) t->cfg.timeout_ns = 5000000000LL;
  t->endpoint = strdup(cfg->endpoint ? cfg->endpoint : "");
  t->ring = calloc(t->cfg.capacity, sizeof *t->ring);
  if (!t->endpoint || !t->ring) goto oom_free;
  if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK) {
    snprintf(err, errlen, "libcurl cannot start");
    goto fail_free;
  }
  t->easy = curl_easy_init();
  t->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
  CURLcode rc = CURLE_OK;
#define SET(opt, val) \
  if (rc == CURLE_OK) rc = curl_easy_setopt(t->easy, opt, val)
  if (t->easy && t->hdrs) {
    SET(CURLOPT_URL, t->endpoint);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_HTTPHEADER, t->hdrs);
    SET(CURLOPT_WRITEFUNCTION, discard_body);
    SET(CURLOPT_ERRORBUFFER, t->curl_err);
    SET(CURLOPT_CONNECTTIMEOUT_MS, 2000L);
  }
#undef SET
  if (!t->easy || !t->hdrs || rc != CURLE_OK) {
    snprintf(err, errlen, "cannot set up the OTLP exporter for '%s'",
             t->endpoint);
    goto fail_curl;
  }
  atomic_init(&t->exported, 0);
  atomic_init(&t->dropped, 0);
  atomic_init(&t->reported, false);
  if (pthread_mutex_init(&t->mu, NULL) != 0) goto fail_sys;
  if (wp__cond_init_monotonic(&t->cv) != 0) {
    pthread_mutex_destroy(&t->mu);
    goto fail_sys;
  }
  /* The exporter blocks signals: only the CLI's controller takes them. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int prc = pthread_create(&t->thread, NULL, exporter, t);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (prc != 0) {
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    goto fail_sys;
  }
  *out = t;
  return 0;
fail_sys:
  snprintf(err, errlen, "cannot start the OTLP exporter thread");
fail_curl:
  curl_slist_free_all(t->hdrs);
  curl_easy_cleanup(t->easy);
  curl_global_cleanup();
fail_free:
  free(t->ring);
  free(t->endpoint);
  free(t);
  return -1;
oom_free:
  free(t->ring);
  free(t->endpoint);
  free(t);
oom:
  snprintf(err, errlen, "out of memory");
  return -1;
}

bool wp__tracer_add(wp__tracer *t, wp__span *s) {
  if (!t) {
    wp__span_clear(s);
    return false;
  }
  pthread_mutex_lock(&t->mu);
  bool ok = !t->closing && t->len < t->cfg.capacity;
  if (ok) {
    t->ring[(t->head + t->len) % t->cfg.capacity] = *s;
    t->len++;
    if (t->len == t->cfg.batch) pthread_cond_signal(&t->cv);
  }
  pthread_mutex_unlock(&t->mu);
  if (!ok) {
    wp__span_clear(s);
    count_dropped(t, 1);
    /* Told from the exporter's side too, but a full ring means it is
     * stuck: say it now. */
    report_once(t,
                "the span buffer is full (the collector is slow or "
                "absent)");
  }
  return ok;
}

void wp__tracer_close(wp__tracer *t, int64_t grace_ns, uint64_t *exported,
                      uint64_t *dropped) {
  if (exported) *exported = 0;
  if (dropped) *dropped = 0;
  if (!t) return;
  pthread_mutex_lock(&t->mu);
  t->closing = true;
  t->deadline_ns = wp_now_ns() + grace_ns;
  pthread_cond_signal(&t->cv);
  pthread_mutex_unlock(&t->mu);
  pthread_join(t->thread, NULL);
  if (exported) *exported = atomic_load(&t->exported);
  if (dropped) *dropped = atomic_load(&t->dropped);
  pthread_cond_destroy(&t->cv);
  pthread_mutex_destroy(&t->mu);
  curl_slist_free_all(t->hdrs);
  curl_easy_cleanup(t->easy);
  curl_global_cleanup();
  free(t->ring);
  free(t->endpoint);
  free(t);
}

uint64_t wp__tracer_exported(const wp__tracer *t) {
  return t ? atomic_load(&((wp__tracer *)t)->exported) : 0;
}

uint64_t wp__tracer_dropped(const wp__tracer *t) {
  return t ? atomic_load(&((wp__tracer *)t)->dropped) : 0;
}
