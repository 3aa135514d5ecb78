/* Pure parsers and encoders of the wpool tool (parse.h): durations, sizes,
 * integers, a growable buffer, JSON and CSV encoding, the three result
 * formats. No I/O, no globals, no locale: every function is reentrant and
 * depends only on its arguments.
 *
 * Output is always well formed whatever bytes come in:
 *  - JSON strings are valid UTF-8 and valid JSON: control bytes, '"', '\\'
 *    and DEL are escaped, and every ill-formed UTF-8 sequence is replaced by
 *    U+FFFD (EF BF BD), one per "maximal subpart" (Unicode 15, section 3.9,
 *    "U+FFFD Substitution of Maximal Subparts"), which is what Python's
 *    bytes.decode("utf-8", "replace"), WHATWG's decoder and ICU do. So a URL
 *    that is not valid UTF-8 comes out in jsonl with U+FFFD in place of the
 *    bad bytes: "url" is then no longer byte-for-byte what was read.
 *  - CSV fields keep the bytes as they are (RFC 4180 has no escapes).
 *  - elapsed_ms never prints nan, inf or a negative number (clamped).
 */
#include "cli/parse.h"

#include "core/utf8.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- numbers ------------------------------------------------------------ */

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static char ascii_lower(char c) {
  if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
  return c;
}

/* Does s[0..n) equal the lower-case word w, ignoring ASCII case? */
static bool eq_nocase(const char *s, size_t n, const char *w) {
  size_t wl = strlen(w);
  if (n != wl) return false;
  for (size_t i = 0; i < n; i++)
    if (ascii_lower(s[i]) != w[i]) return false;
  return true;
}

/* A decimal number "123", "1.5", ".5", "1.": the integer part (saturated:
 * *ovf is set past INT64_MAX/UINT64_MAX as `limit` says) and the fraction
 * as frac / scale, with at most 18 fraction digits kept (the rest are below
 * any unit's resolution); *point tells whether there was a '.'. Returns the
 * end, or NULL if there is no digit. */
static const char *parse_decimal(const char *p, uint64_t limit, uint64_t *ip,
                                 bool *ovf, uint64_t *frac, double *scale,
                                 bool *point) {
  bool any = false;
  *point = false;
  *ip = 0;
  *ovf = false;
  *frac = 0;
  *scale = 1;
  for (; is_digit(*p); p++) {
    unsigned d = (unsigned)(*p - '0');
    any = true;
    if (*ip > (limit - d) / 10)
      *ovf = true;
    else if (!*ovf)
      *ip = *ip * 10 + d;
  }
  if (*p == '.') {
    p++;
    *point = true;
    int kept = 0;
    for (; is_digit(*p); p++) {
      any = true;
      if (kept < 18) {
        *frac = *frac * 10 + (unsigned)(*p - '0');
        *scale *= 10;
        kept++;
      }
    }
  }
  return any ? p : NULL;
}

int wp__parse_duration(const char *s, int64_t *ns) {
  static const struct {
    const char *name;
    uint64_t ns;
  } units[] = {
      /* Longest first where one is a prefix of another ("ms" before "m"). */
      {"ns", 1},
      {"us", 1000},
      {"\xc2\xb5s", 1000}, /* µs, U+00B5 MICRO SIGN */
      {"\xce\xbcs", 1000}, /* μs, U+03BC GREEK SMALL LETTER MU */
      {"ms", 1000000},
      {"s", 1000000000},
      {"m", 60ull * 1000000000},
      {"h", 3600ull * 1000000000},
  };
  if (!s || !ns || !*s) return -1;
  if (strcmp(s, "0") == 0) {
    *ns = 0;
    return 0;
  }
  uint64_t total = 0;
  const char *p = s;
  while (*p) {
    uint64_t ip, frac;
    double scale;
    bool ovf, point;
    p = parse_decimal(p, INT64_MAX, &ip, &ovf, &frac, &scale, &point);
    if (!p) return -1;
    uint64_t unit = 0;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
      size_t ul = strlen(units[i].name);
      if (strncmp(p, units[i].name, ul) == 0) {
        unit = units[i].ns;
        p += ul;
        break;
      }
    }
    if (!unit || ovf) return -1;
    if (ip > (uint64_t)INT64_MAX / unit) return -1;
    uint64_t v = ip * unit;
    if (frac) {
      /* As Go's time.ParseDuration, in floating point: the fraction is
       * below one unit (< 3.6e12 ns), where a double is exact to well under
       * a nanosecond; rounded to the nearest nanosecond. */
      uint64_t add = (uint64_t)((double)frac * ((double)unit / scale) + 0.5);
      if (add > (uint64_t)INT64_MAX - v) return -1;
      v += add;
    }
    if (v > (uint64_t)INT64_MAX - total) return -1;
    total += v;
  }
  *ns = (int64_t)total;
  return 0;
}

