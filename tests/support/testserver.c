/* wpool-testserver: the project's own HTTP test, demo and benchmark server.
 *
 * It listens on 127.0.0.1 only (never another address), on --port N (0: a
 * port chosen by the kernel), prints "port=N" on stdout once it accepts
 * connections and runs until SIGTERM or SIGINT, then exits 0. The routes are
 * listed in usage() below and in route().
 *
 * Threads. libmicrohttpd runs an epoll thread pool (MHD_USE_EPOLL with
 * MHD_OPTION_THREAD_POOL_SIZE): no thread per connection, so 10000 open
 * connections cost file descriptors, not threads. No handler ever blocks a
 * pool thread: /delay and /hang suspend their connection (MHD's
 * suspend/resume) and hand it to the timer thread ("parking"). The timer
 * thread resumes a parked connection when its deadline passes (/delay), when
 * its client went away (checked every PEER_CHECK_MS, so that in-flight
 * counts drop when a client gives up on /hang), or at shutdown. The main
 * thread only waits for the signal; every other thread inherits a mask that
 * blocks SIGINT and SIGTERM.
 *
 * Shutdown. MHD_stop_daemon() refuses to run while connections are
 * suspended, so the order is: stop the timer thread, which first resumes
 * every parked connection (their handler then closes them), then stop the
 * daemon, then free what is left.
 *
 * Locks. stats.lock guards every counter and map; timer.lock guards the
 * parked list. A handler holds timer.lock while it calls
 * MHD_suspend_connection() (MHD takes its own mutex inside), so that the
 * timer thread can never resume a connection before it is suspended; MHD
 * never calls back into this file while holding its mutex, and nothing
 * here calls MHD while holding stats.lock, so the order is timer.lock ->
 * MHD's internal lock, and stats.lock is a leaf.
 *
 * Tracing. Each request's traceparent header is recorded (path and value,
 * at most TRACE_SEEN_MAX, readable at GET /traces/seen), and POST
 * /v1/traces is an OTLP/HTTP receiver: it stores each body as it came (at
 * most OTLP_BODY_MAX bytes each, OTLP_TOTAL_MAX in all) and GET
 * /v1/traces/received returns {"exports": [body, ...]}. Both are cleared
 * by /stats/reset; traces.lock guards them (a leaf, like stats.lock).
 *
 * Bounds. Every map (paths, flaky keys, retry-after keys, hosts) holds at
 * most MAP_MAX_ENTRIES keys: further paths and hosts are counted under
 * OVERFLOW_KEY, further flaky and retry-after keys get a 500. A
 * retry-after key keeps its first MAX_GAPS gaps, a stamp key its first
 * MAX_STAMPS arrival times. The parked list is bounded
 * by the connection limit. Text bodies are at most TEXT_MAX bytes.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "hostile.h"

#define CONNECTION_LIMIT 20000u
#define MAP_MAX_ENTRIES 100000u
#define OVERFLOW_KEY "(overflow)"
#define MAX_GAPS 32u
#define MAX_STAMPS 4096u
#define TEXT_MAX 1024u
#define PEER_CHECK_MS 100u
#define OK_BODY_LEN 100u

#define MAX_DELAY_MS 3600000u      /* one hour */
#define MAX_BYTES 1000000000000ull /* 10^12 */
#define MAX_REDIRECTS 1000000u
#define MAX_FLAKY 1000000000u
#define MAX_RETRY_AFTER_S 86400u
#define TRACE_SEEN_MAX 200000u
#define TRACEPARENT_MAX 128u
#define OTLP_BODY_MAX (16u << 20)
#define OTLP_TOTAL_MAX (256u << 20)

static bool log_requests;
static unsigned hostile_port, silent_port; /* hostile.c's listeners */

/* ------------------------------------------------------------------------ */
/* Pure helpers: numbers, JSON text. No I/O, no globals.                    */

/* Parses a decimal number of digits only (no sign, no space, not empty).
 * A value above max is clamped to max (max must be below UINT64_MAX / 10).
 * Returns 0 and sets *out, or -1 if s is not a number. */
static int parse_num(const char *s, uint64_t max, uint64_t *out) {
  uint64_t v = 0;
  if (*s == '\0') return -1;
  for (; *s; s++) {
    if (*s < '0' || *s > '9') return -1;
    if (v <= max) v = v * 10 + (uint64_t)(*s - '0');
  }
  *out = v > max ? max : v;
  return 0;
}

/* The string after prefix if s starts with it, else NULL. */
static const char *after_prefix(const char *s, const char *prefix) {
  size_t n = strlen(prefix);
  return strncmp(s, prefix, n) == 0 ? s + n : NULL;
}

/* Length of the valid UTF-8 sequence at s (1 to 4), or 0 if the bytes at s
 * are not one (overlong forms, surrogates and values above U+10FFFF are
 * not). s is NUL-terminated, so reading stops at the terminator. */
static size_t utf8_len(const unsigned char *s) {
  unsigned char c = s[0];
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return (s[1] & 0xC0) == 0x80 ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    unsigned char lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    if (s[1] < lo || s[1] > hi) return 0;
    return (s[2] & 0xC0) == 0x80 ? 3 : 0;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    unsigned char lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    if (s[1] < lo || s[1] > hi) return 0;
    if ((s[2] & 0xC0) != 0x80) return 0;
    return (s[3] & 0xC0) == 0x80 ? 4 : 0;
  }
  return 0;
}

/* A growing text buffer. After an allocation failure it stays failed
 * (oom) and every append is a no-op, so callers check once at the end. */
struct buf {
  char *p;
  size_t len, cap;
  bool oom;
};

