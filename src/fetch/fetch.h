/* The fetch engine: HTTP(S) transfers with libcurl's multi interface, on
 * the pool's driver workers.
 *
 * A few event-loop threads (default: one per core) each drive many
 * transfers (epoll + curl_multi_socket_action). They are the pool's driver
 * workers: they take jobs from the pool's queue, finish each job through
 * the pool, and so share its guarantees (exactly one result, backpressure,
 * Shutdown / ShutdownNow, retries in the timer queue) with the thread pool.
 * At most `concurrency` transfers are in flight in all.
 *
 * Each job's arg is a wp__fetch_req owned by the caller: the engine reads
 * url and bad, and fills the outputs before the result is delivered.
 *
 * Thread safety: wp__fetch_* are thread-safe like the pool's functions.
 */
#ifndef WPOOL_FETCH_H
#define WPOOL_FETCH_H

#include <stdbool.h>
#include <stdint.h>

#include "wpool/pool.h"

/* The longest error message kept, NUL included. */
#define WP__FETCH_ERRLEN 256

/* A job's request and its outcome (the last attempt's). */
typedef struct wp__fetch_req {
  const char *url; /* NUL-terminated */
  const char *bad; /* non-NULL: not fetched; the result fails with this */
  /* Tracing (cfg.trace): the job's trace and its own span, the parent of
   * every attempt's span; set by the caller before submit. */
  uint8_t trace_id[16];
  uint8_t span_id[8];
  int64_t started_unix_ns; /* free for the attempt hook (the first
                              attempt's start, for the job's span) */
  /* Outputs, written by the engine before the result is delivered. */
  int status;     /* HTTP status of the final response, -1 if none */
  uint64_t bytes; /* body bytes received */
  /* The error message, NULL if none: allocated only for a failure (a
   * queued job holds no buffer for it), replaced by wp__fetch_req_error,
   * freed by the next attempt or by the owner of the request (free()). */
  char *error;
  /* A failed response's Retry-After (cfg.retry_after_max > 0), capped at
   * retry_after_max; -1 if none. The pool's retries use it themselves; it
   * is here for a caller that schedules its own (the queue runner). */
  int64_t retry_after_ns;
} wp__fetch_req;

/* Sets req->error to the message printf-formats (at most WP__FETCH_ERRLEN
 * - 1 bytes; the previous one is freed). Out of memory, it is left NULL:
 * the result then names its error code only. */
