/* Structured logs: see log.h. */
#include "obs/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/internal.h" /* wp__unix_now_ns */

static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const char *const format_names[] = {"text", "json", "logfmt"};

int wp__parse_log_level(const char *s, enum wp__log_level *out) {
  for (int i = 0; s && i < 4; i++)
    if (strcmp(s, level_names[i]) == 0) {
      *out = (enum wp__log_level)i;
      return 0;
    }
  return -1;
}

int wp__parse_log_format(const char *s, enum wp__log_format *out) {
  for (int i = 0; s && i < 3; i++)
    if (strcmp(s, format_names[i]) == 0) {
      *out = (enum wp__log_format)i;
      return 0;
    }
  return -1;
}

const char *wp__log_level_name(enum wp__log_level l) {
  return (unsigned)l < 4 ? level_names[l] : "info";
}

void wp__rfc3339_ms(char out[32], int64_t unix_ns) {
  /* Years 0000 to 9999 only: what RFC 3339 can write. */
  const int64_t max_s = 253402300799; /* 9999-12-31T23:59:59Z */
  /* Floor division: a time before the epoch rounds down, like after it. */
  int64_t secs = unix_ns / 1000000000, rem = unix_ns % 1000000000;
  if (rem < 0) {
    rem += 1000000000;
    secs--;
  }
  int64_t ms = rem / 1000000;
  if (secs < -62167219200) secs = -62167219200, ms = 0; /* 0000-01-01 */
  if (secs > max_s) secs = max_s, ms = 999;
  time_t t = (time_t)secs;
  struct tm tm;
  if (!gmtime_r(&t, &tm)) {
    snprintf(out, 32, "1970-01-01T00:00:00.000Z");
    return;
  }
  char tmp[96]; /* room for any int, so the compiler sees no truncation */
  snprintf(tmp, sizeof tmp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
           tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
           tm.tm_sec, (int)ms);
  size_t len = strlen(tmp); /* 24 for years 0000-9999 */
  if (len > 31) len = 31;
  memcpy(out, tmp, len);
  out[len] = '\0';
}

static bool logfmt_bare(const char *s, size_t n) {
  if (n == 0) return false;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c <= ' ' || c >= 0x7f || c == '=' || c == '"' || c == '\\')
      return false;
  }
  return true;
}

void wp__logfmt_value(wp__buf *b, const char *s, size_t n) {
  if (!s) n = 0;
  if (logfmt_bare(s, n))
    wp__buf_append(b, s, n);
  else
    wp__json_string(b, s, n);
}

/* A field's value as JSON (also the form logfmt and text use for numbers
 * and booleans). */
static void json_value(wp__buf *b, const wp__log_field *f) {
  switch (f->type) {
    case WP__F_STR:
      wp__json_string(b, f->s, f->s ? f->n : 0);
      break;
    case WP__F_INT:
      wp__buf_printf(b, "%" PRId64, f->i);
      break;
    case WP__F_UINT:
      wp__buf_printf(b, "%" PRIu64, f->u);
      break;
    case WP__F_DOUBLE:
      if (isfinite(f->d))
        wp__buf_printf(b, "%.3f", f->d);
      else
        wp__buf_puts(b, "null");
      break;
    case WP__F_BOOL:
      wp__buf_puts(b, f->b ? "true" : "false");
      break;
    case WP__F_NULL:
      wp__buf_puts(b, "null");
      break;
  }
}

static bool is_null(const wp__log_field *f) {
  return f->type == WP__F_NULL || (f->type == WP__F_DOUBLE && !isfinite(f->d));
}

