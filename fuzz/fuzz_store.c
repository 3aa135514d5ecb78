/* Fuzz target: the store row decoders (src/store/decode.c): result rows,
 * claimed queue jobs, integer columns, and wp__store_quote.
 *
 * The first byte chooses; the rest is:
 *  - (below 0xF0) a row as text columns separated by tabs, "\N" a SQL NULL,
 *    each column in a heap buffer of exactly its length plus the NUL that
 *    store.h promises (ASan sees any read past it). Checked against
 *    references written here from store.h's column rules:
 *      . wp__store_decode_result and wp__store_decode_qjob accept exactly
 *        the rows the reference accepts, with the same fields (url, error
 *        and bad pointing into the row), and otherwise say "bad <column>"
 *        for the first column the reference finds bad;
 *      . an integer column is an optional '-' then digits, the whole column
 *        (a NUL inside is damage), at most 20 bytes (the longest int64),
 *        in range: by 128-bit arithmetic written here, then strtoll agrees;
 *        a canonical one (no '+', no leading zero, no "-0") prints back
 *        the same;
 *      . a real is the whole column, at most 40 bytes, a decimal
 *        [+-]digits[.digits][e[+-]digits] (no inf, nan, hex: a grammar
 *        written here, strtod the value), finite, >= 0, not out of
 *        strtod's range (ERANGE); it prints back (%.17g) to the same
 *        double; a boolean is one of 0 1 f t;
 *      . wp__store_quote with dstlen = first byte + 1, into a heap buffer
 *        of exactly dstlen: NUL-terminated inside it, printable ASCII
 *        only, and unquoting (\xNN, the only use of '\') gives the longest
 *        prefix of the input whose quoted form fits. There is no real
 *        quoting to compare with: this is our message escape, not SQL
 *        quoting (the stores bind every value as a parameter, so no SQL
 *        text is built from data: sqlite3 %Q or PQescapeLiteral do not
 *        apply).
 *  - (0xF0 and up) field values in binary (id, ok, status, error, attempts,
 *    elapsed_ms as raw double bits, bytes, url): the real encoder is SQLite
 *    itself. They are bound into an in-memory table with the state file's
 *    column types, read back with sqlite3_column_text as src/store/sqlite.c
 *    does, and decoded: accepted exactly when the values are in store.h's
 *    ranges, and then equal to them (elapsed_ms within SQLite's 15
 *    significant digits). Rules of our decoder encoded here: a NaN is
 *    stored as NULL by SQLite (refused); below 1e-300 or above 1e300 (the
 *    subnormals, or where SQLite's 15 digits may round into them or past
 *    DBL_MAX: strtod's ERANGE) it may be refused (wpool writes elapsed_ms
 *    in [0, 1e12)).
 */
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "fuzz_util.h"
#include "store/sqlite_row.h"
#include "store/store.h"

typedef __int128 i128;

#define MAXCOLS 12

/* ---- references -------------------------------------------------------- */

static bool ref_int(const wp__col *c, int64_t min, int64_t max, int64_t *out) {
  if (!c->p || c->len == 0 || c->len > 20) return false;
  size_t i = c->p[0] == '-';
  if (i == c->len) return false;
  i128 v = 0;
  for (size_t k = i; k < c->len; k++) {
    if (c->p[k] < '0' || c->p[k] > '9') return false;
    v = v * 10 + (c->p[k] - '0'); /* 20 digits fit in 128 bits */
  }
  if (i) v = -v;
  if (v < min || v > max) return false;
  /* strtoll, a real parser, agrees. */
  errno = 0;
  char *end;
  long long s = strtoll(c->p, &end, 10);
  FUZZ_CHECK(errno == 0 && end == c->p + c->len && s == (long long)v,
             "strtoll disagrees on '%s'", c->p);
  *out = (int64_t)v;
  return true;
}

static bool canonical_int(const wp__col *c) {
  const char *p = c->p;
  size_t n = c->len;
  if (n && *p == '-') p++, n--;
  if (n == 0 || (p[0] == '0' && (n > 1 || p != c->p))) return false;
  return true;
}