int wp__parse_size(const char *s, uint64_t *bytes) {
  static const struct {
    const char *name; /* compared ignoring ASCII case */
    uint64_t mult;
  } units[] = {
      {"", 1},
      {"b", 1},
      {"k", 1ull << 10},
      {"kib", 1ull << 10},
      {"kb", 1000ull},
      {"m", 1ull << 20},
      {"mib", 1ull << 20},
      {"mb", 1000000ull},
      {"g", 1ull << 30},
      {"gib", 1ull << 30},
      {"gb", 1000000000ull},
      {"t", 1ull << 40},
      {"tib", 1ull << 40},
      {"tb", 1000000000000ull},
  };
  if (!s || !bytes || !*s) return -1;
  uint64_t ip, frac;
  double scale;
  bool ovf, point;
  const char *p =
      parse_decimal(s, UINT64_MAX, &ip, &ovf, &frac, &scale, &point);
  if (!p) return -1;
  size_t rest = strlen(p);
  uint64_t mult = 0;
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
    if (eq_nocase(p, rest, units[i].name)) {
      mult = units[i].mult;
      break;
    }
  if (!mult || ovf) return -1;
  /* A fraction of a byte is garbage; "1.5M" is 1572864 (rounded down). */
  if (point && mult == 1) return -1;
  if (ip > UINT64_MAX / mult) return -1;
  uint64_t v = ip * mult;
  if (frac) {
    uint64_t add = (uint64_t)((double)frac * ((double)mult / scale));
    if (add > UINT64_MAX - v) return -1;
    v += add;
  }
  *bytes = v;
  return 0;
}

int wp__parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out) {
  if (!s || !out || !*s) return -1;
  uint64_t v = 0;
  for (const char *p = s; *p; p++) {
    if (!is_digit(*p)) return -1;
    unsigned d = (unsigned)(*p - '0');
    if (v > (UINT64_MAX - d) / 10) return -1;
    v = v * 10 + d;
  }
  if (v < min || v > max) return -1;
  *out = v;
  return 0;
}

/* ---- wp__buf ------------------------------------------------------------ */

/* Invariant: when data is not NULL, data[len] == '\0' (len < cap), so the
 * contents can also be used as a C string when they hold no NUL. Once an
 * append fails, oom is set and later appends do nothing until a reset, so
 * the contents are a prefix of what was asked, never one with a hole. */

void wp__buf_init(wp__buf *b) {
  b->data = NULL;
  b->len = b->cap = 0;
  b->oom = false;
}

void wp__buf_free(wp__buf *b) {
  free(b->data);
  wp__buf_init(b);
}

void wp__buf_reset(wp__buf *b) {
  b->len = 0;
  b->oom = false;
  if (b->data) b->data[0] = '\0';
}

/* Room for `extra` more bytes plus the terminator. */
static bool buf_reserve(wp__buf *b, size_t extra) {
  if (b->oom) return false;
  if (extra > SIZE_MAX - 1 - b->len) goto fail;
  size_t need = b->len + extra + 1;
  if (need <= b->cap) return true;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need) {
    if (cap > SIZE_MAX / 2) {
      cap = need;
      break;
    }
    cap *= 2;
  }
  char *d = realloc(b->data, cap);
  if (!d) goto fail;
  b->data = d;
  b->cap = cap;
  return true;
fail:
  b->oom = true;
  return false;
}

void wp__buf_append(wp__buf *b, const char *s, size_t n) {
  if (!buf_reserve(b, n)) return;
  if (n) memcpy(b->data + b->len, s, n);
  b->len += n;
  b->data[b->len] = '\0';
}

void wp__buf_puts(wp__buf *b, const char *s) {
  wp__buf_append(b, s, strlen(s));
}

static void buf_putc(wp__buf *b, char c) { wp__buf_append(b, &c, 1); }

