/* Row decoders shared by the stores: pure functions of the text columns a
 * database returned (see store.h). Every check says which column failed, so
 * that a damaged database is an error message, never a crash or a
 * made-up result. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"

int wp__store_col_int(const wp__col *c, int64_t min, int64_t max,
                      int64_t *out) {
  if (!c->p || c->len == 0 || c->len > 20) return -1;
  char buf[24];
  memcpy(buf, c->p, c->len);
  buf[c->len] = '\0';
  size_t i = buf[0] == '-' ? 1 : 0;
  if (i == c->len) return -1;
  for (size_t k = i; k < c->len; k++) /* the whole column: a NUL is damage */
    if (buf[k] < '0' || buf[k] > '9') return -1;
  errno = 0;
  char *end;
  long long v = strtoll(buf, &end, 10);
  if (errno != 0 || *end != '\0' || v < min || v > max) return -1;
  *out = (int64_t)v;
  return 0;
}

static int col_bool(const wp__col *c, bool *out) {
  if (!c->p || c->len != 1) return -1;
  switch (c->p[0]) {
    case '1':
    case 't':
      *out = true;
      return 0;
    case '0':
    case 'f':
      *out = false;
      return 0;
    default:
      return -1;
  }
}

static int col_real(const wp__col *c, double *out) {
  if (!c->p || c->len == 0 || c->len > 40) return -1;
  char buf[48];
  memcpy(buf, c->p, c->len);
  buf[c->len] = '\0';
  for (size_t k = 0; k < c->len; k++) /* decimal only: no nan, inf, hex */
    if (buf[k] == '\0' || !strchr("0123456789.eE+-", buf[k])) return -1;
  char *end;
  errno = 0;
  double v = strtod(buf, &end);
  if (*end != '\0' || errno == ERANGE || !isfinite(v) || v < 0) return -1;
  *out = v;
  return 0;
}

#define BAD(what)                                        \
  do {                                                   \
    snprintf(err, errlen, "a stored row: bad %s", what); \
    return -1;                                           \
  } while (0)

/* Both kinds of row start with id and url. */
static int decode_head(const wp__col *cols, size_t ncols, size_t want,
                       int64_t *id, char *err, size_t errlen) {
  if (ncols != want) BAD("column count");
  if (wp__store_col_int(&cols[0], 1, INT64_MAX, id) != 0) BAD("id");
  if (!cols[1].p) BAD("url");
  return 0;
}

int wp__store_decode_result(const wp__col *cols, size_t ncols, wp__outrec *out,
                            char *err, size_t errlen) {
  int64_t v;
  memset(out, 0, sizeof *out);
  if (decode_head(cols, ncols, WP__RESULT_COLS, &v, err, errlen) != 0)
    return -1;
  out->id = (uint64_t)v;
  out->url = cols[1].p;
  out->url_len = cols[1].len;
  if (col_bool(&cols[2], &out->ok) != 0) BAD("ok");
  out->status = -1;
  if (cols[3].p) {
    if (wp__store_col_int(&cols[3], 100, 999, &v) != 0) BAD("status");
    out->status = (int)v;
  }
  out->error = NULL;
  if (cols[4].p) {
    /* The formats take a NUL-terminated error: one with a NUL or empty is
     * not something a store of ours wrote. */
    if (cols[4].len == 0 || memchr(cols[4].p, '\0', cols[4].len) ||
        cols[4].p[cols[4].len] != '\0')
      BAD("error");
    out->error = cols[4].p;
  }
  if (out->ok != (out->error == NULL)) BAD("ok/error pair");
  if (wp__store_col_int(&cols[5], 0, INT32_MAX, &v) != 0) BAD("attempts");
  out->attempts = (unsigned)v;
  if (col_real(&cols[6], &out->elapsed_ms) != 0) BAD("elapsed_ms");
  if (wp__store_col_int(&cols[7], 0, INT64_MAX, &v) != 0) BAD("bytes");
  out->bytes = (uint64_t)v;
  return 0;
}

int wp__store_decode_qjob(const wp__col *cols, size_t ncols, wp__qjob *out,
                          char *err, size_t errlen) {
  int64_t v;
  memset(out, 0, sizeof *out);
  if (decode_head(cols, ncols, WP__QJOB_COLS, &v, err, errlen) != 0) return -1;
  out->id = v;
  out->url = cols[1].p;
  out->url_len = cols[1].len;
  if (cols[2].p) {
    if (cols[2].len == 0) BAD("bad");
    out->bad = cols[2].p;
    out->bad_len = cols[2].len;
  }
  if (wp__store_col_int(&cols[3], 1, INT32_MAX, &v) != 0) BAD("attempts");
  out->attempts = (unsigned)v;
  return 0;
}

void wp__store_quote(char *dst, size_t dstlen, const char *p, size_t n) {
  if (dstlen == 0) return;
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    bool plain = c >= 0x20 && c < 0x7f && c != '\\';
    if (o + (plain ? 1 : 4) >= dstlen) break; /* and the NUL */
    if (plain) {
      dst[o++] = (char)c;
    } else {
      snprintf(dst + o, dstlen - o, "\\x%02x", c);
      o += 4;
    }
  }
  dst[o] = '\0';
}
