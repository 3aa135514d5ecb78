/* The fetch engine: see fetch.h.
 *
 * Design. Each loop is a pool driver worker with its own curl multi handle,
 * epoll set and eventfd (the pool's wake callback writes it). The multi runs
 * in socket mode (curl_multi_socket_action): curl tells us which sockets to
 * watch (sock_cb) and when to call it back (timer_cb); epoll_wait sleeps
 * until a socket is ready, curl's timer, the first retry due in the pool's
 * timer queue, or a wake (a job arrived, shutdown, cancel). So a loop costs
 * nothing while idle and scales to thousands of transfers.
 *
 * Slots: loop i runs at most slots[i] transfers (the concurrency limit split
 * over the loops). Each slot keeps its easy handle once created, so handles
 * (and, through the multi's connection cache, connections) are reused.
 *
 * Cancellation: the pool cancels the root context and wakes every loop;
 * a loop that sees its context ended removes every transfer at once and
 * finishes each job as canceled: within one epoll wake, far under 100 ms.
 *
 * Every job leaves through wp_worker_finish(), exactly once: on completion,
 * on a setup failure, on a bad input line, or on cancel.
 */
#define _GNU_SOURCE /* for the CLOCK_ and epoll bits under strict C11 */
#include "fetch/fetch.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/internal.h" /* wp__unix_now_ns */
#include "core/utf8.h"     /* wp__hex */
#include "fetch/retry_after.h"
#include "wpool/error.h"
#include "wpool/wpool.h"

#define TAKE_MAX 64
#define EVENTS_MAX 128
/* Transfers per curl multi handle (see struct shard). */
#define SHARD_SLOTS 128

typedef struct loop loop;

/* A loop's transfers are split over several curl multi handles of at most
 * SHARD_SLOTS transfers each: libcurl's work per transfer grows with the
 * connections a multi holds (7.88 walks its connection cache when a
 * transfer looks for a connection and again when the transfer is removed).
 * At -w 1800 (2 loops, 100,000 URLs from nginx) one multi per loop spent
 * 50.0 us of CPU per URL, shards of 128 spend 40.8; at -w 1024, 45.7 and
 * 43.3. Each multi also costs about 40 KB (its socket hash, its closure
 * handle): shards of 64 gained no more and cost 0.5 MB at -w 1024. The
 * shards of a loop share one DNS cache (curl_share); each has its own
 * connection cache, so a transfer goes to the shard its host hashes to
 * while that shard has a free slot (shard_for). */
typedef struct shard {
  loop *lp;
  CURLM *multi;
  uint32_t index;   /* in lp->shards, also in the epoll data of its sockets */
  bool kick;        /* transfers added since its last socket_action */
  bool touched;     /* socket_action called: messages may wait */
  int64_t curl_due; /* when curl wants socket_action(TIMEOUT); INT64_MAX */
  struct xfer *free_list; /* its free slots */
} shard;

typedef struct xfer {
  CURL *easy;
  wp_job *job; /* NULL while the slot is free */
  wp__fetch_req *req;
  uint64_t bytes;
  bool too_big;
  loop *lp;
  shard *sh; /* the multi handle of this slot */
  struct xfer *next_free;
  /* cfg.trace: this slot's own header list, the traceparent line first
   * (rewritten in place before each request) then cfg.headers. */
  struct curl_slist *hdrs;
  wp__fetch_attempt at; /* the attempt in flight, for the hook */
  char errbuf[CURL_ERROR_SIZE];
} xfer;

/* What the loop knows of a socket (socks[], indexed by descriptor). */
enum {
  SK_OURS = 1, /* a connection socket that our opensocket callback made and
                  that our closesocket callback will close */
  SK_WANT = 2, /* curl watches it (between sock_cb's first call and REMOVE) */
  SK_IN = 4,   /* registered in the epoll set, for EPOLLIN */
  SK_OUT = 8,  /* ... for EPOLLOUT */
  SK_REG = 16  /* registered in the epoll set */
};

struct loop {
  wp__fetch *f;
  wp_worker *w;
  unsigned slots, inflight;
  shard *shards; /* slot i is in shard i / SHARD_SLOTS */
  unsigned nshards;
  CURLSH *share; /* the DNS cache of the shards */
  int epfd, wakefd;
  uint8_t *socks; /* SK_* by descriptor; nsocks entries, grown on demand */
  size_t nsocks;
  xfer *xfers;
  uint64_t rng; /* span IDs */
};

struct wp__fetch {
  wp__fetch_config cfg;
  wp_pool *pool;
  struct curl_slist *headers;
  char *user_agent;
  /* No proxy variable in the environment: every transfer is told so, and
   * libcurl skips its five getenv() calls per transfer (see proxy_env). */
  bool no_proxy_env;
  unsigned nloops;
  loop *loops;
  /* wpool_http_responses_total{code}, registered at a code's first sight. */
  _Atomic(wp_counter *) codes[600];
};

/* ---- curl callbacks ---------------------------------------------------- */

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userdata) {
  (void)ptr;
  xfer *x = userdata;
  size_t n = size * nmemb;
  uint64_t max = x->lp->f->cfg.max_body;
  x->bytes += n;
  if (max && x->bytes > max) {
    x->too_big = true;
    return 0; /* abort: CURLE_WRITE_ERROR */
  }
  return n;
}