void wp__buf_printf(wp__buf *b, const char *fmt, ...) {
  if (!buf_reserve(b, 0)) return;
  va_list ap, ap2;
  va_start(ap, fmt);
  va_copy(ap2, ap);
  size_t avail = b->cap - b->len;
  int n = vsnprintf(b->data + b->len, avail, fmt, ap);
  va_end(ap);
  if (n < 0) {
    b->data[b->len] = '\0';
    b->oom = true; /* an encoding error: the output would be incomplete */
  } else if ((size_t)n < avail) {
    b->len += (size_t)n;
  } else if (buf_reserve(b, (size_t)n)) {
    vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap2);
    b->len += (size_t)n;
  } else {
    b->data[b->len] = '\0';
  }
  va_end(ap2);
}

/* ---- JSON --------------------------------------------------------------- */

size_t wp__json_string(wp__buf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *p = (const unsigned char *)s;
  size_t replaced = 0, i = 0, run = 0; /* p[run..i) is copied as it is */
  if (!p) n = 0;
  buf_putc(b, '"');
  while (i < n) {
    unsigned c = p[i];
    if (c >= 0x20 && c < 0x7F && c != '"' && c != '\\') {
      i++;
      continue;
    }
    if (c >= 0x80) {
      bool ok;
      size_t k = wp__utf8_seq(p + i, n - i, &ok);
      if (ok) {
        i += k;
        continue;
      }
      wp__buf_append(b, s + run, i - run);
      wp__buf_append(b, "\xEF\xBF\xBD", 3);
      replaced += k;
      i += k;
      run = i;
      continue;
    }
    wp__buf_append(b, s + run, i - run);
    char esc[6] = {'\\', 0, 0, 0, 0, 0};
    size_t el = 2;
    switch (c) {
      case '"':
        esc[1] = '"';
        break;
      case '\\':
        esc[1] = '\\';
        break;
      case '\b':
        esc[1] = 'b';
        break;
      case '\f':
        esc[1] = 'f';
        break;
      case '\n':
        esc[1] = 'n';
        break;
      case '\r':
        esc[1] = 'r';
        break;
      case '\t':
        esc[1] = 't';
        break;
      default: /* other control bytes and DEL (legal raw, but unreadable) */
        esc[1] = 'u';
        esc[2] = '0';
        esc[3] = '0';
        esc[4] = hex[c >> 4];
        esc[5] = hex[c & 15];
        el = 6;
    }
    wp__buf_append(b, esc, el);
    i++;
    run = i;
  }
  wp__buf_append(b, s + run, i - run);
  buf_putc(b, '"');
  return replaced;
}

/* ---- CSV ---------------------------------------------------------------- */

static bool csv_space(char c) { return c == ' ' || c == '\t'; }

void wp__csv_field(wp__buf *b, const char *s, size_t n) {
  if (!s) n = 0;
  bool quote = n > 0 && (csv_space(s[0]) || csv_space(s[n - 1]));
  for (size_t i = 0; i < n && !quote; i++)
    quote = s[i] == ',' || s[i] == '"' || s[i] == '\r' || s[i] == '\n';
  if (!quote) {
    wp__buf_append(b, s, n);
    return;
  }
  buf_putc(b, '"');
  size_t run = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] != '"') continue;
    wp__buf_append(b, s + run, i + 1 - run); /* through the quote... */
    run = i;                                 /* ...which is written twice */
  }
  wp__buf_append(b, s + run, n - run);
  buf_putc(b, '"');
}

/* ---- result formats ----------------------------------------------------- */

int wp__parse_format(const char *s, enum wp__format *out) {
  if (!s || !out) return -1;
  if (strcmp(s, "text") == 0)
    *out = WP__FMT_TEXT;
  else if (strcmp(s, "jsonl") == 0)
    *out = WP__FMT_JSONL;
  else if (strcmp(s, "csv") == 0)
    *out = WP__FMT_CSV;
  else
    return -1;
  return 0;
}

void wp__format_header(wp__buf *b, enum wp__format fmt) {
  if (fmt == WP__FMT_CSV)
    wp__buf_puts(b, "id,url,ok,status,error,attempts,elapsed_ms,bytes\n");
}

/* elapsed_ms as a finite, non-negative number: NaN, negatives and -0 become
 * 0, anything past ~31 years (inf included) becomes that bound, so "%.3f"
 * never prints nan, inf or "-0.000". */
static double clamp_ms(double v) {
  if (!(v > 0)) return 0;
  if (v > 1e12) return 1e12;
  return v;
}