static bool ref_bool(const wp__col *c, bool *out) {
  if (!c->p || c->len != 1 || !strchr("01ft", c->p[0]) || c->p[0] == '\0')
    return false;
  *out = c->p[0] == '1' || c->p[0] == 't';
  return true;
}

static size_t digits(const char *p, size_t i, size_t n) {
  size_t k = i;
  while (k < n && p[k] >= '0' && p[k] <= '9') k++;
  return k - i;
}

static bool ref_real(const wp__col *c, double *out) {
  if (!c->p || c->len == 0 || c->len > 40) return false;
  const char *p = c->p;
  size_t n = c->len, i = 0;
  if (p[i] == '+' || p[i] == '-') i++;
  size_t a = digits(p, i, n);
  i += a;
  size_t b = 0;
  if (i < n && p[i] == '.') {
    i++;
    b = digits(p, i, n);
    i += b;
  }
  if (a + b == 0) return false;
  if (i < n && (p[i] == 'e' || p[i] == 'E')) {
    i++;
    if (i < n && (p[i] == '+' || p[i] == '-')) i++;
    size_t e = digits(p, i, n);
    if (e == 0) return false;
    i += e;
  }
  if (i != n) return false;
  errno = 0;
  char *end;
  double v = strtod(p, &end);
  FUZZ_CHECK(end == p + n, "strtod stops early in '%s'", p);
  if (errno == ERANGE || !isfinite(v) || v < 0) return false;
  *out = v;
  return true;
}

/* Expected decode_result: NULL (accepted, *r filled) or the bad column. */
static const char *ref_result(const wp__col *c, size_t n, wp__outrec *r) {
  int64_t v;
  memset(r, 0, sizeof *r);
  if (n != WP__RESULT_COLS) return "column count";
  if (!ref_int(&c[0], 1, INT64_MAX, &v)) return "id";
  r->id = (uint64_t)v;
  if (!c[1].p) return "url";
  r->url = c[1].p;
  r->url_len = c[1].len;
  if (!ref_bool(&c[2], &r->ok)) return "ok";
  r->status = -1;
  if (c[3].p) {
    if (!ref_int(&c[3], 100, 999, &v)) return "status";
    r->status = (int)v;
  }
  if (c[4].p) {
    if (c[4].len == 0 || memchr(c[4].p, '\0', c[4].len)) return "error";
    r->error = c[4].p;
  }
  if (r->ok != !c[4].p) return "ok/error pair";
  if (!ref_int(&c[5], 0, INT32_MAX, &v)) return "attempts";
  r->attempts = (unsigned)v;
  if (!ref_real(&c[6], &r->elapsed_ms)) return "elapsed_ms";
  if (!ref_int(&c[7], 0, INT64_MAX, &v)) return "bytes";
  r->bytes = (uint64_t)v;
  return NULL;
}

static const char *ref_qjob(const wp__col *c, size_t n, wp__qjob *j) {
  int64_t v;
  memset(j, 0, sizeof *j);
  if (n != WP__QJOB_COLS) return "column count";
  if (!ref_int(&c[0], 1, INT64_MAX, &v)) return "id";
  j->id = v;
  if (!c[1].p) return "url";
  j->url = c[1].p;
  j->url_len = c[1].len;
  if (c[2].p) {
    if (c[2].len == 0) return "bad";
    j->bad = c[2].p;
    j->bad_len = c[2].len;
  }
  if (!ref_int(&c[3], 1, INT32_MAX, &v)) return "attempts";
  j->attempts = (unsigned)v;
  return NULL;
}

static void check_err(const char *err, size_t errlen, const char *want) {
  FUZZ_CHECK(memchr(err, '\0', errlen), "err not terminated");
  char w[64];
  snprintf(w, sizeof w, "a stored row: bad %s", want);
  FUZZ_CHECK(strcmp(err, w) == 0, "err '%s', want '%s'", err, w);
}

