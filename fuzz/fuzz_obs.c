/* Fuzz target: the observability encoders (src/obs/log.c, src/obs/prom.c):
 * log records as JSON, logfmt and text, logfmt values, RFC 3339 times, and
 * the Prometheus text format's escaping, numbers and names.
 *
 * Checked: a JSON record parses with Jansson (valid JSON and UTF-8) with
 * ts, level, msg and the fields in order and with their values (strings
 * byte for byte when valid UTF-8, U+FFFD otherwise; NaN and infinities
 * null); a logfmt record is one line of key=value pairs, each value bare
 * (printable ASCII, no space, '=', '"' or '\') or a JSON string that
 * Jansson reads back; a text record is one line without control bytes;
 * ts is YYYY-MM-DDTHH:MM:SS.mmmZ; a Prometheus label value or HELP text is
 * one line of valid UTF-8 that unescapes to the input (valid UTF-8 input);
 * a number reads back with strtod to the same value; a name is valid
 * exactly when a reference check written here says so.
 */
#define _GNU_SOURCE /* open_memstream */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "fuzz.h"
#include "fuzz_json.h"
#include "fuzz_util.h"
#include "obs/log.h"
#include "obs/prom.h"

#define HDR 32

static bool ts_ok(const char *s, size_t n) {
  static const char pat[] = "dddd-dd-ddTdd:dd:dd.dddZ";
  if (n != sizeof pat - 1) return false;
  for (size_t i = 0; i < n; i++)
    if (pat[i] == 'd' ? !(s[i] >= '0' && s[i] <= '9') : s[i] != pat[i])
      return false;
  return true;
}

static const char *const keys[] = {"url", "n", "u", "d", "b", "z"};

static void check_json(const wp__buf *b, const char *msg, const char *url,
                       size_t ul, const wp__log_field *f) {
  static const char *const order[] = {"ts", "level", "msg", "url", "n",
                                      "u",  "d",     "b",   "z"};
  json_t *o = json_object_line(b->data, b->len, order, 9);
  json_t *ts = json_object_get(o, "ts");
  FUZZ_CHECK(json_is_string(ts) &&
                 ts_ok(json_string_value(ts), json_string_length(ts)),
             "ts");
  check_json_text(json_object_get(o, "msg"), msg, strlen(msg), "msg");
  check_json_text(json_object_get(o, "url"), url, ul, "url");
  FUZZ_CHECK(json_integer_value(json_object_get(o, "n")) == f[1].i, "n");
  json_t *u = json_object_get(o, "u");
  /* Jansson's integers are signed 64-bit: above INT64_MAX it refuses the
   * whole document, so the target keeps u below. */
  FUZZ_CHECK(json_is_integer(u) && (uint64_t)json_integer_value(u) == f[2].u,
             "u");
  json_t *d = json_object_get(o, "d");
  if (isfinite(f[3].d))
    FUZZ_CHECK(
        json_is_number(d) && fabs(json_number_value(d) - f[3].d) <=
                                 0.0005 * (1 + 1e-9) + fabs(f[3].d) * 1e-15,
        "d %.17g vs %.17g", json_number_value(d), f[3].d);
  else
    FUZZ_CHECK(json_is_null(d), "d: not null for %g", f[3].d);
  FUZZ_CHECK(json_is_boolean(json_object_get(o, "b")) &&
                 json_is_true(json_object_get(o, "b")) == f[4].b,
             "b");
  FUZZ_CHECK(json_is_null(json_object_get(o, "z")), "z");
  json_decref(o);
}

/* Parses one logfmt value at *p: bare or a JSON string. Returns it as a
 * Jansson string (a new reference) or NULL. */
