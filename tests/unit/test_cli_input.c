/* Unit tests of the URL list reader (src/cli/input.h).
 *
 * What is checked: wp__check_url's verdict and reason on a table of URLs;
 * the reader over temporary files: trimming (spaces, tabs, CRLF), a last
 * line with no newline, blank and '#' lines skipped, line numbers and file
 * names across two files, lines at and past WP__LINE_MAX (a 1 MB line is
 * bad, truncated to its first 8192 bytes, and the next line is still read),
 * NUL and other control bytes, a directory / a missing file / stdin twice
 * refused at open, a FIFO read as a stream (each line is returned before the
 * writer sends the next), stdin, empty input, 100,000 lines.
 *
 * Threads are coordinated with semaphores with a bound (a lost line fails
 * with a message instead of hanging), never with sleeps.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/input.h"
#include "wp_test.h"

enum { WATCHDOG_S = 10 };

/* ---- helpers ------------------------------------------------------------ */

typedef struct tmpdir {
  char path[512];
} tmpdir;

static void tmpdir_make(tmpdir *t) {
  const char *base = getenv("TMPDIR");
  /* snprintf writes t->path, it does not read it. */
  /* cppcheck-suppress ctuuninitvar */
  snprintf(t->path, sizeof t->path, "%s/wp_cli_input_XXXXXX",
           base && *base ? base : "/tmp");
  ASSERT(mkdtemp(t->path) != NULL);
}

/* Removes the directory and the files (and empty directories) in it. */
static void tmpdir_remove(tmpdir *t) {
  DIR *d = opendir(t->path);
  if (!d) return;
  struct dirent *e;
  char p[1024];
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    snprintf(p, sizeof p, "%s/%s", t->path, e->d_name);
    if (unlink(p) != 0) rmdir(p);
  }
  closedir(d);
  rmdir(t->path);
}

static char *tmp_file(tmpdir *t, const char *name, const char *data,
                      size_t len) {
  char *p = malloc(1024);
  ASSERT(p != NULL);
  snprintf(p, 1024, "%s/%s", t->path, name);
  if (data) {
    FILE *f = fopen(p, "wb");
    ASSERT(f != NULL);
    if (len) ASSERT_EQ(fwrite(data, 1, len, f), len);
    ASSERT_EQ(fclose(f), 0);
  }
  return p;
}

/* One line as the reader returned it, copied. */
typedef struct got {
  char text[WP__LINE_MAX + 1];
  size_t len;
  char file[64];
  uint64_t lineno;
  const char *bad;
} got;

/* Reads everything (at most max lines) from the files. */
static size_t read_all(char *const *files, size_t nfiles, got *out,
                       size_t max) {
  wp__reader *r = NULL;
  char err[512];
  if (wp__reader_open(&r, files, nfiles, err, sizeof err) != 0)
    WP_FAIL_("open: %s", err);
  ASSERT(r != NULL);
  size_t n = 0;
  wp__line l;
  int rc;
  while ((rc = wp__reader_next(r, &l, err, sizeof err)) == 1) {
    ASSERT_LT(n, max);
    ASSERT_LE(l.len, WP__LINE_MAX);
    ASSERT_EQ(l.text[l.len], '\0');
    memcpy(out[n].text, l.text, l.len + 1);
    out[n].len = l.len;
    snprintf(out[n].file, sizeof out[n].file, "%s", l.file);
    out[n].lineno = l.lineno;
    out[n].bad = l.bad;
    n++;
  }
  if (rc != 0) WP_FAIL_("next: %d %s", rc, err);
  ASSERT_EQ(wp__reader_next(r, &l, err, sizeof err), 0); /* stays at end */
  wp__reader_close(r);
  return n;
}

static void expect_line(const got *g, const char *text, uint64_t lineno,
                        const char *bad) {
  if (g->len != strlen(text) || memcmp(g->text, text, g->len) != 0)
    WP_FAIL_("line %llu: got \"%s\" (%zu bytes), want \"%s\"",
             (unsigned long long)g->lineno, g->text, g->len, text);
  ASSERT_EQ(g->lineno, lineno);
  if (bad == NULL) {
    if (g->bad) WP_FAIL_("\"%s\" is bad: %s", text, g->bad);
  } else {
    ASSERT_STREQ(g->bad, bad);
  }
}