static void buf_add(struct buf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
      b->oom = true;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static void buf_str(struct buf *b, const char *s) { buf_add(b, s, strlen(s)); }

static void buf_u64(struct buf *b, uint64_t v) {
  char tmp[24];
  int n = snprintf(tmp, sizeof tmp, "%" PRIu64, v);
  buf_add(b, tmp, (size_t)n);
}

/* Appends s as a JSON string, quotes included. Bytes that are not valid
 * UTF-8 become U+FFFD, so the output is always valid JSON. */
static void buf_json(struct buf *b, const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  buf_add(b, "\"", 1);
  while (*p) {
    unsigned char c = *p;
    char esc[8];
    if (c == '"' || c == '\\') {
      esc[0] = '\\';
      esc[1] = (char)c;
      buf_add(b, esc, 2);
      p++;
    } else if (c < 0x20) {
      int n = snprintf(esc, sizeof esc, "\\u%04x", c);
      buf_add(b, esc, (size_t)n);
      p++;
    } else {
      size_t n = utf8_len(p);
      if (n == 0) {
        buf_str(b, "\\ufffd");
        p++;
      } else {
        buf_add(b, (const char *)p, n);
        p += n;
      }
    }
  }
  buf_add(b, "\"", 1);
}

/* ------------------------------------------------------------------------ */
/* String-keyed map for the counters. Entries never move in memory (a
 * rehash relinks them), so a request may keep a pointer to its host entry
 * for as long as that entry's in_flight is above zero: reset keeps such
 * entries. */

struct entry {
  struct entry *next;
  uint64_t count;     /* requests: paths, flaky and retry-after keys */
  int64_t in_flight;  /* hosts */
  int64_t max_flight; /* hosts */
  /* hosts: requests received and not yet answered (a response queued).
   * Unlike in_flight, which lasts until MHD's completion callback, this
   * ends before the client can see the response, so a client that starts
   * a request only after another one's response never shows overlap. */
  int64_t pending, max_pending;
  uint64_t last_ns;   /* retry-after: when the previous request came */
  uint32_t ngaps;
  uint32_t gaps_ms[MAX_GAPS];
  uint64_t *stamps_us; /* /stamp: arrival times, from the first request */
  uint64_t first_ns;
  char key[];
};

struct map {
  struct entry **b;
  size_t nb, n;
};

static uint64_t hash_str(const char *s) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

static struct entry *map_find(const struct map *m, const char *key) {
  if (m->nb == 0) return NULL;
  for (struct entry *e = m->b[hash_str(key) & (m->nb - 1)]; e; e = e->next)
    if (strcmp(e->key, key) == 0) return e;
  return NULL;
}

static void map_grow(struct map *m) {
  size_t nb = m->nb ? m->nb * 2 : 64;
  struct entry **b = calloc(nb, sizeof *b);
  if (!b) return; /* keep the old table: slower chains, still correct */
  for (size_t i = 0; i < m->nb; i++) {
    struct entry *e = m->b[i];
    while (e) {
      struct entry *next = e->next;
      size_t j = hash_str(e->key) & (nb - 1);
      e->next = b[j];
      b[j] = e;
      e = next;
    }
  }
  free(m->b);
  m->b = b;
  m->nb = nb;
}

/* Finds or adds key. NULL if the map is full (MAP_MAX_ENTRIES, unless
 * unbounded) or memory ran out. */
static struct entry *map_get(struct map *m, const char *key, bool unbounded) {
  struct entry *e = map_find(m, key);
  if (e) return e;
  if (m->n >= MAP_MAX_ENTRIES && !unbounded) return NULL;
  if (m->n >= m->nb) map_grow(m);
  if (m->nb == 0) return NULL;
  size_t len = strlen(key);
  e = calloc(1, sizeof *e + len + 1);
  if (!e) return NULL;
  memcpy(e->key, key, len + 1);
  size_t j = hash_str(key) & (m->nb - 1);
  e->next = m->b[j];
  m->b[j] = e;
  m->n++;
  return e;
}

/* Removes the entries for which keep() is false, or all if keep is NULL. */
static void map_filter(struct map *m, bool (*keep)(struct entry *)) {
  for (size_t i = 0; i < m->nb; i++) {
    struct entry **pp = &m->b[i];
    while (*pp) {
      struct entry *e = *pp;
      if (keep && keep(e)) {
        pp = &e->next;
      } else {
        *pp = e->next;
        free(e->stamps_us);
        free(e);
        m->n--;
      }
    }
  }
}

static void map_free(struct map *m) {
  map_filter(m, NULL);
  free(m->b);
  m->b = NULL;
  m->nb = 0;
}

/* Paths, hosts: a full map counts under OVERFLOW_KEY instead. */
static struct entry *map_get_or_overflow(struct map *m, const char *key) {
  struct entry *e = map_get(m, key, false);
  return e ? e : map_get(m, OVERFLOW_KEY, true);
}

/* ------------------------------------------------------------------------ */
/* Statistics. /stats and /stats/reset are not counted anywhere. */

static struct {
  pthread_mutex_t lock;
  uint64_t total;
  int64_t in_flight, max_flight;
  uint64_t status[600];
  struct map paths, flaky, retry, hosts, stamps;
} stats = {.lock = PTHREAD_MUTEX_INITIALIZER};

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

enum wake { WAKE_NONE, WAKE_DEADLINE, WAKE_GONE, WAKE_STOP };

/* One request, from the first call of the handler to the completion
 * callback. Only the connection's pool thread touches it, except `wake`,
 * which the timer thread writes before it resumes the connection. */
struct req {
  uint64_t start_ns;
  struct entry *host; /* counted in stats when not NULL */
  struct entry *path; /* its in_flight counts this request when not NULL */
  bool parked;
  bool answered; /* a response was queued: no longer pending */
  enum wake wake;
  uint64_t delay_ms;
  unsigned status; /* 0 until a response is queued */
  char method[16];
  char *url; /* only with --log */
  bool otlp; /* POST /v1/traces: the body is kept */
  struct buf body;
};

static void stats_begin(struct req *r, struct MHD_Connection *c,
                        const char *url) {
  if (strcmp(url, "/stats") == 0 || strcmp(url, "/stats/reset") == 0) return;
  const char *host =
      MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
  pthread_mutex_lock(&stats.lock);
  stats.total++;
  struct entry *p = map_get_or_overflow(&stats.paths, url);
  if (p) {
    p->count++;
    p->in_flight++;
    if (p->in_flight > p->max_flight) p->max_flight = p->in_flight;
    r->path = p;
  }
  struct entry *h = map_get_or_overflow(&stats.hosts, host ? host : "");
  if (h) {
    stats.in_flight++;
    if (stats.in_flight > stats.max_flight) stats.max_flight = stats.in_flight;
    h->in_flight++;
    if (h->in_flight > h->max_flight) h->max_flight = h->in_flight;
    h->pending++;
    if (h->pending > h->max_pending) h->max_pending = h->pending;
    r->host = h;
  }
  pthread_mutex_unlock(&stats.lock);
}

static void stats_end(struct req *r) {
  if (!r->host && !r->path) return;
  pthread_mutex_lock(&stats.lock);
  if (r->host) {
    stats.in_flight--;
    r->host->in_flight--;
    if (!r->answered) r->host->pending--;
  }
  if (r->path) r->path->in_flight--;
  pthread_mutex_unlock(&stats.lock);
  r->host = NULL;
  r->path = NULL;
}

static void stats_status(struct req *r, unsigned status) {
  if (!r->host) return;
  pthread_mutex_lock(&stats.lock);
  if (!r->answered) r->host->pending--;
  r->answered = true;
  if (status < 600) stats.status[status]++;
  pthread_mutex_unlock(&stats.lock);
}

static bool host_busy(struct entry *e) {
  e->max_flight = e->in_flight;
  e->max_pending = e->pending;
  return e->in_flight > 0;
}

/* A path with a request in flight stays (that request points to it), with
 * its count cleared. */
static bool path_busy(struct entry *e) {
  e->count = 0;
  return host_busy(e);
}

/* Clears everything but the requests in flight now: they still end, and
 * the maxima restart from them. */
static void stats_reset(void) {
  pthread_mutex_lock(&stats.lock);
  stats.total = 0;
  stats.max_flight = stats.in_flight;
  memset(stats.status, 0, sizeof stats.status);
  map_filter(&stats.paths, path_busy);
  map_filter(&stats.flaky, NULL);
  map_filter(&stats.retry, NULL);
  map_filter(&stats.stamps, NULL);
  map_filter(&stats.hosts, host_busy);
  pthread_mutex_unlock(&stats.lock);
}

/* Tracing: see the top of the file. */
struct seen {
  char *path;
  char tp[TRACEPARENT_MAX];
};

static struct {
  pthread_mutex_t lock;
  struct seen *seen;
  size_t nseen, capseen;
  uint64_t seen_dropped;
  struct buf *bodies;
  size_t nbodies, capbodies, total;
  uint64_t bodies_dropped;
} traces = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void traces_record(struct MHD_Connection *c, const char *url) {
  const char *tp =
      MHD_lookup_connection_value(c, MHD_HEADER_KIND, "traceparent");
  if (!tp) return;
  pthread_mutex_lock(&traces.lock);
  if (traces.nseen == traces.capseen && traces.nseen < TRACE_SEEN_MAX) {
    size_t cap = traces.capseen ? traces.capseen * 2 : 1024;
    struct seen *v = realloc(traces.seen, cap * sizeof *v);
    if (v) {
      traces.seen = v;
      traces.capseen = cap;
    }
  }
  char *path = traces.nseen < traces.capseen ? strdup(url) : NULL;
  if (path) {
    struct seen *e = &traces.seen[traces.nseen++];
    e->path = path;
    snprintf(e->tp, sizeof e->tp, "%s", tp);
  } else {
    traces.seen_dropped++;
  }
  pthread_mutex_unlock(&traces.lock);
}

/* Takes the body (its memory) if it fits the bounds. */
static bool traces_store_body(struct buf *body) {
  bool ok = false;
  pthread_mutex_lock(&traces.lock);
  if (traces.total + body->len <= OTLP_TOTAL_MAX) {
    if (traces.nbodies == traces.capbodies) {
      size_t cap = traces.capbodies ? traces.capbodies * 2 : 64;
      struct buf *v = realloc(traces.bodies, cap * sizeof *v);
      if (v) {
        traces.bodies = v;
        traces.capbodies = cap;
      }
    }
    if (traces.nbodies < traces.capbodies) {
      traces.bodies[traces.nbodies++] = *body;
      traces.total += body->len;
      memset(body, 0, sizeof *body);
      ok = true;
    }
  }
  if (!ok) traces.bodies_dropped++;
  pthread_mutex_unlock(&traces.lock);
  return ok;
}

static void traces_reset(void) {
  pthread_mutex_lock(&traces.lock);
  for (size_t i = 0; i < traces.nseen; i++) free(traces.seen[i].path);
  for (size_t i = 0; i < traces.nbodies; i++) free(traces.bodies[i].p);
  traces.nseen = traces.nbodies = traces.total = 0;
  traces.seen_dropped = traces.bodies_dropped = 0;
  pthread_mutex_unlock(&traces.lock);
}

static void traces_free(void) {
  traces_reset();
  free(traces.seen);
  free(traces.bodies);
}

static void json_counts(struct buf *b, const char *name, const struct map *m) {
  bool first = true;
  buf_str(b, ",\n  ");
  buf_json(b, name);
  buf_str(b, ": {");
  for (size_t i = 0; i < m->nb; i++) {
    for (struct entry *e = m->b[i]; e; e = e->next) {
      buf_str(b, first ? "" : ", ");
      first = false;
      buf_json(b, e->key);
      buf_str(b, ": ");
      buf_u64(b, e->count);
    }
  }
  buf_str(b, "}");
}

/* Paths that had two or more requests in flight at once, with that most. */
static void json_path_overlaps(struct buf *b) {
  bool first = true;
  buf_str(b, ",\n  \"path_max_concurrent\": {");
  for (size_t i = 0; i < stats.paths.nb; i++) {
    for (struct entry *e = stats.paths.b[i]; e; e = e->next) {
      if (e->max_flight < 2) continue;
      buf_str(b, first ? "" : ", ");
      first = false;
      buf_json(b, e->key);
      buf_str(b, ": ");
      buf_u64(b, (uint64_t)e->max_flight);
    }
  }
  buf_str(b, "}");
}

enum host_field { HOST_IN_FLIGHT, HOST_MAX_FLIGHT, HOST_MAX_PENDING };

static void json_hosts(struct buf *b, const char *name, enum host_field f) {
  bool first = true;
  buf_str(b, ",\n  ");
  buf_json(b, name);
  buf_str(b, ": {");
  for (size_t i = 0; i < stats.hosts.nb; i++) {
    for (struct entry *e = stats.hosts.b[i]; e; e = e->next) {
      buf_str(b, first ? "" : ", ");
      first = false;
      buf_json(b, e->key);
      buf_str(b, ": ");
      buf_u64(b, (uint64_t)(f == HOST_MAX_FLIGHT    ? e->max_flight
                            : f == HOST_MAX_PENDING ? e->max_pending
                                                    : e->in_flight));
    }
  }
  buf_str(b, "}");
}

static void stats_json(struct buf *b) {
  pthread_mutex_lock(&stats.lock);
  buf_str(b, "{\n  \"total_requests\": ");
  buf_u64(b, stats.total);
  buf_str(b, ",\n  \"in_flight\": ");
  buf_u64(b, (uint64_t)stats.in_flight);
  buf_str(b, ",\n  \"max_concurrent\": ");
  buf_u64(b, (uint64_t)stats.max_flight);
  json_counts(b, "paths", &stats.paths);
  json_path_overlaps(b);
  buf_str(b, ",\n  \"status_codes\": {");
  bool first = true;
  for (unsigned i = 0; i < 600; i++) {
    if (!stats.status[i]) continue;
    char key[8];
    snprintf(key, sizeof key, "%u", i);
    buf_str(b, first ? "" : ", ");
    first = false;
    buf_json(b, key);
    buf_str(b, ": ");
    buf_u64(b, stats.status[i]);
  }
  buf_str(b, "}");
  json_counts(b, "flaky", &stats.flaky);
  buf_str(b, ",\n  \"retry_after\": {");
  first = true;
  for (size_t i = 0; i < stats.retry.nb; i++) {
    for (struct entry *e = stats.retry.b[i]; e; e = e->next) {
      buf_str(b, first ? "" : ", ");
      first = false;
      buf_json(b, e->key);
      buf_str(b, ": {\"requests\": ");
      buf_u64(b, e->count);
      buf_str(b, ", \"gaps_ms\": [");
      for (uint32_t g = 0; g < e->ngaps; g++) {
        if (g) buf_str(b, ", ");
        buf_u64(b, e->gaps_ms[g]);
      }
      buf_str(b, "]}");
    }
  }
  buf_str(b, "}");
  buf_str(b, ",\n  \"stamps_us\": {");
  first = true;
  for (size_t i = 0; i < stats.stamps.nb; i++) {
    for (struct entry *e = stats.stamps.b[i]; e; e = e->next) {
      buf_str(b, first ? "" : ", ");
      first = false;
      buf_json(b, e->key);
      buf_str(b, ": [");
      for (uint64_t g = 0; g < e->count && g < MAX_STAMPS; g++) {
        if (g) buf_str(b, ", ");
        buf_u64(b, e->stamps_us[g]);
      }
      buf_str(b, "]");
    }
  }
  buf_str(b, "}");
  json_hosts(b, "max_concurrent_by_host", HOST_MAX_FLIGHT);
  json_hosts(b, "max_pending_by_host", HOST_MAX_PENDING);
  json_hosts(b, "in_flight_by_host", HOST_IN_FLIGHT);
  buf_str(b, "\n}\n");
  pthread_mutex_unlock(&stats.lock);
}

/* ------------------------------------------------------------------------ */
/* The timer thread and the parked (suspended) connections. */

struct parked {
  struct MHD_Connection *conn;
  struct req *req;
  uint64_t deadline_ns; /* UINT64_MAX: /hang */
  int fd;               /* -1 if unknown: no check for a departed client */
};

static struct {
  pthread_mutex_t lock;
  pthread_cond_t cond; /* on CLOCK_MONOTONIC */
  struct parked *v;    /* only the timer thread removes entries */
  size_t n, cap;
  bool stopping;
  pthread_t thread;
} timer = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Suspends c until deadline_ns. Returns false if the server is stopping or
 * memory ran out: the caller closes the connection then. */
static bool park(struct MHD_Connection *c, struct req *r, uint64_t deadline) {
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
  bool ok = false;
  pthread_mutex_lock(&timer.lock);
  if (timer.stopping) goto out;
  if (timer.n == timer.cap) {
    size_t cap = timer.cap ? timer.cap * 2 : 256;
    struct parked *v = realloc(timer.v, cap * sizeof *v);
    if (!v) goto out;
    timer.v = v;
    timer.cap = cap;
  }
  timer.v[timer.n++] =
      (struct parked){c, r, deadline, ci ? ci->connect_fd : -1};
  r->parked = true;
  r->wake = WAKE_NONE;
  /* Under timer.lock: the timer thread cannot resume c before this. */
  MHD_suspend_connection(c);
  pthread_cond_signal(&timer.cond);
  ok = true;
out:
  pthread_mutex_unlock(&timer.lock);
  return ok;
}

/* True if the client of a parked connection has closed or reset it. */
static bool peer_gone(const struct pollfd *p) {
  if (p->revents & (POLLHUP | POLLERR | POLLNVAL)) return true;
  if (!(p->revents & POLLIN)) return false;
  char ch;
  ssize_t n = recv(p->fd, &ch, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0) return true;
  return n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

/* Marks the parked connections whose client left (gone[i] for v[i], i < k).
 * Called without timer.lock: entries 0..k-1 stay put meanwhile, since
 * only this thread removes entries and others only append. */
static void check_peers(const struct parked *v, size_t k, bool *gone) {
  struct pollfd *p = calloc(k, sizeof *p);
  if (!p) return;
  for (size_t i = 0; i < k; i++) {
    p[i].fd = v[i].fd; /* negative fds are skipped by poll */
    p[i].events = POLLIN;
  }
  if (poll(p, (nfds_t)k, 0) > 0)
    for (size_t i = 0; i < k; i++) gone[i] = p[i].fd >= 0 && peer_gone(&p[i]);
  free(p);
}

static void timespec_at(struct timespec *ts, uint64_t ns) {
  ts->tv_sec = (time_t)(ns / 1000000000u);
  ts->tv_nsec = (long)(ns % 1000000000u);
}

static void *timer_main(void *arg) {
  uint64_t next_check = now_ns();
  struct MHD_Connection *ready[256]; /* resumed in batches of this size */
  pthread_mutex_lock(&timer.lock);
  for (;;) {
    uint64_t now = now_ns();
    size_t nready = 0;
    bool *gone = NULL;
    size_t k = timer.n;

    if (!timer.stopping && k > 0 && now >= next_check) {
      next_check = now + PEER_CHECK_MS * 1000000ull;
      gone = calloc(k, sizeof *gone);
      /* A copy, as park() may reallocate timer.v meanwhile. */
      struct parked *copy = gone ? malloc(k * sizeof *copy) : NULL;
      if (copy) {
        memcpy(copy, timer.v, k * sizeof *copy);
        pthread_mutex_unlock(&timer.lock);
        check_peers(copy, k, gone);
        free(copy);
        pthread_mutex_lock(&timer.lock);
        now = now_ns();
      }
    }
    /* Downwards, so that a swap-remove only moves an entry already seen;
     * entries below k are still those that were checked. */
    for (size_t i = timer.n;
         i-- > 0 && nready < sizeof ready / sizeof *ready;) {
      struct parked *p = &timer.v[i];
      enum wake w = timer.stopping               ? WAKE_STOP
                    : p->deadline_ns <= now      ? WAKE_DEADLINE
                    : (gone && i < k && gone[i]) ? WAKE_GONE
                                                 : WAKE_NONE;
      if (w == WAKE_NONE) continue;
      p->req->wake = w;
      ready[nready++] = p->conn;
      timer.v[i] = timer.v[--timer.n];
    }
    free(gone);
    if (nready > 0) {
      pthread_mutex_unlock(&timer.lock);
      for (size_t i = 0; i < nready; i++) MHD_resume_connection(ready[i]);
      pthread_mutex_lock(&timer.lock);
      continue;
    }
    if (timer.stopping) break; /* and nothing is parked any more */
    if (timer.n == 0) {
      pthread_cond_wait(&timer.cond, &timer.lock);
      next_check = now_ns() + PEER_CHECK_MS * 1000000ull;
      continue;
    }
    uint64_t wake_at = next_check;
    for (size_t i = 0; i < timer.n; i++)
      if (timer.v[i].deadline_ns < wake_at) wake_at = timer.v[i].deadline_ns;
    struct timespec ts;
    timespec_at(&ts, wake_at);
    pthread_cond_timedwait(&timer.cond, &timer.lock, &ts);
  }
  pthread_mutex_unlock(&timer.lock);
  return arg;
}

static int timer_start(void) {
  pthread_condattr_t attr;
  int err = pthread_condattr_init(&attr);
  if (err) return err;
  err = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  if (!err) err = pthread_cond_init(&timer.cond, &attr);
  pthread_condattr_destroy(&attr);
  if (err) return err;
  err = pthread_create(&timer.thread, NULL, timer_main, NULL);
  if (err) pthread_cond_destroy(&timer.cond);
  return err;
}

/* Resumes every parked connection (they close) and joins the thread. */
static void timer_stop(void) {
  pthread_mutex_lock(&timer.lock);
  timer.stopping = true;
  pthread_cond_signal(&timer.cond);
  pthread_mutex_unlock(&timer.lock);
  pthread_join(timer.thread, NULL);
  pthread_cond_destroy(&timer.cond);
  free(timer.v);
  timer.v = NULL;
}

/* ------------------------------------------------------------------------ */
/* Responses. */

static struct MHD_Response *ok_response; /* shared by every /ok */
static char ok_body[OK_BODY_LEN + 1];

/* Queues resp with status for r and releases the caller's reference. */
static enum MHD_Result send_response(struct MHD_Connection *c, struct req *r,
                                     unsigned status,
                                     struct MHD_Response *resp) {
  if (!resp) return MHD_NO;
  r->status = status;
  stats_status(r, status);
  enum MHD_Result ret = MHD_queue_response(c, status, resp);
  MHD_destroy_response(resp);
  return ret;
}

static struct MHD_Response *buffer_response(const char *body, size_t len,
                                            const char *type) {
  struct MHD_Response *resp = MHD_create_response_from_buffer(
      len, (void *)(uintptr_t)body, MHD_RESPMEM_MUST_COPY);
  if (resp && type)
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
  return resp;
}

static struct MHD_Response *text_response(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* A text/plain response of at most TEXT_MAX bytes. */
static struct MHD_Response *text_response(const char *fmt, ...) {
  char body[TEXT_MAX];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(body, sizeof body, fmt, ap);
  va_end(ap);
  if (n < 0) n = 0;
  if ((size_t)n >= sizeof body) n = (int)sizeof body - 1;
  return buffer_response(body, (size_t)n, "text/plain; charset=utf-8");
}

static enum MHD_Result send_text(struct MHD_Connection *c, struct req *r,
                                 unsigned status, const char *text) {
  return send_response(c, r, status, text_response("%s", text));
}

static enum MHD_Result send_json(struct MHD_Connection *c, struct req *r,
                                 struct buf *b) {
  if (b->oom || !b->p) {
    free(b->p);
    return send_text(c, r, 500, "out of memory\n");
  }
  struct MHD_Response *resp =
      MHD_create_response_from_buffer(b->len, b->p, MHD_RESPMEM_MUST_FREE);
  if (!resp) return MHD_NO; /* may leak b->p: better than a double free */
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                          "application/json");
  return send_response(c, r, 200, resp);
}

static enum MHD_Result send_redirect(struct MHD_Connection *c, struct req *r,
                                     unsigned status, const char *location) {
  struct MHD_Response *resp = text_response("redirect to %s\n", location);
  if (!resp) return MHD_NO;
  /* MHD refuses values with CR or LF: no header injection. */
  if (MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, location) !=
      MHD_YES) {
    MHD_destroy_response(resp);
    return send_text(c, r, 400, "bad redirect target\n");
  }
  return send_response(c, r, status, resp);
}

/* ------------------------------------------------------------------------ */
/* Routes. */

static enum MHD_Result route_status(struct MHD_Connection *c, struct req *r,
                                    const char *arg) {
  uint64_t code;
  if (parse_num(arg, 1000, &code) != 0 || code < 200 || code > 599)
    return send_text(c, r, 400, "status must be 200 to 599\n");
  if (code == 204 || code == 304)
    return send_response(c, r, (unsigned)code, buffer_response("", 0, NULL));
  return send_response(c, r, (unsigned)code,
                       text_response("status %" PRIu64 "\n", code));
}

static enum MHD_Result route_delay(struct MHD_Connection *c, struct req *r,
                                   const char *arg) {
  /* /delay/MS/KEY: KEY only makes the path (and its counts) unique. */
  char ms[24];
  size_t n = strcspn(arg, "/");
  if (n >= sizeof ms) return send_text(c, r, 400, "bad delay\n");
  memcpy(ms, arg, n);
  ms[n] = '\0';
  if (parse_num(ms, MAX_DELAY_MS, &r->delay_ms) != 0)
    return send_text(c, r, 400, "bad delay\n");
  if (r->delay_ms == 0)
    return send_response(c, r, 200, text_response("delayed 0 ms\n"));
  return park(c, r, now_ns() + r->delay_ms * 1000000u) ? MHD_YES : MHD_NO;
}

static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz";

/* Byte i of a /bytes body is alphabet[i % 26]. cls holds the body size. */
static ssize_t bytes_reader(void *cls, uint64_t pos, char *out, size_t max) {
  uint64_t size = *(const uint64_t *)cls;
  if (pos >= size) return MHD_CONTENT_READER_END_OF_STREAM;
  if (max > size - pos) max = (size_t)(size - pos);
  size_t k = (size_t)(pos % 26);
  for (size_t i = 0; i < max; i++) {
    out[i] = alphabet[k];
    if (++k == 26) k = 0;
  }
  return (ssize_t)max;
}

static enum MHD_Result route_bytes(struct MHD_Connection *c, struct req *r,
                                   const char *arg) {
  uint64_t n;
  if (parse_num(arg, MAX_BYTES, &n) != 0)
    return send_text(c, r, 400, "bad byte count\n");
  if (n == 0)
    return send_response(c, r, 200,
                         buffer_response("", 0, "application/octet-stream"));
  uint64_t *size = malloc(sizeof *size);
  if (!size) return MHD_NO;
  *size = n;
  struct MHD_Response *resp =
      MHD_create_response_from_callback(n, 64 * 1024, bytes_reader, size, free);
  if (!resp) {
    free(size);
    return MHD_NO;
  }
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                          "application/octet-stream");
  return send_response(c, r, 200, resp);
}

