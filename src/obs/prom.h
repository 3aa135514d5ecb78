/* The pure pieces of the Prometheus text exposition format (0.0.4), apart
 * from the registry so that they can be unit-tested and fuzzed directly.
 * No globals; reentrant. */
#ifndef WPOOL_OBS_PROM_H
#define WPOOL_OBS_PROM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* Is s a valid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*), or with label set, a
 * valid label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with "__")? */
bool wp__prom_valid_name(const char *s, bool label);

/* Writes s[0..n) to f escaped for the text format: in a label value (label
 * set) '\\' -> "\\\\", '"' -> "\\\"", LF -> "\\n"; in a HELP text the same
 * but '"' stays. Any other byte is kept, except that an invalid UTF-8
 * sequence becomes U+FFFD (one per maximal subpart), so the output is always
 * valid UTF-8 on one line. Returns 0, or -1 if a write failed. */
int wp__prom_escape(FILE *f, const char *s, size_t n, bool label);

/* Formats v as the text format wants a sample value or an "le": "NaN",
 * "+Inf", "-Inf", or the shortest decimal that reads back as v exactly
 * ("0.001", "1e-09", "42"). buf needs 32 bytes. Returns buf. */
char *wp__prom_double(char *buf, size_t n, double v);

#endif
