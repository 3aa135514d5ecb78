/* The URL list reader (input.h).
 *
 * Design: every FILE is opened up front (so that a bad argument fails the
 * run before any job starts), then read in order with read(2) into one
 * fixed chunk buffer (READ_CHUNK bytes). A line is assembled into one fixed
 * line buffer (WP__LINE_MAX + 1 bytes) while it is read: leading whitespace
 * is skipped without being stored, a comment line is skipped without being
 * stored, and of a line longer than WP__LINE_MAX only the first WP__LINE_MAX
 * bytes are kept: the rest is only looked at (is there any non-whitespace
 * byte past the bound?) and dropped. So the reader's memory is those two
 * buffers plus the file names, fixed at open, whatever the input: no line,
 * however long, and no number of lines grows it. Nothing is read ahead past
 * one chunk, so a FIFO or a pipe is read as a stream: a line is returned as
 * soon as its newline has arrived.
 *
 * A file is closed as soon as its end is reached (stdin is never closed).
 * Thread safety: none; one reader per thread.
 */
#include "cli/input.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define READ_CHUNK 65536 /* bytes read(2) asks for at a time */

#define BAD_TOO_LONG "line longer than 8192 bytes"
#define BAD_CONTROL "line holds control bytes"
#define NOT_URL "not an http(s) URL: "

/* The message above names the bound: keep them in step. */
_Static_assert(WP__LINE_MAX == 8192, "BAD_TOO_LONG names WP__LINE_MAX");

typedef struct src {
  int fd; /* -1 once closed */
  bool is_stdin;
  char *name; /* as given ("-" for stdin), owned */
} src;

struct wp__reader {
  src *files;
  size_t nfiles, cur;   /* cur: the file being read; == nfiles at the end */
  uint64_t lineno;      /* lines of files[cur] read so far */
  bool failed;          /* a read error happened: every later call fails */
  unsigned char *chunk; /* READ_CHUNK bytes */
  size_t pos, end;      /* chunk[pos..end) is read but not yet consumed */
  char *line;           /* WP__LINE_MAX + 1 bytes */
};

/* Trimmed at both ends of a line; inside a URL each of them (but the space,
 * which libcurl rejects) is a control byte. */
