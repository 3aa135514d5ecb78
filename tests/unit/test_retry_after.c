/* Unit tests of the Retry-After parser (src/fetch/retry_after.h), a table:
 * both forms (delay-seconds, and an HTTP-date in each of the three formats
 * HTTP allows), dates in the past (0), garbage, signs, fractions, units,
 * huge values (saturated), surrounding whitespace, input that is not
 * NUL-terminated or holds a NUL, over-long input. Then a cross-check of the
 * seconds form against strtoull on seeded random digit strings, and of the
 * date form against timegm on seeded random dates. */
#define _GNU_SOURCE /* timegm */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fetch/retry_after.h"
#include "wp_test.h"
#include "wp_test_util.h"

#define SEC 1000000000LL
/* Sun, 06 Nov 1994 08:49:37 GMT, RFC 9110's example. */
#define T1994 784111777LL

static const struct {
  const char *in;
  int64_t now_s;
  int rc;
  int64_t want_s; /* when rc == 0 */
} cases[] = {
    {"120", 0, 0, 120},
    {"0", 0, 0, 0},
    {"000017", 0, 0, 17},
    {" 5", 0, 0, 5},
    {"5 ", 0, 0, 5},
    {"\t 42 \t", 0, 0, 42},
    {"999999999", 0, 0, 999999999},
    {"1000000000", 0, 0, WP__RETRY_AFTER_MAX_S},
    {"18446744073709551616", 0, 0, WP__RETRY_AFTER_MAX_S}, /* 2^64 */
    {"99999999999999999999999999999999999999", 0, 0, WP__RETRY_AFTER_MAX_S},
    {"Sun, 06 Nov 1994 08:49:37 GMT", T1994 - 30, 0, 30},   /* IMF-fixdate */
    {"Sunday, 06-Nov-94 08:49:37 GMT", T1994 - 30, 0, 30},  /* RFC 850 */
    {"Sun Nov  6 08:49:37 1994", T1994 - 30, 0, 30},        /* asctime */
    {"  Sun, 06 Nov 1994 08:49:37 GMT\t", T1994 - 1, 0, 1}, /* whitespace */
    {"Sun, 06 Nov 1994 08:49:37 GMT", T1994, 0, 0},         /* now */
    {"Sun, 06 Nov 1994 08:49:37 GMT", T1994 + 3600, 0, 0},  /* past */
    {"Thu, 01 Jan 1970 00:00:00 GMT", 1700000000, 0, 0},    /* long past */
    {"Fri, 31 Dec 9999 23:59:59 GMT", 0, 0, WP__RETRY_AFTER_MAX_S},
    {"", 0, -1, 0},
    {"   ", 0, -1, 0},
    {"\t", 0, -1, 0},
    {"-5", 0, -1, 0},
    {"+5", 0, -1, 0},
    {"1.5", 0, -1, 0},
    {"5s", 0, -1, 0},
    {"5 s", 0, -1, 0},
    {"1 2", 0, -1, 0},
    {"0x10", 0, -1, 0},
    {"1e3", 0, -1, 0},
    {"soon", 0, -1, 0},
    {"Sun", 0, -1, 0},
    {"GMT", 0, -1, 0},
    {"Sun, 32 Nov 1994 08:49:37 GMT", 0, -1, 0},
    {"Sun, 06 Nov 1994 25:49:37 GMT", 0, -1, 0},
    {"06 Nov 1994 08:49:37 GMT", 0, -1, 0}, /* no day name: not HTTP */
    /* Dates to curl_getdate, but no HTTP-date starts so (fuzz_retry_after
     * found them accepted): refused. */
    {", 06 Nov 1994 08:49:37 GMT", 0, -1, 0},
    {"-06 Nov 1994 08:49:37 GMT", 0, -1, 0},
    {"Nov 06 1994 08:49:37 GMT", 0, -1, 0},
    {"GMT 06 Nov 1994 08:49:37", 0, -1, 0},
    {"Su, 06 Nov 1994 08:49:37 GMT", 0, -1, 0},
    {"sun, 06 nov 1994 08:49:37 gmt", T1994 - 30, 0, 30}, /* any case */
    {"SUNDAY, 06-Nov-94 08:49:37 GMT", T1994 - 30, 0, 30},
    /* now far from the date: no overflow (fuzz_retry_after: UBSan). */
    {"Sun, 06 Nov 1994 08:49:37 GMT", INT64_MIN, 0, WP__RETRY_AFTER_MAX_S},
    {"Sun, 06 Nov 1994 08:49:37 GMT", INT64_MAX, 0, 0},
    {"Sun, 06 Nov 1583 08:49:37 GMT", INT64_MAX, 0, 0},
    {"\xff\xfe\x01", 0, -1, 0},
    {"5\r\n", 0, -1, 0},
};