/* Drops the connection abruptly: connect(AF_UNSPEC) disconnects a TCP
 * socket on Linux and sends an RST, without closing the descriptor, which
 * stays MHD's to close. SO_LINGER 0 makes that close an RST too, should
 * the disconnect fail. */
static enum MHD_Result route_reset(struct MHD_Connection *c) {
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
  if (ci) {
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    struct sockaddr sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_family = AF_UNSPEC;
    (void)setsockopt(ci->connect_fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    (void)connect(ci->connect_fd, &sa, sizeof sa);
  }
  return MHD_NO;
}

static enum MHD_Result route_redirect(struct MHD_Connection *c, struct req *r,
                                      const char *arg) {
  uint64_t n;
  if (parse_num(arg, MAX_REDIRECTS, &n) != 0)
    return send_text(c, r, 400, "bad redirect count\n");
  if (n == 0) return send_text(c, r, 200, "redirects done\n");
  char location[48];
  snprintf(location, sizeof location, "/redirect/%" PRIu64, n - 1);
  return send_redirect(c, r, 302, location);
}

static enum MHD_Result route_redirect_to(struct MHD_Connection *c,
                                         struct req *r) {
  const char *url =
      MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "url");
  const char *st =
      MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "status");
  uint64_t status = 302;
  if (!url || !*url) return send_text(c, r, 400, "missing url\n");
  if (st && (parse_num(st, 1000, &status) != 0 ||
             (status != 301 && status != 302 && status != 303 &&
              status != 307 && status != 308)))
    return send_text(c, r, 400, "status must be 301, 302, 303, 307, 308\n");
  return send_redirect(c, r, (unsigned)status, url);
}

