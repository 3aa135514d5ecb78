/* Fuzz target: the Retry-After parser (src/fetch/retry_after.c).
 *
 * The input is the header value, called with a heap copy of exactly its
 * length (ASan sees a read past it). An input "@N\n<value>" first sets the
 * current time to the integer N (else 1700000000, November 2023); every
 * value is also parsed at now = 0, INT64_MIN and INT64_MAX.
 *
 * Checked, against references written here and libcurl's curl_getdate:
 *  - the result is 0 or -1; -1 leaves *delay_ns untouched; 0 or -1 does not
 *    depend on now;
 *  - delay-seconds (the value, spaces and tabs trimmed, all digits): the
 *    delay is strtoull's value, WP__RETRY_AFTER_MAX_S past it or on ERANGE,
 *    times 10^9, whatever now;
 *  - anything else is an HTTP-date read as curl_getdate reads it, with the
 *    rules by which our parser is deliberately stricter than curl:
 *      . at most 63 bytes after trimming, no NUL (curl reads a C string);
 *      . it starts with a day name, Mon .. Sun in any case: each of
 *        RFC 9110's three forms does, while curl_getdate takes a date
 *        anywhere ("Nov 6 1994", ", 06 Nov 1994", "-06 Nov 1994");
 *    past those, curl's reading is the reference (curl's own leniency
 *    stays: a zone other than GMT, a missing time, a day 31 in February);
 *    the delay is date - now in 128-bit arithmetic, 0 if not in the future,
 *    at most WP__RETRY_AFTER_MAX_S;
 *  - an independent strict parser of RFC 9110's three forms (IMF-fixdate,
 *    RFC 850, asctime; case-sensitive names, valid calendar dates, seconds
 *    up to 60) with its own calendar arithmetic: whatever it accepts, our
 *    parser accepts with the same delay. Where it follows curl rather than
 *    RFC 9110: a year below 100 (RFC 850's two digits, or "0094") is
 *    1971..2070, curl's fixed window (RFC 9110 says "not more than 50 years
 *    ahead of now": the same window until 2020, in 2026 years 71..76
 *    differ; either reading is in the past or 45 years ahead, a delay of 0
 *    or the cap); a year 100..1582 is refused (curl: before the Gregorian
 *    calendar); 1969-12-31 23:59:59 is one second later (curl_getdate
 *    returns -1 for failure).
 */
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fetch/retry_after.h"
#include "fuzz.h"

#define SEC 1000000000LL
#define UNTOUCHED (-7)

typedef __int128 i128;

static int64_t clamp_delay(i128 d) {
  if (d < 0) return 0;
  if (d > WP__RETRY_AFTER_MAX_S) return WP__RETRY_AFTER_MAX_S;
  return (int64_t)d;
}

/* ---- a strict RFC 9110 HTTP-date parser, independent of curl ---------- */

static const char *const wkday[] = {"Mon", "Tue", "Wed", "Thu",
                                    "Fri", "Sat", "Sun"};
static const char *const weekday[] = {"Monday",   "Tuesday", "Wednesday",
                                      "Thursday", "Friday",  "Saturday",
                                      "Sunday"};
