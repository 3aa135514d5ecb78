/* The lock-free submission ring's allocation (the operations are inline in
 * jring.h). */
#include "core/jring.h"

#include <stdlib.h>

int wp__jring_init(wp__jring *r, size_t n) {
  size_t cap = 2;
  while (cap < n) {
    if (cap > SIZE_MAX / 2 / sizeof(wp__jcell)) return -1;
    cap *= 2;
  }
  r->cells = wp__calloc_lines(cap * sizeof *r->cells);
  if (!r->cells) return -1;
  for (size_t i = 0; i < cap; i++) {
    atomic_init(&r->cells[i].seq, i);
  }
  r->mask = cap - 1;
  atomic_init(&r->tail, 0);
  atomic_init(&r->head, 0);
  return 0;
}

void wp__jring_free(wp__jring *r) {
  free(r->cells);
  r->cells = NULL;
}
