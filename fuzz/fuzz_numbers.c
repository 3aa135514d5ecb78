/* Fuzz target: durations, sizes and integers (src/cli/parse.c).
 *
 * The input (up to its first NUL) is given to all three parsers. Checked:
 *  - an integer with one unit ("250ms", "10MiB") is exactly N * unit, or
 *    refused exactly when that passes the type's range (reference in
 *    128-bit arithmetic, written here);
 *  - a duration made of two that parse (A B) is their sum, or refused past
 *    INT64_MAX; a duration is never negative;
 *  - wp__parse_uint agrees with strtoull on digit strings and bounds;
 *  - a failed parse leaves the output untouched.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "cli/parse.h"
#include "fuzz.h"

static const struct {
  const char *name;
  unsigned __int128 mult;
} dur_units[] = {{"ns", 1},         {"us", 1000},       {"ms", 1000000},
                 {"s", 1000000000}, {"m", 60000000000}, {"h", 3600000000000}};

/* The multiplier a size unit means, by rule rather than by table (the
 * parser has a table): "" or "b" is 1; k, m, g, t are powers 1 to 4, of
 * 1024 alone or with "ib", of 1000 with "b"; any case. 0: not a unit. */
static unsigned __int128 size_unit(const char *u) {
  char l[8];
  size_t n = strlen(u);
  if (n > 3) return 0;
  for (size_t i = 0; i <= n; i++)
    l[i] = u[i] >= 'A' && u[i] <= 'Z' ? (char)(u[i] - 'A' + 'a') : u[i];
  if (n == 0 || strcmp(l, "b") == 0) return 1;
  const char *powers = "kmgt";
  const char *at = strchr(powers, l[0]);
  if (!at) return 0;
  unsigned __int128 base;
  if (l[1] == '\0' || strcmp(l + 1, "ib") == 0)
    base = 1024;
  else if (strcmp(l + 1, "b") == 0)
    base = 1000;
  else
    return 0;
  unsigned __int128 m = 1;
  for (long i = 0; i <= at - powers; i++) m *= base;
  return m;
}

/* Digits then the rest: *n saturates at 2^100 (past any range here). */
static const char *digits(const char *s, unsigned __int128 *n) {
  const unsigned __int128 cap = (unsigned __int128)1 << 100;
  *n = 0;
  const char *p = s;
  for (; *p >= '0' && *p <= '9'; p++)
    if (*n < cap) *n = *n * 10 + (unsigned)(*p - '0');
  return p == s ? NULL : p;
}

static void check_duration(const char *s) {
  int64_t ns = -7;
  int rc = wp__parse_duration(s, &ns);
  FUZZ_CHECK(rc == 0 || rc == -1, "rc %d", rc);
  if (rc != 0)
    FUZZ_CHECK(ns == -7, "failed parse of '%s' wrote %lld", s, (long long)ns);
  else
    FUZZ_CHECK(ns >= 0, "'%s' is %lld", s, (long long)ns);

  unsigned __int128 n;
  const char *u = digits(s, &n);
  if (u && strcmp(s, "0") != 0) {
    for (size_t i = 0; i < sizeof dur_units / sizeof dur_units[0]; i++) {
      if (strcmp(u, dur_units[i].name) != 0) continue;
      unsigned __int128 want = n * dur_units[i].mult;
      if (want > INT64_MAX)
        FUZZ_CHECK(rc == -1, "'%s' past INT64_MAX accepted", s);
      else
        FUZZ_CHECK(rc == 0 && (unsigned __int128)ns == want,
                   "'%s': rc %d, %lld", s, rc, (long long)ns);
    }
  }

  /* Additivity over every cut A|B where both halves parse alone. */
  size_t len = strlen(s);
  if (len > 64) return;
  char a[80];
  for (size_t i = 1; i < len; i++) {
    memcpy(a, s, i);
    a[i] = '\0';
    const char *b = s + i;
    if (strcmp(a, "0") == 0 || strcmp(b, "0") == 0) continue;
    int64_t x, y;
    if (wp__parse_duration(a, &x) != 0 || wp__parse_duration(b, &y) != 0)
      continue;
    if ((unsigned __int128)x + (unsigned __int128)y > INT64_MAX)
      FUZZ_CHECK(rc == -1, "'%s' = '%s' + '%s' overflows, accepted", s, a, b);
    else
      FUZZ_CHECK(rc == 0 && ns == x + y,
                 "'%s' = '%s' + '%s': %lld + %lld != %lld", s, a, b,
                 (long long)x, (long long)y, (long long)ns);
  }
}

static void check_size(const char *s) {
  uint64_t v = 7;
  int rc = wp__parse_size(s, &v);
  FUZZ_CHECK(rc == 0 || rc == -1, "rc %d", rc);
  if (rc != 0) FUZZ_CHECK(v == 7, "failed parse of '%s' wrote a value", s);
  unsigned __int128 n;
  const char *u = digits(s, &n);
  if (!u) {
    if (*s != '.') FUZZ_CHECK(rc == -1, "'%s' without digits accepted", s);
    return;
  }
  unsigned __int128 mult = size_unit(u);
  if (!mult) {
    FUZZ_CHECK(*u == '.' || rc == -1, "'%s' with no unit accepted", s);
    return;
  }
  unsigned __int128 want = n * mult;
  if (want > UINT64_MAX)
    FUZZ_CHECK(rc == -1, "'%s' past UINT64_MAX accepted", s);
  else
    FUZZ_CHECK(rc == 0 && v == (uint64_t)want, "'%s': rc %d, %llu", s, rc,
               (unsigned long long)v);
}

static void check_uint(const char *s, uint64_t min, uint64_t max) {
  uint64_t v = 7;
  int rc = wp__parse_uint(s, min, max, &v);
  bool all_digits = *s != '\0';
  for (const char *p = s; *p; p++)
    if (*p < '0' || *p > '9') all_digits = false;
  bool want_ok = false;
  unsigned long long ref = 0;
  if (all_digits) {
    errno = 0;
    char *end;
    ref = strtoull(s, &end, 10);
    want_ok = errno == 0 && *end == '\0' && ref >= min && ref <= max;
  }
  FUZZ_CHECK((rc == 0) == want_ok, "'%s' in [%llu, %llu]: rc %d", s,
             (unsigned long long)min, (unsigned long long)max, rc);
  if (want_ok)
    FUZZ_CHECK(v == ref, "'%s': %llu", s, (unsigned long long)v);
  else
    FUZZ_CHECK(v == 7, "failed parse of '%s' wrote a value", s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 256) return 0; /* longer says nothing new; keeps runs fast */
  char s[260];
  memcpy(s, data, size);
  s[size] = '\0';
  check_duration(s);
  check_size(s);
  uint64_t min = size > 0 ? data[0] % 4 : 0;
  uint64_t max = size > 1 && data[1] % 2 ? UINT64_MAX : 10000;
  check_uint(s, min, max);
  check_uint(s, 0, UINT64_MAX);
  return 0;
}