static const char *const month[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* Matches literal word w at *p (case-sensitive), advancing. */
static bool lit(const char **p, const char *end, const char *w) {
  size_t l = strlen(w);
  if ((size_t)(end - *p) < l || memcmp(*p, w, l) != 0) return false;
  *p += l;
  return true;
}

/* Exactly n digits. */
static bool num(const char **p, const char *end, int n, int *v) {
  if (end - *p < n) return false;
  *v = 0;
  for (int i = 0; i < n; i++) {
    if ((*p)[i] < '0' || (*p)[i] > '9') return false;
    *v = *v * 10 + ((*p)[i] - '0');
  }
  *p += n;
  return true;
}

static int name_of(const char **p, const char *end, const char *const *names,
                   int count) {
  for (int i = 0; i < count; i++)
    if (lit(p, end, names[i])) return i;
  return -1;
}

static bool time_of_day(const char **p, const char *end, int *h, int *m,
                        int *s) {
  return num(p, end, 2, h) && lit(p, end, ":") && num(p, end, 2, m) &&
         lit(p, end, ":") && num(p, end, 2, s) && *h <= 23 && *m <= 59 &&
         *s <= 60;
}

static bool leap(int64_t y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days since 1970-01-01, counted day by day over years (slow but plain). */
static int64_t days_since_epoch(int64_t y, int mon, int day) {
  static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int64_t d = 0;
  if (y >= 1970)
    for (int64_t k = 1970; k < y; k++) d += leap(k) ? 366 : 365;
  else
    for (int64_t k = y; k < 1970; k++) d -= leap(k) ? 366 : 365;
  for (int k = 0; k < mon; k++) d += mdays[k] + (k == 1 && leap(y));
  return d + day - 1;
}

static bool valid_day(int64_t y, int mon, int day) {
  static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return day >= 1 && day <= mdays[mon] + (mon == 1 && leap(y));
}

/* Parses s[0..n) as an HTTP-date; 1 and *t, or 0. */
static bool strict_date(const char *s, size_t n, i128 *t) {
  const char *p = s, *end = s + n;
  int day = 0, mon, h, m, sec, y4;
  int64_t year;
  const char *q = p;
  if (name_of(&q, end, weekday, 7) >= 0 && lit(&q, end, ", ")) {
    /* rfc850-date: Sunday, 06-Nov-94 08:49:37 GMT */
    int yy;
    p = q;
    if (!num(&p, end, 2, &day) || !lit(&p, end, "-") ||
        (mon = name_of(&p, end, month, 12)) < 0 || !lit(&p, end, "-") ||
        !num(&p, end, 2, &yy) || !lit(&p, end, " ") ||
        !time_of_day(&p, end, &h, &m, &sec) || !lit(&p, end, " GMT"))
      return false;
    year = yy;
  } else {
    if (name_of(&p, end, wkday, 7) < 0) return false;
    if (lit(&p, end, ", ")) {
      /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
      if (!num(&p, end, 2, &day) || !lit(&p, end, " ") ||
          (mon = name_of(&p, end, month, 12)) < 0 || !lit(&p, end, " ") ||
          !num(&p, end, 4, &y4) || !lit(&p, end, " ") ||
          !time_of_day(&p, end, &h, &m, &sec) || !lit(&p, end, " GMT"))
        return false;
    } else {
      /* asctime-date: Sun Nov  6 08:49:37 1994 */
      if (!lit(&p, end, " ") || (mon = name_of(&p, end, month, 12)) < 0 ||
          !lit(&p, end, " "))
        return false;
      if (!(lit(&p, end, " ") && num(&p, end, 1, &day)) &&
          !num(&p, end, 2, &day))
        return false;
      if (!lit(&p, end, " ") || !time_of_day(&p, end, &h, &m, &sec) ||
          !lit(&p, end, " ") || !num(&p, end, 4, &y4))
        return false;
    }
    year = y4;
  }
  if (p != end) return false;
  if (year < 100) year += year > 70 ? 1900 : 2000; /* curl's window */
  if (!valid_day(year, mon, day)) return false;
  *t = ((i128)days_since_epoch(year, mon, day) * 24 + h) * 3600 + m * 60 + sec;
  return true;
}

/* ---- the reference for our rules --------------------------------------- */

static bool ws(char c) { return c == ' ' || c == '\t'; }

/* Expected result of wp__retry_after_parse(s, n, now): -1, or 0 and *d. */
static int reference(const char *s, size_t n, int64_t now, int64_t *d,
                     bool *is_date) {
  *is_date = false;
  while (n && ws(*s)) s++, n--;
  while (n && ws(s[n - 1])) n--;
  if (n == 0) return -1;
  size_t k = 0;
  while (k < n && isdigit((unsigned char)s[k])) k++;
  if (k == n) {
    char *buf = malloc(n + 1);
    FUZZ_CHECK(buf, "out of memory");
    memcpy(buf, s, n);
    buf[n] = '\0';
    errno = 0;
    unsigned long long v = strtoull(buf, NULL, 10);
    free(buf);
    if (errno == ERANGE || v > (unsigned long long)WP__RETRY_AFTER_MAX_S)
      v = WP__RETRY_AFTER_MAX_S;
    *d = (int64_t)v * SEC;
    return 0;
  }
  *is_date = true;
  if (n > 63 || memchr(s, '\0', n)) return -1;
  bool day = false;
  for (int i = 0; i < 7; i++)
    if (n >= 3 && strncasecmp(s, wkday[i], 3) == 0) day = true;
  if (!day) return -1;
  char buf[64];
  memcpy(buf, s, n);
  buf[n] = '\0';
  time_t t = curl_getdate(buf, NULL);
  if (t == (time_t)-1) return -1;
  *d = clamp_delay((i128)t - now) * SEC;
  return 0;
}

static int call(const uint8_t *data, size_t size, int64_t now, int64_t *d) {
  char *copy = malloc(size ? size : 1);
  FUZZ_CHECK(copy, "out of memory");
  if (size) memcpy(copy, data, size);
  *d = UNTOUCHED;
  int rc = wp__retry_after_parse(copy, size, now, d);
  free(copy);
  FUZZ_CHECK(rc == 0 || rc == -1, "rc %d", rc);
  if (rc != 0)
    FUZZ_CHECK(*d == UNTOUCHED, "failed parse wrote %lld", (long long)*d);
  return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 300) return 0; /* longer says nothing new; keeps runs fast */
  int64_t now = 1700000000;
  if (size > 0 && data[0] == '@') {
    const uint8_t *nl = memchr(data, '\n', size);
    if (!nl) return 0;
    char nb[32];
    size_t l = (size_t)(nl - data) - 1;
    if (l >= sizeof nb) return 0;
    memcpy(nb, data + 1, l);
    nb[l] = '\0';
    errno = 0;
    long long v = strtoll(nb, NULL, 10);
    now = (int64_t)v;
    size -= (size_t)(nl - data) + 1;
    data = nl + 1;
  }
  const char *s = (const char *)data;
  const int64_t nows[] = {now, 0, INT64_MIN, INT64_MAX};
  int rc0 = 0;
  for (size_t i = 0; i < sizeof nows / sizeof nows[0]; i++) {
    int64_t d, want = UNTOUCHED;
    bool is_date;
    int rc = call(data, size, nows[i], &d);
    int wrc = reference(s, size, nows[i], &want, &is_date);
    FUZZ_CHECK(rc == wrc, "'%.*s' at now %lld: rc %d, want %d", (int)size, s,
               (long long)nows[i], rc, wrc);
    if (rc == 0)
      FUZZ_CHECK(d == want, "'%.*s' at now %lld: %lld ns, want %lld", (int)size,
                 s, (long long)nows[i], (long long)d, (long long)want);
    if (i == 0) rc0 = rc;
    FUZZ_CHECK(rc == rc0, "'%.*s': accepted at one now, not another", (int)size,
               s);

    /* The strict parser, on the trimmed value. */
    const char *t = s;
    size_t n = size;
    while (n && ws(*t)) t++, n--;
    while (n && ws(t[n - 1])) n--;
    i128 at;
    if (strict_date(t, n, &at)) {
      if (at == -1) at = 0; /* curl_getdate's answer: -1 means failure */
      if (at < (i128)days_since_epoch(1583, 0, 1) * 86400) {
        FUZZ_CHECK(rc == -1, "'%.*s' before 1583 accepted", (int)n, t);
      } else {
        FUZZ_CHECK(rc == 0, "RFC 9110 date '%.*s' refused", (int)n, t);
        FUZZ_CHECK(d == clamp_delay(at - nows[i]) * SEC,
                   "'%.*s' at now %lld: %lld ns, want %lld s", (int)n, t,
                   (long long)nows[i], (long long)d,
                   (long long)clamp_delay(at - nows[i]));
      }
    }
  }
  return 0;
}