static enum MHD_Result route_flaky(struct MHD_Connection *c, struct req *r,
                                   const char *arg) {
  const char *slash = strrchr(arg, '/');
  uint64_t k;
  if (!slash || parse_num(slash + 1, MAX_FLAKY, &k) != 0)
    return send_text(c, r, 400, "use /flaky/{key}/{k}\n");
  size_t len = (size_t)(slash - arg);
  char *key = malloc(len + 1);
  if (!key) return MHD_NO;
  memcpy(key, arg, len);
  key[len] = '\0';
  pthread_mutex_lock(&stats.lock);
  struct entry *e = map_get(&stats.flaky, key, false);
  uint64_t n = e ? ++e->count : 0;
  pthread_mutex_unlock(&stats.lock);
  free(key);
  if (!e) return send_text(c, r, 500, "too many flaky keys\n");
  if (n <= k)
    return send_response(
        c, r, 503,
        text_response("flaky: failure %" PRIu64 " of %" PRIu64 "\n", n, k));
  return send_response(
      c, r, 200, text_response("flaky: ok after %" PRIu64 " failures\n", k));
}

static enum MHD_Result route_retry_after(struct MHD_Connection *c,
                                         struct req *r, const char *arg) {
  uint64_t s;
  if (parse_num(arg, MAX_RETRY_AFTER_S, &s) != 0)
    return send_text(c, r, 400, "bad retry-after seconds\n");
  const char *key =
      MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "key");
  const char *form =
      MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "form");
  uint64_t now = now_ns();
  pthread_mutex_lock(&stats.lock);
  struct entry *e = map_get(&stats.retry, key ? key : "", false);
  uint64_t n = 0;
  if (e) {
    if (e->count > 0 && e->ngaps < MAX_GAPS)
      e->gaps_ms[e->ngaps++] = (uint32_t)((now - e->last_ns) / 1000000u);
    e->last_ns = now;
    n = ++e->count;
  }
  pthread_mutex_unlock(&stats.lock);
  if (!e) return send_text(c, r, 500, "too many retry-after keys\n");
  if (n > 1) return send_text(c, r, 200, "retry-after: ok\n");

  char value[64];
  if (form && strcmp(form, "date") == 0) {
    /* An HTTP-date instead of seconds, same instant. */
    time_t t = time(NULL) + (time_t)s;
    struct tm tm;
    if (!gmtime_r(&t, &tm) ||
        strftime(value, sizeof value, "%a, %d %b %Y %H:%M:%S GMT", &tm) == 0)
      return MHD_NO;
  } else {
    snprintf(value, sizeof value, "%" PRIu64, s);
  }
  struct MHD_Response *resp =
      text_response("retry-after: come back in %" PRIu64 " s\n", s);
  if (!resp) return MHD_NO;
  MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, value);
  return send_response(c, r, 503, resp);
}

