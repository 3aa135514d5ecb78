/* Parsing the HTTP Retry-After header (RFC 9110, section 10.2.3). A pure
 * function: no I/O, no clock read (the caller passes the time), no global
 * state; reentrant. Its entry point takes (bytes, length), not a C string,
 * so that a fuzzer can call it directly with any input. */
#ifndef WPOOL_FETCH_RETRY_AFTER_H
#define WPOOL_FETCH_RETRY_AFTER_H

#include <stddef.h>
#include <stdint.h>

/* Delays are saturated here: about 31 years. */
#define WP__RETRY_AFTER_MAX_S 1000000000LL

/* Parses the value s[0..n) (not necessarily NUL-terminated; may hold any
 * bytes): either delay-seconds, a non-negative decimal integer of digits
 * only, or an HTTP-date ("Sun, 06 Nov 1994 08:49:37 GMT", also the obsolete
 * RFC 850 and asctime forms, as libcurl's curl_getdate reads them, but
 * starting with a day name, Mon to Sun in any case, as all three do).
 * Spaces and tabs around the value are ignored; a value over 64 bytes
 * (after trimming) is not a date. now_s is the current time in Unix
 * seconds, for the date form.
 * Returns 0 and stores in *delay_ns the delay: seconds * 10^9, saturated at
 * WP__RETRY_AFTER_MAX_S; for a date, date - now_s, or 0 if it is not in the
 * future. Returns -1 for anything else (empty, a sign, a fraction, a unit,
 * garbage), leaving *delay_ns untouched. */
int wp__retry_after_parse(const char *s, size_t n, int64_t now_s,
                          int64_t *delay_ns);

#endif