void wp__log_format_record(wp__buf *b, enum wp__log_format fmt, int64_t unix_ns,
                           enum wp__log_level level, const char *msg,
                           const wp__log_field *fields, size_t nfields) {
  char ts[32];
  wp__rfc3339_ms(ts, unix_ns);
  const char *lv = wp__log_level_name(level);
  if (!msg) msg = "";
  if (fmt == WP__LOG_JSON) {
    wp__buf_printf(b, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":", ts, lv);
    wp__json_string(b, msg, strlen(msg));
    for (size_t i = 0; i < nfields; i++) {
      wp__buf_puts(b, ",");
      wp__json_string(b, fields[i].key, strlen(fields[i].key));
      wp__buf_puts(b, ":");
      json_value(b, &fields[i]);
    }
    wp__buf_puts(b, "}\n");
    return;
  }
  if (fmt == WP__LOG_LOGFMT) {
    wp__buf_printf(b, "ts=%s level=%s msg=", ts, lv);
    wp__logfmt_value(b, msg, strlen(msg));
  } else { /* text: for a person, the fields as logfmt */
    char up[8];
    size_t k;
    for (k = 0; k < sizeof up - 1 && lv[k]; k++)
      up[k] = (char)(lv[k] - 'a' + 'A');
    up[k] = '\0';
    wp__buf_printf(b, "%s %-5s ", ts, up);
    /* The message is ours, but keep the line one line whatever it holds:
     * printable ASCII as it is, anything else quoted. */
    bool plain = true;
    for (const char *p = msg; *p && plain; p++)
      plain = *p >= ' ' && *p < 0x7f && *p != '"' && *p != '\\';
    if (plain)
      wp__buf_puts(b, msg);
    else
      wp__json_string(b, msg, strlen(msg));
  }
  for (size_t i = 0; i < nfields; i++) {
    const wp__log_field *f = &fields[i];
    if (is_null(f)) continue;
    wp__buf_printf(b, " %s=", f->key);
    if (f->type == WP__F_STR)
      wp__logfmt_value(b, f->s, f->n);
    else
      json_value(b, f);
  }
  wp__buf_puts(b, "\n");
}

/* ---- the logger -------------------------------------------------------------
 */

struct wp__log {
  pthread_mutex_t mu;
  enum wp__log_format fmt;
  enum wp__log_level level;
  int fd;
  bool own_fd;
  atomic_uint_fast64_t lost;
};

/* Each thread formats its records in a buffer of its own, outside the
 * logger's mutex (which covers the write alone, so that one record is one
 * uninterrupted write). The buffer is kept between records (bounded by the
 * longest record the thread wrote) and freed by a key destructor when the
 * thread exits; without a key a record uses a buffer of its own. */
static _Thread_local wp__buf tls_buf;
static _Thread_local bool tls_keyed;
static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static bool tls_key_ok;

static void tls_buf_free(void *b) { wp__buf_free(b); }
static void tls_key_create(void) {
  tls_key_ok = pthread_key_create(&tls_key, tls_buf_free) == 0;
}

/* This thread's buffer, or NULL: use a local one and free it. */
static wp__buf *thread_buf(void) {
  if (!tls_keyed) {
    pthread_once(&tls_once, tls_key_create);
    if (!tls_key_ok || pthread_setspecific(tls_key, &tls_buf) != 0) return NULL;
    tls_keyed = true;
  }
  return &tls_buf;
}

int wp__log_open(wp__log **out, enum wp__log_format fmt,
                 enum wp__log_level level, const char *path, char *err,
                 size_t errlen) {
  *out = NULL;
  wp__log *l = calloc(1, sizeof *l);
  if (!l) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  l->fmt = fmt;
  l->level = level;
  l->fd = 2;
  if (path && strcmp(path, "-") != 0) {
    l->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (l->fd < 0) {
      int e = errno;
      char eb[128] = "";
      if (strerror_r(e, eb, sizeof eb) != 0) eb[0] = '\0';
      snprintf(err, errlen, "%s: %s", path, eb);
      free(l);
      return -1;
    }
    l->own_fd = true;
  }
  pthread_mutex_init(&l->mu, NULL);
  atomic_init(&l->lost, 0);
  *out = l;
  return 0;
}

bool wp__log_enabled(const wp__log *l, enum wp__log_level level) {
  return l && level <= l->level;
}

void wp__log_write(wp__log *l, enum wp__log_level level, const char *msg,
                   const wp__log_field *fields, size_t nfields) {
  if (!wp__log_enabled(l, level)) return;
  int64_t now = wp__unix_now_ns();
  wp__buf local, *b = thread_buf();
  if (!b) {
    wp__buf_init(&local);
    b = &local;
  }
  wp__buf_reset(b);
  wp__log_format_record(b, l->fmt, now, level, msg, fields, nfields);
  bool ok = !b->oom;
  const char *p = b->data;
  size_t left = ok ? b->len : 0;
  pthread_mutex_lock(&l->mu);
  while (left > 0) {
    ssize_t w = write(l->fd, p, left);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      ok = false;
      break;
    }
    p += w;
    left -= (size_t)w;
  }
  pthread_mutex_unlock(&l->mu);
  if (b == &local) wp__buf_free(&local);
  if (!ok) atomic_fetch_add(&l->lost, 1);
}

uint64_t wp__log_lost(const wp__log *l) {
  return l ? atomic_load(&((wp__log *)l)->lost) : 0;
}

void wp__log_close(wp__log *l) {
  if (!l) return;
  if (l->own_fd) close(l->fd);
  pthread_mutex_destroy(&l->mu);
  free(l);
}