static bool is_ws(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static bool is_control(unsigned char c) { return c < 0x20 || c == 0x7F; }

static void err_errno(char *err, size_t errlen, const char *what,
                      const char *name, int e) {
  char msg[256];
  if (strerror_r(e, msg, sizeof msg) != 0)
    snprintf(msg, sizeof msg, "error %d", e);
  if (err && errlen) snprintf(err, errlen, "%s%s: %s", what, name, msg);
}

static void close_src(src *f) {
  if (f->fd >= 0 && !f->is_stdin) close(f->fd);
  f->fd = -1;
}

void wp__reader_close(wp__reader *r) {
  if (!r) return;
  for (size_t i = 0; i < r->nfiles; i++) {
    close_src(&r->files[i]);
    free(r->files[i].name);
  }
  free(r->files);
  free(r->chunk);
  free(r->line);
  free(r);
}

int wp__reader_open(wp__reader **out, char *const *files, size_t nfiles,
                    char *err, size_t errlen) {
  static char *const stdin_only[] = {"-"};
  if (err && errlen) err[0] = '\0';
  if (!out) return -1;
  *out = NULL;
  if (nfiles == 0) {
    files = stdin_only;
    nfiles = 1;
  }
  if (!files) return -1;
  wp__reader *r = calloc(1, sizeof *r);
  if (!r) goto oom;
  r->files = calloc(nfiles, sizeof *r->files);
  r->chunk = malloc(READ_CHUNK);
  r->line = malloc(WP__LINE_MAX + 1);
  if (!r->files || !r->chunk || !r->line) goto oom;
  bool stdin_seen = false;
  for (size_t i = 0; i < nfiles; i++) {
    src *f = &r->files[i];
    f->fd = -1;
    r->nfiles = i + 1; /* what close must clean up from here on */
    const char *name = files[i] ? files[i] : "";
    f->name = strdup(name);
    if (!f->name) goto oom;
    if (strcmp(name, "-") == 0) {
      if (stdin_seen) {
        if (err && errlen)
          snprintf(err, errlen, "-: standard input given more than once");
        goto fail;
      }
      stdin_seen = true;
      f->is_stdin = true;
      f->fd = STDIN_FILENO;
    } else {
      /* Blocks on a FIFO until a writer opens it, as cat does. */
      do {
        f->fd = open(name, O_RDONLY | O_CLOEXEC | O_NOCTTY);
      } while (f->fd < 0 && errno == EINTR);
      if (f->fd < 0) {
        err_errno(err, errlen, "", name, errno);
        goto fail;
      }
    }
    struct stat st;
    if (fstat(f->fd, &st) != 0) {
      err_errno(err, errlen, "", name, errno);
      goto fail;
    }
    if (S_ISDIR(st.st_mode)) {
      err_errno(err, errlen, "", name, EISDIR);
      goto fail;
    }
  }
  *out = r;
  return 0;
oom:
  if (err && errlen) snprintf(err, errlen, "out of memory");
fail:
  wp__reader_close(r);
  return -1;
}

/* Refills the chunk from the current file. Returns 1 if bytes came, 0 at
 * its end, -1 on an error (message in err). */
static int fill(wp__reader *r, char *err, size_t errlen) {
  src *f = &r->files[r->cur];
  for (;;) {
    ssize_t n = read(f->fd, r->chunk, READ_CHUNK);
    if (n > 0) {
      r->pos = 0;
      r->end = (size_t)n;
      return 1;
    }
    if (n == 0) return 0;
    int e = errno;
    if (e == EINTR) continue;
    if (e == EAGAIN || e == EWOULDBLOCK) {
      /* A non-blocking descriptor inherited as stdin: wait for input. */
      struct pollfd p = {.fd = f->fd, .events = POLLIN};
      if (poll(&p, 1, -1) >= 0 || errno == EINTR) continue;
      e = errno;
    }
    err_errno(err, errlen, "read error on ", f->name, e);
    return -1;
  }
}

/* How far we are in the line being assembled. */
enum lstate { L_LEAD, L_COMMENT, L_TEXT };

/* Reads one raw line of the current file (up to a LF or the file's end)
 * into r->line, trimmed. Returns 1 with *kind set (0 blank or comment, 1 a
 * job line), 0 if the file ended before any byte of a line, -1 on error. */
static int read_line(wp__reader *r, int *kind, size_t *len, bool *too_long,
                     char *err, size_t errlen) {
  enum lstate st = L_LEAD;
  size_t n = 0;     /* bytes stored in r->line */
  bool any = false; /* any byte of this line read, the LF included */
  *too_long = false;
  for (;;) {
    if (r->pos == r->end) {
      int rc = fill(r, err, errlen);
      if (rc < 0) return -1;
      if (rc == 0) {
        if (!any) return 0;
        break; /* the last line, with no LF */
      }
    }
    any = true;
    const unsigned char *p = r->chunk + r->pos;
    size_t avail = r->end - r->pos;
    const unsigned char *nl = memchr(p, '\n', avail);
    size_t seg = nl ? (size_t)(nl - p) : avail;
    size_t i = 0;
    if (st == L_LEAD) {
      while (i < seg && is_ws(p[i])) i++;
      if (i < seg) st = p[i] == '#' ? L_COMMENT : L_TEXT;
    }
    if (st == L_TEXT && i < seg) {
      size_t room = WP__LINE_MAX - n;
      size_t take = seg - i < room ? seg - i : room;
      memcpy(r->line + n, p + i, take);
      n += take;
      i += take;
      /* Past the bound: the trimmed line is longer than WP__LINE_MAX
       * exactly when a byte that is not whitespace lies past it. */
      for (; i < seg && !*too_long; i++)
        if (!is_ws(p[i])) *too_long = true;
    }
    r->pos += nl ? seg + 1 : seg;
    if (nl) break;
  }
  r->lineno++;
  if (st != L_TEXT) {
    *kind = 0;
    return 1;
  }
  if (!*too_long)
    while (n > 0 && is_ws((unsigned char)r->line[n - 1])) n--;
  r->line[n] = '\0';
  *len = n;
  *kind = 1;
  return 1;
}

int wp__reader_next(wp__reader *r, wp__line *line, char *err, size_t errlen) {
  if (err && errlen) err[0] = '\0';
  if (!r || !line) return -1;
  if (r->failed) {
    if (err && errlen) snprintf(err, errlen, "the input failed earlier");
    return -1;
  }
  while (r->cur < r->nfiles) {
    int kind = 0;
    size_t len = 0;
    bool too_long = false;
    int rc = read_line(r, &kind, &len, &too_long, err, errlen);
    if (rc < 0) {
      r->failed = true;
      return -1;
    }
    if (rc == 0) { /* this file is done */
      close_src(&r->files[r->cur]);
      r->cur++;
      r->lineno = 0;
      r->pos = r->end = 0;
      continue;
    }
    if (kind == 0) continue;
    line->text = r->line;
    line->len = len;
    line->file = r->files[r->cur].name;
    line->lineno = r->lineno;
    line->bad = NULL;
    if (too_long) {
      line->bad = BAD_TOO_LONG;
    } else {
      for (size_t i = 0; i < len && !line->bad; i++)
        if (is_control((unsigned char)r->line[i])) line->bad = BAD_CONTROL;
      if (!line->bad) line->bad = wp__check_url(r->line, len);
    }
    return 1;
  }
  return 0;
}

/* ---- URL check ---------------------------------------------------------- */

static bool is_alpha(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_scheme_char(unsigned char c) {
  return is_alpha(c) || (c >= '0' && c <= '9') || c == '+' || c == '-' ||
         c == '.';
}

static bool eq_nocase(const char *s, size_t n, const char *lower) {
  if (strlen(lower) != n) return false;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 'A' && c <= 'Z') c = (unsigned char)(c - 'A' + 'a');
    if (c != (unsigned char)lower[i]) return false;
  }
  return true;
}

