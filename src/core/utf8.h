/* Text helpers shared by the encoders: UTF-8 validation (JSON strings,
 * Prometheus labels, logfmt) and lower-case hex (trace and span IDs in
 * traceparent headers, logs and OTLP). Pure, reentrant. */
#ifndef WPOOL_CORE_UTF8_H
#define WPOOL_CORE_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The length of the UTF-8 sequence at p[0..n) (n >= 1): sets *ok and
 * returns its length when it is well formed; otherwise clears *ok and
 * returns the length of its maximal subpart (at least 1), the bytes one
 * U+FFFD replaces (Unicode 15, section 3.9, "U+FFFD Substitution of Maximal
 * Subparts", as Python's decode(errors="replace") does). Well formed, per
 * Unicode Table 3-7: no overlong forms (C0, C1, E0 80..9F, F0 80..8F), no
 * surrogates (ED A0..BF), nothing past U+10FFFF (F4 90.., F5..FF), no stray
 * continuation byte, no sequence cut short. */
size_t wp__utf8_seq(const unsigned char *p, size_t n, bool *ok);

/* Writes the 2 * n lower-case hex digits of b[0..n) to out[0..2n): no
 * terminating NUL (the caller adds one where it wants a string). */
void wp__hex(char *out, const uint8_t *b, size_t n);

#endif