/* /stamp/KEY: 200, and the arrival time (microseconds after the key's first
 * request) joins the key's list in /stats "stamps_us": for measuring a rate
 * at the server. */
static enum MHD_Result route_stamp(struct MHD_Connection *c, struct req *r,
                                   const char *key) {
  uint64_t now = now_ns();
  pthread_mutex_lock(&stats.lock);
  struct entry *e = map_get(&stats.stamps, key, false);
  if (e && !e->stamps_us) {
    e->stamps_us = calloc(MAX_STAMPS, sizeof *e->stamps_us);
    e->first_ns = now;
  }
  if (e && e->stamps_us && e->count < MAX_STAMPS)
    e->stamps_us[e->count++] = (now - e->first_ns) / 1000u;
  bool ok = e && e->stamps_us;
  pthread_mutex_unlock(&stats.lock);
  if (!ok) return send_text(c, r, 500, "too many stamp keys\n");
  return send_text(c, r, 200, "stamped\n");
}

struct header_list {
  const char **kv; /* name, value, name, value... */
  size_t n, cap;
  bool oom;
};

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind,
                                      const char *key, const char *value) {
  struct header_list *h = cls;
  if (h->n + 2 > h->cap) {
    size_t cap = h->cap ? h->cap * 2 : 32;
    const char **kv = realloc(h->kv, cap * sizeof *kv);
    if (!kv) {
      h->oom = true;
      return MHD_NO;
    }
    h->kv = kv;
    h->cap = cap;
  }
  h->kv[h->n++] = key;
  h->kv[h->n++] = value ? value : "";
  return MHD_YES;
}

