/* Unit tests of the tool's pure parsers and encoders (src/cli/parse.h).
 *
 * What is checked, as tables: durations (every unit, decimals, compound,
 * the INT64_MAX edge, garbage), sizes (binary and decimal units, the
 * UINT64_MAX edge), bounded integers, the buffer's growth, JSON string
 * escaping (control bytes, quotes, backslash, every class of ill-formed
 * UTF-8 replaced by U+FFFD per maximal subpart, valid multibyte kept), CSV
 * quoting, the exact line of each output format for a few records (null
 * status and error, nan/inf/negative elapsed_ms), the reason phrases.
 *
 * Then a cross-check against real parsers: seeded random records with any
 * bytes in the URL and the error, written as jsonl and csv, are read back by
 * python3's json and csv modules (the script is fed to "python3 -" through
 * popen) and compared with what was encoded. Skipped, with a message, only
 * when there is no python3. Replay a failure with WP_TEST_SEED=<n>.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/parse.h"
#include "wp_test.h"

#define MS ((int64_t)1000000)
#define SEC ((int64_t)1000000000)

/* ---- helpers ------------------------------------------------------------ */

/* Asserts that b holds exactly want[0..wn), printing both when not. */
static void expect_bytes(const char *what, const wp__buf *b, const char *want,
                         size_t wn) {
  ASSERT(!b->oom);
  if (b->len == wn && (wn == 0 || memcmp(b->data, want, wn) == 0)) return;
  fprintf(stderr, "%s:\n  got  (%zu) [", what, b->len);
  for (size_t i = 0; i < b->len; i++) {
    unsigned char c = (unsigned char)b->data[i];
    fprintf(stderr, c >= 0x20 && c < 0x7f ? "%c" : "\\x%02x", c);
  }
  fprintf(stderr, "]\n  want (%zu) [", wn);
  for (size_t i = 0; i < wn; i++) {
    unsigned char c = (unsigned char)want[i];
    fprintf(stderr, c >= 0x20 && c < 0x7f ? "%c" : "\\x%02x", c);
  }
  fprintf(stderr, "]\n");
  WP_FAIL_("%s: output differs", what);
}

