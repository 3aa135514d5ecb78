/* Fuzz target: the result formats (src/cli/parse.c): JSON strings, CSV
 * fields, and whole jsonl / csv / text lines, read back by real parsers:
 * Jansson (libjansson) for JSON and libcsv for CSV, both from Debian.
 *
 * Input: a fixed header (id, bytes, elapsed_ms bits, status, attempts,
 * flags) and then the URL and the error text. Checked:
 *  - jsonl: one line; Jansson parses it (so it is valid JSON and valid
 *    UTF-8) to an object with exactly the 8 keys in order and the values
 *    given (id and bytes below 2^53, where JSON numbers are exact
 *    everywhere); url and error come back byte for byte when they were
 *    valid UTF-8 (a reference decoder written here decides), with U+FFFD
 *    otherwise; elapsed_ms finite, in [0, 1e12], within 0.0005 of the
 *    clamped value;
 *  - csv: libcsv in strict mode reads exactly one record of 8 fields, url
 *    and error byte for byte (CSV has no escapes);
 *  - text: one line ending in LF with no other control byte.
 */
#include <csv.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "cli/parse.h"
#include "fuzz.h"
#include "fuzz_json.h"
#include "fuzz_util.h"

#define HDR 32

static double clamp_ms(double v) {
  if (!(v > 0)) return 0;
  if (v > 1e12) return 1e12;
  return v;
}

static void check_jsonl(const wp__buf *b, const wp__outrec *r) {
  static const char *const keys[] = {
      "id", "url", "ok", "status", "error", "attempts", "elapsed_ms", "bytes"};
  json_t *o = json_object_line(b->data, b->len, keys, 8);
  json_t *v = json_object_get(o, "id");
  FUZZ_CHECK(json_is_integer(v) && (uint64_t)json_integer_value(v) == r->id,
             "id");
  check_json_text(json_object_get(o, "url"), r->url, r->url_len, "url");
  FUZZ_CHECK(json_is_boolean(json_object_get(o, "ok")) &&
                 json_is_true(json_object_get(o, "ok")) == r->ok,
             "ok");
  v = json_object_get(o, "status");
  if (r->status > 0)
    FUZZ_CHECK(json_is_integer(v) && json_integer_value(v) == r->status,
               "status");
  else
    FUZZ_CHECK(json_is_null(v), "status not null");
  v = json_object_get(o, "error");
  if (r->error)
    check_json_text(v, r->error, strlen(r->error), "error");
  else
    FUZZ_CHECK(json_is_null(v), "error not null");
  v = json_object_get(o, "attempts");
  FUZZ_CHECK(json_is_integer(v) && json_integer_value(v) == r->attempts,
             "attempts");
  v = json_object_get(o, "elapsed_ms");
  FUZZ_CHECK(json_is_number(v), "elapsed_ms not a number");
  double ms = json_number_value(v);
  FUZZ_CHECK(isfinite(ms) && ms >= 0 && ms <= 1e12, "elapsed_ms %g", ms);
  FUZZ_CHECK(
      fabs(ms - clamp_ms(r->elapsed_ms)) <= 0.0005 * (1 + 1e-9) + ms * 1e-15,
      "elapsed_ms %.6f for %.6f", ms, r->elapsed_ms);
  v = json_object_get(o, "bytes");
  FUZZ_CHECK(json_is_integer(v) && (uint64_t)json_integer_value(v) == r->bytes,
             "bytes");
  json_decref(o);
}

/* libcsv's callbacks collect the fields of the records. */
typedef struct csv_rec {
  size_t nrec, nfield;
  char *field[8];
  size_t flen[8];
} csv_rec;

static void on_field(void *s, size_t len, void *data) {
  csv_rec *c = data;
  if (c->nrec == 0 && c->nfield < 8) {
    c->field[c->nfield] = malloc(len + 1);
    if (!c->field[c->nfield]) abort();
    if (len) memcpy(c->field[c->nfield], s, len);
    c->field[c->nfield][len] = '\0';
    c->flen[c->nfield] = len;
  }
  c->nfield++;
}

static void on_record(int term, void *data) {
  (void)term;
  csv_rec *c = data;
  if (c->nrec == 0) FUZZ_CHECK(c->nfield == 8, "%zu CSV fields", c->nfield);
  c->nrec++;
}