void wp__fetch_req_error(wp__fetch_req *req, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Result codes (wp_result.err) besides 0 (ok) and WP_ECANCELED. */
enum {
  WP__FETCH_EBADLINE = 1, /* the input line is not a fetchable URL */
  WP__FETCH_EHTTP = 1000, /* + status: a response with status >= 400 */
  WP__FETCH_ECURL = 2000, /* + CURLcode: the transfer failed */
  WP__FETCH_EBODY = 3000, /* the body exceeded max_body */
  WP__FETCH_ESETUP = 3001 /* could not set up the transfer */
};

/* One attempt, as the attempt hook sees it. */
typedef struct wp__fetch_attempt {
  wp__fetch_req *req; /* with the outputs of this attempt when ended */
  uint64_t id;        /* the job's ID */
  unsigned attempt;   /* 1 for the first */
  bool ended;         /* false: about to start (req holds the previous attempt's
                         outputs, if any); true: over */
  int err;            /* when ended: the result code of this attempt (0 = ok) */
  /* cfg.attempt_times (else 0): the wall clock at the start and, when
   * ended, at the end; the monotonic time taken, when ended. */
  int64_t start_unix_ns, end_unix_ns;
  int64_t elapsed_ns;
  uint8_t span_id[8]; /* cfg.trace: this attempt's span, sent in the
                         traceparent header; zero otherwise */
} wp__fetch_attempt;

/* Called on a loop thread at the start and at the end of every attempt
 * (with no lock of the engine or the pool held). It must be quick and must
 * not wait for the pool. */
typedef void (*wp__fetch_attempt_cb)(const wp__fetch_attempt *a,
                                     void *userdata);

typedef struct wp__fetch_config {
  unsigned concurrency; /* transfers in flight, 1..10000 */
  unsigned loops;       /* event-loop threads; 0 = cores (<= concurrency) */
  size_t queue;         /* jobs queued beyond those in flight */
  int64_t timeout_ns;   /* per attempt; 0 = none */
  int64_t connect_timeout_ns;
  long max_redirects;         /* 0 = do not follow */
  uint64_t max_body;          /* bytes; 0 = no limit */
  bool head;                  /* HEAD instead of GET */
  const char *const *headers; /* "Name: value" lines */
  size_t nheaders;
  const char *user_agent; /* NULL: "wpool/<version>" */
  wp_result_cb on_result; /* called on a loop thread, see pool.h */
  void *userdata;
  wp_retry_policy retry; /* retryable NULL: wp__fetch_retryable */
  /* A Retry-After header of a failed response replaces the backoff before
   * the next attempt, capped at this (0: the header is ignored). */
  int64_t retry_after_max_ns;
  int64_t job_timeout_ns; /* each job's budget over all attempts; 0 = none */
  double rate;            /* attempts started per second; 0 = no limit */
  unsigned per_host;      /* transfers in flight per host:port; 0 = none */
  /* Observability, all optional. metrics: the pool's wpool_* metrics and
   * wpool_http_responses_total{code}. on_attempt: see above; attempt_times:
   * it wants the attempts' times (four clock reads per attempt, skipped
   * when it does not). trace: send a W3C traceparent header
   * "00-<req trace_id>-<attempt span_id>-01" on every request, with a new
   * span ID per attempt. */
  wp_metrics *metrics;
  wp__fetch_attempt_cb on_attempt;
  bool attempt_times;
  bool trace;
  wp_retry_cb on_retry; /* optional: a retry was scheduled (see pool.h);
                           called with userdata */
} wp__fetch_config;

typedef struct wp__fetch wp__fetch;

/* Starts the loops. Returns 0, or a WP_E* code with *out = NULL; errbuf
 * gets a message. */
int wp__fetch_create(const wp__fetch_config *cfg, wp__fetch **out, char *errbuf,
                     size_t errlen);
/* How many event loops an engine of this configuration runs: `loops`, or
 * one per core when 0, at most `concurrency` and at most 64. */
unsigned wp__fetch_loop_count(unsigned concurrency, unsigned loops);
/* How many curl multi handles a loop of `slots` transfers drives (128
 * transfers each at most). */
unsigned wp__fetch_shard_count(unsigned slots);
/* The file descriptors an engine holds besides one socket per transfer:
 * per loop an epoll set and an eventfd, and libcurl's wakeup socket pair
 * per multi handle. */
uint64_t wp__fetch_fds(unsigned concurrency, unsigned loops);

/* The pool under the engine: submit, shutdown, shutdown_now, stats. */
wp_pool *wp__fetch_pool(wp__fetch *f);
/* Shuts down now if needed, frees everything. NULL is a no-op. */
void wp__fetch_destroy(wp__fetch *f);

/* The reason phrase of an HTTP status ("OK", "Not Found"), "" if unknown. */
const char *wp__http_reason(int status);

/* The key of a URL for per_host: a hash of its lower-case host and its
 * port (the scheme's default if none), so http://a/ and http://A:80/x
 * share a key. An unparsable URL gets key 0. */
uint64_t wp__fetch_host_key(const char *url);

/* Is this result code worth another attempt (connection refused or reset,
 * name resolution that may be temporary, timeouts, HTTP 408, 425, 429, 500,
 * 502, 503, 504)? */
int wp__fetch_retryable(int err, void *userdata);

#endif