/* The state of descriptor s, grown to hold it; NULL when out of memory. */
static uint8_t *sock_state(loop *lp, curl_socket_t s) {
  if (s < 0) return NULL;
  if ((size_t)s >= lp->nsocks) {
    size_t n = lp->nsocks ? lp->nsocks : 64;
    while (n <= (size_t)s) n *= 2;
    uint8_t *p = realloc(lp->socks, n);
    if (!p) return NULL;
    memset(p + lp->nsocks, 0, n - lp->nsocks);
    lp->socks = p;
    lp->nsocks = n;
  }
  return &lp->socks[s];
}

static void sock_del(loop *lp, curl_socket_t s, uint8_t *st) {
  epoll_ctl(lp->epfd, EPOLL_CTL_DEL, s, NULL);
  *st &= (uint8_t) ~(SK_REG | SK_IN | SK_OUT);
}

/* The epoll data of a socket: the descriptor and the shard whose multi
 * handle owns it (a socket of a shard is only ever registered by that
 * shard's sock_cb: a connection stays in its multi's cache). */
static uint64_t ev_data(curl_socket_t s, uint32_t shard_index) {
  return (uint64_t)shard_index << 32 | (uint32_t)s;
}

/* Registers s for exactly the events of `want` (SK_IN | SK_OUT). */
static void sock_reg(loop *lp, curl_socket_t s, uint8_t *st, uint8_t want,
                     uint32_t shard_index) {
  if ((*st & SK_REG) && (*st & (SK_IN | SK_OUT)) == want) return;
  struct epoll_event ev;
  memset(&ev, 0, sizeof ev);
  ev.data.u64 = ev_data(s, shard_index);
  ev.events = (want & SK_IN ? EPOLLIN : 0u) | (want & SK_OUT ? EPOLLOUT : 0u);
  int rc;
  if (*st & SK_REG) {
    rc = epoll_ctl(lp->epfd, EPOLL_CTL_MOD, s, &ev);
  } else {
    rc = epoll_ctl(lp->epfd, EPOLL_CTL_ADD, s, &ev);
    if (rc != 0 && errno == EEXIST)
      rc = epoll_ctl(lp->epfd, EPOLL_CTL_MOD, s, &ev);
  }
  *st &= (uint8_t) ~(SK_REG | SK_IN | SK_OUT);
  if (rc == 0) *st |= (uint8_t)(SK_REG | want);
}

/* curl says which sockets to watch. A keep-alive connection's socket is
 * handed back (REMOVE) at the end of every transfer and asked for again
 * (IN) by the next one on the same connection: two epoll_ctl calls per
 * transfer that we skip. The socket of an idle connection of ours stays in
 * the epoll set for EPOLLIN; should it fire while idle (the server closed
 * the connection), the loop takes it out then (idle_event), and curl finds
 * the connection dead when it next looks. Only sockets whose closing we
 * hear of (closesock_cb) stay registered past REMOVE: a descriptor closed
 * behind our back and reused would otherwise look registered. */
static int sock_cb(CURL *easy, curl_socket_t s, int what, void *userp,
                   void *socketp) {
  (void)easy;
  (void)socketp;
  shard *sh = userp;
  loop *lp = sh->lp;
  uint8_t *st = sock_state(lp, s);
  if (what == CURL_POLL_REMOVE) {
    if (!st) {
      epoll_ctl(lp->epfd, EPOLL_CTL_DEL, s, NULL);
      return 0;
    }
    *st &= (uint8_t)~SK_WANT;
    if (!(*st & SK_REG)) return 0;
    if (!(*st & SK_OURS))
      sock_del(lp, s, st);
    else if (*st & SK_OUT) /* idle: only a close (or stray data) matters */
      sock_reg(lp, s, st, SK_IN, sh->index);
    return 0;
  }
  uint8_t want = (uint8_t)((what & CURL_POLL_IN ? SK_IN : 0) |
                           (what & CURL_POLL_OUT ? SK_OUT : 0));
  if (!st) { /* no memory for the table: register it plainly */
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.data.u64 = ev_data(s, sh->index);
    ev.events = (want & SK_IN ? EPOLLIN : 0u) | (want & SK_OUT ? EPOLLOUT : 0u);
    if (epoll_ctl(lp->epfd, EPOLL_CTL_ADD, s, &ev) != 0 && errno == EEXIST)
      epoll_ctl(lp->epfd, EPOLL_CTL_MOD, s, &ev);
    return 0;
  }
  *st |= SK_WANT;
  sock_reg(lp, s, st, want, sh->index);
  return 0;
}

/* An event on a socket that curl does not watch: an idle connection of
 * ours that the server closed (or sent stray bytes on), or an event left
 * over in this batch for a socket curl just gave back. Either way it
 * leaves the epoll set (level-triggered, it would fire again and again);
 * a transfer that takes the connection registers it again. Returns true
 * when the event is not curl's. */
static bool idle_event(loop *lp, int fd) {
  if (fd < 0 || (size_t)fd >= lp->nsocks) return false;
  uint8_t *st = &lp->socks[fd];
  if ((*st & (SK_OURS | SK_WANT | SK_REG)) != (SK_OURS | SK_REG)) return false;
  sock_del(lp, fd, st);
  return true;
}