static void check_rows(const wp__col *cols, size_t n) {
  char err[128];
  memset(err, 'x', sizeof err);
  wp__outrec r, want;
  const char *bad = ref_result(cols, n, &want);
  int rc = wp__store_decode_result(cols, n, &r, err, sizeof err);
  FUZZ_CHECK(rc == (bad ? -1 : 0), "decode_result rc %d, reference says %s", rc,
             bad ? bad : "ok");
  if (bad) {
    check_err(err, sizeof err, bad);
  } else {
    FUZZ_CHECK(r.id == want.id && r.url == want.url &&
                   r.url_len == want.url_len && r.ok == want.ok &&
                   r.status == want.status && r.error == want.error &&
                   r.attempts == want.attempts && r.bytes == want.bytes &&
                   memcmp(&r.elapsed_ms, &want.elapsed_ms, sizeof(double)) == 0,
               "decode_result fields differ");
    /* Re-encoded: canonical columns print back the same. */
    char buf[48];
    snprintf(buf, sizeof buf, "%" PRIu64, r.id);
    if (canonical_int(&cols[0]))
      FUZZ_CHECK(strcmp(buf, cols[0].p) == 0, "id %s -> %s", cols[0].p, buf);
    snprintf(buf, sizeof buf, "%u", r.attempts);
    if (canonical_int(&cols[5]))
      FUZZ_CHECK(strcmp(buf, cols[5].p) == 0, "attempts %s -> %s", cols[5].p,
                 buf);
    snprintf(buf, sizeof buf, "%" PRIu64, r.bytes);
    if (canonical_int(&cols[7]))
      FUZZ_CHECK(strcmp(buf, cols[7].p) == 0, "bytes %s -> %s", cols[7].p, buf);
    snprintf(buf, sizeof buf, "%.17g", r.elapsed_ms);
    FUZZ_CHECK(strtod(buf, NULL) == r.elapsed_ms, "elapsed %s -> %s", cols[6].p,
               buf);
    FUZZ_CHECK(cols[2].p[0] == (r.ok ? '1' : '0') ||
                   cols[2].p[0] == (r.ok ? 't' : 'f'),
               "ok");
  }

  wp__qjob j, wj;
  memset(err, 'x', sizeof err);
  bad = ref_qjob(cols, n, &wj);
  rc = wp__store_decode_qjob(cols, n, &j, err, sizeof err);
  FUZZ_CHECK(rc == (bad ? -1 : 0), "decode_qjob rc %d, reference says %s", rc,
             bad ? bad : "ok");
  if (bad)
    check_err(err, sizeof err, bad);
  else
    FUZZ_CHECK(j.id == wj.id && j.attempts == wj.attempts && j.url == wj.url &&
                   j.url_len == wj.url_len && j.bad == wj.bad &&
                   j.bad_len == wj.bad_len,
               "decode_qjob fields differ");

  static const int64_t ranges[][2] = {{1, INT64_MAX},
                                      {100, 999},
                                      {0, INT32_MAX},
                                      {INT64_MIN, INT64_MAX},
                                      {-5, 5}};
  for (size_t i = 0; i < n; i++)
    for (size_t k = 0; k < sizeof ranges / sizeof ranges[0]; k++) {
      int64_t v = -7, w = 0;
      bool ok = ref_int(&cols[i], ranges[k][0], ranges[k][1], &w);
      int rc2 = wp__store_col_int(&cols[i], ranges[k][0], ranges[k][1], &v);
      FUZZ_CHECK(rc2 == (ok ? 0 : -1), "col_int '%s' in [%lld, %lld]: rc %d",
                 cols[i].p ? cols[i].p : "NULL", (long long)ranges[k][0],
                 (long long)ranges[k][1], rc2);
      FUZZ_CHECK(ok ? v == w : v == -7, "col_int '%s': %lld",
                 cols[i].p ? cols[i].p : "NULL", (long long)v);
    }
}