/* The checks done here, before libcurl, are those where libcurl is more
 * lenient than a URL list should be, or where its error would be vague:
 *  - a scheme is required (no CURLU_DEFAULT_SCHEME / CURLU_GUESS_SCHEME:
 *    "example.com" in a list is a mistake to report, not a guess to make);
 *    "host:8080/x" is reported as having no scheme, not as scheme "host";
 *  - only http and https, in any case ("HTTP://" is fine): libcurl alone
 *    would accept ftp://, file://, ... of the protocols it was built with;
 *  - exactly two slashes, then a host: libcurl quietly accepts "http:/h"
 *    and "http:///h" (as host "h"), which RFC 3986 reads as no host;
 *  - spaces and control bytes, with a reason of their own.
 * Then (wp__check_url_libcurl) curl_url_set() with no flags parses the
 * rest the way the transfer will (the fetch engine gives the same string to
 * CURLOPT_URL): port, host name, IPv6 literal, user info, path. No
 * CURLU_NON_SUPPORT_SCHEME, on purpose: http(s) is already ensured, and without
 * the flag libcurl also tells whether *this* libcurl can fetch the scheme
 * (https with a libcurl built without TLS is refused here, not at fetch time).
 * No CURLU_URLENCODE (the URL is fetched as written) and no CURLU_ALLOW_SPACE.
 */
