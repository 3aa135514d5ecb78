/* Pure parsers and encoders of the wpool tool: no I/O, no globals, each
 * unit-tested and fuzzed directly (tests/unit/test_cli_parse.c).
 * Thread safety: all reentrant. */
#ifndef WPOOL_CLI_PARSE_H
#define WPOOL_CLI_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fetch/fetch.h" /* wp__http_reason */

/* Durations: a decimal number and a unit, "250ms", "30s", "2m", "1h",
 * "1.5s", or several of them ("1m30s"); units ns, us (or µs), ms, s, m, h,
 * case-sensitive as in Go ("1S" is refused). A bare "0" is allowed.
 * Returns 0 and stores nanoseconds, or -1 (empty, unknown unit, negative,
 * overflow past INT64_MAX); *ns is untouched on failure. */
int wp__parse_duration(const char *s, int64_t *ns);

/* Sizes: "1048576", "10MiB", "10M", "512k", "1G"; k/K/KiB = 1024,
 * M/MiB = 1024^2, G/GiB = 1024^3, T/TiB = 1024^4, KB/MB/GB/TB = powers of
 * 1000; B allowed; units ignore case. A fraction is allowed with a unit
 * ("1.5M" = 1572864, rounded down to a byte), not without one.
 * Returns 0 or -1 (garbage, overflow). */
int wp__parse_size(const char *s, uint64_t *bytes);

/* A decimal integer in [min, max], nothing else. Returns 0 or -1. */
int wp__parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* A growable byte buffer. data, when not NULL, is NUL-terminated at len.
 * After a failed append (oom set) later appends do nothing until
 * wp__buf_reset, so the contents are always a prefix of what was asked. */
typedef struct wp__buf {
  char *data;
  size_t len, cap;
  bool oom; /* an append failed; the contents are truncated */
} wp__buf;

void wp__buf_init(wp__buf *b);
void wp__buf_free(wp__buf *b);
void wp__buf_reset(wp__buf *b); /* len = 0, oom = false, keeps the memory */
void wp__buf_append(wp__buf *b, const char *s, size_t n);
void wp__buf_puts(wp__buf *b, const char *s);
void wp__buf_printf(wp__buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Appends s as a JSON string (with the quotes). Control bytes and DEL are
 * escaped; invalid UTF-8 sequences (overlong, surrogates, past U+10FFFF,
 * stray or cut short) are replaced by U+FFFD, one per maximal subpart as
 * Python's decode(errors="replace") does, so the output is always valid
 * JSON and valid UTF-8. Returns the number of bytes replaced. */
size_t wp__json_string(wp__buf *b, const char *s, size_t n);

/* Appends s as one RFC 4180 CSV field: quoted (with "" for ") if it holds
 * a comma, a quote, CR or LF, or leading/trailing space or tab; bytes are
 * kept as they are otherwise. */
void wp__csv_field(wp__buf *b, const char *s, size_t n);

/* One result, as the output formats see it. */
typedef struct wp__outrec {
  uint64_t id;
  const char *url; /* as read (may hold any bytes) */
  size_t url_len;
  bool ok;           /* a response with status < 400 arrived */
  int status;        /* HTTP status, or -1 for none (JSON null); 0 (what
                        libcurl reports when no response came) is none too */
  const char *error; /* NULL for none (JSON null) */
  unsigned attempts;
  double elapsed_ms;
  uint64_t bytes; /* body bytes received */
} wp__outrec;

enum wp__format { WP__FMT_TEXT, WP__FMT_JSONL, WP__FMT_CSV };

/* Parses "text", "jsonl", "csv". Returns 0 or -1. */
int wp__parse_format(const char *s, enum wp__format *out);

/* Appends the header line for fmt (CSV only; nothing for the others). */
void wp__format_header(wp__buf *b, enum wp__format fmt);

/* Appends one line (ending in '\n') for r.
 * jsonl: {"id":1,"url":"...","ok":true,"status":200,"error":null,
 *         "attempts":1,"elapsed_ms":12.345,"bytes":100}
 * csv:   id,url,ok,status,error,attempts,elapsed_ms,bytes (ok as true/false,
 *        status and error empty when null)
 * text:  "job 3 done: 200 OK https://..." or "job 2 failed: <error> <url>",
 *        with control bytes of the URL and the error escaped as \xNN;
 *        without an error, "failed: 404 Not Found <url>" (or
 *        "unknown error" when there is no status either).
 * elapsed_ms is printed with 3 decimals and is never nan, inf or negative
 * (clamped to [0, 1e12]). Uses "%.3f": the process must keep LC_NUMERIC
 * "C" (never setlocale(LC_ALL, "")), or JSON would get a decimal comma. */
void wp__format_result(wp__buf *b, enum wp__format fmt, const wp__outrec *r);

/* wp__http_reason() lives with the engine: fetch/fetch.h. */

#endif