/* Has r a status? -1 means none; 0 is never an HTTP status (it is what
 * libcurl reports when no response arrived), so it means none too. */
static bool has_status(const wp__outrec *r) { return r->status > 0; }

/* For the text format: bytes as they are, but control bytes and DEL as
 * \xNN so that one job stays one line on a terminal. */
static void text_escaped(wp__buf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  size_t run = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != 0x7F) continue;
    wp__buf_append(b, s + run, i - run);
    char esc[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
    wp__buf_append(b, esc, 4);
    run = i + 1;
  }
  wp__buf_append(b, s + run, n - run);
}

/* v in decimal, as "%" PRIu64 prints it; a result's integers go through
 * here, not vsnprintf (a few per result, at tens of thousands of results a
 * second: vsnprintf was 5% of the CLI's and libcurl's instructions per URL). */
static void buf_put_u64(wp__buf *b, uint64_t v) {
  char d[20];
  size_t i = sizeof d;
  do {
    d[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  wp__buf_append(b, d + i, sizeof d - i);
}

/* status > 0 (has_status). */
static void status_and_reason(wp__buf *b, int status) {
  const char *reason = wp__http_reason(status);
  buf_put_u64(b, (uint64_t)status);
  if (*reason) {
    buf_putc(b, ' ');
    wp__buf_puts(b, reason);
  }
}

/* The record's last three fields, attempts, elapsed_ms and bytes, and its
 * end: as JSON members (json) or CSV fields. */
static void buf_put_tail(wp__buf *b, const wp__outrec *r, double ms,
                         bool json) {
  wp__buf_puts(b, json ? ",\"attempts\":" : ",");
  buf_put_u64(b, r->attempts);
  wp__buf_puts(b, json ? ",\"elapsed_ms\":" : ",");
  wp__buf_printf(b, "%.3f", ms);
  wp__buf_puts(b, json ? ",\"bytes\":" : ",");
  buf_put_u64(b, r->bytes);
  wp__buf_puts(b, json ? "}\n" : "\n");
}

void wp__format_result(wp__buf *b, enum wp__format fmt, const wp__outrec *r) {
  const char *url = r->url ? r->url : "";
  size_t url_len = r->url ? r->url_len : 0;
  double ms = clamp_ms(r->elapsed_ms);
  switch (fmt) {
    case WP__FMT_JSONL:
      wp__buf_puts(b, "{\"id\":");
      buf_put_u64(b, r->id);
      wp__buf_puts(b, ",\"url\":");
      wp__json_string(b, url, url_len);
      wp__buf_puts(b, r->ok ? ",\"ok\":true" : ",\"ok\":false");
      if (has_status(r)) {
        wp__buf_puts(b, ",\"status\":");
        buf_put_u64(b, (uint64_t)r->status);
      } else
        wp__buf_puts(b, ",\"status\":null");
      wp__buf_puts(b, ",\"error\":");
      if (r->error)
        wp__json_string(b, r->error, strlen(r->error));
      else
        wp__buf_puts(b, "null");
      buf_put_tail(b, r, ms, true);
      break;
    case WP__FMT_CSV:
      buf_put_u64(b, r->id);
      buf_putc(b, ',');
      wp__csv_field(b, url, url_len);
      wp__buf_puts(b, r->ok ? ",true," : ",false,");
      if (has_status(r)) buf_put_u64(b, (uint64_t)r->status);
      buf_putc(b, ',');
      if (r->error) wp__csv_field(b, r->error, strlen(r->error));
      buf_put_tail(b, r, ms, false);
      break;
    case WP__FMT_TEXT:
    default:
      wp__buf_puts(b, "job ");
      buf_put_u64(b, r->id);
      buf_putc(b, ' ');
      if (r->ok) {
        wp__buf_puts(b, "done:");
        if (has_status(r)) {
          buf_putc(b, ' ');
          status_and_reason(b, r->status);
        }
      } else {
        wp__buf_puts(b, "failed: ");
        if (r->error && *r->error)
          text_escaped(b, r->error, strlen(r->error));
        else if (has_status(r))
          status_and_reason(b, r->status);
        else
          wp__buf_puts(b, "unknown error");
      }
      if (url_len) {
        buf_putc(b, ' ');
        text_escaped(b, url, url_len);
      }
      buf_putc(b, '\n');
      break;
  }
}