static curl_socket_t opensock_cb(void *clientp, curlsocktype purpose,
                                 struct curl_sockaddr *addr) {
  loop *lp = clientp;
  curl_socket_t s = socket(addr->family, addr->socktype, addr->protocol);
  if (s == CURL_SOCKET_BAD) return s;
  int e = errno;
  uint8_t *st = sock_state(lp, s);
  /* A fresh descriptor: whatever was known of its number is gone (a close
   * removes a socket from every epoll set). */
  if (st) *st = purpose == CURLSOCKTYPE_IPCXN ? SK_OURS : 0;
  errno = e;
  return s;
}

static int closesock_cb(void *clientp, curl_socket_t s) {
  loop *lp = clientp;
  if (s >= 0 && (size_t)s < lp->nsocks) {
    uint8_t *st = &lp->socks[s];
    if (*st & SK_REG) sock_del(lp, s, st);
    *st = 0;
  }
  return close(s);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp) {
  (void)multi;
  shard *sh = userp;
  sh->curl_due =
      timeout_ms < 0 ? INT64_MAX : wp_now_ns() + (int64_t)timeout_ms * 1000000;
  return 0;
}

static void wake_cb(void *arg) {
  loop *lp = arg;
  uint64_t one = 1;
  ssize_t n;
  do {
    n = write(lp->wakefd, &one, sizeof one);
  } while (n < 0 && errno == EINTR);
}

/* ---- transfers ----------------------------------------------------------- */

static int easy_setup(loop *lp, CURL *e, xfer *x) {
  const wp__fetch_config *c = &lp->f->cfg;
  CURLcode rc = CURLE_OK;
#define SET(opt, val)                                       \
  do {                                                      \
    if (rc == CURLE_OK) rc = curl_easy_setopt(e, opt, val); \
  } while (0)
  SET(CURLOPT_NOSIGNAL, 1L);
  SET(CURLOPT_PROTOCOLS_STR, "http,https");
  SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  SET(CURLOPT_FOLLOWLOCATION, c->max_redirects > 0 ? 1L : 0L);
  SET(CURLOPT_MAXREDIRS, c->max_redirects);
  SET(CURLOPT_TIMEOUT_MS, (long)(c->timeout_ns / 1000000));
  SET(CURLOPT_CONNECTTIMEOUT_MS, (long)(c->connect_timeout_ns / 1000000));
  if (c->head) SET(CURLOPT_NOBODY, 1L);
  SET(CURLOPT_WRITEFUNCTION, write_cb);
  SET(CURLOPT_WRITEDATA, x);
  if (c->trace) {
    /* "traceparent: 00-" 32 hex "-" 16 hex "-01": rewritten per request. */
    x->hdrs = curl_slist_append(
        NULL,
        "traceparent: 00-00000000000000000000000000000000-0000000000000000-01");
    for (const struct curl_slist *h = lp->f->headers; h && x->hdrs;
         h = h->next) {
      struct curl_slist *n = curl_slist_append(x->hdrs, h->data);
      if (!n) {
        curl_slist_free_all(x->hdrs);
        x->hdrs = NULL;
      }
      x->hdrs = n;
    }
    if (!x->hdrs) return -1;
    SET(CURLOPT_HTTPHEADER, x->hdrs);
  } else if (lp->f->headers) {
    SET(CURLOPT_HTTPHEADER, lp->f->headers);
  }
  SET(CURLOPT_USERAGENT, lp->f->user_agent);
  if (lp->f->no_proxy_env) {
    SET(CURLOPT_PROXY, "");   /* no proxy: no detection from the env */
    SET(CURLOPT_NOPROXY, ""); /* nor a look for no_proxy */
  }
  if (c->max_body) SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->max_body);
  if (lp->share) SET(CURLOPT_SHARE, lp->share);
  SET(CURLOPT_ERRORBUFFER, x->errbuf);
  SET(CURLOPT_PRIVATE, x);
  SET(CURLOPT_OPENSOCKETFUNCTION, opensock_cb);
  SET(CURLOPT_OPENSOCKETDATA, lp);
  SET(CURLOPT_CLOSESOCKETFUNCTION, closesock_cb);
  SET(CURLOPT_CLOSESOCKETDATA, lp);
#undef SET
  return rc == CURLE_OK ? 0 : -1;
}

/* ---- observability hooks --------------------------------------------------
 */