static uint64_t rng_next(uint64_t *s) { /* splitmix64 */
  uint64_t z = (*s += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

static uint64_t rng_below(uint64_t *s, uint64_t n) { return rng_next(s) % n; }

/* ---- durations ---------------------------------------------------------- */

TEST(duration_valid) {
  static const struct {
    const char *s;
    int64_t ns;
  } cases[] = {
      {"0", 0},
      {"0s", 0},
      {"0ms", 0},
      {"1ns", 1},
      {"1us", 1000},
      {"1\xc2\xb5s", 1000},
      {"1\xce\xbcs", 1000},
      {"250ms", 250 * MS},
      {"30s", 30 * SEC},
      {"2m", 120 * SEC},
      {"1h", 3600 * SEC},
      {"1.5s", 1500 * MS},
      {".5s", 500 * MS},
      {"1.s", SEC},
      {"0.1s", 100 * MS},
      {"1.25h", 4500 * SEC},
      {"0.000000001s", 1},
      {"0.0000000001s", 0},
      {"1.0000000000000000000000001s", SEC},
      {"1m30s", 90 * SEC},
      {"1h2m3s4ms5us6ns", 3600 * SEC + 120 * SEC + 3 * SEC + 4 * MS + 5000 + 6},
      {"1s1s", 2 * SEC},
      {"1.5m0.5s", 90 * SEC + 500 * MS},
      {"007s", 7 * SEC},
      {"9223372036854775807ns", INT64_MAX},
      {"9223372036.854775807s", INT64_MAX},
      {"2562047h", 2562047LL * 3600 * SEC},
      {"2562047h47m16.854775807s", INT64_MAX},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int64_t ns = -12345;
    if (wp__parse_duration(cases[i].s, &ns) != 0)
      WP_FAIL_("duration \"%s\" refused", cases[i].s);
    if (ns != cases[i].ns)
      WP_FAIL_("duration \"%s\": got %lld, want %lld", cases[i].s,
               (long long)ns, (long long)cases[i].ns);
  }
}

TEST(duration_invalid) {
  static const char *const cases[] = {
      "",
      "s",
      "ms",
      "1",
      "10",
      "1.5",
      "-1s",
      "+1s",
      "-0",
      "1x",
      "1S",
      "1H",
      "1sec",
      "1 s",
      " 1s",
      "1s ",
      "1m30",
      "1..5s",
      ".s",
      "1.2.3s",
      "1e3s",
      "0x10s",
      "1d",
      "1mib",
      "9223372036854775808ns", /* INT64_MAX + 1 */
      "9223372036.854775808s", /* INT64_MAX + 1 */
      "2562048h",              /* past INT64_MAX ns */
      "99999999999999999999s", /* past UINT64_MAX */
      "9223372036854775807ns1ns" /* the sum overflows */,
      "2562047h47m16.854775808s",
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int64_t ns = -12345;
    if (wp__parse_duration(cases[i], &ns) != -1)
      WP_FAIL_("duration \"%s\" accepted (%lld)", cases[i], (long long)ns);
    ASSERT_EQ(ns, -12345); /* untouched on failure */
  }
  int64_t ns;
  ASSERT_EQ(wp__parse_duration(NULL, &ns), -1);
}

/* ---- sizes and integers ------------------------------------------------- */

TEST(size_valid) {
  static const struct {
    const char *s;
    uint64_t v;
  } cases[] = {
      {"0", 0},
      {"1048576", 1048576},
      {"100B", 100},
      {"100b", 100},
      {"512k", 512 * 1024},
      {"512K", 512 * 1024},
      {"512KiB", 512 * 1024},
      {"512kib", 512 * 1024},
      {"1KB", 1000},
      {"1kB", 1000},
      {"10M", 10ull << 20},
      {"10MiB", 10ull << 20},
      {"10MB", 10000000},
      {"1G", 1ull << 30},
      {"1GiB", 1ull << 30},
      {"1GB", 1000000000},
      {"2T", 2ull << 40},
      {"1TB", 1000000000000ull},
      {"1.5M", 1572864},
      {"1.M", 1ull << 20},
      {"0.5k", 512},
      {"0.0001k", 0},
      {"18446744073709551615", UINT64_MAX},
      {"18446744073709551615B", UINT64_MAX},
      {"16777215T", 16777215ull << 40},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint64_t v = 12345;
    if (wp__parse_size(cases[i].s, &v) != 0)
      WP_FAIL_("size \"%s\" refused", cases[i].s);
    if (v != cases[i].v)
      WP_FAIL_("size \"%s\": got %llu, want %llu", cases[i].s,
               (unsigned long long)v, (unsigned long long)cases[i].v);
  }
}

TEST(size_invalid) {
  static const char *const cases[] = {
      "",
      "M",
      "MiB",
      "-1",
      "+1",
      "1.5",
      "1.5B",
      "1 M",
      " 1M",
      "1M ",
      "1X",
      "1Mi",
      "1MiBs",
      "1e3",
      "0x10",
      "1,000",
      "18446744073709551616",
      "17179869184G", /* 2^64 */
      "16777216T",
      "99999999999999999999999k",
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint64_t v = 12345;
    if (wp__parse_size(cases[i], &v) != -1)
      WP_FAIL_("size \"%s\" accepted (%llu)", cases[i], (unsigned long long)v);
    ASSERT_EQ(v, 12345);
  }
}

TEST(uint_table) {
  static const struct {
    const char *s;
    uint64_t min, max;
    int rc;
    uint64_t v;
  } cases[] = {
      {"0", 0, 10, 0, 0},
      {"10", 0, 10, 0, 10},
      {"11", 0, 10, -1, 0},
      {"0", 1, 10, -1, 0},
      {"1", 1, 1, 0, 1},
      {"007", 0, 100, 0, 7},
      {"18446744073709551615", 0, UINT64_MAX, 0, UINT64_MAX},
      {"18446744073709551616", 0, UINT64_MAX, -1, 0},
      {"99999999999999999999", 0, UINT64_MAX, -1, 0},
      {"", 0, 10, -1, 0},
      {"-1", 0, 10, -1, 0},
      {"+1", 0, 10, -1, 0},
      {" 1", 0, 10, -1, 0},
      {"1 ", 0, 10, -1, 0},
      {"1k", 0, 10000, -1, 0},
      {"1.0", 0, 10, -1, 0},
      {"0x1", 0, 10, -1, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint64_t v = 12345;
    int rc = wp__parse_uint(cases[i].s, cases[i].min, cases[i].max, &v);
    if (rc != cases[i].rc)
      WP_FAIL_("uint \"%s\" in [%llu, %llu]: rc %d, want %d", cases[i].s,
               (unsigned long long)cases[i].min,
               (unsigned long long)cases[i].max, rc, cases[i].rc);
    ASSERT_EQ(v, rc == 0 ? cases[i].v : 12345);
  }
}

TEST(format_names) {
  enum wp__format f = WP__FMT_CSV;
  ASSERT_OK(wp__parse_format("text", &f));
  ASSERT_EQ(f, WP__FMT_TEXT);
  ASSERT_OK(wp__parse_format("jsonl", &f));
  ASSERT_EQ(f, WP__FMT_JSONL);
  ASSERT_OK(wp__parse_format("csv", &f));
  ASSERT_EQ(f, WP__FMT_CSV);
  static const char *const bad[] = {"", "json", "CSV", "text ", "xml"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ASSERT_EQ(wp__parse_format(bad[i], &f), -1);
}

/* ---- buffer ------------------------------------------------------------- */

TEST(buf_growth) {
  wp__buf b;
  wp__buf_init(&b);
  ASSERT_EQ(b.len, 0);
  wp__buf_append(&b, "", 0);
  ASSERT(b.data && b.data[0] == '\0');
  char want[5000];
  size_t wl = 0;
  for (int i = 0; i < 500; i++) {
    wp__buf_printf(&b, "%d,", i);
    wl += (size_t)snprintf(want + wl, sizeof want - wl, "%d,", i);
  }
  wp__buf_puts(&b, "end");
  memcpy(want + wl, "end", 3);
  wl += 3;
  expect_bytes("appended", &b, want, wl);
  ASSERT_EQ(b.data[b.len], '\0');
  /* One printf longer than the whole buffer so far. */
  char big[3000];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  wp__buf_reset(&b);
  ASSERT_EQ(b.len, 0);
  size_t cap = b.cap;
  wp__buf_printf(&b, "<%s>", big);
  ASSERT_EQ(b.len, sizeof big + 1);
  ASSERT(b.data[0] == '<' && b.data[b.len - 1] == '>');
  ASSERT_GE(b.cap, cap);
  /* Bytes with NULs go through append untouched. */
  wp__buf_reset(&b);
  wp__buf_append(&b, "a\0b", 3);
  expect_bytes("nul", &b, "a\0b", 3);
  wp__buf_free(&b);
  ASSERT(b.data == NULL && b.len == 0 && b.cap == 0);
  wp__buf_free(&b); /* twice is fine */
}

/* ---- JSON --------------------------------------------------------------- */

#define FFFD "\xEF\xBF\xBD"

TEST(json_escaping) {
  static const struct {
    const char *in;
    size_t in_len;
    const char *out; /* without the quotes */
    size_t replaced; /* bytes */
  } cases[] = {
#define C(in, out, r) {in, sizeof(in) - 1, out, r}
      C("", "", 0),
      C("plain / text", "plain / text", 0),
      C("a\"b\\c", "a\\\"b\\\\c", 0),
      C("\b\f\n\r\t", "\\b\\f\\n\\r\\t", 0),
      C("\x00\x01\x1f\x7f", "\\u0000\\u0001\\u001f\\u007f", 0),
      C("x\x00y", "x\\u0000y", 0),
      C(" ~", " ~", 0),
      /* valid multibyte: kept, boundaries of each length */
      C("\xC2\x80", "\xC2\x80", 0),                   /* U+0080 */
      C("\xC3\xA9t\xC3\xA9", "\xC3\xA9t\xC3\xA9", 0), /* été */
      C("\xDF\xBF", "\xDF\xBF", 0),                   /* U+07FF */
      C("\xE0\xA0\x80", "\xE0\xA0\x80", 0),           /* U+0800 */
      C("\xE2\x82\xAC", "\xE2\x82\xAC", 0),           /* € */
      C("\xED\x9F\xBF", "\xED\x9F\xBF", 0),           /* U+D7FF */
      C("\xEE\x80\x80", "\xEE\x80\x80", 0),           /* U+E000 */
      C("\xEF\xBF\xBF", "\xEF\xBF\xBF", 0),           /* U+FFFF */
      C("\xEF\xBF\xBD", "\xEF\xBF\xBD", 0),           /* U+FFFD itself */
      C("\xF0\x90\x80\x80", "\xF0\x90\x80\x80", 0),   /* U+10000 */
      C("\xF0\x9F\x98\x80", "\xF0\x9F\x98\x80", 0),   /* 😀 */
      C("\xF4\x8F\xBF\xBF", "\xF4\x8F\xBF\xBF", 0),   /* U+10FFFF */
      C("\xE2\x80\xA8", "\xE2\x80\xA8", 0),           /* U+2028: valid JSON */
      /* stray continuation bytes, impossible bytes */
      C("\x80", FFFD, 1),
      C("\xBF", FFFD, 1),
      C("a\x80\x80z", "a" FFFD FFFD "z", 2),
      C("\xFE", FFFD, 1),
      C("\xFF", FFFD, 1),
      C("\xF5\x80\x80\x80", FFFD FFFD FFFD FFFD, 4),
      C("\xF8\x88\x80\x80\x80", FFFD FFFD FFFD FFFD FFFD, 5), /* 5-byte form */
      /* overlong forms */
      C("\xC0\x80", FFFD FFFD, 2),
      C("\xC1\xBF", FFFD FFFD, 2),
      C("\xC0\xAF", FFFD FFFD, 2), /* overlong '/' */
      C("\xE0\x80\x80", FFFD FFFD FFFD, 3),
      C("\xE0\x9F\xBF", FFFD FFFD FFFD, 3),
      C("\xF0\x80\x80\x80", FFFD FFFD FFFD FFFD, 4),
      C("\xF0\x8F\xBF\xBF", FFFD FFFD FFFD FFFD, 4),
      /* surrogates (CESU-8 style too) */
      C("\xED\xA0\x80", FFFD FFFD FFFD, 3),
      C("\xED\xBF\xBF", FFFD FFFD FFFD, 3),
      C("\xED\xA0\xBD\xED\xB8\x80", FFFD FFFD FFFD FFFD FFFD FFFD, 6),
      /* past U+10FFFF */
      C("\xF4\x90\x80\x80", FFFD FFFD FFFD FFFD, 4),
      C("\xF7\xBF\xBF\xBF", FFFD FFFD FFFD FFFD, 4),
      /* truncated sequences: one U+FFFD for the maximal subpart */
      C("\xC3", FFFD, 1),
      C("\xE2\x82", FFFD, 2),
      C("\xF0\x9F\x98", FFFD, 3),
      C("\xE2\x82"
        "A",
        FFFD "A", 2),
      C("\xF0\x9F"
        "A",
        FFFD "A", 2),
      C("\xF0\x9F\x98\"", FFFD "\\\"", 3),
      C("\xC3\xC3\xA9", FFFD "\xC3\xA9", 1),
      C("\xE2\x82\xE2\x82\xAC", FFFD "\xE2\x82\xAC", 2),
      C("\xE1\x80\x0A", FFFD "\\n", 2),
      C("\xED\xA0", FFFD FFFD, 2),
#undef C
  };
  wp__buf b;
  wp__buf_init(&b);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    wp__buf_reset(&b);
    size_t r = wp__json_string(&b, cases[i].in, cases[i].in_len);
    char want[256];
    int wl = snprintf(want, sizeof want, "\"%s\"", cases[i].out);
    char what[64];
    snprintf(what, sizeof what, "json case %zu", i);
    expect_bytes(what, &b, want, (size_t)wl);
    if (r != cases[i].replaced)
      WP_FAIL_("json case %zu: %zu bytes replaced, want %zu", i, r,
               cases[i].replaced);
  }
  /* Every single byte value on its own. */
  for (int c = 0; c < 256; c++) {
    char in = (char)c;
    wp__buf_reset(&b);
    size_t r = wp__json_string(&b, &in, 1);
    ASSERT_EQ(r, c >= 0x80 ? 1 : 0);
    ASSERT_EQ(b.data[0], '"');
    ASSERT_EQ(b.data[b.len - 1], '"');
  }
  wp__buf_free(&b);
}

/* ---- CSV ---------------------------------------------------------------- */

TEST(csv_quoting) {
  static const struct {
    const char *in;
    size_t in_len;
    const char *out;
    size_t out_len;
  } cases[] = {
#define C(in, out) {in, sizeof(in) - 1, out, sizeof(out) - 1}
      C("", ""),
      C("abc", "abc"),
      C("a b", "a b"),
      C("http://x/?a=1&b=2", "http://x/?a=1&b=2"),
      C("a,b", "\"a,b\""),
      C("a\"b", "\"a\"\"b\""),
      C("\"", "\"\"\"\""),
      C("\"\"", "\"\"\"\"\"\""),
      C("a\nb", "\"a\nb\""),
      C("a\rb", "\"a\rb\""),
      C("a\r\n", "\"a\r\n\""),
      C(" a", "\" a\""),
      C("a ", "\"a \""),
      C("\ta", "\"\ta\""),
      C(" ", "\" \""),
      C("\xff\xfe\x01", "\xff\xfe\x01"), /* bytes kept */
      C("x\x00y", "x\x00y"),
#undef C
  };
  wp__buf b;
  wp__buf_init(&b);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    wp__buf_reset(&b);
    wp__csv_field(&b, cases[i].in, cases[i].in_len);
    char what[64];
    snprintf(what, sizeof what, "csv case %zu", i);
    expect_bytes(what, &b, cases[i].out, cases[i].out_len);
  }
  wp__buf_free(&b);
}

/* ---- result formats ----------------------------------------------------- */

TEST(format_lines) {
  static const char url4[] = "http://x/\x01\xff";
  static const struct {
    wp__outrec r;
    const char *jsonl, *csv, *text;
  } cases[] = {
      {{1, "https://example.com/", 20, true, 200, NULL, 1, 12.3456, 100},
       "{\"id\":1,\"url\":\"https://example.com/\",\"ok\":true,\"status\":200,"
       "\"error\":null,\"attempts\":1,\"elapsed_ms\":12.346,\"bytes\":100}\n",
       "1,https://example.com/,true,200,,1,12.346,100\n",
       "job 1 done: 200 OK https://example.com/\n"},
      {{2, "bobobo", 6, false, -1, "not an http(s) URL: no scheme", 0, 0, 0},
       "{\"id\":2,\"url\":\"bobobo\",\"ok\":false,\"status\":null,"
       "\"error\":\"not an http(s) URL: no scheme\",\"attempts\":0,"
       "\"elapsed_ms\":0.000,\"bytes\":0}\n",
       "2,bobobo,false,,not an http(s) URL: no scheme,0,0.000,0\n",
       "job 2 failed: not an http(s) URL: no scheme bobobo\n"},
      {{3, "http://x/a,b\"c", 14, false, 404, NULL, 3, NAN, UINT64_MAX},
       "{\"id\":3,\"url\":\"http://x/a,b\\\"c\",\"ok\":false,\"status\":404,"
       "\"error\":null,\"attempts\":3,\"elapsed_ms\":0.000,"
       "\"bytes\":18446744073709551615}\n",
       "3,\"http://x/a,b\"\"c\",false,404,,3,0.000,18446744073709551615\n",
       "job 3 failed: 404 Not Found http://x/a,b\"c\n"},
      {{4, url4, sizeof url4 - 1, false, 0, "timed out,\n after 30 s", 2,
        INFINITY, 7},
       "{\"id\":4,\"url\":\"http://x/\\u0001" FFFD "\",\"ok\":false,"
       "\"status\":null,\"error\":\"timed out,\\n after 30 s\","
       "\"attempts\":2,\"elapsed_ms\":1000000000000.000,\"bytes\":7}\n",
       "4,http://x/\x01\xff,false,,\"timed out,\n after 30 s\",2,"
       "1000000000000.000,7\n",
       "job 4 failed: timed out,\\x0a after 30 s http://x/\\x01\xff\n"},
      {{5, "http://h/", 9, true, 299, NULL, 1, -0.0, 0},
       "{\"id\":5,\"url\":\"http://h/\",\"ok\":true,\"status\":299,"
       "\"error\":null,\"attempts\":1,\"elapsed_ms\":0.000,\"bytes\":0}\n",
       "5,http://h/,true,299,,1,0.000,0\n",
       "job 5 done: 299 http://h/\n"},
      {{6, "", 0, false, 503, "", 4, -12.5, 0},
       "{\"id\":6,\"url\":\"\",\"ok\":false,\"status\":503,\"error\":\"\","
       "\"attempts\":4,\"elapsed_ms\":0.000,\"bytes\":0}\n",
       "6,,false,503,,4,0.000,0\n",
       "job 6 failed: 503 Service Unavailable\n"},
      {{18446744073709551615u, "http://h/ x", 11, false, -1, NULL, 0, 0.0004,
        0},
       "{\"id\":18446744073709551615,\"url\":\"http://h/ x\",\"ok\":false,"
       "\"status\":null,\"error\":null,\"attempts\":0,\"elapsed_ms\":0.000,"
       "\"bytes\":0}\n",
       "18446744073709551615,http://h/ x,false,,,0,0.000,0\n",
       "job 18446744073709551615 failed: unknown error http://h/ x\n"},
      {{8, "http://h/", 9, false, -1, "x", 1, 1e300, 0},
       "{\"id\":8,\"url\":\"http://h/\",\"ok\":false,\"status\":null,"
       "\"error\":\"x\",\"attempts\":1,\"elapsed_ms\":1000000000000.000,"
       "\"bytes\":0}\n",
       "8,http://h/,false,,x,1,1000000000000.000,0\n",
       "job 8 failed: x http://h/\n"},
  };
  wp__buf b;
  wp__buf_init(&b);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *want[3] = {cases[i].text, cases[i].jsonl, cases[i].csv};
    enum wp__format fmts[3] = {WP__FMT_TEXT, WP__FMT_JSONL, WP__FMT_CSV};
    for (int f = 0; f < 3; f++) {
      wp__buf_reset(&b);
      wp__format_result(&b, fmts[f], &cases[i].r);
      char what[64];
      snprintf(what, sizeof what, "record %zu, format %d", i, f);
      expect_bytes(what, &b, want[f], strlen(want[f]));
    }
  }
  wp__buf_reset(&b);
  wp__format_header(&b, WP__FMT_CSV);
  expect_bytes("csv header", &b,
               "id,url,ok,status,error,attempts,elapsed_ms,bytes\n", 49);
  wp__buf_reset(&b);
  wp__format_header(&b, WP__FMT_JSONL);
  wp__format_header(&b, WP__FMT_TEXT);
  ASSERT_EQ(b.len, 0);
  wp__buf_free(&b);
}

/* The integers of a record (formatted without vsnprintf) against printf's
 * own "%" PRIu64 / "%d" / "%u", over random and extreme values. */
TEST(format_integers_match_printf) {
  uint64_t rng = wp_test_seed();
  static const uint64_t edge[] = {0,
                                  1,
                                  9,
                                  10,
                                  99,
                                  100,
                                  4294967295u,
                                  4294967296u,
                                  UINT64_MAX / 10,
                                  UINT64_MAX - 1,
                                  UINT64_MAX};
  size_t nedge = sizeof edge / sizeof edge[0];
  wp__buf b;
  wp__buf_init(&b);
  for (int n = 0; n < 20000; n++) {
    uint64_t id =
        n < (int)nedge ? edge[n] : rng_next(&rng) >> rng_below(&rng, 64);
    uint64_t bytes = n < (int)nedge ? edge[nedge - 1 - (size_t)n]
                                    : rng_next(&rng) >> rng_below(&rng, 64);
    unsigned attempts =
        n == 0 ? UINT_MAX : (unsigned)(rng_next(&rng) >> rng_below(&rng, 64));
    int status = (int)(100 + rng_below(&rng, 500));
    if (n % 7 == 0) status = -1;
    double ms = (double)rng_below(&rng, 100000000) / 1000.0;
    wp__outrec r = {id,     "u",  1,        status > 0 && status < 400,
                    status, NULL, attempts, ms,
                    bytes};
    char st[16] = "", want[256];
    if (status > 0) snprintf(st, sizeof st, "%d", status);
    snprintf(want, sizeof want, "%" PRIu64 ",u,%s,%s,,%u,%.3f,%" PRIu64 "\n",
             id, r.ok ? "true" : "false", st, attempts, ms, bytes);
    wp__buf_reset(&b);
    wp__format_result(&b, WP__FMT_CSV, &r);
    expect_bytes("csv integers", &b, want, strlen(want));
    if (status > 0)
      snprintf(st, sizeof st, "%d", status);
    else
      snprintf(st, sizeof st, "null");
    snprintf(want, sizeof want,
             "{\"id\":%" PRIu64
             ",\"url\":\"u\",\"ok\":%s,\"status\":%s,"
             "\"error\":null,\"attempts\":%u,\"elapsed_ms\":%.3f,"
             "\"bytes\":%" PRIu64 "}\n",
             id, r.ok ? "true" : "false", st, attempts, ms, bytes);
    wp__buf_reset(&b);
    wp__format_result(&b, WP__FMT_JSONL, &r);
    expect_bytes("jsonl integers", &b, want, strlen(want));
    if (status > 0) {
      const char *reason = wp__http_reason(status);
      snprintf(want, sizeof want, "job %" PRIu64 " %s: %d%s%s u\n", id,
               r.ok ? "done" : "failed", status, *reason ? " " : "", reason);
    } else {
      snprintf(want, sizeof want, "job %" PRIu64 " failed: unknown error u\n",
               id);
    }
    wp__buf_reset(&b);
    wp__format_result(&b, WP__FMT_TEXT, &r);
    expect_bytes("text integers", &b, want, strlen(want));
  }
  ASSERT(!b.oom);
  wp__buf_free(&b);
}

TEST(http_reasons) {
  ASSERT_STREQ(wp__http_reason(200), "OK");
  ASSERT_STREQ(wp__http_reason(204), "No Content");
  ASSERT_STREQ(wp__http_reason(301), "Moved Permanently");
  ASSERT_STREQ(wp__http_reason(404), "Not Found");
  ASSERT_STREQ(wp__http_reason(429), "Too Many Requests");
  ASSERT_STREQ(wp__http_reason(500), "Internal Server Error");
  ASSERT_STREQ(wp__http_reason(503), "Service Unavailable");
  ASSERT_STREQ(wp__http_reason(0), "");
  ASSERT_STREQ(wp__http_reason(-1), "");
  ASSERT_STREQ(wp__http_reason(299), "");
  ASSERT_STREQ(wp__http_reason(999), "");
}

/* ---- cross-check with python3's json and csv ---------------------------- */

/* Reads back what the C side wrote and compares it with the raw records in
 * "expected" (hex): jsonl must be valid UTF-8, one strict JSON object per
 * line with exactly the keys in order, url and error equal to the raw bytes
 * decoded with errors="replace" (Python also substitutes U+FFFD per maximal
 * subpart); csv must parse strictly with the same bytes back. */
static const char crosscheck_py[] =
    "import sys, json, csv, math\n"
    "d = sys.argv[1]\n"
    "KEYS = ['id','url','ok','status','error','attempts','elapsed_ms',"
    "'bytes']\n"
    "exp = []\n"
    "for ln in open(d + '/expected', encoding='ascii'):\n"
    "    i, u, st, er = ln.split()\n"
    "    exp.append((int(i), bytes.fromhex(u[1:]), int(st),\n"
    "                None if er == '-' else bytes.fromhex(er[1:])))\n"
    "def no_const(x):\n"
    "    raise ValueError('non-standard JSON constant ' + x)\n"
    "raw = open(d + '/out.jsonl', 'rb').read()\n"
    "text = raw.decode('utf-8')\n"
    "lines = text.split('\\n')\n"
    "assert lines[-1] == '', 'jsonl does not end with a newline'\n"
    "lines = lines[:-1]\n"
    "assert len(lines) == len(exp), (len(lines), len(exp))\n"
    "for n, (line, (i, u, st, er)) in enumerate(zip(lines, exp)):\n"
    "    ctx = 'jsonl record %d: %r' % (n, line)\n"
    "    pairs = json.loads(line, object_pairs_hook=lambda p: p,\n"
    "                       parse_constant=no_const)\n"
    "    assert [k for k, _ in pairs] == KEYS, ctx\n"
    "    o = dict(pairs)\n"
    "    assert type(o['id']) is int and o['id'] == i, ctx\n"
    "    assert o['url'] == u.decode('utf-8', 'replace'), ctx\n"
    "    assert o['status'] == (None if st < 0 else st), ctx\n"
    "    want = None if er is None else er.decode('utf-8', 'replace')\n"
    "    assert o['error'] == want, ctx\n"
    "    assert type(o['ok']) is bool, ctx\n"
    "    assert type(o['attempts']) is int, ctx\n"
    "    assert type(o['bytes']) is int, ctx\n"
    "    ms = o['elapsed_ms']\n"
    "    assert type(ms) in (int, float) and math.isfinite(ms), ctx\n"
    "    assert ms >= 0, ctx\n"
    "with open(d + '/out.csv', newline='', encoding='utf-8',\n"
    "          errors='surrogateescape') as f:\n"
    "    rows = list(csv.reader(f, strict=True))\n"
    "assert rows[0] == KEYS, rows[0]\n"
    "rows = rows[1:]\n"
    "assert len(rows) == len(exp), (len(rows), len(exp))\n"
    "b = lambda s: s.encode('utf-8', 'surrogateescape')\n"
    "for n, (row, (i, u, st, er)) in enumerate(zip(rows, exp)):\n"
    "    ctx = 'csv record %d: %r' % (n, row)\n"
    "    assert len(row) == 8, ctx\n"
    "    assert row[0] == str(i), ctx\n"
    "    assert b(row[1]) == u, ctx\n"
    "    assert row[2] in ('true', 'false'), ctx\n"
    "    assert row[3] == ('' if st < 0 else str(st)), ctx\n"
    "    assert b(row[4]) == (er or b''), ctx\n"
    "    assert math.isfinite(float(row[6])) and float(row[6]) >= 0, ctx\n"
    "print('python3 cross-check: %d records ok' % len(exp))\n";

/* A random byte string: mostly URL-like ASCII, with CSV and JSON
 * specials, control bytes, valid multibyte characters and arbitrary bytes
 * (so ill-formed UTF-8 of every kind turns up). No NUL if c_string. */
static size_t random_bytes(uint64_t *rng, char *out, size_t max,
                           bool c_string) {
  static const char specials[] = ",\"\\\r\n\t #/";
  static const char *const multi[] = {"\xC3\xA9", "\xE2\x82\xAC",
                                      "\xF0\x9F\x98\x80", "\xF4\x8F\xBF\xBF",
                                      "\xEF\xBF\xBD"};
  size_t n = (size_t)rng_below(rng, max / 4 + 1), len = 0;
  while (len < n && len + 4 < max) {
    unsigned k = (unsigned)rng_below(rng, 10);
    if (k < 4) {
      out[len++] = (char)(0x21 + rng_below(rng, 0x7E - 0x21 + 1));
    } else if (k < 6) {
      out[len++] = specials[rng_below(rng, sizeof specials - 1)];
    } else if (k < 7) {
      const char *m = multi[rng_below(rng, sizeof multi / sizeof multi[0])];
      size_t ml = strlen(m);
      /* Sometimes cut short, which makes it ill-formed. */
      if (rng_below(rng, 4) == 0) ml = 1 + (size_t)rng_below(rng, ml);
      memcpy(out + len, m, ml);
      len += ml;
    } else {
      char c = (char)rng_below(rng, 256);
      if (c_string && c == 0) c = 1;
      out[len++] = c;
    }
  }
  return len;
}

static void hex_field(FILE *f, const char *s, size_t n) {
  fputc('x', f);
  for (size_t i = 0; i < n; i++) fprintf(f, "%02x", (unsigned char)s[i]);
}

static void write_all(const char *path, const wp__buf *b) {
  FILE *f = fopen(path, "wb");
  ASSERT(f != NULL);
  ASSERT_EQ(fwrite(b->data, 1, b->len, f), b->len);
  ASSERT_EQ(fclose(f), 0);
}

static void remove_tree(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  char p[4096];
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    unlink(p);
  }
  closedir(d);
  rmdir(dir);
}