static got *lines_alloc(size_t n) {
  got *g = calloc(n, sizeof *g);
  ASSERT(g != NULL);
  return g;
}

static void sem_wait_bounded(sem_t *s, const char *what) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += WATCHDOG_S;
  while (sem_timedwait(s, &ts) != 0) {
    int e = errno;
    if (e == EINTR) continue;
    if (e == ETIMEDOUT) WP_FAIL_("%s: not within %d s", what, WATCHDOG_S);
    WP_FAIL_("sem_timedwait: errno %d", e);
  }
}

static void write_fd_all(int fd, const char *s, size_t n) {
  while (n) {
    ssize_t w = write(fd, s, n);
    if (w < 0 && errno == EINTR) continue;
    ASSERT(w > 0);
    s += w;
    n -= (size_t)w;
  }
}

#define TOO_LONG "line longer than 8192 bytes"
#define CONTROL "line holds control bytes"

/* ---- wp__check_url ------------------------------------------------------ */

TEST(check_url_table) {
  static const struct {
    const char *url;
    const char *why; /* NULL: a good URL */
  } cases[] = {
      {"http://example.com", NULL},
      {"https://example.com/a/b?c=d&e=f#g", NULL},
      {"HTTP://EXAMPLE.COM/", NULL},
      {"HtTpS://x", NULL},
      {"http://127.0.0.1:8080/x", NULL},
      {"http://[::1]:80/", NULL},
      {"http://user:pw@host/", NULL},
      {"http://host:/", NULL},
      {"http://ex\xc3\xa9.com/caf\xc3\xa9", NULL},
      {"http://x/%zz", NULL},
      {"bobobo", "not an http(s) URL: no scheme"},
      {"example.com/x", "not an http(s) URL: no scheme"},
      {"localhost:8080", "not an http(s) URL: no scheme"},
      {"localhost:8080/x", "not an http(s) URL: no scheme"},
      {"://x", "not an http(s) URL: no scheme"},
      {"1http://x", "not an http(s) URL: no scheme"},
      {"/just/a/path", "not an http(s) URL: no scheme"},
      {"ftp://x/", "not an http(s) URL: unsupported scheme"},
      {"file:///etc/passwd", "not an http(s) URL: unsupported scheme"},
      {"mailto:a@b", "not an http(s) URL: unsupported scheme"},
      {"httpx://x/", "not an http(s) URL: unsupported scheme"},
      {"ws://x/", "not an http(s) URL: unsupported scheme"},
      {"http:example.com", "not an http(s) URL: no // after the scheme"},
      {"http:/example.com", "not an http(s) URL: no // after the scheme"},
      {"http:", "not an http(s) URL: no // after the scheme"},
      {"http:///path", "not an http(s) URL: no host"},
      {"http://", "not an http(s) URL: no host"},
      {"https://?q", "not an http(s) URL: no host"},
      {"http://#f", "not an http(s) URL: no host"},
      {"http://user@/x", "not an http(s) URL: no host"},
      {"http://:80/", "not an http(s) URL: no host"},
      {"http://host:99999/", "not an http(s) URL: bad port"},
      {"http://host:8x/", "not an http(s) URL: bad port"},
      {"http://exa%20mple/", "not an http(s) URL: bad host name"},
      {"http://[::1/", "not an http(s) URL: bad host name"},
      {"http://a b/", "not an http(s) URL: holds a space"},
      {"http://x/a b", "not an http(s) URL: holds a space"},
      {"http://x/\x01", "not an http(s) URL: control bytes"},
      {"http://x/\x7f", "not an http(s) URL: control bytes"},
      {"", "not an http(s) URL: empty"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *why = wp__check_url(cases[i].url, strlen(cases[i].url));
    if (cases[i].why == NULL && why != NULL)
      WP_FAIL_("\"%s\" refused: %s", cases[i].url, why);
    if (cases[i].why != NULL && (why == NULL || strcmp(why, cases[i].why) != 0))
      WP_FAIL_("\"%s\": got %s, want %s", cases[i].url, why ? why : "(ok)",
               cases[i].why);
    const char *lib = wp__check_url_libcurl(cases[i].url, strlen(cases[i].url));
    if ((why == NULL) != (lib == NULL) || (why && strcmp(why, lib) != 0))
      WP_FAIL_("\"%s\": %s, but libcurl's path says %s", cases[i].url,
               why ? why : "(ok)", lib ? lib : "(ok)");
  }
  /* The length is what counts, not a NUL: a prefix is checked alone. */
  ASSERT(wp__check_url("http://x/ and more", 9) == NULL);
  ASSERT_STREQ(wp__check_url("http://x/\0y", 11),
               "not an http(s) URL: control bytes");
}

/* The fast path takes the plain URLs (else it would save nothing) and
 * leaves to libcurl everything it does not fully know. */
TEST(url_fast_path_table) {
  static const struct {
    const char *url;
    bool simple;
  } cases[] = {
      {"http://127.0.0.1:28111/f.txt?i=1", true},
      {"https://www.example.com/a/b.html?x=1&y=%2F;z=(*),+!$'@:~_-", true},
      {"HTTP://Example.COM", true},
      {"HtTpS://x1.a-b.example:443?q", true},
      {"http://localhost:1/", true},
      {"http://0.0.0.0:65535//a//", true},
      {"http://a.example.com./", false}, /* empty last label */
      {"http://1.2.3.256/", false},      /* not a quad: libcurl decides */
      {"http://01.2.3.4/", false},       /* octal to some */
      {"http://1.2.3/", false},          /* a.b.c form */
      {"http://3.example.1/", false},    /* last label numeric */
      {"http://0x7f.example/", true},
      {"http://-a.example/", false},
      {"http://a-.example/", false},
      {"http://a_b.example/", false},
      {"http://h:/", false},
      {"http://h:0/", false},
      {"http://h:08/", false},
      {"http://h:65536/", false},
      {"http://h:123456/", false},
      {"http://u@h/", false},
      {"http://[::1]/", false},
      {"http://h/#frag", false},
      {"http://h#frag", false},
      {"http://h/%zz", false},
      {"http://h/%4", false},
      {"http://h/a|b", false},
      {"http://h/caf\xc3\xa9", false},
      {"http://h/a b", false},
      {"ftp://h/", false},
      {"http:/h/", false},
      {"http://", false},
      {"https:", false},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    size_t n = strlen(cases[i].url);
    if (wp__url_is_simple(cases[i].url, n) != cases[i].simple)
      WP_FAIL_("\"%s\": simple %d, want %d", cases[i].url, !cases[i].simple,
               cases[i].simple);
    if (cases[i].simple && wp__check_url_libcurl(cases[i].url, n) != NULL)
      WP_FAIL_("\"%s\": simple, but libcurl refuses it", cases[i].url);
  }
  /* A host of 253 bytes in labels of 63 is plain; one byte more is not. */
  char u[300] = "http://";
  size_t n = 7;
  for (int l = 0; l < 4; l++) {
    if (l) u[n++] = '.';
    for (int k = 0; k < (l < 3 ? 63 : 61); k++) u[n++] = 'a';
  }
  u[n] = '\0';
  ASSERT(n - 7 == 253);
  ASSERT(wp__url_is_simple(u, n));
  ASSERT(wp__check_url_libcurl(u, n) == NULL);
  u[n++] = 'b';
  ASSERT(!wp__url_is_simple(u, n));
  memset(u + 7, 'a', 64); /* a first label of 64 bytes */
  ASSERT(!wp__url_is_simple(u, 7 + 64));
}

/* ---- reading files ------------------------------------------------------ */

TEST(trim_crlf_blank_comment) {
  tmpdir t;
  tmpdir_make(&t);
  static const char data[] =
      "  http://a/  \r\n"       /* 1 */
      "\n"                      /* 2 */
      "\t \r\n"                 /* 3 */
      "# a comment\n"           /* 4 */
      "   # indented comment\n" /* 5 */
      "http://b/\r\n"           /* 6 */
      "bobobo\n"                /* 7 */
      "http://b/#frag\n"        /* 8: '#' inside is not a comment */
      "ftp://x/ \n"             /* 9 */
      "\r\n"                    /* 10 */
      "\t http://c/";           /* 11, no newline */
  char *f = tmp_file(&t, "list", data, sizeof data - 1);
  got *g = lines_alloc(16);
  size_t n = read_all(&f, 1, g, 16);
  ASSERT_EQ(n, 6);
  expect_line(&g[0], "http://a/", 1, NULL);
  expect_line(&g[1], "http://b/", 6, NULL);
  expect_line(&g[2], "bobobo", 7, "not an http(s) URL: no scheme");
  expect_line(&g[3], "http://b/#frag", 8, NULL);
  expect_line(&g[4], "ftp://x/", 9, "not an http(s) URL: unsupported scheme");
  expect_line(&g[5], "http://c/", 11, NULL);
  for (size_t i = 0; i < n; i++) ASSERT_STREQ(g[i].file, f);
  free(g);
  free(f);
  tmpdir_remove(&t);
}

TEST(two_files_numbering) {
  tmpdir t;
  tmpdir_make(&t);
  char *files[3];
  files[0] = tmp_file(&t, "one", "http://a/1\nhttp://a/2\n", 22);
  files[1] = tmp_file(&t, "empty", "", 0);
  files[2] = tmp_file(&t, "two", "# head\n\nhttp://b/1\nhttp://b/2", 29);
  got *g = lines_alloc(8);
  size_t n = read_all(files, 3, g, 8);
  ASSERT_EQ(n, 4);
  expect_line(&g[0], "http://a/1", 1, NULL);
  expect_line(&g[1], "http://a/2", 2, NULL);
  expect_line(&g[2], "http://b/1", 3, NULL);
  expect_line(&g[3], "http://b/2", 4, NULL);
  ASSERT_STREQ(g[0].file, files[0]);
  ASSERT_STREQ(g[1].file, files[0]);
  ASSERT_STREQ(g[2].file, files[2]);
  ASSERT_STREQ(g[3].file, files[2]);
  /* The job IDs the tool gives are the reading order: 1..4 across files. */
  free(g);
  for (int i = 0; i < 3; i++) free(files[i]);
  tmpdir_remove(&t);
}

TEST(long_lines) {
  tmpdir t;
  tmpdir_make(&t);
  size_t big = 1 << 20;
  size_t cap = big + 8 * WP__LINE_MAX + 30100 + 256;
  char *data = malloc(cap);
  ASSERT(data != NULL);
  size_t len = 0;
#define PUT(s, n)                 \
  do {                            \
    ASSERT_LE(len + (n), cap);    \
    memcpy(data + len, (s), (n)); \
    len += (n);                   \
  } while (0)
#define FILL(c, n)                \
  do {                            \
    ASSERT_LE(len + (n), cap);    \
    memset(data + len, (c), (n)); \
    len += (n);                   \
  } while (0)
  /* 1: a 1 MB line */
  PUT("http://x/", 9);
  FILL('a', big);
  PUT("\n", 1);
  /* 2: the next line is still read */
  PUT("http://next/\n", 13);
  /* 3: exactly WP__LINE_MAX bytes: fine */
  PUT("http://x/", 9);
  FILL('b', WP__LINE_MAX - 9);
  PUT("\n", 1);
  /* 4: one byte more: too long */
  PUT("http://x/", 9);
  FILL('c', WP__LINE_MAX - 8);
  PUT("\n", 1);
  /* 5: WP__LINE_MAX bytes and then lots of trailing blanks: fine */
  PUT("http://x/", 9);
  FILL('d', WP__LINE_MAX - 9);
  FILL(' ', 10000);
  PUT("\t\r\n", 3);
  /* 6: lots of leading blanks (not stored) */
  FILL(' ', 20000);
  PUT("http://lead/\n", 13);
  /* 7: a comment line longer than WP__LINE_MAX: skipped */
  PUT("#", 1);
  FILL('#', 2 * WP__LINE_MAX);
  PUT("\n", 1);
  /* 8: too long, with blanks right at the bound then a byte after them */
  PUT("http://x/", 9);
  FILL('e', WP__LINE_MAX - 9);
  FILL(' ', 100);
  PUT("z\n", 2);
  /* 9: too long and holding a control byte: too long wins */
  PUT("http://x/\x01", 10);
  FILL('f', WP__LINE_MAX);
  PUT("\n", 1);
  /* 10: the last one, no newline */
  PUT("http://last/", 12);
  char *f = tmp_file(&t, "long", data, len);
  got *g = lines_alloc(16);
  size_t n = read_all(&f, 1, g, 16);
  ASSERT_EQ(n, 9);

  ASSERT_EQ(g[0].lineno, 1);
  ASSERT_STREQ(g[0].bad, TOO_LONG);
  ASSERT_EQ(g[0].len, WP__LINE_MAX);
  ASSERT(memcmp(g[0].text, data, WP__LINE_MAX) == 0);
  expect_line(&g[1], "http://next/", 2, NULL);

  ASSERT_EQ(g[2].lineno, 3);
  ASSERT(g[2].bad == NULL);
  ASSERT_EQ(g[2].len, WP__LINE_MAX);
  ASSERT_EQ(g[2].text[WP__LINE_MAX - 1], 'b');

  ASSERT_EQ(g[3].lineno, 4);
  ASSERT_STREQ(g[3].bad, TOO_LONG);
  ASSERT_EQ(g[3].len, WP__LINE_MAX);
  ASSERT_EQ(g[3].text[WP__LINE_MAX - 1], 'c');

  ASSERT_EQ(g[4].lineno, 5);
  ASSERT(g[4].bad == NULL);
  ASSERT_EQ(g[4].len, WP__LINE_MAX);
  ASSERT_EQ(g[4].text[WP__LINE_MAX - 1], 'd');

  expect_line(&g[5], "http://lead/", 6, NULL);

  ASSERT_EQ(g[6].lineno, 8);
  ASSERT_STREQ(g[6].bad, TOO_LONG);
  ASSERT_EQ(g[6].len, WP__LINE_MAX);

  ASSERT_EQ(g[7].lineno, 9);
  ASSERT_STREQ(g[7].bad, TOO_LONG);
  ASSERT_EQ(g[7].len, WP__LINE_MAX);
  ASSERT(memcmp(g[7].text, "http://x/\x01", 10) == 0);

  expect_line(&g[8], "http://last/", 10, NULL);
#undef PUT
#undef FILL
  free(g);
  free(data);
  free(f);
  tmpdir_remove(&t);
}

TEST(control_bytes) {
  tmpdir t;
  tmpdir_make(&t);
  static const char data[] =
      "http://a/\0b\n"      /* 1: NUL inside */
      "\0\n"                /* 2: only a NUL */
      "http://a/\tb\n"      /* 3: TAB inside (trimmed only at the ends) */
      "http://a/\rb\n"      /* 4: CR inside */
      "http://a/\x1b[0m\n"  /* 5: ESC */
      "http://a/\x7f\n"     /* 6: DEL */
      "\0# not a comment\n" /* 7 */
      "http://ok/\n";       /* 8 */
  char *f = tmp_file(&t, "ctl", data, sizeof data - 1);
  got *g = lines_alloc(16);
  size_t n = read_all(&f, 1, g, 16);
  ASSERT_EQ(n, 8);
  ASSERT_EQ(g[0].len, 11);
  ASSERT(memcmp(g[0].text, "http://a/\0b", 11) == 0);
  ASSERT_STREQ(g[0].bad, CONTROL);
  ASSERT_EQ(g[1].len, 1);
  ASSERT_EQ(g[1].text[0], '\0');
  ASSERT_STREQ(g[1].bad, CONTROL);
  for (int i = 2; i < 7; i++) {
    ASSERT_EQ(g[i].lineno, (uint64_t)i + 1);
    ASSERT_STREQ(g[i].bad, CONTROL);
  }
  expect_line(&g[7], "http://ok/", 8, NULL);
  free(g);
  free(f);
  tmpdir_remove(&t);
}

TEST(open_refuses) {
  tmpdir t;
  tmpdir_make(&t);
  char *good = tmp_file(&t, "good", "http://a/\n", 10);
  char *dir = tmp_file(&t, "adir", NULL, 0);
  ASSERT_EQ(mkdir(dir, 0700), 0);
  char *missing = tmp_file(&t, "missing", NULL, 0);
  char err[512];

  struct {
    char *files[3];
    size_t n;
    const char *name, *msg;
  } cases[] = {
      {{dir}, 1, dir, "Is a directory"},
      {{missing}, 1, missing, "No such file or directory"},
      {{good, missing}, 2, missing, "No such file or directory"},
      {{good, dir, good}, 3, dir, "Is a directory"},
      {{"-", good, "-"}, 3, "-", "more than once"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    wp__reader *r = (wp__reader *)&t; /* not NULL: open must clear it */
    err[0] = '\0';
    ASSERT_EQ(wp__reader_open(&r, cases[i].files, cases[i].n, err, sizeof err),
              -1);
    ASSERT(r == NULL);
    if (!strstr(err, cases[i].name) || !strstr(err, cases[i].msg))
      WP_FAIL_("case %zu: message \"%s\" does not name %s (%s)", i, err,
               cases[i].name, cases[i].msg);
  }
  /* An unreadable file (unless we are root, who reads anything). */
  if (geteuid() != 0) {
    ASSERT_EQ(chmod(good, 0), 0);
    wp__reader *r = NULL;
    ASSERT_EQ(wp__reader_open(&r, &good, 1, err, sizeof err), -1);
    ASSERT(strstr(err, good) && strstr(err, "Permission denied"));
  }
  wp__reader_close(NULL);
  free(good);
  free(dir);
  free(missing);
  tmpdir_remove(&t);
}

TEST(empty_input) {
  tmpdir t;
  tmpdir_make(&t);
  char *files[2];
  files[0] = tmp_file(&t, "empty", "", 0);
  files[1] = tmp_file(&t, "blank", "\n\n  \r\n# only\n#comments\n\t", 24);
  got *g = lines_alloc(1);
  ASSERT_EQ(read_all(files, 1, g, 1), 0);
  ASSERT_EQ(read_all(files + 1, 1, g, 1), 0);
  ASSERT_EQ(read_all(files, 2, g, 1), 0);
  free(g);
  free(files[0]);
  free(files[1]);
  tmpdir_remove(&t);
}

/* ---- streams: FIFO and stdin -------------------------------------------- */

typedef struct fifo_writer {
  const char *path;
  int nlines;
  sem_t ack; /* posted by the reader for each line it got */
  sem_t done;
} fifo_writer;

static void *fifo_writer_main(void *p) {
  fifo_writer *w = p;
  int fd = open(w->path, O_WRONLY); /* blocks until the reader opens */
  ASSERT(fd >= 0);
  char line[64];
  for (int i = 1; i <= w->nlines; i++) {
    int n = snprintf(line, sizeof line, "  http://h/%d\r\n", i);
    /* In two writes, so that a line also arrives in pieces. */
    write_fd_all(fd, line, 5);
    write_fd_all(fd, line + 5, (size_t)n - 5);
    if (i % 2) write_fd_all(fd, "# comment\n\n", 11);
    /* The next line is sent only once this one was returned: a reader that
     * waited for more input (or the end) would never get it. */
    sem_wait_bounded(&w->ack, "the reader to return a line from the FIFO");
  }
  write_fd_all(fd, "http://h/last", 13); /* no newline: ends at close */
  close(fd);
  sem_post(&w->done);
  return NULL;
}

TEST(fifo_stream) {
  tmpdir t;
  tmpdir_make(&t);
  char *path = tmp_file(&t, "fifo", NULL, 0);
  ASSERT_EQ(mkfifo(path, 0600), 0);
  fifo_writer w = {.path = path, .nlines = 50};
  ASSERT_EQ(sem_init(&w.ack, 0, 0), 0);
  ASSERT_EQ(sem_init(&w.done, 0, 0), 0);
  pthread_t tid;
  ASSERT_EQ(pthread_create(&tid, NULL, fifo_writer_main, &w), 0);

  wp__reader *r = NULL;
  char err[512];
  if (wp__reader_open(&r, &path, 1, err, sizeof err) != 0)
    WP_FAIL_("open: %s", err);
  wp__line l;
  char want[64];
  for (int i = 1; i <= w.nlines; i++) {
    ASSERT_EQ(wp__reader_next(r, &l, err, sizeof err), 1);
    snprintf(want, sizeof want, "http://h/%d", i);
    ASSERT_STREQ(l.text, want);
    ASSERT(l.bad == NULL);
    ASSERT_EQ(l.lineno, (uint64_t)(i + i / 2 * 2)); /* comments: see writer */
    sem_post(&w.ack);
  }
  ASSERT_EQ(wp__reader_next(r, &l, err, sizeof err), 1);
  ASSERT_STREQ(l.text, "http://h/last");
  ASSERT_EQ(wp__reader_next(r, &l, err, sizeof err), 0);
  sem_wait_bounded(&w.done, "the FIFO writer to finish");
  ASSERT_EQ(pthread_join(tid, NULL), 0);
  wp__reader_close(r);
  sem_destroy(&w.ack);
  sem_destroy(&w.done);
  free(path);
  tmpdir_remove(&t);
}

TEST(stdin_stream) {
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  static const char data[] = "http://s/1\n# c\nhttp://s/2\n";
  write_fd_all(p[1], data, sizeof data - 1);
  close(p[1]);
  ASSERT(dup2(p[0], STDIN_FILENO) == STDIN_FILENO);
  close(p[0]);
  got *g = lines_alloc(4);
  ASSERT_EQ(read_all(NULL, 0, g, 4), 2);
  expect_line(&g[0], "http://s/1", 1, NULL);
  expect_line(&g[1], "http://s/2", 3, NULL);
  ASSERT_STREQ(g[0].file, "-");
  free(g);
  /* stdin is not closed by the reader. */
  ASSERT(fcntl(STDIN_FILENO, F_GETFD) != -1);
}

TEST(many_lines) {
  tmpdir t;
  tmpdir_make(&t);
  char *path = tmp_file(&t, "many", NULL, 0);
  FILE *f = fopen(path, "wb");
  ASSERT(f != NULL);
  const int n = 100000;
  for (int i = 1; i <= n; i++) {
    fprintf(f, "http://h/%d\n", i);
    if (i % 1000 == 0) fputs("# every thousand\n", f);
  }
  ASSERT_EQ(fclose(f), 0);

  wp__reader *r = NULL;
  char err[512];
  ASSERT_OK(wp__reader_open(&r, &path, 1, err, sizeof err));
  wp__line l;
  char want[64];
  int got_n = 0, rc;
  uint64_t lineno = 0;
  while ((rc = wp__reader_next(r, &l, err, sizeof err)) == 1) {
    got_n++;
    lineno++;
    int wl = snprintf(want, sizeof want, "http://h/%d", got_n);
    if (l.len != (size_t)wl || memcmp(l.text, want, l.len) != 0)
      WP_FAIL_("line %d: \"%s\"", got_n, l.text);
    ASSERT(l.bad == NULL);
    ASSERT_EQ(l.lineno, lineno);
    if (got_n % 1000 == 0) lineno++; /* the comment after it */
  }
  ASSERT_EQ(rc, 0);
  ASSERT_EQ(got_n, n);
  wp__reader_close(r);
  free(path);
  tmpdir_remove(&t);
}

int main(int argc, char **argv) { return wp_test_main(argc, argv); }
