/* The pool's limits and per-job deadline (wp_pool_config.limits,
 * job_timeout_ns), each tested directly on task workers:
 *
 *  - rate: no attempt (retries included) starts before its turn: the k-th
 *    start is at least (k + 1 - burst) intervals after the pool began;
 *  - a job waiting for its rate turn holds no worker, and ShutdownNow ends
 *    it at once, canceled, with exactly one result;
 *  - per_key: at most per_key jobs of a key run at once, and jobs of other
 *    keys run meanwhile (no head-of-line blocking) while the rest of the
 *    saturated key waits set aside, holding no worker;
 *  - jobs set aside for their key count against the outstanding bound,
 *    and ShutdownNow ends them at once;
 *  - job_timeout: a Retry-After past the deadline ends the job at once
 *    with its last error; retries stop at the deadline; an attempt's
 *    context ends at the deadline;
 *  - Shutdown with retries pending ends every worker (none left asleep).
 * No sleeps: results are awaited with semaphores (bounded waits). */
#include <errno.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include "wp_test.h"
#include "wp_test_util.h"
#include "wpool/wpool.h"

#define MS 1000000LL
#define SEC 1000000000LL
#define MAXJ 256

/* ---- a recorder ---------------------------------------------------------- */

static struct {
  atomic_int count[MAXJ + 1];
  atomic_int err[MAXJ + 1];
  atomic_uint attempts[MAXJ + 1];
  atomic_int total;
  sem_t any;
  /* starts of attempts */
  atomic_int nstarts;
  int64_t starts[4 * MAXJ];
  /* per-key running counts (keys 1 and 2) */
  atomic_int running[3], max_running[3];
  wp_ctx *gate; /* canceled to let gated tasks return */
} R;

static void rec_reset(void) {
  memset(&R, 0, sizeof R);
  ASSERT_EQ(sem_init(&R.any, 0, 0), 0);
  ASSERT_OK(wp_ctx_with_cancel(NULL, &R.gate));
}

static void rec_free(void) {
  sem_destroy(&R.any);
  wp_ctx_release(R.gate);
}

static void on_result(const wp_result *res, void *ud) {
  (void)ud;
  ASSERT(res->id >= 1 && res->id <= MAXJ);
  atomic_fetch_add(&R.count[res->id], 1);
  atomic_store(&R.err[res->id], res->err);
  atomic_store(&R.attempts[res->id], res->attempts);
  atomic_fetch_add(&R.total, 1);
  sem_post(&R.any);
}

static void wait_results(int n, const char *what) {
  for (int i = 0; i < n; i++) sem_wait_bounded(&R.any, 120, what);
}

static void check_once(int upto) {
  for (int i = 1; i <= MAXJ; i++) ASSERT_EQ(atomic_load(&R.count[i]), i <= upto);
  ASSERT_EQ(atomic_load(&R.total), upto);
}

static wp_pool *make(wp_pool_config *cfg) {
  cfg->on_result = on_result;
  cfg->stack_size = 256 * 1024;
  wp_pool *p = NULL;
  ASSERT_OK(wp_pool_create(cfg, &p));
  return p;
}

/* Polls the pool's counters (bounded: 60 s) until `running` is at most
 * max_running and `held` at least min_held. A worker gives a finished job's
 * slot back (running drops) at its next take, a moment after the result. */
static void wait_stats(wp_pool *p, size_t max_running, size_t min_held,
                       wp_pool_stats *st) {
  int64_t end = wp_now_ns() + 60 * SEC;
  for (;;) {
    wp_pool_stats_get(p, st);
    if (st->running <= max_running && st->held >= min_held) return;
    if (wp_now_ns() > end)
      WP_FAIL_("stats: running %zu (want <= %zu), held %zu (want >= %zu)",
               st->running, max_running, st->held, min_held);
    sched_yield();
  }
}

/* ---- rate ---------------------------------------------------------------- */

