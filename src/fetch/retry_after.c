/* Retry-After parsing: see retry_after.h. The seconds form is ours (digits
 * only, saturating); the date form is libcurl's curl_getdate, which knows
 * the three date formats HTTP allows and is itself fuzzed by curl (OSS-Fuzz);
 * it needs a NUL-terminated copy, kept on the stack and bounded. */
#include "fetch/retry_after.h"

#include <curl/curl.h>
#include <string.h>

#define DATE_MAX 64

static int is_ws(char c) { return c == ' ' || c == '\t'; }

/* s starts with Mon .. Sun, in any case (curl_getdate's matching). */
static int starts_with_day(const char *s, size_t n) {
  static const char days[] = "montuewedthufrisatsun";
  if (n < 3) return 0;
  for (size_t d = 0; d < 7; d++) {
    size_t k = 0;
    while (k < 3 && (s[k] | 0x20) == days[3 * d + k]) k++;
    if (k == 3) return 1;
  }
  return 0;
}

int wp__retry_after_parse(const char *s, size_t n, int64_t now_s,
                          int64_t *delay_ns) {
  if (!s || !delay_ns) return -1;
  while (n > 0 && is_ws(s[0])) {
    s++;
    n--;
  }
  while (n > 0 && is_ws(s[n - 1])) n--;
  if (n == 0) return -1;

  size_t digits = 0;
  while (digits < n && s[digits] >= '0' && s[digits] <= '9') digits++;
  if (digits == n) {
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
      v = v * 10 + (s[i] - '0');
      if (v >= WP__RETRY_AFTER_MAX_S) {
        v = WP__RETRY_AFTER_MAX_S;
        break;
      }
    }
    *delay_ns = v * 1000000000LL;
    return 0;
  }

  /* An HTTP-date (each of RFC 9110's three forms) starts with a day name;
   * curl_getdate does not insist ("Nov 6 1994", ", 06 Nov 1994" and
   * "-06 Nov 1994" are dates to it): that much of RFC 9110 we enforce. */
  if (n >= DATE_MAX || !starts_with_day(s, n)) return -1;
  char buf[DATE_MAX];
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '\0') return -1; /* an embedded NUL would cut the copy */
    buf[i] = s[i];
  }
  buf[n] = '\0';
  time_t t = curl_getdate(buf, NULL);
  if (t == (time_t)-1) return -1;
  int64_t d; /* a year up to INT_MAX: t - now_s may overflow */
  if (__builtin_sub_overflow((int64_t)t, now_s, &d))
    d = now_s < 0 ? WP__RETRY_AFTER_MAX_S : 0;
  if (d < 0) d = 0;
  if (d > WP__RETRY_AFTER_MAX_S) d = WP__RETRY_AFTER_MAX_S;
  *delay_ns = d * 1000000000LL;
  return 0;
}
