/* Shared by the fuzz targets (fuzz/fuzz_*.c).
 *
 * Each target defines LLVMFuzzerTestOneInput(). Built with clang and
 * -DWPOOL_FUZZ=ON it links libFuzzer (make fuzz, and the time-boxed run in
 * make test); in every other build it links fuzz/standalone.c instead, a
 * main() that runs the target once on each file given, so that the seed
 * corpus and every input that once crashed (fuzz/regress/) are regression
 * tests in the plain, ASan+UBSan and TSan builds alike.
 *
 * A target checks properties, not only "no crash": FUZZ_CHECK prints what
 * failed and aborts, which libFuzzer reports as a crash with its input.
 */
#ifndef WPOOL_FUZZ_H
#define WPOOL_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(c, ...)                                                  \
  do {                                                                      \
    if (!(c)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #c); \
      fprintf(stderr, __VA_ARGS__);                                         \
      fputc('\n', stderr);                                                  \
      fflush(stderr);                                                       \
      abort();                                                              \
    }                                                                       \
  } while (0)

#endif