TEST(crosscheck_python) {
  if (system("command -v python3 >/dev/null 2>&1") != 0) {
    fprintf(stderr, "SKIP: python3 not found; the cross-check did not run\n");
    return;
  }
  uint64_t rng = wp_test_seed();
  int nrec = (int)(3000 * wp_test_scale());
  if (nrec < 100) nrec = 100;

  const char *tmp = getenv("TMPDIR");
  char dir[512];
  snprintf(dir, sizeof dir, "%s/wp_cli_parse_XXXXXX",
           tmp && *tmp ? tmp : "/tmp");
  ASSERT(mkdtemp(dir) != NULL);
  char path[600];
  snprintf(path, sizeof path, "%s/expected", dir);
  FILE *exp = fopen(path, "w");
  ASSERT(exp != NULL);

  wp__buf jl, cs;
  wp__buf_init(&jl);
  wp__buf_init(&cs);
  wp__format_header(&cs, WP__FMT_CSV);
  static const double odd_ms[] = {NAN,  INFINITY, -INFINITY, -1.0,
                                  -0.0, 1e308,    5e-324,    0.0005};
  for (int n = 0; n < nrec; n++) {
    char url[400], err[200];
    size_t ul = random_bytes(&rng, url, sizeof url, false);
    bool has_err = rng_below(&rng, 3) != 0;
    size_t el = has_err ? random_bytes(&rng, err, sizeof err - 1, true) : 0;
    err[el] = '\0';
    if (has_err && el == 0) { /* "" and null are one in CSV: keep apart */
      err[0] = 'e';
      err[1] = '\0';
      el = 1;
    }
    int status =
        rng_below(&rng, 4) == 0 ? -1 : (int)(100 + rng_below(&rng, 500));
    double ms = rng_below(&rng, 8) == 0
                    ? odd_ms[rng_below(&rng, sizeof odd_ms / sizeof odd_ms[0])]
                    : (double)rng_below(&rng, 100000000) / 1000.0;
    wp__outrec r = {
        .id = (uint64_t)n + 1 + (n == nrec - 1 ? UINT64_MAX - nrec : 0),
        .url = url,
        .url_len = ul,
        .ok = status > 0 && status < 400,
        .status = status,
        .error = has_err ? err : NULL,
        .attempts = (unsigned)rng_below(&rng, 10),
        .elapsed_ms = ms,
        .bytes = rng_next(&rng),
    };
    wp__format_result(&jl, WP__FMT_JSONL, &r);
    wp__format_result(&cs, WP__FMT_CSV, &r);
    fprintf(exp, "%llu ", (unsigned long long)r.id);
    hex_field(exp, url, ul);
    fprintf(exp, " %d ", status);
    if (has_err)
      hex_field(exp, err, el);
    else
      fputc('-', exp);
    fputc('\n', exp);
  }
  ASSERT_EQ(fclose(exp), 0);
  ASSERT(!jl.oom && !cs.oom);
  snprintf(path, sizeof path, "%s/out.jsonl", dir);
  write_all(path, &jl);
  snprintf(path, sizeof path, "%s/out.csv", dir);
  write_all(path, &cs);
  wp__buf_free(&jl);
  wp__buf_free(&cs);

  char cmd[700];
  snprintf(cmd, sizeof cmd, "python3 - '%s'", dir);
  fflush(stderr);
  FILE *py = popen(cmd, "w");
  ASSERT(py != NULL);
  ASSERT_EQ(fputs(crosscheck_py, py) >= 0, 1);
  int st = pclose(py);
  ASSERT_NE(st, -1);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    WP_FAIL_("python3 cross-check failed (status %d); files kept in %s", st,
             dir);
  remove_tree(dir);
}

int main(int argc, char **argv) { return wp_test_main(argc, argv); }
