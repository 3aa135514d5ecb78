/* JSON checks shared by the fuzz targets that read our JSON back with
 * Jansson (fuzz_obs: log records; fuzz_output: jsonl results). Written
 * independently of the code under test. */
#ifndef WPOOL_FUZZ_JSON_H
#define WPOOL_FUZZ_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "fuzz.h"
#include "fuzz_util.h"

/* Does s[0..n) hold U+FFFD (EF BF BD)? */
static inline bool has_fffd(const char *s, size_t n) {
  for (size_t i = 0; i + 3 <= n; i++)
    if (memcmp(s + i, "\xEF\xBF\xBD", 3) == 0) return true;
  return false;
}

/* A JSON string value compared with the bytes it was made from: byte for
 * byte when they are valid UTF-8 (utf8_valid decides), holding U+FFFD
 * otherwise. */
static inline void check_json_text(json_t *v, const char *want, size_t n,
                                   const char *what) {
  FUZZ_CHECK(json_is_string(v), "%s is not a string", what);
  const char *got = json_string_value(v);
  size_t gl = json_string_length(v);
  if (utf8_valid((const unsigned char *)want, n))
    FUZZ_CHECK(gl == n && memcmp(got, want, n) == 0,
               "%s: valid UTF-8 not kept byte for byte", what);
  else
    FUZZ_CHECK(has_fffd(got, gl), "%s: invalid UTF-8 without U+FFFD", what);
}

/* data[0..len) is one line (a final LF and no other) that Jansson parses
 * to an object with exactly the nkeys keys given, in that order. Returns
 * the object (a new reference: json_decref it). */
static inline json_t *json_object_line(const char *data, size_t len,
                                       const char *const *keys, size_t nkeys) {
  FUZZ_CHECK(len > 0 && data[len - 1] == '\n', "no final LF");
  FUZZ_CHECK(memchr(data, '\n', len - 1) == NULL, "LF inside a line");
  json_error_t e;
  json_t *o = json_loadb(data, len - 1, JSON_ALLOW_NUL, &e);
  FUZZ_CHECK(o, "Jansson: %s at %d: %.*s", e.text, e.position, (int)len, data);
  FUZZ_CHECK(json_is_object(o) && json_object_size(o) == nkeys,
             "not an object of %zu keys", nkeys);
  void *it = json_object_iter(o);
  for (size_t i = 0; i < nkeys; i++, it = json_object_iter_next(o, it))
    FUZZ_CHECK(it && strcmp(json_object_iter_key(it), keys[i]) == 0,
               "key %zu is not %s", i, keys[i]);
  return o;
}

#endif
