/* UTF-8 validation and hex: see utf8.h. */
#include "core/utf8.h"

size_t wp__utf8_seq(const unsigned char *p, size_t n, bool *ok) {
  unsigned c = p[0];
  unsigned need;
  unsigned char lo = 0x80, hi = 0xBF; /* range of the second byte */
  *ok = false;
  if (c >= 0xC2 && c <= 0xDF) {
    need = 1;
  } else if (c == 0xE0) {
    need = 2;
    lo = 0xA0;
  } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
    need = 2;
  } else if (c == 0xED) {
    need = 2;
    hi = 0x9F;
  } else if (c == 0xF0) {
    need = 3;
    lo = 0x90;
  } else if (c >= 0xF1 && c <= 0xF3) {
    need = 3;
  } else if (c == 0xF4) {
    need = 3;
    hi = 0x8F;
  } else {
    return 1;
  }
  size_t k;
  for (k = 1; k <= need; k++) {
    if (k >= n) return k;
    unsigned char d = p[k];
    if (k == 1 ? (d < lo || d > hi) : (d < 0x80 || d > 0xBF)) return k;
  }
  *ok = true;
  return k;
}

void wp__hex(char *out, const uint8_t *b, size_t n) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[b[i] >> 4];
    out[2 * i + 1] = digits[b[i] & 15];
  }
}