static uint64_t loop_rand(loop *lp) { /* splitmix64 */
  uint64_t z = (lp->rng += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

void wp__fetch_req_error(wp__fetch_req *req, const char *fmt, ...) {
  char b[WP__FETCH_ERRLEN];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(b, sizeof b, fmt, ap);
  va_end(ap);
  free(req->error);
  req->error = n < 0 ? NULL : strdup(b);
}

/* An attempt begins: its span ID (never all zero) and the start hook. */
static void attempt_begin(loop *lp, wp_job *job, wp__fetch_attempt *a) {
  const wp__fetch_config *c = &lp->f->cfg;
  memset(a, 0, sizeof *a);
  a->req = wp_job_arg(job);
  a->id = wp_job_id(job);
  a->attempt = wp_job_attempt(job);
  if (c->trace) {
    uint64_t r;
    do r = loop_rand(lp);
    while (r == 0);
    memcpy(a->span_id, &r, sizeof r);
  }
  if (c->on_attempt) {
    if (c->attempt_times) {
      a->start_unix_ns = wp__unix_now_ns();
      a->elapsed_ns = wp_now_ns(); /* the start, until the end */
    }
    c->on_attempt(a, c->userdata);
  }
}

/* An attempt ends with err (just before the pool hears of it). */
static void attempt_end(loop *lp, wp__fetch_attempt *a, int err) {
  const wp__fetch_config *c = &lp->f->cfg;
  if (c->metrics && a->req->status >= 100 && a->req->status < 600) {
    int code = a->req->status;
    wp_counter *ctr =
        atomic_load_explicit(&lp->f->codes[code], memory_order_acquire);
    if (!ctr) {
      char v[8];
      snprintf(v, sizeof v, "%d", code);
      /* The registry returns the same series to every loop. */
      wp_metrics_counter(c->metrics, "wpool_http_responses_total",
                         "HTTP responses received (the final response of "
                         "each attempt), by status code.",
                         (const char *[]){"code", v, NULL}, &ctr);
      atomic_store_explicit(&lp->f->codes[code], ctr, memory_order_release);
    }
    wp_counter_add(ctr, 1);
  }
  if (!c->on_attempt) return;
  a->ended = true;
  a->err = err;
  if (c->attempt_times) {
    a->end_unix_ns = wp__unix_now_ns();
    a->elapsed_ns = wp_now_ns() - a->elapsed_ns;
  }
  c->on_attempt(a, c->userdata);
}

static void fail_job(loop *lp, wp_job *job, wp__fetch_attempt *a, int err,
                     const char *msg) {
  wp__fetch_req *req = wp_job_arg(job);
  wp__fetch_req_error(req, "%s", msg);
  attempt_end(lp, a, err);
  wp_worker_finish(lp->w, job, err);
}

/* The per-attempt time limit, bounded by the job's deadline: 0 (none) or
 * at least 1 ms. */
static long attempt_timeout_ms(const wp__fetch_config *c, wp_job *job) {
  int64_t t = c->timeout_ns;
  int64_t dl = wp_job_deadline(job);
  if (dl != INT64_MAX) {
    int64_t left = dl - wp_now_ns();
    if (left < 1000000) left = 1000000;
    if (t == 0 || left < t) t = left;
  }
  return (long)(t / 1000000);
}

/* FNV-1a over n bytes of s, ASCII letters lowered, continuing from h
 * (FNV_BASIS to start): shard affinity and per-host keys. */
#define FNV_BASIS 1469598103934665603ull
static uint64_t fnv1a_lower(uint64_t h, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char b = (unsigned char)s[i];
    if (b >= 'A' && b <= 'Z') b = (unsigned char)(b - 'A' + 'a');
    h = (h ^ b) * 1099511628211ull;
  }
  return h;
}

/* The shard for a transfer to url (called with a slot free somewhere): the
 * one its host and port hash to, if it has a free slot, so that transfers
 * to a host meet that host's idle connections in one connection cache;
 * else the next one with a free slot. The hash is of the bytes between
 * "://" and the path, lowered: an affinity, nothing depends on it. */
static shard *shard_for(loop *lp, const char *url) {
  if (lp->nshards == 1) return &lp->shards[0];
  const char *a = strstr(url, "://");
  a = a ? a + 3 : url;
  uint64_t h = fnv1a_lower(FNV_BASIS, a, strcspn(a, "/?#"));
  unsigned k = (unsigned)(h % lp->nshards);
  for (unsigned i = 0; i < lp->nshards; i++) {
    shard *sh = &lp->shards[(k + i) % lp->nshards];
    if (sh->free_list) return sh;
  }
  return &lp->shards[k]; /* not reached: start() has a free slot */
}

static void start(loop *lp, wp_job *job) {
  wp__fetch_req *req = wp_job_arg(job);
  wp__fetch_attempt a;
  attempt_begin(lp, job, &a);
  req->status = -1;
  req->bytes = 0;
  free(req->error);
  req->error = NULL;
  req->retry_after_ns = -1;
  if (req->bad) {
    fail_job(lp, job, &a, WP__FETCH_EBADLINE, req->bad);
    return;
  }
  shard *sh = shard_for(lp, req->url);
  xfer *x = sh->free_list;
  if (!x->easy) {
    x->easy = curl_easy_init();
    if (!x->easy || easy_setup(lp, x->easy, x) != 0) {
      curl_easy_cleanup(x->easy);
      x->easy = NULL;
      curl_slist_free_all(x->hdrs);
      x->hdrs = NULL;
      fail_job(lp, job, &a, WP__FETCH_ESETUP, "could not set up a transfer");
      return;
    }
  }
  x->job = job;
  x->req = req;
  x->bytes = 0;
  x->too_big = false;
  x->errbuf[0] = '\0';
  x->at = a;
  if (x->hdrs) { /* "traceparent: 00-" is 16 bytes */
    wp__hex(x->hdrs->data + 16, req->trace_id, 16);
    wp__hex(x->hdrs->data + 16 + 33, a.span_id, 8);
  }
  if (curl_easy_setopt(x->easy, CURLOPT_URL, req->url) != CURLE_OK ||
      (lp->f->cfg.job_timeout_ns > 0 &&
       curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS,
                        attempt_timeout_ms(&lp->f->cfg, job)) != CURLE_OK) ||
      curl_multi_add_handle(x->sh->multi, x->easy) != CURLM_OK) {
    x->job = NULL;
    fail_job(lp, job, &a, WP__FETCH_ESETUP, "could not start the transfer");
    return;
  }
  sh->free_list = x->next_free;
  lp->inflight++;
  x->sh->kick = true;
}