static bool printable(unsigned char c) {
  return c >= 0x20 && c < 0x7f && c != '\\';
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

static void check_quote(const uint8_t *p, size_t n, size_t dstlen) {
  char *dst = malloc(dstlen);
  FUZZ_CHECK(dst, "out of memory");
  memset(dst, 'Z', dstlen);
  wp__store_quote(dst, dstlen, (const char *)p, n);
  size_t len = strnlen(dst, dstlen);
  FUZZ_CHECK(len < dstlen, "quote: no NUL within %zu", dstlen);
  size_t i = 0; /* input bytes the output stands for */
  for (size_t o = 0; o < len;) {
    unsigned char c = (unsigned char)dst[o];
    FUZZ_CHECK(c >= 0x20 && c < 0x7f, "quote: byte 0x%02x", c);
    FUZZ_CHECK(i < n, "quote: more output than input");
    if (c == '\\') {
      FUZZ_CHECK(o + 4 <= len && dst[o + 1] == 'x' && hexval(dst[o + 2]) >= 0 &&
                     hexval(dst[o + 3]) >= 0,
                 "quote: a bad escape");
      int b = hexval(dst[o + 2]) * 16 + hexval(dst[o + 3]);
      FUZZ_CHECK(b == p[i] && !printable(p[i]), "quote: escape of 0x%02x",
                 p[i]);
      o += 4;
    } else {
      FUZZ_CHECK(c == p[i], "quote: 0x%02x for 0x%02x", c, p[i]);
      o++;
    }
    i++;
  }
  /* Cut only where the next byte does not fit. */
  if (i < n)
    FUZZ_CHECK(len + (printable(p[i]) ? 1 : 4) + 1 > dstlen,
               "quote: cut after %zu of %zu bytes with room left (%zu of %zu)",
               i, n, len, dstlen);
  free(dst);
}

/* ---- the SQLite mode --------------------------------------------------- */

static sqlite3 *db;
static sqlite3_stmt *ins, *sel, *del;

static void sqlite_setup(void) {
  if (db) return;
  FUZZ_CHECK(sqlite3_open(":memory:", &db) == SQLITE_OK, "sqlite open");
  /* The column types of src/store/sqlite.c's wpool_jobs. */
  FUZZ_CHECK(sqlite3_exec(db,
                          "CREATE TABLE j(id INTEGER PRIMARY KEY, url BLOB NOT"
                          " NULL, ok INTEGER, status INTEGER, error BLOB,"
                          " attempts INTEGER NOT NULL, elapsed_ms REAL,"
                          " bytes INTEGER)",
                          NULL, NULL, NULL) == SQLITE_OK,
             "create");
  FUZZ_CHECK(sqlite3_prepare_v2(db, "INSERT INTO j VALUES(?,?,?,?,?,?,?,?)", -1,
                                &ins, NULL) == SQLITE_OK,
             "prepare");
  FUZZ_CHECK(sqlite3_prepare_v2(db,
                                "SELECT id, url, ok, status, error, attempts,"
                                " elapsed_ms, bytes FROM j",
                                -1, &sel, NULL) == SQLITE_OK,
             "prepare");
  FUZZ_CHECK(
      sqlite3_prepare_v2(db, "DELETE FROM j", -1, &del, NULL) == SQLITE_OK,
      "prepare");
}

static void check_sqlite(const uint8_t *d, size_t n) {
  /* id 8, ok/flags 1, status 2, attempts 8, elapsed 8, bytes 8, errlen 1 */
  if (n < 36) return;
  sqlite_setup();
  int64_t id = (int64_t)rd64(d);
  uint8_t fl = d[8];
  int status = (int)(d[9] | d[10] << 8) % 1200 - 100;
  int64_t attempts = (int64_t)rd64(d + 11);
  if (fl & 8) attempts &= 0xffffffffLL; /* now and then in range */
  double ms;
  uint64_t bits = rd64(d + 19);
  memcpy(&ms, &bits, sizeof ms);
  int64_t bytes = (int64_t)rd64(d + 27);
  if (fl & 16) id &= 0xffff;
  size_t errlen = d[35];
  const uint8_t *rest = d + 36;
  size_t rn = n - 36;
  if (errlen > rn) errlen = rn;
  bool ok = fl & 1, has_status = fl & 2, has_error = fl & 4;
  const uint8_t *err = rest, *url = rest + errlen;
  size_t urllen = rn - errlen;

  sqlite3_reset(ins);
  sqlite3_bind_int64(ins, 1, id);
  sqlite3_bind_blob(ins, 2, urllen ? (const void *)url : "", (int)urllen,
                    SQLITE_STATIC);
  sqlite3_bind_int(ins, 3, ok ? 1 : 0);
  if (has_status)
    sqlite3_bind_int(ins, 4, status);
  else
    sqlite3_bind_null(ins, 4);
  if (has_error)
    sqlite3_bind_blob(ins, 5, errlen ? (const void *)err : "", (int)errlen,
                      SQLITE_STATIC);
  else
    sqlite3_bind_null(ins, 5);
  sqlite3_bind_int64(ins, 6, attempts);
  sqlite3_bind_double(ins, 7, ms);
  sqlite3_bind_int64(ins, 8, bytes);
  FUZZ_CHECK(sqlite3_step(ins) == SQLITE_DONE, "insert: %s",
             sqlite3_errmsg(db));

  sqlite3_reset(sel);
  FUZZ_CHECK(sqlite3_step(sel) == SQLITE_ROW, "select");
  wp__outrec r;
  char e[128];
  int rc = wp__sqlite_decode_result(sel, &r, e, sizeof e); /* sqlite.c's */

  bool valid = id >= 1 && (!has_status || (status >= 100 && status <= 999)) &&
               (!has_error || (errlen > 0 && !memchr(err, '\0', errlen))) &&
               ok == !has_error && attempts >= 0 && attempts <= INT32_MAX &&
               isfinite(ms) && ms >= 0 && bytes >= 0;
  /* Near the ends of the double range SQLite's 15 digits may round into
   * the subnormals or past DBL_MAX (it found 2.2250738585072024e-308, just
   * above DBL_MIN, written as 2.2250738585072e-308): strtod's ERANGE, and
   * our decoder refuses. Either answer is fine there. */
  bool margin = ms != 0 && (fabs(ms) < 1e-300 || fabs(ms) > 1e300);
  if (!valid)
    FUZZ_CHECK(rc == -1, "SQLite row of bad values decoded");
  else if (!margin)
    FUZZ_CHECK(rc == 0, "SQLite row refused: %s", e);
  valid = valid && rc == 0;
  if (valid) {
    FUZZ_CHECK(r.id == (uint64_t)id && r.url_len == urllen &&
                   (urllen == 0 || memcmp(r.url, url, urllen) == 0) &&
                   r.ok == ok && r.status == (has_status ? status : -1) &&
                   r.attempts == (unsigned)attempts &&
                   r.bytes == (uint64_t)bytes,
               "SQLite row: fields differ");
    if (has_error)
      FUZZ_CHECK(r.error && strlen(r.error) == errlen &&
                     memcmp(r.error, err, errlen) == 0,
                 "SQLite row: error differs");
    else
      FUZZ_CHECK(!r.error, "SQLite row: an error from nowhere");
    FUZZ_CHECK(fabs(r.elapsed_ms - ms) <= ms * 1e-14, "elapsed %.17g vs %.17g",
               r.elapsed_ms, ms);
  }
  sqlite3_reset(sel);
  sqlite3_reset(del);
  FUZZ_CHECK(sqlite3_step(del) == SQLITE_DONE, "delete");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0 || size > 4096) return 0;
  uint8_t sel0 = data[0];
  data++, size--;
  if (sel0 >= 0xF0) {
    check_sqlite(data, size);
    return 0;
  }
  wp__col cols[MAXCOLS];
  char *bufs[MAXCOLS];
  size_t n = 0, start = 0;
  for (size_t i = 0; i <= size && n < MAXCOLS; i++) {
    if (i < size && data[i] != '\t') continue;
    size_t l = i - start;
    bufs[n] = malloc(l + 1);
    FUZZ_CHECK(bufs[n], "out of memory");
    if (l) memcpy(bufs[n], data + start, l);
    bufs[n][l] = '\0';
    bool null = l == 2 && data[start] == '\\' && data[start + 1] == 'N';
    cols[n].p = null ? NULL : bufs[n];
    cols[n].len = null ? 0 : l;
    n++;
    start = i + 1;
  }
  check_rows(cols, n);
  for (size_t i = 0; i < n; i++) free(bufs[i]);
  check_quote(data, size, (size_t)sel0 + 1);
  return 0;
}