/* The request headers as one JSON object. A header sent more than once
 * (names compared without case) appears once, under its first spelling,
 * with the values joined by ", ". */
static enum MHD_Result route_echo_headers(struct MHD_Connection *c,
                                          struct req *r) {
  struct header_list h = {0};
  struct buf b = {0};
  MHD_get_connection_values(c, MHD_HEADER_KIND, collect_header, &h);
  bool *done = calloc(h.n / 2 + 1, sizeof *done);
  if (h.oom || !done) {
    free(h.kv);
    free(done);
    return send_text(c, r, 500, "out of memory\n");
  }
  buf_str(&b, "{");
  for (size_t i = 0; i < h.n / 2; i++) {
    if (done[i]) continue;
    struct buf v = {0};
    buf_str(&v, h.kv[2 * i + 1]);
    for (size_t j = i + 1; j < h.n / 2; j++) {
      if (done[j] || strcasecmp(h.kv[2 * i], h.kv[2 * j]) != 0) continue;
      done[j] = true;
      buf_str(&v, ", ");
      buf_str(&v, h.kv[2 * j + 1]);
    }
    buf_str(&b, i ? ",\n " : "\n ");
    buf_json(&b, h.kv[2 * i]);
    buf_str(&b, ": ");
    if (v.oom) b.oom = true;
    buf_json(&b, v.p ? v.p : "");
    free(v.p);
  }
  buf_str(&b, "\n}\n");
  free(h.kv);
  free(done);
  return send_json(c, r, &b);
}

/* {"seen": [{"path": P, "traceparent": T}, ...], "dropped": N} */
static enum MHD_Result route_traces_seen(struct MHD_Connection *c,
                                         struct req *r) {
  struct buf b = {0};
  pthread_mutex_lock(&traces.lock);
  buf_str(&b, "{\"seen\": [");
  for (size_t i = 0; i < traces.nseen; i++) {
    buf_str(&b, i ? ",\n {\"path\": " : "\n {\"path\": ");
    buf_json(&b, traces.seen[i].path);
    buf_str(&b, ", \"traceparent\": ");
    buf_json(&b, traces.seen[i].tp);
    buf_str(&b, "}");
  }
  buf_str(&b, "],\n \"dropped\": ");
  buf_u64(&b, traces.seen_dropped);
  buf_str(&b, "}\n");
  pthread_mutex_unlock(&traces.lock);
  return send_json(c, r, &b);
}