static void release_slot(loop *lp, xfer *x) {
  x->job = NULL;
  x->req = NULL;
  x->next_free = x->sh->free_list;
  x->sh->free_list = x;
  lp->inflight--;
}

/* A failed response's Retry-After (either form, our parser) replaces the
 * backoff before the next attempt, capped at retry_after_max. */
static void retry_after(loop *lp, xfer *x, wp_job *job) {
  int64_t cap = lp->f->cfg.retry_after_max_ns;
  struct curl_header *h;
  if (cap <= 0 || curl_easy_header(x->easy, "Retry-After", 0, CURLH_HEADER, -1,
                                   &h) != CURLHE_OK)
    return;
  int64_t d;
  if (wp__retry_after_parse(h->value, strlen(h->value),
                            wp__unix_now_ns() / 1000000000, &d) != 0)
    return; /* unparsable: the computed backoff stands */
  x->req->retry_after_ns = d < cap ? d : cap;
  wp_job_set_retry_after(job, x->req->retry_after_ns);
}

static void complete(loop *lp, xfer *x, CURLcode code) {
  wp_job *job = x->job;
  wp__fetch_req *req = x->req;
  curl_multi_remove_handle(x->sh->multi, x->easy);
  long status = 0;
  curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
  req->status = status > 0 ? (int)status : -1;
  req->bytes = x->bytes;
  int err = 0;
  if (x->too_big || code == CURLE_FILESIZE_EXCEEDED) {
    wp__fetch_req_error(req, "body exceeds --max-body (%" PRIu64 " bytes)",
                        lp->f->cfg.max_body);
    err = WP__FETCH_EBODY;
  } else if (code != CURLE_OK) {
    const char *msg = x->errbuf[0] ? x->errbuf : curl_easy_strerror(code);
    if (code == CURLE_OPERATION_TIMEDOUT && wp_job_deadline(job) != INT64_MAX &&
        wp_now_ns() >= wp_job_deadline(job) - 1000000)
      wp__fetch_req_error(req, "job timeout: %.200s", msg);
    else
      wp__fetch_req_error(req, "%s", msg);
    err = WP__FETCH_ECURL + (int)code;
  } else if (status >= 400) {
    wp__fetch_req_error(req, "HTTP %ld %s", status,
                        wp__http_reason((int)status));
    err = WP__FETCH_EHTTP + (int)status;
  }
  if (err != 0 && status >= 400) retry_after(lp, x, job);
  attempt_end(lp, &x->at, err);
  release_slot(lp, x);
  wp_worker_finish(lp->w, job, err);
}

/* The transfers of a shard that ended. Read first, completed after: a
 * removal walks the messages not read yet (libcurl 7.88), and a message
 * does not survive the removal of its handle. */
static void drain_done(shard *sh) {
  struct {
    xfer *x;
    CURLcode code;
  } done[64];
  size_t n;
  do {
    n = 0;
    CURLMsg *m;
    int left;
    while (n < sizeof done / sizeof done[0] &&
           (m = curl_multi_info_read(sh->multi, &left)) != NULL) {
      if (m->msg != CURLMSG_DONE) continue;
      xfer *x = NULL;
      curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
      if (!x || !x->job) continue;
      done[n].x = x;
      done[n].code = m->data.result;
      n++;
    }
    for (size_t i = 0; i < n; i++) complete(sh->lp, done[i].x, done[i].code);
  } while (n == sizeof done / sizeof done[0]);
}

/* The context ended (ShutdownNow): end every transfer now. */
static void cancel_all(loop *lp) {
  for (unsigned i = 0; i < lp->slots; i++) {
    xfer *x = &lp->xfers[i];
    if (!x->job) continue;
    wp_job *job = x->job;
    wp__fetch_req *req = x->req;
    curl_multi_remove_handle(x->sh->multi, x->easy);
    req->bytes = x->bytes;
    wp__fetch_req_error(req, "canceled");
    attempt_end(lp, &x->at, WP_ECANCELED);
    release_slot(lp, x);
    wp_worker_finish(lp->w, job, WP_ECANCELED);
  }
}

/* ---- the loop -------------------------------------------------------------
 */