static int fail_first_attempt(wp_ctx *ctx, wp_job *j, void *ws) {
  (void)ctx;
  (void)ws;
  int k = atomic_fetch_add(&R.nstarts, 1);
  ASSERT(k < 4 * MAXJ);
  R.starts[k] = wp_now_ns();
  if (wp_job_attempt(j) == 1) {
    wp_job_set_retry_after(j, 0); /* straight back: only the rate spaces */
    return 3;
  }
  return 0;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

TEST(rate_spaces_every_attempt_retries_included) {
  rec_reset();
  const double rate = 200; /* 5 ms apart */
  const unsigned burst = 2;
  const int jobs = 30;
  wp_pool_config cfg = {0};
  cfg.workers = 4;
  cfg.max_outstanding = 64;
  cfg.task = fail_first_attempt;
  cfg.retry.max_attempts = 2;
  cfg.limits.rate = rate;
  cfg.limits.burst = burst;
  int64_t t0 = wp_now_ns();
  wp_pool *p = make(&cfg);
  for (int i = 1; i <= jobs; i++) ASSERT_OK(wp_pool_submit(p, (uint64_t)i, NULL, NULL));
  ASSERT_OK(wp_pool_shutdown(p, NULL));
  check_once(jobs);
  for (int i = 1; i <= jobs; i++) {
    ASSERT_EQ(atomic_load(&R.err[i]), 0);
    ASSERT_EQ(atomic_load(&R.attempts[i]), 2);
  }
  int n = atomic_load(&R.nstarts);
  ASSERT_EQ(n, 2 * jobs);
  wp_pool_stats st;
  wp_pool_stats_get(p, &st);
  ASSERT_EQ(st.attempts, 2 * jobs);
  ASSERT_EQ(st.retries, jobs);
  /* Each start is recorded after its take, so sorted times are upper
   * bounds of the takes: the k-th (from 0) cannot precede its turn. */
  qsort(R.starts, (size_t)n, sizeof R.starts[0], cmp_i64);
  int64_t iv = (int64_t)(1e9 / rate);
  for (int k = (int)burst; k < n; k++) {
    int64_t earliest = t0 + (int64_t)(k + 1 - (int)burst) * iv;
    if (R.starts[k] < earliest)
      WP_FAIL_("start %d at +%lld us, before its turn at +%lld us", k,
               (long long)(R.starts[k] - t0) / 1000,
               (long long)(earliest - t0) / 1000);
  }
  wp_pool_destroy(p);
  rec_free();
}

static int noop(wp_ctx *ctx, wp_job *j, void *ws) {
  (void)ctx;
  (void)j;
  (void)ws;
  return 0;
}

TEST(rate_wait_holds_no_worker_and_shutdown_now_ends_it) {
  rec_reset();
  wp_pool_config cfg = {0};
  cfg.workers = 2;
  cfg.max_outstanding = 8;
  cfg.task = noop;
  cfg.limits.rate = 1.0 / 3600; /* one an hour */
  cfg.limits.burst = 1;
  wp_pool *p = make(&cfg);
  for (int i = 1; i <= 4; i++) ASSERT_OK(wp_pool_submit(p, (uint64_t)i, NULL, NULL));
  wait_results(1, "the first job (the burst)");
  ASSERT_EQ(atomic_load(&R.count[1]), 1);
  /* Nobody holds the waiting jobs: both workers sleep while three jobs
   * wait in the queue. */
  wp_pool_stats st;
  wait_stats(p, 0, 0, &st);
  ASSERT_EQ(st.queued, 3);
  ASSERT_EQ(st.attempts, 1);
  ASSERT_OK(wp_pool_shutdown_now(p, NULL)); /* returns at once */
  check_once(4);
  for (int i = 2; i <= 4; i++) {
    ASSERT_EQ(atomic_load(&R.err[i]), WP_ECANCELED);
    ASSERT_EQ(atomic_load(&R.attempts[i]), 0);
  }
  wp_pool_stats_get(p, &st);
  ASSERT_EQ(st.attempts, 1);
  ASSERT_EQ(st.canceled, 3);
  wp_pool_destroy(p);
  rec_free();
}

/* ---- per key ------------------------------------------------------------- */

static uint64_t key_of_arg(void *arg, void *ud) {
  (void)ud;
  return (uint64_t)(uintptr_t)arg;
}

/* Key 1 blocks until the gate opens (or its context ends); key 2 returns. */
static int keyed_task(wp_ctx *ctx, wp_job *j, void *ws) {
  (void)ws;
  int key = (int)(uintptr_t)wp_job_arg(j);
  int now = atomic_fetch_add(&R.running[key], 1) + 1;
  int m = atomic_load(&R.max_running[key]);
  while (now > m && !atomic_compare_exchange_weak(&R.max_running[key], &m, now)) {
  }
  int rc = 0;
  if (key == 1) {
    wp_ctx *both;
    ASSERT_OK(wp_ctx_with_cancel(R.gate, &both));
    wp_ctx_hook h;
    if (wp_ctx_on_done(ctx, &h, (wp_ctx_done_cb)wp_ctx_cancel, both) == 0) {
      wp_ctx_wait(both, INT64_MAX);
      wp_ctx_hook_remove(&h);
    }
    wp_ctx_release(both);
    rc = wp_ctx_err(ctx) ? WP_ECANCELED : 0;
  }
  atomic_fetch_sub(&R.running[key], 1);
  return rc;
}

static wp_pool *make_keyed(unsigned workers, size_t bound, unsigned per_key) {
  wp_pool_config cfg = {0};
  cfg.workers = workers;
  cfg.max_outstanding = bound;
  cfg.task = keyed_task;
  cfg.limits.per_key = per_key;
  cfg.limits.key = key_of_arg;
  return make(&cfg);
}

TEST(per_key_cap_without_head_of_line_blocking) {
  rec_reset();
  wp_pool *p = make_keyed(4, 64, 2);
  /* Ten jobs of the blocked key first, in front of thirty of the other. */
  for (int i = 1; i <= 10; i++) ASSERT_OK(wp_pool_submit(p, (uint64_t)i, (void *)1, NULL));
  for (int i = 11; i <= 40; i++) ASSERT_OK(wp_pool_submit(p, (uint64_t)i, (void *)2, NULL));
  /* All thirty finish while key 1 is saturated and stuck: two workers hold
   * its two running jobs, the other two run key 2. */
  wait_results(30, "key 2's jobs behind key 1's saturated ones");
  for (int i = 11; i <= 40; i++) ASSERT_EQ(atomic_load(&R.count[i]), 1);
  wp_pool_stats st;
  wait_stats(p, 2, 8, &st);
  ASSERT_EQ(st.held, 8);
  ASSERT_EQ(st.running, 2);
  /* The second one may be taken but not yet inside its task: look again
   * (bounded) until both are. */
  int64_t end = wp_now_ns() + 60 * SEC;
  while (atomic_load(&R.running[1]) < 2) {
    ASSERT(wp_now_ns() < end);
    sched_yield();
  }
  ASSERT_EQ(atomic_load(&R.running[1]), 2);
  wp_ctx_cancel(R.gate); /* key 1 goes on, two at a time */
  ASSERT_OK(wp_pool_shutdown(p, NULL));
  check_once(40);
  for (int i = 1; i <= 40; i++) ASSERT_EQ(atomic_load(&R.err[i]), 0);
  ASSERT_EQ(atomic_load(&R.max_running[1]), 2);
  wp_pool_stats_get(p, &st);
  ASSERT_EQ(st.held, 0);
  ASSERT_EQ(st.attempts, 40);
  wp_pool_destroy(p);
  rec_free();
}

TEST(shutdown_now_ends_key_waits_at_once) {
  rec_reset();
  wp_pool *p = make_keyed(3, 6, 1);
  for (int i = 1; i <= 6; i++) ASSERT_OK(wp_pool_submit(p, (uint64_t)i, (void *)1, NULL));
  wp_pool_stats st;
  wait_stats(p, SIZE_MAX, 5, &st); /* one runs, five are set aside */
  /* Memory stays bounded while jobs wait for their key: a job set aside
   * keeps its slot, so the bound (6), full of one running job and five set
   * aside, refuses a job of another key, although two workers are idle. */
  ASSERT_EQ(st.running, 1);
  ASSERT_EQ(wp_pool_try_submit(p, 7, (void *)2), WP_EAGAIN);
  ASSERT_OK(wp_pool_shutdown_now(p, NULL));
  check_once(6);
  int never_ran = 0;
  for (int i = 1; i <= 6; i++) {
    ASSERT_EQ(atomic_load(&R.err[i]), WP_ECANCELED);
    never_ran += atomic_load(&R.attempts[i]) == 0;
  }
  ASSERT_EQ(never_ran, 5);
  ASSERT_EQ(atomic_load(&R.max_running[1]), 1);
  wp_pool_destroy(p);
  rec_free();
}

/* A job given its key's free slot but past its deadline when taken ends
 * without running; the slot must then pass to the next job set aside for
 * the key (it used to stay unclaimed: that job waited forever and Shutdown
 * hung). Job 1 fails once while job 2 waits behind it; job 2 (gated) holds
 * the key while job 1's retry and job 3 are set aside; job 1's deadline
 * passes; job 2 ends: job 1 expires, job 3 must run. */
static sem_t started1, fail1, started2;
static atomic_llong first_start;

static int strand_task(wp_ctx *ctx, wp_job *j, void *ws) {
  (void)ctx;
  (void)ws;
  switch (wp_job_id(j)) {
    case 1:
      ASSERT_EQ(wp_job_attempt(j), 1); /* it must expire, not run again */
      atomic_store(&first_start, wp_now_ns());
      sem_post(&started1);
      sem_wait_bounded(&fail1, 120, "the test to let job 1 fail");
      wp_job_set_retry_after(j, MS);
      return 9;
    case 2:
      sem_post(&started2);
      wp_ctx_wait(R.gate, INT64_MAX);
      return 0;
    default:
      return 0;
  }
}

/* Polls (bounded: 60 s) until at least min_held jobs are set aside, or job
 * `id` has its result. Returns true for the first. */
static bool held_before_result(wp_pool *p, size_t min_held, int id) {
  int64_t end = wp_now_ns() + 60 * SEC;
  for (;;) {
    wp_pool_stats st;
    wp_pool_stats_get(p, &st);
    if (st.held >= min_held) return true;
    if (atomic_load(&R.count[id]) > 0) return false;
    if (wp_now_ns() > end)
      WP_FAIL_("held %zu (want >= %zu), no result of job %d", st.held,
               min_held, id);
    sched_yield();
  }
}

/* One run of the scenario with the given job timeout. Returns false if the
 * machine was too slow for it: job 1 ended (its retry would have started
 * past the deadline) before it was set aside. */
static bool strand_once(int64_t timeout) {
  rec_reset();
  ASSERT_EQ(sem_init(&started1, 0, 0), 0);
  ASSERT_EQ(sem_init(&fail1, 0, 0), 0);
  ASSERT_EQ(sem_init(&started2, 0, 0), 0);
  wp_pool_config cfg = {0};
  cfg.workers = 2;
  cfg.max_outstanding = 8;
  cfg.task = strand_task;
  cfg.limits.per_key = 1;
  cfg.limits.key = key_of_arg;
  cfg.retry.max_attempts = 5;
  cfg.retry.base_ns = MS;
  cfg.retry.cap_ns = MS;
  cfg.job_timeout_ns = timeout;
  wp_pool *p = make(&cfg);
  ASSERT_OK(wp_pool_submit(p, 1, (void *)1, NULL));
  sem_wait_bounded(&started1, 120, "job 1 to start");
  ASSERT_OK(wp_pool_submit(p, 2, (void *)1, NULL));
  wp_pool_stats st;
  wait_stats(p, SIZE_MAX, 1, &st); /* job 2 set aside behind job 1 */
  sem_post(&fail1);
  sem_wait_bounded(&started2, 120, "job 2 to take the key");
  bool in_time = held_before_result(p, 1, 1); /* job 1's retry set aside */
  if (in_time) {
    ASSERT_OK(wp_pool_submit(p, 3, (void *)1, NULL));
    wait_stats(p, SIZE_MAX, 2, &st); /* job 1's retry and job 3 set aside */
    /* Let job 1's deadline pass (a deadline, not thread coordination). */
    wp_ctx *past;
    ASSERT_OK(wp_ctx_with_deadline(
        NULL, atomic_load(&first_start) + timeout + MS, &past));
    wp_ctx_wait(past, INT64_MAX);
    wp_ctx_release(past);
    wp_ctx_cancel(R.gate);
    wait_results(3, "job 3 after job 1 expired holding the key's slot");
    ASSERT_OK(wp_pool_shutdown(p, NULL));
    check_once(3);
    ASSERT_EQ(atomic_load(&R.err[1]), 9);
    ASSERT_EQ(atomic_load(&R.attempts[1]), 1);
    ASSERT_EQ(atomic_load(&R.err[2]), 0);
    ASSERT_EQ(atomic_load(&R.err[3]), 0);
  } else {
    wp_ctx_cancel(R.gate);
    ASSERT_OK(wp_pool_shutdown(p, NULL));
    check_once(2);
  }
  wp_pool_destroy(p);
  sem_destroy(&started1);
  sem_destroy(&fail1);
  sem_destroy(&started2);
  rec_free();
  return in_time;
}

TEST(expired_job_passes_its_key_slot_on) {
  /* The scenario needs job 1's retry set aside before its deadline: 20 ms
   * is plenty on a quiet machine; a loaded one (TSan, CI) gets a longer
   * deadline on each try. */
  int64_t timeout = 20 * MS;
  while (!strand_once(timeout)) {
    fprintf(stderr, "job timeout %lld ms too short here: again, longer\n",
            (long long)(timeout / MS));
    timeout *= 4;
    ASSERT(timeout <= 20 * SEC);
  }
}

/* A job that expires while waiting for its rate turn gives its slot back
 * at once: a submitter blocked at the bound goes on (it used to wait for
 * the worker's next take, which never came on an idle pool). */
static int fail_once_soon(wp_ctx *ctx, wp_job *j, void *ws) {
  (void)ctx;
  (void)ws;
  if (wp_job_attempt(j) == 1 && wp_job_id(j) == 1) {
    wp_job_set_retry_after(j, MS);
    return 9;
  }
  return 0;
}

TEST(expired_job_gives_its_slot_back_at_once) {
  rec_reset();
  wp_pool_config cfg = {0};
  cfg.workers = 1;
  cfg.max_outstanding = 1;
  cfg.task = fail_once_soon;
  cfg.retry.max_attempts = 5;
  cfg.retry.base_ns = MS;
  cfg.retry.cap_ns = MS;
  /* The retry is due after 1 ms, its turn comes after 200 ms, its
   * deadline after 50 ms: it expires waiting for its turn. */
  cfg.limits.rate = 5;
  cfg.limits.burst = 1;
  cfg.job_timeout_ns = 50 * MS;
  wp_pool *p = make(&cfg);
  ASSERT_OK(wp_pool_submit(p, 1, NULL, NULL));
  wp_ctx *bounded;
  ASSERT_OK(wp_ctx_with_timeout(NULL, 60 * SEC, &bounded));
  ASSERT_OK(wp_pool_submit(p, 2, NULL, bounded)); /* blocks at the bound */
  wp_ctx_release(bounded);
  ASSERT_OK(wp_pool_shutdown(p, NULL));
  check_once(2);
  ASSERT_EQ(atomic_load(&R.err[1]), 9);
  ASSERT_EQ(atomic_load(&R.attempts[1]), 1);
  ASSERT_EQ(atomic_load(&R.err[2]), 0);
  wp_pool_destroy(p);
  rec_free();
}

/* ---- job timeout --------------------------------------------------------- */

static atomic_llong retry_after_ns;

static int fail_with_9(wp_ctx *ctx, wp_job *j, void *ws) {
  (void)ctx;
  (void)ws;
  long long ra = atomic_load(&retry_after_ns);
  if (ra >= 0) wp_job_set_retry_after(j, ra);
  return 9;
}

/* Runs one job on a one-worker pool with a job timeout and waits for its
 * result; returns the pool (still running) for the caller's checks. */
static wp_pool *one_job(wp_task_fn task, unsigned max_attempts,
                        int64_t backoff_ns, int64_t job_timeout_ns,
                        const char *what) {
  wp_pool_config cfg = {0};
  cfg.workers = 1;
  cfg.task = task;
  cfg.retry.max_attempts = max_attempts;
  cfg.retry.base_ns = backoff_ns;
  cfg.retry.cap_ns = 2 * backoff_ns;
  cfg.job_timeout_ns = job_timeout_ns;
  wp_pool *p = make(&cfg);
  ASSERT_OK(wp_pool_submit(p, 1, NULL, NULL));
  wait_results(1, what);
  return p;
}

static void end_one_job(wp_pool *p) {
  ASSERT_OK(wp_pool_shutdown(p, NULL));
  check_once(1);
  wp_pool_destroy(p);
  rec_free();
}

TEST(retry_after_past_the_deadline_ends_the_job_with_its_error) {
  rec_reset();
  atomic_store(&retry_after_ns, 3600 * SEC);
  /* Without the deadline this would wait an hour; the test's timeout
   * fails it. */
  wp_pool *p = one_job(fail_with_9, 5, MS, 60 * SEC,
                       "a job whose Retry-After passes its deadline");
  ASSERT_EQ(atomic_load(&R.err[1]), 9);
  ASSERT_EQ(atomic_load(&R.attempts[1]), 1);
  wp_pool_stats st;
  wp_pool_stats_get(p, &st);
  ASSERT_EQ(st.retries, 0);
  ASSERT_EQ(st.waiting, 0);
  end_one_job(p);
}

TEST(retries_stop_at_the_deadline) {
  rec_reset();
  atomic_store(&retry_after_ns, -1); /* the computed backoff: <= 2 ms */
  wp_pool *p = one_job(fail_with_9, 1000000, MS, 300 * MS,
                       "a job failing until its deadline");
  ASSERT_EQ(atomic_load(&R.err[1]), 9); /* the last attempt's error */
  unsigned a = atomic_load(&R.attempts[1]);
  ASSERT_GE(a, 2);
  ASSERT_LT(a, 1000000);
  end_one_job(p);
}

static int wait_for_ctx(wp_ctx *ctx, wp_job *j, void *ws) {
  (void)j;
  (void)ws;
  wp_ctx_wait(ctx, INT64_MAX); /* ends at the job's deadline */
  return wp_ctx_err(ctx);
}

TEST(an_attempt_context_ends_at_the_job_deadline) {
  rec_reset();
  wp_pool *p = one_job(wait_for_ctx, 3, MS, 50 * MS,
                       "a task blocked on its context");
  ASSERT_EQ(atomic_load(&R.err[1]), WP_ETIMEDOUT);
  ASSERT_EQ(atomic_load(&R.attempts[1]), 1); /* no retry after the deadline */
  end_one_job(p);
}

static int fail_once_20ms(wp_ctx *ctx, wp_job *j, void *ws) {
  (void)ctx;
  (void)ws;
  if (wp_job_attempt(j) > 1) return 0;
  wp_job_set_retry_after(j, 20 * MS);
  return 4;
}

TEST(shutdown_with_retries_pending_ends_every_worker) {
  /* Workers that went to sleep while retries waited in the timer queue
   * must all wake and exit once the last retry is done: Shutdown returns
   * (a sleeper left behind hangs it, and the test times out). */
  for (int round = 0; round < 20; round++) {
    rec_reset();
    wp_pool_config cfg = {0};
    cfg.workers = 4;
    cfg.max_outstanding = 16;
    cfg.task = fail_once_20ms;
    cfg.retry.max_attempts = 2;
    wp_pool *p = make(&cfg);
    for (int i = 1; i <= 8; i++) ASSERT_OK(wp_pool_submit(p, (uint64_t)i, NULL, NULL));
    ASSERT_OK(wp_pool_shutdown(p, NULL));
    check_once(8);
    for (int i = 1; i <= 8; i++) ASSERT_EQ(atomic_load(&R.attempts[i]), 2);
    wp_pool_destroy(p);
    rec_free();
  }
}

TEST(bad_limit_configs_are_refused) {
  wp_pool_config cfg = {0};
  cfg.workers = 1;
  cfg.task = noop;
  cfg.on_result = on_result;
  wp_pool *p = (wp_pool *)&cfg;
  cfg.limits.rate = -1;
  ASSERT_EQ(wp_pool_create(&cfg, &p), WP_EINVAL);
  ASSERT(p == NULL);
  cfg.limits.rate = 2e9;
  ASSERT_EQ(wp_pool_create(&cfg, &p), WP_EINVAL);
  cfg.limits.rate = 0.0 / 0.0;
  ASSERT_EQ(wp_pool_create(&cfg, &p), WP_EINVAL);
  cfg.limits.rate = 0;
  cfg.limits.per_key = 2; /* without a key function */
  ASSERT_EQ(wp_pool_create(&cfg, &p), WP_EINVAL);
  cfg.limits.per_key = 0;
  cfg.job_timeout_ns = -1;
  ASSERT_EQ(wp_pool_create(&cfg, &p), WP_EINVAL);
}

int main(int argc, char **argv) { return wp_test_main(argc, argv); }