/* {"exports": [body, ...], "dropped": N}: the bodies as they came. */
static enum MHD_Result route_traces_received(struct MHD_Connection *c,
                                             struct req *r) {
  struct buf b = {0};
  pthread_mutex_lock(&traces.lock);
  buf_str(&b, "{\"exports\": [");
  for (size_t i = 0; i < traces.nbodies; i++) {
    buf_str(&b, i ? ",\n" : "\n");
    buf_add(&b, traces.bodies[i].p ? traces.bodies[i].p : "null",
            traces.bodies[i].p ? traces.bodies[i].len : 4);
  }
  buf_str(&b, "],\n \"dropped\": ");
  buf_u64(&b, traces.bodies_dropped);
  buf_str(&b, "}\n");
  pthread_mutex_unlock(&traces.lock);
  return send_json(c, r, &b);
}

/* POST /v1/traces: an OTLP/HTTP JSON receiver that keeps what it got. */
static enum MHD_Result route_otlp(struct MHD_Connection *c, struct req *r) {
  if (r->body.oom) return send_text(c, r, 413, "body too large\n");
  if (!traces_store_body(&r->body))
    return send_text(c, r, 507, "receiver full\n");
  struct buf ok = {0};
  buf_str(&ok, "{}");
  return send_json(c, r, &ok);
}

static enum MHD_Result route_stats(struct MHD_Connection *c, struct req *r) {
  struct buf b = {0};
  stats_json(&b);
  return send_json(c, r, &b);
}

static enum MHD_Result send_not_allowed(struct MHD_Connection *c, struct req *r,
                                        const char *allow) {
  struct MHD_Response *resp = text_response("method not allowed\n");
  if (!resp) return MHD_NO;
  MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
  return send_response(c, r, 405, resp);
}

static enum MHD_Result route(struct MHD_Connection *c, struct req *r,
                             const char *url, const char *method) {
  bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
  const char *arg;

  if (strcmp(url, "/stats/reset") == 0) {
    if (!get && strcmp(method, "POST") != 0)
      return send_not_allowed(c, r, "GET, HEAD, POST");
    stats_reset();
    traces_reset();
    return send_text(c, r, 200, "stats reset\n");
  }
  if (r->otlp) return route_otlp(c, r);
  if (strcmp(url, "/hang") == 0) /* any method: a collector that hangs */
    return park(c, r, UINT64_MAX) ? MHD_YES : MHD_NO;
  if (!get) return send_not_allowed(c, r, "GET, HEAD");
  if (strcmp(url, "/") == 0 || strcmp(url, "/ok") == 0) {
    r->status = 200;
    stats_status(r, 200);
    return MHD_queue_response(c, 200, ok_response);
  }
  if ((arg = after_prefix(url, "/status/"))) return route_status(c, r, arg);
  if ((arg = after_prefix(url, "/delay/"))) return route_delay(c, r, arg);
  if ((arg = after_prefix(url, "/bytes/"))) return route_bytes(c, r, arg);
  if (strcmp(url, "/hang") == 0)
    return park(c, r, UINT64_MAX) ? MHD_YES : MHD_NO;
  if (strcmp(url, "/reset") == 0) return route_reset(c);
  if ((arg = after_prefix(url, "/redirect/"))) return route_redirect(c, r, arg);
  if (strcmp(url, "/redirect-to") == 0) return route_redirect_to(c, r);
  if (strcmp(url, "/redirect-loop") == 0)
    return send_redirect(c, r, 302, "/redirect-loop");
  if ((arg = after_prefix(url, "/flaky/"))) return route_flaky(c, r, arg);
  if ((arg = after_prefix(url, "/retry-after/")))
    return route_retry_after(c, r, arg);
  if (strcmp(url, "/echo-headers") == 0) return route_echo_headers(c, r);
  if (strcmp(url, "/stats") == 0) return route_stats(c, r);
  if (strcmp(url, "/traces/seen") == 0) return route_traces_seen(c, r);
  if (strcmp(url, "/v1/traces/received") == 0)
    return route_traces_received(c, r);
  if (strcmp(url, "/hostile") == 0)
    return send_response(c, r, 200,
                         text_response("port=%u silent_port=%u\n",
                                       hostile_port, silent_port));
  if ((arg = after_prefix(url, "/stamp/"))) return route_stamp(c, r, arg);
  return send_text(c, r, 404, "not found\n");
}

/* A parked connection was resumed by the timer thread. */
static enum MHD_Result on_wake(struct MHD_Connection *c, struct req *r) {
  r->parked = false;
  if (r->wake != WAKE_DEADLINE) return MHD_NO; /* client gone, or stopping */
  return send_response(c, r, 200,
                       text_response("delayed %" PRIu64 " ms\n", r->delay_ms));
}

/* MHD's access handler, on a pool thread. The first call (no state yet)
 * starts the request: that is when it counts as in flight. Any request
 * body is read and dropped before the route runs. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
                                  const char *url, const char *method,
                                  const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls) {
  struct req *r = *con_cls;
  if (!r) {
    r = calloc(1, sizeof *r);
    if (!r) return MHD_NO;
    r->start_ns = now_ns();
    snprintf(r->method, sizeof r->method, "%s", method);
    if (log_requests) r->url = strdup(url);
    *con_cls = r;
    stats_begin(r, c, url);
    traces_record(c, url);
    r->otlp = strcmp(method, "POST") == 0 && strcmp(url, "/v1/traces") == 0;
    return MHD_YES;
  }
  if (*upload_size != 0) {
    if (r->otlp && !r->body.oom) {
      if (r->body.len + *upload_size > OTLP_BODY_MAX)
        r->body.oom = true; /* answered 413 */
      else
        buf_add(&r->body, upload, *upload_size);
    }
    *upload_size = 0;
    return MHD_YES;
  }
  if (r->parked) return on_wake(c, r);
  return route(c, r, url, method);
}

/* MHD's completion callback, on the connection's pool thread: the response
 * was sent, or the connection closed. The request stops being in flight. */
static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
  struct req *r = *con_cls;
  if (!r) return;
  *con_cls = NULL;
  stats_end(r);
  if (log_requests) {
    double ms = (double)(now_ns() - r->start_ns) / 1e6;
    fprintf(stderr, "%s %s %u %.1fms%s\n", r->method, r->url ? r->url : "?",
            r->status, ms,
            toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (aborted)");
  }
  free(r->url);
  free(r->body.p);
  free(r);
}

/* ------------------------------------------------------------------------ */
/* Start and stop. */

