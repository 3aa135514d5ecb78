/* Structured logs of the wpool tool: one record per line, as text (for a
 * person), JSON (one object per line) or logfmt (key=value pairs), to
 * standard error or a file; never to standard output, which holds results.
 *
 * Every record has ts (RFC 3339 UTC with milliseconds), level and msg, then
 * its fields. Whatever bytes a field holds (a URL, an error), the line is
 * valid: JSON strings and quoted logfmt values are escaped with
 * wp__json_string (control bytes escaped, invalid UTF-8 replaced by U+FFFD);
 * logfmt leaves a value bare only when it is printable ASCII without space,
 * '=', '"' or '\\'. A null field is JSON null and is left out of logfmt and
 * text.
 *
 * Pure encoders (wp__log_format_record, wp__logfmt_value, wp__rfc3339_ms)
 * have no I/O and no globals: unit-tested and fuzzed directly. The logger
 * (wp__log_*) is thread-safe: each thread formats a record in a buffer of
 * its own, then writes it whole with one write(2) under the logger's mutex.
 */
#ifndef WPOOL_OBS_LOG_H
#define WPOOL_OBS_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cli/parse.h" /* wp__buf, wp__json_string */

enum wp__log_level { WP__LOG_ERROR, WP__LOG_WARN, WP__LOG_INFO, WP__LOG_DEBUG };
enum wp__log_format { WP__LOG_TEXT, WP__LOG_JSON, WP__LOG_LOGFMT };

typedef enum wp__field_type {
  WP__F_STR, /* s[0..n): any bytes */
  WP__F_INT,
  WP__F_UINT,
  WP__F_DOUBLE, /* printed with 3 decimals; NaN and infinities as null */
  WP__F_BOOL,
  WP__F_NULL
} wp__field_type;

typedef struct wp__log_field {
  const char *key; /* an identifier of ours: [a-z_]+ */
  wp__field_type type;
  const char *s;
  size_t n;
  int64_t i;
  uint64_t u;
  double d;
  bool b;
} wp__log_field;

#define WP__FSTR(k, v) \
  ((wp__log_field){.key = (k), .type = WP__F_STR, .s = (v), .n = strlen(v)})
#define WP__FBYTES(k, v, len) \
  ((wp__log_field){.key = (k), .type = WP__F_STR, .s = (v), .n = (len)})
#define WP__FINT(k, v) \
  ((wp__log_field){.key = (k), .type = WP__F_INT, .i = (int64_t)(v)})
#define WP__FUINT(k, v) \
  ((wp__log_field){.key = (k), .type = WP__F_UINT, .u = (uint64_t)(v)})
#define WP__FDBL(k, v) \
  ((wp__log_field){.key = (k), .type = WP__F_DOUBLE, .d = (double)(v)})
#define WP__FBOOL(k, v) \
  ((wp__log_field){.key = (k), .type = WP__F_BOOL, .b = (v)})
#define WP__FNULL(k) ((wp__log_field){.key = (k), .type = WP__F_NULL})

/* "error", "warn", "info", "debug" / "text", "json", "logfmt". Return 0 or
 * -1. */
int wp__parse_log_level(const char *s, enum wp__log_level *out);
int wp__parse_log_format(const char *s, enum wp__log_format *out);
const char *wp__log_level_name(enum wp__log_level l); /* "info" */

/* "2026-11-28T08:30:00.123Z" (24 bytes and a NUL) for a time in ns since
 * the epoch (clamped to years 0000-9999). */
void wp__rfc3339_ms(char out[32], int64_t unix_ns);

/* Appends s as a logfmt value: bare, or quoted as a JSON string. */
void wp__logfmt_value(wp__buf *b, const char *s, size_t n);

/* Appends one record, ending in '\n'. */
void wp__log_format_record(wp__buf *b, enum wp__log_format fmt, int64_t unix_ns,
                           enum wp__log_level level, const char *msg,
                           const wp__log_field *fields, size_t nfields);

typedef struct wp__log wp__log;

/* Opens a logger writing records up to level (debug shows everything) to
 * path (appended; NULL or "-": standard error). Returns 0, or -1 with a
 * message in err. */
int wp__log_open(wp__log **out, enum wp__log_format fmt,
                 enum wp__log_level level, const char *path, char *err,
                 size_t errlen);
/* Would a record at this level be written? false for a NULL logger. */
bool wp__log_enabled(const wp__log *l, enum wp__log_level level);
/* Writes a record (if enabled). Thread-safe. NULL logger: nothing. */
void wp__log_write(wp__log *l, enum wp__log_level level, const char *msg,
                   const wp__log_field *fields, size_t nfields);
/* The records that could not be written (a full disk): 0 normally. */
uint64_t wp__log_lost(const wp__log *l);
void wp__log_close(wp__log *l);

#endif