TEST(table_of_values) {
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int64_t d = -7;
    int rc = wp__retry_after_parse(cases[i].in, strlen(cases[i].in),
                                   cases[i].now_s, &d);
    if (rc != cases[i].rc)
      WP_FAIL_("case %zu '%s': rc %d, want %d", i, cases[i].in, rc,
               cases[i].rc);
    if (rc == 0 && d != cases[i].want_s * SEC)
      WP_FAIL_("case %zu '%s': %lld ns, want %lld s", i, cases[i].in,
               (long long)d, (long long)cases[i].want_s);
    if (rc != 0 && d != -7) WP_FAIL_("case %zu: output touched on failure", i);
  }
}

TEST(length_not_terminator_and_embedded_nul) {
  int64_t d;
  ASSERT_EQ(wp__retry_after_parse("12345", 3, 0, &d), 0);
  ASSERT_EQ(d, 123 * SEC);
  ASSERT_EQ(wp__retry_after_parse("7", 0, 0, &d), -1);
  ASSERT_EQ(wp__retry_after_parse("1\0002", 3, 0, &d), -1);
  static const char date[] = "Sun, 06 Nov 1994 08:49:37 GMT";
  char buf[64];
  memcpy(buf, date, sizeof date - 1); /* no terminator inside the length */
  memset(buf + sizeof date - 1, 'x', sizeof buf - (sizeof date - 1));
  ASSERT_EQ(wp__retry_after_parse(buf, sizeof date - 1, T1994 - 9, &d), 0);
  ASSERT_EQ(d, 9 * SEC);
  char withnul[] = "Sun, 06 Nov\0 1994 08:49:37 GMT";
  ASSERT_EQ(wp__retry_after_parse(withnul, sizeof withnul - 1, 0, &d), -1);
  /* Over-long: a date is at most 63 bytes; digits may be any length. */
  char longv[200];
  memset(longv, ' ', sizeof longv);
  memcpy(longv + 70, date, sizeof date - 1);
  ASSERT_EQ(wp__retry_after_parse(longv, sizeof longv, 0, &d), 0); /* trim */
  memset(longv, 'A', sizeof longv);
  ASSERT_EQ(wp__retry_after_parse(longv, sizeof longv, 0, &d), -1);
  memset(longv, '9', sizeof longv);
  ASSERT_EQ(wp__retry_after_parse(longv, sizeof longv, 0, &d), 0);
  ASSERT_EQ(d, WP__RETRY_AFTER_MAX_S * SEC);
  ASSERT_EQ(wp__retry_after_parse(NULL, 5, 0, &d), -1);
  ASSERT_EQ(wp__retry_after_parse("5", 1, 0, NULL), -1);
}

TEST(seconds_match_strtoull_on_random_digits) {
  uint64_t seed = wp_test_seed();
  for (int k = 0; k < 20000; k++) {
    char s[24];
    size_t n = 1 + rng_below(&seed, 12);
    for (size_t i = 0; i < n; i++) s[i] = (char)('0' + rng_below(&seed, 10));
    s[n] = '\0';
    unsigned long long v = strtoull(s, NULL, 10);
    if (v > (unsigned long long)WP__RETRY_AFTER_MAX_S)
      v = WP__RETRY_AFTER_MAX_S;
    int64_t d;
    ASSERT_EQ(wp__retry_after_parse(s, n, 0, &d), 0);
    if (d != (int64_t)v * SEC) WP_FAIL_("'%s': %lld", s, (long long)d);
  }
}

TEST(dates_match_timegm_on_random_dates) {
  static const char *days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char *months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  uint64_t seed = wp_test_seed();
  for (int k = 0; k < 5000; k++) {
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    tm.tm_year = 71 + (int)rng_below(&seed, 60); /* 1971 .. 2030 */
    tm.tm_mon = (int)rng_below(&seed, 12);
    tm.tm_mday = 1 + (int)rng_below(&seed, 28);
    tm.tm_hour = (int)rng_below(&seed, 24);
    tm.tm_min = (int)rng_below(&seed, 60);
    tm.tm_sec = (int)rng_below(&seed, 60);
    time_t t = timegm(&tm); /* also fills tm_wday */
    char s[64];
    int n = snprintf(s, sizeof s, "%s, %02d %s %04d %02d:%02d:%02d GMT",
                     days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
                     tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    int64_t ahead = (int64_t)rng_below(&seed, 100000);
    int64_t d;
    ASSERT_EQ(wp__retry_after_parse(s, (size_t)n, (int64_t)t - ahead, &d), 0);
    if (d != ahead * SEC) WP_FAIL_("'%s': %lld, want %lld s", s, (long long)d, (long long)ahead);
  }
}

int main(int argc, char **argv) { return wp_test_main(argc, argv); }
