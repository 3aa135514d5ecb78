/* Fault injection in the library (failalloc.h): every allocation and every
 * thread creation of a pool's life cycle fails in turn, one per round:
 * create (4 workers, a retry policy, a results callback; in a second
 * sweep also a metrics registry made in the round, so that registering the
 * pool's series and its collector fail in turn too), submit 24 jobs (a
 * third fail once and are retried through the timer queue), drain,
 * destroy; and the same for contexts with deadlines (the timer thread)
 * and channels. Each round: the call that met the failure returns
 * WP_ENOMEM or WP_ESYSTEM with nothing left behind (*out NULL; ASan's leak
 * check at exit sees every round), or the run goes on, and every accepted
 * job has exactly one result. The sweep ends at the first round in which
 * the armed failure was not reached: every call site was tried.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "failalloc.h"
#include "wp_test.h"
#include "wpool/wpool.h"

#define JOBS 24
#define MAX_ROUNDS 100000

static atomic_int results[JOBS + 1];

/* Ends 5 minutes after the test starts (made before any failure is armed:
 * it starts the library's timer thread). */
static wp_ctx *shutdown_bound;

static void bound_start(void) {
  ASSERT_OK(wp_ctx_with_timeout(NULL, 300000000000LL, &shutdown_bound));
}

static int task(wp_ctx *ctx, wp_job *j, void *wstate) {
  (void)ctx;
  (void)wstate;
  uint64_t id = wp_job_id(j);
  return id % 3 == 0 && wp_job_attempt(j) == 1 ? 7 : 0;
}

static void on_result(const wp_result *res, void *userdata) {
  (void)userdata;
  if (res->id >= 1 && res->id <= JOBS) atomic_fetch_add(&results[res->id], 1);
}

/* A counter of m's, or NULL when looking it up failed (the armed failure
 * may be met there too: the lookup builds the series' key). */
static wp_counter *counter(wp_metrics *m, const char *name,
                           const char *const *labels) {
  wp_counter *c = (wp_counter *)1;
  int rc = wp_metrics_counter(m, name, "", labels, &c);
  if (rc != 0) {
    ASSERT_EQ(rc, WP_ENOMEM);
    ASSERT(c == NULL);
    ASSERT(wp_fail_happened());
  }
  return c;
}

/* The pool's counters agree with the results: every accepted job
 * submitted, completed ok (its retry succeeds), attempted once more if its
 * first attempt failed. */
static void check_metrics(wp_metrics *m, const bool *accepted) {
  uint64_t n = 0, retried = 0;
  for (int id = 1; id <= JOBS; id++) {
    n += accepted[id];
    retried += accepted[id] && id % 3 == 0;
  }
  wp_counter *c = counter(m, "wpool_jobs_submitted_total", NULL);
  if (c) ASSERT_EQ(wp_counter_value(c), n);
  c = counter(m, "wpool_jobs_completed_total",
              (const char *[]){"outcome", "ok", NULL});
  if (c) ASSERT_EQ(wp_counter_value(c), n);
  c = counter(m, "wpool_attempts_total", NULL);
  if (c) ASSERT_EQ(wp_counter_value(c), n + retried);
}

/* One life cycle, with a registry of its own if with_metrics. Returns how
 * it ended, for the counts. */
static int pool_round(unsigned workers, bool with_metrics) {
  for (int i = 0; i <= JOBS; i++) atomic_store(&results[i], 0);
  bool accepted[JOBS + 1];
  memset(accepted, 0, sizeof accepted);
  wp_metrics *m = NULL;
  if (with_metrics) {
    m = (wp_metrics *)1;
    int rc = wp_metrics_create(&m);
    if (rc != 0) {
      ASSERT_EQ(rc, WP_ENOMEM);
      ASSERT(m == NULL);
      ASSERT(wp_fail_happened());
      return rc;
    }
  }
  wp_pool_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.workers = workers;
  cfg.max_outstanding = 6;
  cfg.task = task;
  cfg.on_result = on_result;
  cfg.retry.max_attempts = 2;
  cfg.retry.base_ns = 100000;
  cfg.retry.cap_ns = 1000000;
  cfg.seed = 1;
  cfg.metrics = m;
  wp_pool *p = (wp_pool *)1;
  int rc = wp_pool_create(&cfg, &p);
  if (rc != 0) {
    ASSERT(rc == WP_ENOMEM || rc == WP_ESYSTEM);
    ASSERT(p == NULL);
    ASSERT(wp_fail_happened());
    wp_metrics_destroy(m);
    return rc;
  }
  for (uint64_t id = 1; id <= JOBS; id++) {
    int s = wp_pool_submit(p, id, NULL, NULL);
    ASSERT(s == 0 || s == WP_ENOMEM || s == WP_ESYSTEM);
    accepted[id] = s == 0;
  }
  /* Bounded: a worker that never wakes fails the test, not hangs it. */
  int src = wp_pool_shutdown(p, shutdown_bound);
  if (src != 0) WP_FAIL_("shutdown did not join the workers: %d", src);
  wp_pool_destroy(p);
  for (int id = 1; id <= JOBS; id++)
    if (atomic_load(&results[id]) != (accepted[id] ? 1 : 0))
      WP_FAIL_("job %d: %d results, accepted %d", id,
               atomic_load(&results[id]), accepted[id]);
  if (m) check_metrics(m, accepted);
  wp_metrics_destroy(m);
  return 0;
}

