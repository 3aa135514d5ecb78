/* A program built against an installed libwpool, by pkg-config and by
 * CMake's find_package: proves the install is usable. */
#include <stdio.h>
#include <wpool/wpool.h>

static int task(wp_ctx *ctx, wp_job *job, void *ws) {
  (void)ctx;
  (void)ws;
  return wp_job_id(job) % 2 ? 0 : 7;
}

static unsigned long done, failed;

static void on_result(const wp_result *r, void *ud) {
  (void)ud;
  __atomic_add_fetch(&done, 1, __ATOMIC_RELAXED);
  if (r->err) __atomic_add_fetch(&failed, 1, __ATOMIC_RELAXED);
}

int main(void) {
  wp_pool_config cfg = {.workers = 4, .task = task, .on_result = on_result};
  wp_pool *p;
  if (wp_pool_create(&cfg, &p) != 0) return 1;
  for (uint64_t id = 1; id <= 100; id++)
    if (wp_pool_submit(p, id, NULL, NULL) != 0) return 1;
  if (wp_pool_shutdown(p, NULL) != 0) return 1;
  wp_pool_destroy(p);
  printf("%lu results, %lu failed\n", done, failed);
  return done == 100 && failed == 50 ? 0 : 1;
}
