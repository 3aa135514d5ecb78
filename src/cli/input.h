/* The URL list reader: one URL per line from each FILE in order ("-" is
 * stdin), as a stream with memory bounded by WP__LINE_MAX whatever the
 * input (a 10-million-line file, a 1 MB line, NUL bytes, no final newline).
 *
 * Each line: surrounding whitespace and a CR before the LF are trimmed; a
 * blank line or one starting with '#' is skipped; every other line is a
 * job. A job's line may be bad (too long, control bytes, not an http(s)
 * URL): it is still returned, with the reason, so that it becomes a job
 * whose result is that error.
 *
 * Thread safety: one reader per thread. */
#ifndef WPOOL_CLI_INPUT_H
#define WPOOL_CLI_INPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define WP__LINE_MAX 8192 /* bytes, after trimming */

typedef struct wp__line {
  const char *text; /* the trimmed line, NUL-terminated (it may also hold
                       NULs: use len); for a line too long, its first
                       WP__LINE_MAX bytes */
  size_t len;
  const char *file; /* the FILE argument it came from ("-" for stdin) */
  uint64_t lineno;  /* 1-based, within that file */
  const char *bad;  /* NULL, or why it is not a job to fetch (static text):
                       "line longer than 8192 bytes",
                       "line holds control bytes",
                       "not an http(s) URL: <detail>" */
} wp__line;

typedef struct wp__reader wp__reader;

/* Opens every file at once (an unreadable FILE is an error before anything
 * starts; a directory is an error too). nfiles == 0 means stdin. On error
 * returns -1 and writes a message naming the file to err. */
int wp__reader_open(wp__reader **out, char *const *files, size_t nfiles,
                    char *err, size_t errlen);

/* The next job line: returns 1 and fills *line (valid until the next call),
 * 0 at the end of the last file, -1 on a read error (message in err). */
int wp__reader_next(wp__reader *r, wp__line *line, char *err, size_t errlen);

void wp__reader_close(wp__reader *r);

/* Is s (len bytes) an http or https URL with a host? Returns NULL if so,
 * or a static reason. A plain URL (wp__url_is_simple) is answered without
 * libcurl; any other goes to wp__check_url_libcurl. Thread-safe. */
const char *wp__check_url(const char *s, size_t len);

/* The same verdict, always through libcurl's URL parser (curl_url_set). */
const char *wp__check_url_libcurl(const char *s, size_t len);

/* True only for URLs that wp__check_url_libcurl accepts: http(s)://, a
 * host name (letters, digits, '-', dots; the last label starting with a
 * letter) or a dotted-quad IPv4 address, an optional port 1-65535, then a
 * path and query of RFC 3986's unreserved and sub-delims characters,
 * ':', '@', '/', '?' and %XX. False says nothing: ask libcurl. */
bool wp__url_is_simple(const char *s, size_t len);

#endif