static const char *check_url_pre(const char *s, size_t len) {
  if (!s || len == 0) return NOT_URL "empty";
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (is_control(c)) return NOT_URL "control bytes";
    if (c == ' ') return NOT_URL "holds a space";
  }
  size_t i = 0;
  if (!is_alpha((unsigned char)s[0])) return NOT_URL "no scheme";
  while (i < len && is_scheme_char((unsigned char)s[i])) i++;
  if (i == len || s[i] != ':') return NOT_URL "no scheme";
  if (i + 1 < len && s[i + 1] >= '0' && s[i + 1] <= '9')
    return NOT_URL "no scheme"; /* "localhost:8080" */
  if (!eq_nocase(s, i, "http") && !eq_nocase(s, i, "https"))
    return NOT_URL "unsupported scheme";
  if (len < i + 3 || s[i + 1] != '/' || s[i + 2] != '/')
    return NOT_URL "no // after the scheme";
  if (i + 3 == len || s[i + 3] == '/' || s[i + 3] == '?' || s[i + 3] == '#')
    return NOT_URL "no host";
  return NULL;
}

/* ---- the fast path: URLs whose verdict is known without libcurl ------- */

/* Most lines of a URL list are plain: scheme, a host name or a dotted
 * IPv4 address, maybe a port, a path and a query of the characters RFC 3986
 * allows unencoded. For those, libcurl's parser (which allocates every
 * part) would only say yes; wp__url_is_simple says so at a fraction of the
 * cost, and wp__check_url asks libcurl about everything else. It is
 * conservative by design: when it says yes, wp__check_url_libcurl says yes
 * (fuzz/fuzz_url.c checks exactly that against the libcurl linked in). */

/* A host name libcurl cannot mistake for anything else: labels of letters,
 * digits and '-', each starting and ending with a letter or digit, at most
 * 63 bytes, joined by single dots, at most 253 bytes in all, the last label
 * starting with a letter (so no libcurl reads it as a numeric IPv4 address,
 * whose forms vary between versions). */
static bool simple_name(const char *h, size_t n) {
  if (n == 0 || n > 253) return false;
  size_t start = 0;
  for (size_t i = 0; i <= n; i++) {
    if (i < n && h[i] != '.') {
      unsigned char c = (unsigned char)h[i];
      if (!is_alpha(c) && !(c >= '0' && c <= '9') && c != '-') return false;
      continue;
    }
    size_t l = i - start; /* label h[start, i) */
    if (l == 0 || l > 63 || h[start] == '-' || h[i - 1] == '-') return false;
    if (i == n && !is_alpha((unsigned char)h[start])) return false;
    start = i + 1;
  }
  return true;
}

/* Four decimal numbers 0-255 without leading zeros, dot-separated. */
static bool simple_ipv4(const char *h, size_t n) {
  size_t i = 0;
  for (int part = 0; part < 4; part++) {
    if (part > 0) {
      if (i == n || h[i] != '.') return false;
      i++;
    }
    size_t d = i;
    unsigned v = 0;
    while (i < n && i - d < 3 && h[i] >= '0' && h[i] <= '9')
      v = v * 10 + (unsigned)(h[i++] - '0');
    if (i == d || v > 255 || (h[d] == '0' && i - d > 1)) return false;
  }
  return i == n;
}

static bool is_hex(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
         (c >= 'A' && c <= 'F');
}

/* RFC 3986's unreserved and sub-delims, ':' '@' '/' '?' (a path and a
 * query), and '%' followed by two hex digits. */
static bool simple_rest(const char *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    if (is_alpha(c) || (c >= '0' && c <= '9')) continue;
    if (c == '%') {
      if (i + 2 >= n || !is_hex((unsigned char)p[i + 1]) ||
          !is_hex((unsigned char)p[i + 2]))
        return false;
      i += 2;
      continue;
    }
    if (!strchr("-._~!$&'()*+,;=:@/?", c) || c == '\0') return false;
  }
  return true;
}

/* Can this libcurl fetch the scheme (lower case)? Asked once. */
static pthread_once_t scheme_once = PTHREAD_ONCE_INIT;
static bool scheme_ok[2]; /* http, https */