static void check_csv(const wp__buf *b, const wp__outrec *r) {
  FUZZ_CHECK(b->len > 0 && b->data[b->len - 1] == '\n', "no final LF");
  struct csv_parser p;
  if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI) != 0) abort();
  csv_rec c;
  memset(&c, 0, sizeof c);
  size_t n = csv_parse(&p, b->data, b->len, on_field, on_record, &c);
  FUZZ_CHECK(n == b->len, "libcsv: %s", csv_strerror(csv_error(&p)));
  FUZZ_CHECK(csv_fini(&p, on_field, on_record, &c) == 0, "libcsv fini: %s",
             csv_strerror(csv_error(&p)));
  csv_free(&p);
  FUZZ_CHECK(c.nrec == 1, "%zu CSV records", c.nrec);
  char want[32];
  snprintf(want, sizeof want, "%llu", (unsigned long long)r->id);
  FUZZ_CHECK(strcmp(c.field[0], want) == 0, "id %s", c.field[0]);
  FUZZ_CHECK(
      c.flen[1] == r->url_len && memcmp(c.field[1], r->url, r->url_len) == 0,
      "url not byte for byte");
  FUZZ_CHECK(strcmp(c.field[2], r->ok ? "true" : "false") == 0, "ok");
  if (r->status > 0) {
    snprintf(want, sizeof want, "%d", r->status);
    FUZZ_CHECK(strcmp(c.field[3], want) == 0, "status %s", c.field[3]);
  } else {
    FUZZ_CHECK(c.flen[3] == 0, "status not empty");
  }
  const char *err = r->error ? r->error : "";
  FUZZ_CHECK(strcmp(c.field[4], err) == 0 && c.flen[4] == strlen(err),
             "error not byte for byte");
  snprintf(want, sizeof want, "%u", r->attempts);
  FUZZ_CHECK(strcmp(c.field[5], want) == 0, "attempts");
  snprintf(want, sizeof want, "%llu", (unsigned long long)r->bytes);
  FUZZ_CHECK(strcmp(c.field[7], want) == 0, "bytes");
  for (int i = 0; i < 8; i++) free(c.field[i]);
}

static void check_text(const wp__buf *b, const wp__outrec *r) {
  FUZZ_CHECK(b->len > 0 && b->data[b->len - 1] == '\n', "no final LF");
  for (size_t i = 0; i + 1 < b->len; i++) {
    unsigned char ch = (unsigned char)b->data[i];
    FUZZ_CHECK(ch >= 0x20 && ch != 0x7F, "control byte %02x in text", ch);
  }
  char want[40];
  int n = snprintf(want, sizeof want, "job %llu ", (unsigned long long)r->id);
  FUZZ_CHECK(b->len > (size_t)n && memcmp(b->data, want, (size_t)n) == 0,
             "text line starts %.20s", b->data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < HDR || size > 4096 + HDR) return 0;
  wp__outrec r;
  memset(&r, 0, sizeof r);
  r.id = rd64(data) & ((1ull << 53) - 1);
  r.bytes = rd64(data + 8) & ((1ull << 53) - 1);
  uint64_t bits = rd64(data + 16);
  memcpy(&r.elapsed_ms, &bits, sizeof r.elapsed_ms);
  r.status = (int)(int16_t)(data[24] | data[25] << 8);
  r.attempts = (unsigned)(data[26] | data[27] << 8 | data[28] << 16);
  r.ok = data[29] & 1;
  bool has_error = data[29] & 2;
  const char *rest = (const char *)data + HDR;
  size_t rl = size - HDR;
  size_t ul = rl * data[30] / 256;
  r.url = rest;
  r.url_len = ul;
  char *err = NULL;
  if (has_error) {
    const char *e = rest + ul;
    size_t el = strnlen(e, rl - ul);
    err = malloc(el + 1);
    if (!err) abort();
    memcpy(err, e, el);
    err[el] = '\0';
    r.error = err;
  }

  wp__buf b;
  wp__buf_init(&b);
  /* A JSON string alone: it round-trips, and says how many bytes it
   * replaced (none exactly when the input is valid UTF-8). */
  size_t replaced = wp__json_string(&b, r.url, r.url_len);
  FUZZ_CHECK(!b.oom, "out of memory");
  json_error_t je;
  json_t *s = json_loadb(b.data, b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
  FUZZ_CHECK(s, "Jansson: %s", je.text);
  check_json_text(s, r.url, r.url_len, "json string");
  json_decref(s);
  FUZZ_CHECK((replaced == 0) == utf8_valid((const unsigned char *)r.url, ul),
             "replaced %zu bytes", replaced);

  wp__buf_reset(&b);
  wp__format_result(&b, WP__FMT_JSONL, &r);
  check_jsonl(&b, &r);
  wp__buf_reset(&b);
  wp__format_result(&b, WP__FMT_CSV, &r);
  check_csv(&b, &r);
  wp__buf_reset(&b);
  wp__format_result(&b, WP__FMT_TEXT, &r);
  check_text(&b, &r);
  wp__buf_free(&b);
  free(err);
  return 0;
}
