/* Fuzz target: the URL list reader (src/cli/input.c) and wp__check_url.
 *
 * Input: byte 0 picks how the bytes are cut into reads (the reader sees
 * short reads at arbitrary places, as from a pipe or a terminal); the rest
 * is the file. It goes through an AF_UNIX SOCK_SEQPACKET pair given to the
 * reader as standard input: each read(2) returns exactly one message, so
 * the cuts are deterministic.
 *
 * Checked against a model written here from input.h's contract (split at
 * LF; trim space, tab, CR, VT, FF at both ends; skip blank and '#' lines;
 * keep the first WP__LINE_MAX bytes of a longer line and call it bad):
 * the same lines, in order, with the same line numbers, texts, lengths and
 * verdicts; the text NUL-terminated; a line called good is an http(s) URL
 * with a host and no control byte or space.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli/input.h"
#include "fuzz.h"

#define MAX_MSGS 64

static bool is_ws(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* The model's next line of data[*pos..size): returns false at the end;
 * otherwise sets *kind (0 skipped, 1 job) and the job's text span, and
 * *too_long. */
static bool model_next(const uint8_t *d, size_t size, size_t *pos, int *kind,
                       size_t *start, size_t *len, bool *too_long) {
  if (*pos >= size) return false;
  const uint8_t *nl = memchr(d + *pos, '\n', size - *pos);
  size_t end = nl ? (size_t)(nl - d) : size;
  size_t a = *pos, b = end;
  *pos = nl ? end + 1 : size;
  while (a < b && is_ws(d[a])) a++;
  while (b > a && is_ws(d[b - 1])) b--;
  *too_long = false;
  if (a == b || d[a] == '#') {
    *kind = 0;
    return true;
  }
  *kind = 1;
  *start = a;
  *len = b - a;
  if (*len > WP__LINE_MAX) {
    *too_long = true;
    *len = WP__LINE_MAX;
  }
  return true;
}

static bool has_control(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] == 0x7F) return true;
  return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  unsigned mode = data[0];
  data++;
  size--;

  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) abort();
  int big = 4 << 20;
  (void)setsockopt(sv[1], SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big);
  size_t k = mode & 0x80 ? size : 1 + (mode & 0x3F);
  if (k < (size + MAX_MSGS - 1) / MAX_MSGS)
    k = (size + MAX_MSGS - 1) / MAX_MSGS;
  for (size_t off = 0; off < size; off += k) {
    size_t n = size - off < k ? size - off : k;
    if (send(sv[1], data + off, n, MSG_DONTWAIT) != (ssize_t)n) {
      fprintf(stderr, "send: %s\n", strerror(errno));
      abort();
    }
  }
  close(sv[1]);
  if (dup2(sv[0], STDIN_FILENO) < 0) abort();
  close(sv[0]);

  wp__reader *r;
  char err[256];
  FUZZ_CHECK(wp__reader_open(&r, NULL, 0, err, sizeof err) == 0, "open: %s",
             err);
  size_t pos = 0;
  uint64_t lineno = 0;
  for (;;) {
    wp__line line;
    int rc = wp__reader_next(r, &line, err, sizeof err);
    FUZZ_CHECK(rc >= 0, "next: %s", err);
    int kind = 0;
    size_t start = 0, len = 0;
    bool too_long = false, more;
    do {
      more = model_next(data, size, &pos, &kind, &start, &len, &too_long);
      if (more) lineno++;
    } while (more && kind == 0);
    if (rc == 0) {
      FUZZ_CHECK(!more, "the reader ended before line %llu",
                 (unsigned long long)lineno);
      break;
    }
    FUZZ_CHECK(more, "the reader returned a line past the end (%llu)",
               (unsigned long long)line.lineno);
    FUZZ_CHECK(line.lineno == lineno, "line number %llu, want %llu",
               (unsigned long long)line.lineno, (unsigned long long)lineno);
    FUZZ_CHECK(line.len == len, "line %llu: length %zu, want %zu",
               (unsigned long long)lineno, line.len, len);
    FUZZ_CHECK(memcmp(line.text, data + start, len) == 0,
               "line %llu: text differs", (unsigned long long)lineno);
    FUZZ_CHECK(line.text[len] == '\0', "line %llu: not NUL-terminated",
               (unsigned long long)lineno);
    FUZZ_CHECK(strcmp(line.file, "-") == 0, "file name %s", line.file);
    if (too_long) {
      FUZZ_CHECK(
          line.bad && strcmp(line.bad, "line longer than 8192 bytes") == 0,
          "line %llu: too long but bad = %s", (unsigned long long)lineno,
          line.bad ? line.bad : "(null)");
    } else if (has_control(line.text, len)) {
      FUZZ_CHECK(line.bad && strcmp(line.bad, "line holds control bytes") == 0,
                 "line %llu: control bytes but bad = %s",
                 (unsigned long long)lineno, line.bad ? line.bad : "(null)");
    } else {
      const char *why = wp__check_url(line.text, len);
      FUZZ_CHECK((why == NULL) == (line.bad == NULL) &&
                     (!why || strcmp(why, line.bad) == 0),
                 "line %llu: bad = %s, check_url says %s",
                 (unsigned long long)lineno, line.bad ? line.bad : "(null)",
                 why ? why : "(null)");
      if (!why) {
        bool http = len > 7 && strncasecmp(line.text, "http://", 7) == 0;
        bool https = len > 8 && strncasecmp(line.text, "https://", 8) == 0;
        FUZZ_CHECK(http || https, "not http(s) but good: %.*s", (int)len,
                   line.text);
        FUZZ_CHECK(!memchr(line.text, ' ', len), "a space in a good URL");
      } else {
        FUZZ_CHECK(strncmp(why, "not an http(s) URL: ", 20) == 0, "reason %s",
                   why);
      }
    }
  }
  /* After the end, the end again. */
  wp__line line;
  FUZZ_CHECK(wp__reader_next(r, &line, err, sizeof err) == 0, "not the end");
  wp__reader_close(r);
  int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (devnull >= 0) {
    dup2(devnull, STDIN_FILENO);
    close(devnull);
  }
  return 0;
}