static int loop_init(void *userdata, unsigned index, void **state) {
  wp__fetch *f = userdata;
  loop *lp = &f->loops[index];
  lp->f = f;
  lp->rng = (uint64_t)wp__unix_now_ns() ^ ((uint64_t)(uintptr_t)lp << 16) ^
            (uint64_t)wp_now_ns();
  lp->epfd = epoll_create1(EPOLL_CLOEXEC);
  lp->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  lp->xfers = calloc(lp->slots, sizeof *lp->xfers);
  lp->nshards = wp__fetch_shard_count(lp->slots);
  lp->shards = calloc(lp->nshards, sizeof *lp->shards);
  lp->share = curl_share_init();
  if (lp->epfd < 0 || lp->wakefd < 0 || !lp->xfers || !lp->shards || !lp->share)
    goto fail;
  /* One DNS cache for the loop, as one multi handle had. Used by this
   * loop's thread only: no lock callbacks. */
  if (curl_share_setopt(lp->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) !=
      CURLSHE_OK)
    goto fail;
  struct epoll_event ev = {.events = EPOLLIN,
                           .data.u64 = ev_data(lp->wakefd, 0)};
  if (epoll_ctl(lp->epfd, EPOLL_CTL_ADD, lp->wakefd, &ev) != 0) goto fail;
  for (unsigned k = 0; k < lp->nshards; k++) {
    shard *sh = &lp->shards[k];
    sh->lp = lp;
    sh->index = k;
    sh->curl_due = INT64_MAX;
    sh->multi = curl_multi_init();
    if (!sh->multi) goto fail;
    unsigned first = k * SHARD_SLOTS;
    unsigned n =
        lp->slots - first < SHARD_SLOTS ? lp->slots - first : SHARD_SLOTS;
    curl_multi_setopt(sh->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(sh->multi, CURLMOPT_SOCKETDATA, sh);
    curl_multi_setopt(sh->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(sh->multi, CURLMOPT_TIMERDATA, sh);
    /* Keep an idle connection per slot for reuse (keep-alive). */
    curl_multi_setopt(sh->multi, CURLMOPT_MAXCONNECTS, (long)n);
  }
  for (unsigned i = lp->slots; i-- > 0;) {
    lp->xfers[i].lp = lp;
    lp->xfers[i].sh = &lp->shards[i / SHARD_SLOTS];
    lp->xfers[i].next_free = lp->xfers[i].sh->free_list;
    lp->xfers[i].sh->free_list = &lp->xfers[i];
  }
  *state = lp;
  return 0;
fail:
  for (unsigned k = 0; lp->shards && k < lp->nshards; k++)
    if (lp->shards[k].multi) curl_multi_cleanup(lp->shards[k].multi);
  if (lp->share) curl_share_cleanup(lp->share);
  free(lp->shards);
  free(lp->xfers);
  if (lp->wakefd >= 0) close(lp->wakefd);
  if (lp->epfd >= 0) close(lp->epfd);
  lp->shards = NULL;
  lp->share = NULL;
  lp->xfers = NULL;
  lp->wakefd = lp->epfd = -1;
  return WP_ESYSTEM;
}

static void loop_cleanup(void *userdata, unsigned index, void *state) {
  (void)userdata;
  (void)index;
  loop *lp = state;
  for (unsigned i = 0; i < lp->slots; i++) {
    if (lp->xfers[i].easy) curl_easy_cleanup(lp->xfers[i].easy);
    curl_slist_free_all(lp->xfers[i].hdrs);
  }
  for (unsigned k = 0; k < lp->nshards; k++) /* closes idle connections */
    curl_multi_cleanup(lp->shards[k].multi);
  curl_share_cleanup(lp->share); /* after every handle that used it */
  free(lp->shards);
  free(lp->xfers);
  free(lp->socks);
  close(lp->wakefd);
  close(lp->epfd);
}

static int timeout_ms_until(int64_t when) {
  if (when == INT64_MAX) return -1;
  int64_t d = when - wp_now_ns();
  if (d <= 0) return 0;
  int64_t ms = (d + 999999) / 1000000;
  return ms > 60000 ? 60000 : (int)ms;
}

/* socket_action(TIMEOUT) on every shard that asked for it by now, or
 * (kicked) got new transfers; then the transfers that ended. */
static void run_shards(loop *lp, bool kicked) {
  int64_t now = wp_now_ns();
  int running;
  for (unsigned k = 0; k < lp->nshards; k++) {
    shard *sh = &lp->shards[k];
    if ((kicked && sh->kick) ||
        (sh->curl_due != INT64_MAX && now >= sh->curl_due)) {
      sh->kick = false;
      sh->curl_due = INT64_MAX;
      curl_multi_socket_action(sh->multi, CURL_SOCKET_TIMEOUT, 0, &running);
      sh->touched = true;
    }
    if (sh->touched) {
      sh->touched = false;
      drain_done(sh);
    }
  }
}

/* When the next shard wants socket_action(TIMEOUT); INT64_MAX if none. */
static int64_t next_curl_due(const loop *lp) {
  int64_t due = INT64_MAX;
  for (unsigned k = 0; k < lp->nshards; k++)
    if (lp->shards[k].curl_due < due) due = lp->shards[k].curl_due;
  return due;
}

static void loop_run(wp_worker *w, void *state, void *userdata) {
  (void)userdata;
  loop *lp = state;
  lp->w = w;
  wp_worker_set_wake(w, wake_cb, lp);
  wp_ctx *ctx = wp_worker_ctx(w);
  wp_job *jobs[TAKE_MAX];
  struct epoll_event evs[EVENTS_MAX];
  for (;;) {
    if (wp_ctx_err(ctx) != 0 && lp->inflight > 0) cancel_all(lp);
    /* Taken after shutdown began, too, while transfers are in flight: a
     * failed one may come back as a retry (see wp_worker_take). */
    bool closed = false;
    if (lp->inflight < lp->slots) {
      unsigned room = lp->slots - lp->inflight;
      int n = wp_worker_take(w, jobs, room < TAKE_MAX ? room : TAKE_MAX, 0);
      if (n == WP_ECLOSED) {
        closed = true;
      } else {
        for (int i = 0; i < n; i++) start(lp, jobs[i]);
        if (n > 0) {
          /* Kick the new transfers off at once (curl asked for a timeout of
           * 0 when they were added); and look for more. */
          run_shards(lp, true);
          continue;
        }
      }
    }
    if (closed && lp->inflight == 0) break;

    int64_t until = next_curl_due(lp);
    if (!closed && lp->inflight < lp->slots) {
      int64_t due;
      if (wp_worker_arm(w, &due) == 1) continue; /* jobs (or closed) now */
      if (due < until) until = due;
    }
    int n = epoll_wait(lp->epfd, evs, EVENTS_MAX, timeout_ms_until(until));
    int running;
    for (int i = 0; i < n; i++) {
      int fd = (int)(uint32_t)evs[i].data.u64;
      if (fd == lp->wakefd) {
        uint64_t v;
        ssize_t r = read(lp->wakefd, &v, sizeof v);
        (void)r;
        continue;
      }
      if (idle_event(lp, fd)) continue;
      /* An error or a hang-up goes to curl as "readable and writable", not
       * CURL_CSELECT_ERR: curl's own read or write then meets the error
       * and names it ("Connection reset by peer"), where ERR alone makes
       * it "select/poll returned error" (seen on a retried reset). And an
       * event left over for a descriptor that curl closed and reused
       * within this batch costs one EAGAIN, not a made-up error. */
      int flags = 0;
      if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
        flags |= CURL_CSELECT_IN;
      if (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
        flags |= CURL_CSELECT_OUT;
      uint32_t k = (uint32_t)(evs[i].data.u64 >> 32);
      if (k >= lp->nshards) continue; /* cannot be: registered by a shard */
      shard *sh = &lp->shards[k];
      curl_multi_socket_action(sh->multi, fd, flags, &running);
      sh->touched = true;
    }
    run_shards(lp, false);
  }
  wp_worker_set_wake(w, NULL, NULL);
}

/* ---- the engine ------------------------------------------------------------
 */

static void result_tramp(const wp_result *res, void *userdata) {
  wp__fetch *f = userdata;
  f->cfg.on_result(res, f->cfg.userdata);
}

static uint64_t host_key_tramp(void *arg, void *userdata) {
  (void)userdata;
  const wp__fetch_req *req = arg;
  return req->bad ? 0 : wp__fetch_host_key(req->url);
}

uint64_t wp__fetch_host_key(const char *url) {
  CURLU *u = curl_url();
  if (!u) return 0;
  char *host = NULL, *port = NULL;
  uint64_t h = 0;
  if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK) {
    h = fnv1a_lower(FNV_BASIS, host, strlen(host)); /* "host:port" */
    h = fnv1a_lower(h, ":", 1);
    h = fnv1a_lower(h, port, strlen(port)); /* digits: lowering is moot */
    if (h == 0) h = 1; /* 0 is "unparsable" */
  }
  curl_free(host);
  curl_free(port);
  curl_url_cleanup(u);
  return h;
}

static void retry_tramp(uint64_t id, void *arg, unsigned attempts,
                        int64_t delay_ns, void *userdata) {
  wp__fetch *f = userdata;
  f->cfg.on_retry(id, arg, attempts, delay_ns, f->cfg.userdata);
}

static int retryable_tramp(int err, void *userdata) {
  wp__fetch *f = userdata;
  if (f->cfg.retry.retryable)
    return f->cfg.retry.retryable(err, f->cfg.userdata);
  return wp__fetch_retryable(err, NULL);
}

int wp__fetch_retryable(int err, void *userdata) {
  (void)userdata;
  if (err >= WP__FETCH_EHTTP && err < WP__FETCH_ECURL) {
    switch (err - WP__FETCH_EHTTP) {
      case 408:
      case 425:
      case 429:
      case 500:
      case 502:
      case 503:
      case 504:
        return 1;
      default:
        return 0;
    }
  }
  if (err >= WP__FETCH_ECURL && err < WP__FETCH_EBODY) {
    switch ((CURLcode)(err - WP__FETCH_ECURL)) {
      case CURLE_COULDNT_CONNECT:      /* refused */
      case CURLE_COULDNT_RESOLVE_HOST: /* may be temporary */
      case CURLE_OPERATION_TIMEDOUT:
      case CURLE_RECV_ERROR: /* reset */
      case CURLE_SEND_ERROR:
      case CURLE_GOT_NOTHING:
      case CURLE_PARTIAL_FILE:
      case CURLE_HTTP2:
      case CURLE_HTTP2_STREAM:
        return 1;
      default:
        return 0;
    }
  }
  return 0;
}

/* Whether the environment names a proxy libcurl would use for an http or
 * https URL: "http_proxy" (never HTTP_PROXY: CGI sets that from a request
 * header), "https_proxy" or "HTTPS_PROXY", "all_proxy" or "ALL_PROXY".
 * libcurl reads them (and no_proxy) at every transfer; the environment of a
 * running process does not change from outside, so reading them once
 * changes nothing but the cost. */
static bool proxy_env(void) {
  static const char *const vars[] = {"http_proxy", "https_proxy", "HTTPS_PROXY",
                                     "all_proxy", "ALL_PROXY"};
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
    const char *v = getenv(vars[i]);
    if (v && *v) return true;
  }
  return false;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;
static void curl_init(void) {
  curl_init_rc = curl_global_init(CURL_GLOBAL_ALL);
}

int wp__fetch_create(const wp__fetch_config *cfg, wp__fetch **out, char *errbuf,
                     size_t errlen) {
  *out = NULL;
  if (!cfg || cfg->concurrency < 1 || cfg->concurrency > 10000 ||
      !cfg->on_result) {
    snprintf(errbuf, errlen, "invalid engine configuration");
    return WP_EINVAL;
  }
  /* curl_global_init is not thread-safe before 7.84; once per process. */
  pthread_once(&curl_once, curl_init);
  if (curl_init_rc != CURLE_OK) {
    snprintf(errbuf, errlen, "libcurl: %s", curl_easy_strerror(curl_init_rc));
    return WP_ESYSTEM;
  }
  wp__fetch *f = calloc(1, sizeof *f);
  if (!f) {
    snprintf(errbuf, errlen, "out of memory");
    return WP_ENOMEM;
  }
  f->cfg = *cfg;
  unsigned loops = wp__fetch_loop_count(cfg->concurrency, cfg->loops);
  f->nloops = loops;
  f->loops = calloc(loops, sizeof *f->loops);
  char ua[64];
  snprintf(ua, sizeof ua, "wpool/%s", WPOOL_VERSION);
  f->user_agent = strdup(cfg->user_agent ? cfg->user_agent : ua);
  f->no_proxy_env = !proxy_env();
  int rc = WP_ENOMEM;
  if (!f->loops || !f->user_agent) goto fail;
  for (size_t i = 0; i < cfg->nheaders; i++) {
    struct curl_slist *n = curl_slist_append(f->headers, cfg->headers[i]);
    if (!n) goto fail;
    f->headers = n;
  }
  for (unsigned i = 0; i < loops; i++)
    f->loops[i].slots =
        cfg->concurrency / loops + (i < cfg->concurrency % loops ? 1 : 0);

  wp_pool_config pc;
  memset(&pc, 0, sizeof pc);
  pc.workers = loops;
  pc.max_outstanding = (size_t)cfg->concurrency + cfg->queue;
  pc.driver = loop_run;
  pc.worker_init = loop_init;
  pc.worker_cleanup = loop_cleanup;
  pc.on_result = result_tramp;
  pc.userdata = f;
  pc.retry = cfg->retry;
  pc.retry.retryable = retryable_tramp;
  pc.metrics = cfg->metrics;
  pc.job_timeout_ns = cfg->job_timeout_ns;
  pc.limits.rate = cfg->rate;
  pc.limits.per_key = cfg->per_host;
  pc.limits.key = host_key_tramp;
  if (cfg->on_retry) pc.on_retry = retry_tramp;
  rc = wp_pool_create(&pc, &f->pool);
  if (rc != 0) {
    snprintf(errbuf, errlen, "cannot start the engine: %s", wp_strerror(rc));
    goto fail;
  }
  *out = f;
  return 0;
fail:
  if (rc == WP_ENOMEM) snprintf(errbuf, errlen, "out of memory");
  curl_slist_free_all(f->headers);
  free(f->user_agent);
  free(f->loops);
  free(f);
  return rc;
}

unsigned wp__fetch_loop_count(unsigned concurrency, unsigned loops) {
  if (loops == 0) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    loops = n > 0 ? (unsigned)n : 1;
  }
  if (loops > concurrency) loops = concurrency;
  if (loops > 64) loops = 64;
  return loops > 0 ? loops : 1;
}

unsigned wp__fetch_shard_count(unsigned slots) {
  return slots == 0 ? 1 : (slots + SHARD_SLOTS - 1) / SHARD_SLOTS;
}

uint64_t wp__fetch_fds(unsigned concurrency, unsigned loops) {
  unsigned n = wp__fetch_loop_count(concurrency, loops);
  uint64_t fds = 0;
  for (unsigned i = 0; i < n; i++) {
    unsigned slots = concurrency / n + (i < concurrency % n ? 1 : 0);
    /* an epoll set and an eventfd; a socket pair per multi handle */
    fds += 2 + 2 * (uint64_t)wp__fetch_shard_count(slots);
  }
  return fds;
}

wp_pool *wp__fetch_pool(wp__fetch *f) { return f->pool; }

void wp__fetch_destroy(wp__fetch *f) {
  if (!f) return;
  wp_pool_destroy(f->pool);
  curl_slist_free_all(f->headers);
  free(f->user_agent);
  free(f->loops);
  free(f);
}