static void usage(FILE *f) {
  fputs(
      "usage: wpool-testserver [--port N] [--port-file PATH] [--threads N] "
      "[--log]\n"
      "Serves on 127.0.0.1 only; prints port=N once listening; stops on "
      "SIGTERM/SIGINT.\n"
      "  --port N         port (default 0: the kernel picks a free one)\n"
      "  --port-file PATH also write the port there (atomically, by rename)\n"
      "  --threads N      MHD pool threads (default 2 x CPUs, 4 to 32)\n"
      "  --log            one line per request on stderr\n"
      "Routes (GET, HEAD): / /ok /status/CODE /delay/MS[/KEY] /bytes/N /hang "
      "/reset\n"
      "  /redirect/N /redirect-to?url=U[&status=S] /redirect-loop "
      "/flaky/KEY/K\n"
      "  /retry-after/S[?key=K][&form=date] /echo-headers /stamp/KEY "
      "/stats /stats/reset\n"
      "  /traces/seen (traceparent per request) /v1/traces/received\n"
      "  /hostile: the ports of the hostile listener (tests/support/hostile.c)\n"
      "POST: /v1/traces (OTLP/HTTP JSON receiver), /hang, /stats/reset\n",
      f);
}

/* RLIMIT_NOFILE soft up to hard. Returns the resulting soft limit. */
static rlim_t raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 1024;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &rl);
    (void)getrlimit(RLIMIT_NOFILE, &rl);
  }
  return rl.rlim_cur;
}

/* A listening TCP socket on 127.0.0.1:port. Returns the fd, or -1 with a
 * message on stderr. *bound gets the port actually bound. */
static int listen_loopback(unsigned port, unsigned *bound) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    int err = errno;
    char msg[128];
    if (strerror_r(err, msg, sizeof msg) != 0) snprintf(msg, sizeof msg, "?");
    fprintf(stderr, "wpool-testserver: socket: %s\n", msg);
    return -1;
  }
  int one = 1;
  (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
      listen(fd, 4096) != 0 ||
      getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
    int err = errno;
    char msg[128];
    if (strerror_r(err, msg, sizeof msg) != 0) snprintf(msg, sizeof msg, "?");
    fprintf(stderr, "wpool-testserver: listen on 127.0.0.1:%u: %s\n", port,
            msg);
    close(fd);
    return -1;
  }
  *bound = ntohs(sa.sin_port);
  return fd;
}

static int write_port_file(const char *path, unsigned port) {
  char tmp[4096];
  if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >=
      (int)sizeof tmp)
    return -1;
  FILE *f = fopen(tmp, "w");
  if (!f) return -1;
  int bad = fprintf(f, "%u\n", port) < 0;
  bad |= fclose(f) != 0;
  if (bad || rename(tmp, path) != 0) {
    unlink(tmp);
    return -1;
  }
  return 0;
}

/* Reads the value of option name from argv[*i] ("--name V" or
 * "--name=V"). NULL if argv[*i] is not that option. */
static const char *opt_value(int argc, char **argv, int *i, const char *name,
                             bool *missing) {
  const char *a = argv[*i];
  const char *rest = after_prefix(a, name);
  if (!rest) return NULL;
  if (*rest == '=') return rest + 1;
  if (*rest != '\0') return NULL;
  if (*i + 1 >= argc) {
    *missing = true;
    return NULL;
  }
  return argv[++*i];
}

int main(int argc, char **argv) {
  uint64_t port = 0, threads = 0;
  const char *port_file = NULL;
  for (int i = 1; i < argc; i++) {
    bool missing = false;
    const char *v;
    if ((v = opt_value(argc, argv, &i, "--port", &missing))) {
      if (parse_num(v, 100000, &port) != 0 || port > 65535) goto bad_usage;
    } else if ((v = opt_value(argc, argv, &i, "--port-file", &missing))) {
      port_file = v;
    } else if ((v = opt_value(argc, argv, &i, "--threads", &missing))) {
      if (parse_num(v, 1024, &threads) != 0 || threads == 0) goto bad_usage;
    } else if (strcmp(argv[i], "--log") == 0) {
      log_requests = true;
    } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      usage(stdout);
      return 0;
    } else {
      goto bad_usage;
    }
    if (missing) goto bad_usage;
  }
  if (threads == 0) {
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    threads = ncpu > 0 ? (uint64_t)ncpu * 2 : 4;
    if (threads < 4) threads = 4;
    if (threads > 32) threads = 32;
  }

  rlim_t nofile = raise_nofile();
  unsigned limit = CONNECTION_LIMIT;
  if (nofile != RLIM_INFINITY && nofile < (rlim_t)limit + 128)
    limit = nofile > 256 ? (unsigned)(nofile - 128) : 128;

  /* Every thread started from here on inherits this mask: only sigwait()
   * below sees SIGINT and SIGTERM. */
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, NULL);
  signal(SIGPIPE, SIG_IGN);

  for (unsigned i = 0; i < OK_BODY_LEN; i++) ok_body[i] = alphabet[i % 26];
  ok_body[OK_BODY_LEN - 1] = '\n';
  ok_response = MHD_create_response_from_buffer(OK_BODY_LEN, ok_body,
                                                MHD_RESPMEM_PERSISTENT);
  if (!ok_response) return 1;
  MHD_add_response_header(ok_response, MHD_HTTP_HEADER_CONTENT_TYPE,
                          "text/plain; charset=utf-8");

  unsigned bound = 0;
  int lfd = listen_loopback((unsigned)port, &bound);
  if (lfd < 0) return 1;
  if (hostile_start(&hostile_port, &silent_port) != 0) {
    fprintf(stderr, "wpool-testserver: cannot start the hostile listener\n");
    close(lfd);
    return 1;
  }
  int err = timer_start();
  if (err) {
    fprintf(stderr, "wpool-testserver: timer thread: error %d\n", err);
    close(lfd);
    return 1;
  }
  unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME;
  if (log_requests) flags |= MHD_USE_ERROR_LOG;
  struct MHD_Daemon *d = MHD_start_daemon(
      flags, 0, NULL, NULL, on_request, NULL, MHD_OPTION_LISTEN_SOCKET, lfd,
      MHD_OPTION_THREAD_POOL_SIZE, (unsigned)threads,
      MHD_OPTION_CONNECTION_LIMIT, limit, MHD_OPTION_CONNECTION_TIMEOUT, 0u,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)64 * 1024,
      MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_END);
  if (!d) {
    fprintf(stderr, "wpool-testserver: MHD_start_daemon failed\n");
    timer_stop();
    close(lfd);
    return 1;
  }

  printf("port=%u\n", bound);
  fflush(stdout);
  if (port_file && write_port_file(port_file, bound) != 0)
    fprintf(stderr, "wpool-testserver: cannot write %s\n", port_file);

  int sig = 0;
  while (sigwait(&stop, &sig) != 0) {
  }
  if (log_requests) fprintf(stderr, "wpool-testserver: signal %d, bye\n", sig);

  hostile_stop();
  timer_stop();       /* resumes every parked connection */
  MHD_stop_daemon(d); /* closes the listening socket too */
  MHD_destroy_response(ok_response);
  map_free(&stats.paths);
  map_free(&stats.flaky);
  map_free(&stats.stamps);
  map_free(&stats.retry);
  map_free(&stats.hosts);
  traces_free();
  return 0;

bad_usage:
  usage(stderr);
  return 2;
}