static json_t *logfmt_value(const char **p, const char *end) {
  const char *s = *p;
  if (s < end && *s == '"') {
    const char *q = s + 1;
    while (q < end && *q != '"') q += *q == '\\' ? 2 : 1;
    FUZZ_CHECK(q < end, "unterminated quoted value");
    json_error_t e;
    json_t *v = json_loadb(s, (size_t)(q + 1 - s),
                           JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    FUZZ_CHECK(v && json_is_string(v), "quoted value: %s", e.text);
    *p = q + 1;
    return v;
  }
  const char *q = s;
  while (q < end && *q != ' ') {
    FUZZ_CHECK(*q > ' ' && *q < 0x7F && *q != '=' && *q != '"' && *q != '\\',
               "bare value holds byte %02x", (unsigned char)*q);
    q++;
  }
  *p = q;
  return json_stringn(s, (size_t)(q - s));
}

static void check_logfmt(const wp__buf *b, const char *msg, const char *url,
                         size_t ul, bool d_finite) {
  FUZZ_CHECK(b->len && b->data[b->len - 1] == '\n' &&
                 !memchr(b->data, '\n', b->len - 1),
             "not one line");
  /* d (null when not finite) and z (null) are left out. */
  const char *order[8] = {"ts", "level", "msg", "url", "n", "u", "d", "b"};
  size_t want = 8;
  if (!d_finite) {
    order[6] = "b";
    want = 7;
  }
  const char *p = b->data, *end = b->data + b->len - 1;
  size_t i = 0;
  for (; p < end; i++) {
    FUZZ_CHECK(i < want, "too many pairs: %.*s", (int)b->len, b->data);
    size_t kl = strlen(order[i]);
    FUZZ_CHECK(
        (size_t)(end - p) > kl && memcmp(p, order[i], kl) == 0 && p[kl] == '=',
        "pair %zu is not %s=", i, order[i]);
    p += kl + 1;
    json_t *v = logfmt_value(&p, end);
    FUZZ_CHECK(v, "value %zu", i);
    if (i == 0)
      FUZZ_CHECK(ts_ok(json_string_value(v), json_string_length(v)), "ts");
    if (i == 2) check_json_text(v, msg, strlen(msg), "msg");
    if (i == 3) check_json_text(v, url, ul, "url");
    json_decref(v);
    if (p < end) {
      FUZZ_CHECK(*p == ' ', "no space between pairs");
      p++;
    }
  }
  FUZZ_CHECK(i == want, "%zu pairs, want %zu", i, want);
}

static void check_prom_escape(const char *s, size_t n, bool label) {
  char *out = NULL;
  size_t ol = 0;
  FILE *f = open_memstream(&out, &ol);
  if (!f) abort();
  FUZZ_CHECK(wp__prom_escape(f, s, n, label) == 0, "escape failed");
  fclose(f);
  FUZZ_CHECK(!memchr(out, '\n', ol), "raw LF in an escaped value");
  FUZZ_CHECK(utf8_valid((const unsigned char *)out, ol), "not UTF-8");
  if (label) /* a '"' only escaped: the value ends at the first raw one */
    for (size_t i = 0; i < ol; i++) {
      if (out[i] == '\\')
        i++;
      else
        FUZZ_CHECK(out[i] != '"', "raw quote in a label value");
    }
  if (utf8_valid((const unsigned char *)s, n)) {
    char *u = malloc(ol + 1);
    if (!u) abort();
    size_t k = 0;
    for (size_t i = 0; i < ol; i++) {
      if (out[i] != '\\') {
        u[k++] = out[i];
        continue;
      }
      FUZZ_CHECK(i + 1 < ol, "a trailing backslash");
      char c = out[++i];
      FUZZ_CHECK(c == '\\' || c == 'n' || (label && c == '"'), "escape \\%c",
                 c);
      u[k++] = c == 'n' ? '\n' : c;
    }
    FUZZ_CHECK(k == n && memcmp(u, s, n) == 0, "unescaped differs");
    free(u);
  }
  free(out);
}

static void check_prom_double(double v) {
  char buf[32];
  const char *s = wp__prom_double(buf, sizeof buf, v);
  if (isnan(v)) {
    FUZZ_CHECK(strcmp(s, "NaN") == 0, "%s for NaN", s);
  } else if (isinf(v)) {
    FUZZ_CHECK(strcmp(s, v > 0 ? "+Inf" : "-Inf") == 0, "%s for inf", s);
  } else {
    char *end;
    double back = strtod(s, &end);
    FUZZ_CHECK(*end == '\0' && back == v, "%s reads back as %.17g, not %.17g",
               s, back, v);
  }
}

static bool ref_name(const char *s, bool label) {
  if (!*s) return false;
  if (label && s[0] == '_' && s[1] == '_') return false;
  for (const char *p = s; *p; p++) {
    bool alpha = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                 *p == '_' || (!label && *p == ':');
    bool digit = *p >= '0' && *p <= '9';
    if (!(alpha || (digit && p != s))) return false;
  }
  return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < HDR || size > 4096 + HDR) return 0;
  int64_t ns = (int64_t)rd64(data);
  uint64_t dbits = rd64(data + 8);
  double d;
  memcpy(&d, &dbits, sizeof d);
  int64_t n = (int64_t)rd64(data + 16);
  enum wp__log_level level = (enum wp__log_level)(data[24] % 4);
  const char *rest = (const char *)data + HDR;
  size_t rl = size - HDR;
  size_t cut = rl * data[25] / 256;
  char *msg = strndup(rest, cut); /* a C string: up to a NUL */
  if (!msg) abort();
  const char *url = rest + cut;
  size_t ul = rl - cut;

  wp__log_field f[6] = {WP__FBYTES(keys[0], url, ul),
                        WP__FINT(keys[1], n),
                        WP__FUINT(keys[2], rd64(data + 24) >> 1),
                        WP__FDBL(keys[3], d),
                        WP__FBOOL(keys[4], data[26] & 1),
                        WP__FNULL(keys[5])};
  wp__buf b;
  wp__buf_init(&b);
  wp__log_format_record(&b, WP__LOG_JSON, ns, level, msg, f, 6);
  FUZZ_CHECK(!b.oom, "oom");
  check_json(&b, msg, url, ul, f);
  wp__buf_reset(&b);
  wp__log_format_record(&b, WP__LOG_LOGFMT, ns, level, msg, f, 6);
  check_logfmt(&b, msg, url, ul, isfinite(d));
  wp__buf_reset(&b);
  wp__log_format_record(&b, WP__LOG_TEXT, ns, level, msg, f, 6);
  FUZZ_CHECK(b.len && b.data[b.len - 1] == '\n', "text: no LF");
  for (size_t i = 0; i + 1 < b.len; i++)
    FUZZ_CHECK((unsigned char)b.data[i] >= 0x20 && b.data[i] != 0x7F,
               "text: control byte %02x", (unsigned char)b.data[i]);
  wp__buf_free(&b);

  check_prom_escape(url, ul, true);
  check_prom_escape(url, ul, false);
  check_prom_double(d);
  check_prom_double((double)n);
  FUZZ_CHECK(wp__prom_valid_name(msg, false) == ref_name(msg, false),
             "metric name '%s'", msg);
  FUZZ_CHECK(wp__prom_valid_name(msg, true) == ref_name(msg, true),
             "label name '%s'", msg);
  free(msg);
  return 0;
}
