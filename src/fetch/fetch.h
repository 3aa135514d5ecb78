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

#define WP__FETCH_ERRLEN 256

/* A job's request and its outcome (the last attempt's). */
typedef struct wp__fetch_req {
  const char *url; /* NUL-terminated */
  const char *bad; /* non-NULL: not fetched; the result fails with this */
  /* Outputs, written by the engine before the result is delivered. */
  int status;     /* HTTP status of the final response, -1 if none */
  uint64_t bytes; /* body bytes received */
  char error[WP__FETCH_ERRLEN]; /* "" if none */
} wp__fetch_req;

/* Result codes (wp_result.err) besides 0 (ok) and WP_ECANCELED. */
enum {
  WP__FETCH_EBADLINE = 1, /* the input line is not a fetchable URL */
  WP__FETCH_EHTTP = 1000, /* + status: a response with status >= 400 */
  WP__FETCH_ECURL = 2000, /* + CURLcode: the transfer failed */
  WP__FETCH_EBODY = 3000, /* the body exceeded max_body */
  WP__FETCH_ESETUP = 3001 /* could not set up the transfer */
};

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
  wp_retry_policy retry;
} wp__fetch_config;

typedef struct wp__fetch wp__fetch;

/* Starts the loops. Returns 0, or a WP_E* code with *out = NULL; errbuf
 * gets a message. */
int wp__fetch_create(const wp__fetch_config *cfg, wp__fetch **out, char *errbuf,
                     size_t errlen);
/* The pool under the engine: submit, shutdown, shutdown_now, stats. */
wp_pool *wp__fetch_pool(wp__fetch *f);
/* Shuts down now if needed, frees everything. NULL is a no-op. */
void wp__fetch_destroy(wp__fetch *f);

/* The reason phrase of an HTTP status ("OK", "Not Found"), "" if unknown. */
const char *wp__http_reason(int status);

/* Is this result code worth another attempt (connection refused or reset,
 * name resolution that may be temporary, timeouts, HTTP 408, 425, 429, 500,
 * 502, 503, 504)? */
int wp__fetch_retryable(int err, void *userdata);

#endif
