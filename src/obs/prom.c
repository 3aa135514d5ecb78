/* Pure pieces of the Prometheus text format: see prom.h. */
#include "obs/prom.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"

static bool name_char(char c, bool first, bool label) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') return true;
  if (c == ':') return !label;
  return !first && c >= '0' && c <= '9';
}

bool wp__prom_valid_name(const char *s, bool label) {
  if (!s || !*s) return false;
  if (label && s[0] == '_' && s[1] == '_') return false; /* reserved */
  for (size_t i = 0; s[i]; i++)
    if (!name_char(s[i], i == 0, label)) return false;
  return true;
}

int wp__prom_escape(FILE *f, const char *s, size_t n, bool label) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0, run = 0; /* p[run..i) is written as it is */
  int bad = 0;
  if (!p) n = 0;
  while (i < n) {
    unsigned char c = p[i];
    const char *esc = NULL;
    size_t skip = 1;
    if (c == '\\')
      esc = "\\\\";
    else if (c == '\n')
      esc = "\\n";
    else if (c == '"' && label)
      esc = "\\\"";
    else if (c >= 0x80) {
      bool ok;
      skip = wp__utf8_seq(p + i, n - i, &ok);
      if (ok) {
        i += skip;
        continue;
      }
      esc = "\xef\xbf\xbd"; /* U+FFFD */
    } else {
      i++;
      continue;
    }
    if (i > run && fwrite(p + run, 1, i - run, f) != i - run) bad = 1;
    if (fputs(esc, f) == EOF) bad = 1;
    i += skip;
    run = i;
  }
  if (n > run && fwrite(p + run, 1, n - run, f) != n - run) bad = 1;
  return bad ? -1 : 0;
}

char *wp__prom_double(char *buf, size_t n, double v) {
  if (isnan(v)) {
    snprintf(buf, n, "NaN");
  } else if (isinf(v)) {
    snprintf(buf, n, "%s", v > 0 ? "+Inf" : "-Inf");
  } else if (v == 0) {
    snprintf(buf, n, "0"); /* also -0 */
  } else if (fabs(v) < 1e15 && v == (double)(long long)v) {
    snprintf(buf, n, "%lld", (long long)v); /* "60", not "6e+01" */
  } else {
    /* The shortest "%g" that reads back as v. "%.17g" always does. */
    for (int prec = 1; prec <= 17; prec++) {
      snprintf(buf, n, "%.*g", prec, v);
      if (strtod(buf, NULL) == v) break;
    }
  }
  return buf;
}
