/* Fuzz target: the URL fast path (wp__url_is_simple, src/cli/input.c).
 *
 * wp__check_url answers "plain" URLs without libcurl. That is sound only if
 * every URL the fast path accepts is one libcurl's parser accepts too, with
 * the pre-checks (http or https, "//", a host, no space or control byte).
 * Checked, against the libcurl linked in (curl_url_set, no flags):
 *  - wp__url_is_simple(s) implies wp__check_url_libcurl(s) == NULL;
 *  - wp__check_url(s) is wp__check_url_libcurl(s)'s verdict, the same
 *    reason string, whatever the fast path says.
 * The input is the URL, bytes as they are (NUL included: the fast path
 * takes a length). A first byte 0xFF or 0xFE stands for "http://" or
 * "HTTPS://", so that mutations spend their time past the scheme.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/input.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 9000) return 0; /* past WP__LINE_MAX: never a job's URL */
  const char *prefix = "";
  if (size > 0 && data[0] == 0xFF) prefix = "http://";
  if (size > 0 && data[0] == 0xFE) prefix = "HTTPS://";
  size_t skip = *prefix ? 1 : 0, pn = strlen(prefix);
  size_t len = pn + size - skip;
  char *s = malloc(len ? len : 1); /* exactly len: ASan sees a read past */
  if (!s) return 0;
  memcpy(s, prefix, pn);
  if (size > skip) memcpy(s + pn, data + skip, size - skip);

  bool simple = wp__url_is_simple(s, len);
  const char *slow = wp__check_url_libcurl(s, len);
  const char *fast = wp__check_url(s, len);
  FUZZ_CHECK(!simple || slow == NULL, "\"%.*s\": simple, but libcurl: %s",
             (int)len, s, slow);
  FUZZ_CHECK((fast == NULL) == (slow == NULL) &&
                 (fast == NULL || strcmp(fast, slow) == 0),
             "\"%.*s\": wp__check_url %s, libcurl %s", (int)len, s,
             fast ? fast : "ok", slow ? slow : "ok");
  free(s);
  return 0;
}