/* Every allocation of a round fails in turn; returns how many rounds
 * failed to create (the registry or the pool). */
static int allocation_sweep(bool with_metrics, long *sites) {
  long n;
  int failed_create = 0;
  for (n = 1; n < MAX_ROUNDS; n++) {
    wp_fail_at(n, 0);
    if (pool_round(4, with_metrics) != 0) failed_create++;
    bool hit = wp_fail_happened();
    wp_fail_at(0, 0);
    if (!hit) break;
  }
  *sites = n - 1;
  fprintf(stderr, "pool%s: %ld allocation sites tried, %d failed create\n",
          with_metrics ? " with metrics" : "", n - 1, failed_create);
  return failed_create;
}

TEST(pool_every_allocation_fails_in_turn) {
  bound_start();
  long plain, metered;
  int failed_plain = allocation_sweep(false, &plain);
  ASSERT_GT(plain, 0);
  ASSERT_GT(failed_plain, 0);
  /* With a registry: its creation, each series the pool registers and the
   * collector it adds are more sites, each failing the create. */
  int failed_metered = allocation_sweep(true, &metered);
  ASSERT_GT(metered, plain);
  ASSERT_GT(failed_metered, failed_plain);
}

/* Found by this sweep (its last round has no failure), and at the same
 * time by the observability work, whose fix landed first: shutdown while
 * retries wait in the timer queue left the workers other than the time
 * keeper asleep for ever once the last retry was done, and shutdown never
 * returned. Many rounds, since it depends on who sleeps when. */
TEST(shutdown_with_retries_pending_joins_every_worker) {
  bound_start();
  int rounds = (int)(500 * wp_test_scale());
  for (int i = 0; i < rounds; i++) ASSERT_EQ(pool_round(4, false), 0);
}

TEST(pool_every_thread_creation_fails_in_turn) {
  bound_start();
  long m;
  for (m = 1; m < MAX_ROUNDS; m++) {
    wp_fail_at(0, m);
    int rc = pool_round(4, false);
    bool hit = wp_fail_happened();
    wp_fail_at(0, 0);
    if (!hit) {
      ASSERT_EQ(rc, 0);
      break;
    }
    ASSERT_EQ(rc, WP_ESYSTEM);
  }
  fprintf(stderr, "pool: %ld thread creations tried\n", m - 1);
  ASSERT_GE(m, 5); /* four workers at least */
}

/* Contexts: a tree with deadlines (the timer thread and its heap). */
static void ctx_round(void) {
  wp_ctx *root = (wp_ctx *)1, *a = (wp_ctx *)1, *b = (wp_ctx *)1;
  int rc = wp_ctx_with_cancel(NULL, &root);
  if (rc != 0) {
    ASSERT(rc == WP_ENOMEM || rc == WP_ESYSTEM);
    ASSERT(root == NULL);
    return;
  }
  rc = wp_ctx_with_timeout(root, 1000000, &a);
  if (rc != 0) {
    ASSERT(rc == WP_ENOMEM || rc == WP_ESYSTEM);
    ASSERT(a == NULL);
  } else {
    ASSERT_EQ(wp_ctx_wait(a, wp_now_ns() + 60000000000LL), WP_ETIMEDOUT);
    rc = wp_ctx_with_deadline(a, wp_now_ns() + 3600000000000LL, &b);
    if (rc == 0) {
      ASSERT_EQ(wp_ctx_err(b), WP_ETIMEDOUT); /* its parent is done */
      wp_ctx_release(b);
    } else {
      ASSERT(rc == WP_ENOMEM || rc == WP_ESYSTEM);
      ASSERT(b == NULL);
    }
    wp_ctx_release(a);
  }
  wp_ctx_cancel(root);
  wp_ctx_release(root);
}

TEST(ctx_and_chan_every_allocation_fails_in_turn) {
  long n;
  for (n = 1; n < MAX_ROUNDS; n++) {
    wp_fail_at(n, 0);
    ctx_round();
    wp_chan *c = (wp_chan *)1;
    int rc = wp_chan_create(sizeof(int), 4, &c);
    if (rc == 0) {
      int v = 5, w = 0;
      ASSERT_OK(wp_chan_send(c, &v, NULL));
      ASSERT_OK(wp_chan_recv(c, &w, NULL));
      ASSERT_EQ(w, 5);
      wp_chan_destroy(c);
    } else {
      ASSERT_EQ(rc, WP_ENOMEM);
      ASSERT(c == NULL);
    }
    bool hit = wp_fail_happened();
    wp_fail_at(0, 0);
    if (!hit) break;
  }
  fprintf(stderr, "ctx, chan: %ld allocation sites tried\n", n - 1);
  ASSERT_GT(n, 1);
}

int main(int argc, char **argv) { return wp_test_main(argc, argv); }