static void scheme_probe(void) {
  static const char *const probe[2] = {"http://x/", "https://x/"};
  for (int k = 0; k < 2; k++) {
    CURLU *u = curl_url();
    scheme_ok[k] =
        u && curl_url_set(u, CURLUPART_URL, probe[k], 0) == CURLUE_OK;
    curl_url_cleanup(u);
  }
}

bool wp__url_is_simple(const char *s, size_t len) {
  size_t i; /* the scheme's length */
  if (len > 5 && eq_nocase(s, 4, "http") && s[4] == ':')
    i = 4;
  else if (len > 6 && eq_nocase(s, 5, "https") && s[5] == ':')
    i = 5;
  else
    return false;
  pthread_once(&scheme_once, scheme_probe);
  if (!scheme_ok[i - 4] || len < i + 3 || s[i + 1] != '/' || s[i + 2] != '/')
    return false;
  const char *h = s + i + 3, *end = s + len;
  const char *a = h; /* the authority: up to '/', '?' or the end */
  while (a < end && *a != '/' && *a != '?') {
    if (*a == '#') return false;
    a++;
  }
  const char *colon = memchr(h, ':', (size_t)(a - h));
  const char *hend = colon ? colon : a;
  size_t hn = (size_t)(hend - h);
  if (!simple_ipv4(h, hn) && !simple_name(h, hn)) return false;
  if (colon) { /* a port: 1-65535, no leading zero */
    const char *p = colon + 1;
    size_t pn = (size_t)(a - p);
    if (pn == 0 || pn > 5 || *p == '0') return false;
    unsigned long v = 0;
    for (size_t k = 0; k < pn; k++) {
      if (p[k] < '0' || p[k] > '9') return false;
      v = v * 10 + (unsigned long)(p[k] - '0');
    }
    if (v > 65535) return false;
  }
  return simple_rest(a, (size_t)(end - a));
}

const char *wp__check_url(const char *s, size_t len) {
  if (s && wp__url_is_simple(s, len)) return NULL; /* libcurl would agree */
  return wp__check_url_libcurl(s, len);
}

const char *wp__check_url_libcurl(const char *s, size_t len) {
  const char *pre = check_url_pre(s, len);
  if (pre) return pre;
  char *z = malloc(len + 1);
  if (!z) return NOT_URL "out of memory";
  memcpy(z, s, len);
  z[len] = '\0';
  const char *why = NULL;
  CURLU *u = curl_url();
  if (!u) {
    why = NOT_URL "out of memory";
    goto done;
  }
  CURLUcode rc = curl_url_set(u, CURLUPART_URL, z, 0);
  switch (rc) {
    case CURLUE_OK:
      break;
    case CURLUE_OUT_OF_MEMORY:
      why = NOT_URL "out of memory";
      goto done;
    case CURLUE_UNSUPPORTED_SCHEME:
      why = NOT_URL "scheme not supported by this libcurl";
      goto done;
    case CURLUE_NO_HOST:
      why = NOT_URL "no host";
      goto done;
    case CURLUE_BAD_PORT_NUMBER:
      why = NOT_URL "bad port";
      goto done;
    case CURLUE_BAD_HOSTNAME:
    case CURLUE_BAD_IPV6:
      why = NOT_URL "bad host name";
      goto done;
    case CURLUE_BAD_LOGIN:
    case CURLUE_BAD_USER:
    case CURLUE_BAD_PASSWORD:
      why = NOT_URL "bad user or password";
      goto done;
    case CURLUE_BAD_PATH:
      why = NOT_URL "bad path";
      goto done;
    case CURLUE_BAD_QUERY:
      why = NOT_URL "bad query";
      goto done;
    case CURLUE_BAD_FRAGMENT:
      why = NOT_URL "bad fragment";
      goto done;
    default:
      why = NOT_URL "malformed URL";
      goto done;
  }
  char *host = NULL;
  if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host || !*host)
    why = NOT_URL "no host";
  curl_free(host);
done:
  curl_url_cleanup(u);
  free(z);
  return why;
}
