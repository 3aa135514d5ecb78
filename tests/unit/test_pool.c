/* The pool's guarantees (docs/design.md), each tested directly. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "wp_test.h"
#include "wpool/wpool.h"

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifndef UNDER_TSAN
#define UNDER_TSAN 0
#endif

#define MS 1000000LL

/* ---- a recorder of results ------------------------------------------ */

typedef struct rec {
  size_t n;              /* IDs 1..n */
  atomic_int *count;     /* results per ID */
  atomic_int *err;       /* last error per ID */
  atomic_uint *attempts; /* attempts per ID */
  atomic_ulong total;
  atomic_ulong order; /* sequence for ordering checks */
  atomic_ulong *seq;  /* when each result arrived */
  sem_t any;          /* posted once per result */
} rec;

static void rec_init(rec *r, size_t n) {
  r->n = n;
  r->count = calloc(n + 1, sizeof *r->count);
  r->err = calloc(n + 1, sizeof *r->err);
  r->attempts = calloc(n + 1, sizeof *r->attempts);
  r->seq = calloc(n + 1, sizeof *r->seq);
  ASSERT(r->count && r->err && r->attempts && r->seq);
  atomic_init(&r->total, 0);
  atomic_init(&r->order, 0);
  ASSERT_EQ(sem_init(&r->any, 0, 0), 0);
}

static void rec_free(rec *r) {
  free(r->count);
  free(r->err);
  free(r->attempts);
  free(r->seq);
  sem_destroy(&r->any);
}

static void on_result(const wp_result *res, void *ud) {
  rec *r = ud;
  ASSERT(res->id >= 1 && res->id <= r->n);
  atomic_fetch_add(&r->count[res->id], 1);
  atomic_store(&r->err[res->id], res->err);
  atomic_store(&r->attempts[res->id], res->attempts);
  atomic_store(&r->seq[res->id], atomic_fetch_add(&r->order, 1) + 1);
  atomic_fetch_add(&r->total, 1);
  sem_post(&r->any);
}

/* Every ID in [1, upto] has exactly one result; none beyond. */
static void rec_check_once(rec *r, size_t upto) {
  for (size_t i = 1; i <= r->n; i++) {
    int c = atomic_load(&r->count[i]);
    if (i <= upto)
      ASSERT_EQ(c, 1);
    else
      ASSERT_EQ(c, 0);
  }
  ASSERT_EQ(atomic_load(&r->total), upto);
}

static void sem_wait_n(sem_t *s, unsigned n) {
  for (unsigned i = 0; i < n; i++)
    while (sem_wait(s) != 0) ASSERT_EQ(errno, EINTR);
}

/* ---- tasks ------------------------------------------------------------ */

static int noop_task(wp_ctx *ctx, wp_job *j, void *ws) {
  (void)ctx;
  (void)ws;
  wp_job_set_value(j, (void *)(uintptr_t)(wp_job_id(j) * 2));
  return 0;
}

/* Blocks until the gate opens or its context ends. */
typedef struct gate {
  sem_t started; /* posted when a task starts */
  wp_ctx *open;  /* canceled to open the gate */
  atomic_int running, max_running;
} gate;

static void gate_init(gate *g) {
  ASSERT_EQ(sem_init(&g->started, 0, 0), 0);
  ASSERT_OK(wp_ctx_with_cancel(NULL, &g->open));
  atomic_init(&g->running, 0);
  atomic_init(&g->max_running, 0);
}

static void gate_free(gate *g) {
  sem_destroy(&g->started);
  wp_ctx_release(g->open);
}

static gate *the_gate;

static int gated_task(wp_ctx *ctx, wp_job *j, void *ws) {
  (void)j;
  (void)ws;
  gate *g = the_gate;
  int now = atomic_fetch_add(&g->running, 1) + 1;
  int m = atomic_load(&g->max_running);
  while (now > m && !atomic_compare_exchange_weak(&g->max_running, &m, now)) {
  }
  sem_post(&g->started);
  /* Wait for either the gate or the job's context. */
  wp_ctx *both;
  ASSERT_OK(wp_ctx_with_cancel(g->open, &both));
  wp_ctx_hook h;
  int rc = wp_ctx_on_done(ctx, &h, (wp_ctx_done_cb)wp_ctx_cancel, both);
  if (rc == 0) wp_ctx_wait(both, INT64_MAX);
  if (rc == 0) wp_ctx_hook_remove(&h);
  wp_ctx_release(both);
  atomic_fetch_sub(&g->running, 1);
  return wp_ctx_err(ctx) ? WP_ECANCELED : 0;
}

/* A task that ignores cancellation until the gate opens. */
static int stubborn_task(wp_ctx *ctx, wp_job *j, void *ws) {
  (void)ctx;
  (void)j;
  (void)ws;
  sem_post(&the_gate->started);
  wp_ctx_wait(the_gate->open, INT64_MAX);
  return 0;
}

/* A task pool's configuration, results to r; the caller may add to it. */
static wp_pool_config pool_config(unsigned workers, size_t bound,
                                  wp_task_fn task, rec *r) {
  wp_pool_config cfg = {0};
  /* Small stacks keep thread creation cheap (glibc caches them). */
  cfg.stack_size = 256 * 1024;
  cfg.workers = workers;
  cfg.max_outstanding = bound;
  cfg.task = task;
  cfg.on_result = on_result;
  cfg.userdata = r;
  return cfg;
}

static wp_pool *make_pool(unsigned workers, size_t bound, wp_task_fn task,
                          rec *r) {
  wp_pool_config cfg = pool_config(workers, bound, task, r);
  wp_pool *p = NULL;
  ASSERT_OK(wp_pool_create(&cfg, &p));
  ASSERT(p != NULL);
  return p;
}

/* ---- guarantee 1: exactly one result per accepted job -------------------- */

TEST(exactly_one_result_callback) {
  const size_t n = 20000;
  int base = wp_test_thread_count();
  rec r;
  rec_init(&r, n);
  wp_pool *p = make_pool(8, 0, noop_task, &r);
  for (size_t i = 1; i <= n; i++) ASSERT_OK(wp_pool_submit(p, i, NULL, NULL));
  ASSERT_OK(wp_pool_shutdown(p, NULL));
  rec_check_once(&r, n);
  wp_pool_stats st;
  wp_pool_stats_get(p, &st);
  ASSERT_EQ(st.submitted, n);
  ASSERT_EQ(st.ok, n);
  ASSERT_EQ(st.failed + st.canceled, 0);
  ASSERT_EQ(st.attempts, n);
  ASSERT_EQ(st.queued + st.running + st.waiting, 0);
  wp_pool_destroy(p);
  ASSERT_EQ(wp_test_thread_count_settles(base), base);
  rec_free(&r);
}

typedef struct chan_collector {
  wp_chan *c;
  size_t n;
  int *seen;
  uint64_t values_ok;
} chan_collector;

static void *collect_chan(void *arg) {
  chan_collector *cc = arg;
  wp_result res;
  int rc;
  while ((rc = wp_chan_recv(cc->c, &res, NULL)) == 0) {
    ASSERT(res.id >= 1 && res.id <= cc->n);
    cc->seen[res.id]++;
    ASSERT_EQ(res.err, 0);
    ASSERT_EQ(res.attempts, 1);
    if ((uintptr_t)res.value == res.id * 2) cc->values_ok++;
  }
  ASSERT_EQ(rc, WP_ECLOSED);
  return NULL;
}

TEST(exactly_one_result_channel_post_order) {
  const size_t n = 20000;
  chan_collector cc = {.n = n};
  cc.seen = calloc(n + 1, sizeof *cc.seen);
  ASSERT_OK(wp_chan_create(sizeof(wp_result), 16, &cc.c));
  pthread_t t;
  ASSERT_EQ(pthread_create(&t, NULL, collect_chan, &cc), 0);
  wp_pool_config cfg = {0};
  cfg.workers = 4;
  cfg.task = noop_task;
  cfg.results = cc.c;
  wp_pool *p;
  ASSERT_OK(wp_pool_create(&cfg, &p));
  for (size_t i = 1; i <= n; i++) ASSERT_OK(wp_pool_submit(p, i, NULL, NULL));
  ASSERT_OK(wp_pool_shutdown(p, NULL)); /* wg.Wait() */
  ASSERT_OK(wp_chan_close(cc.c));       /* close(results) */
  pthread_join(t, NULL);                /* <-done */
  wp_pool_destroy(p);
  for (size_t i = 1; i <= n; i++) ASSERT_EQ(cc.seen[i], 1);
  ASSERT_EQ(cc.values_ok, n);
  wp_chan_destroy(cc.c);
  free(cc.seen);
}

/* Many workers and a small channel: the workers' buffered results wait
 * for half the channel to be free (wp__chan_send_all), and every result
 * still arrives exactly once, whatever the capacity (1: a wake per slot). */
TEST(exactly_one_result_channel_many_workers_small_channel) {
  static const struct {
    unsigned workers;
    size_t cap;
  } cases[] = {{64, 16}, {64, 3}, {256, 1}, {256, 64}};
  const size_t n = 20000;
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    chan_collector cc = {.n = n};
    cc.seen = calloc(n + 1, sizeof *cc.seen);
    ASSERT(cc.seen != NULL);
    ASSERT_OK(wp_chan_create(sizeof(wp_result), cases[k].cap, &cc.c));
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, collect_chan, &cc), 0);
    wp_pool_config cfg = {0};
    cfg.workers = cases[k].workers;
    cfg.task = noop_task;
    cfg.results = cc.c;
    cfg.stack_size = 256 * 1024;
    wp_pool *p;
    ASSERT_OK(wp_pool_create(&cfg, &p));
    for (size_t i = 1; i <= n; i++) ASSERT_OK(wp_pool_submit(p, i, NULL, NULL));
    ASSERT_OK(wp_pool_shutdown(p, NULL));
    ASSERT_OK(wp_chan_close(cc.c));
    pthread_join(t, NULL);
    wp_pool_destroy(p);
    for (size_t i = 1; i <= n; i++) ASSERT_EQ(cc.seen[i], 1);
    ASSERT_EQ(cc.values_ok, n);
    wp_chan_destroy(cc.c);
    free(cc.seen);
  }
}

static int fail_odd_task(wp_ctx *ctx, wp_job *j, void *ws) {
  (void)ctx;
  (void)ws;
  return (wp_job_id(j) & 1) ? 42 : 0;
}

TEST(failures_are_results_with_their_code) {
  const size_t n = 1000;
  rec r;
  rec_init(&r, n);
  wp_pool *p = make_pool(3, 5, fail_odd_task, &r);
  for (size_t i = 1; i <= n; i++) ASSERT_OK(wp_pool_submit(p, i, NULL, NULL));
  ASSERT_OK(wp_pool_shutdown(p, NULL));
  rec_check_once(&r, n);
  for (size_t i = 1; i <= n; i++)
    ASSERT_EQ(atomic_load(&r.err[i]), (i & 1) ? 42 : 0);
  wp_pool_stats st;
  wp_pool_stats_get(p, &st);
  ASSERT_EQ(st.ok, n / 2);
  ASSERT_EQ(st.failed, n / 2);
  wp_pool_destroy(p);
  rec_free(&r);
}

/* ---- guarantee 2: backpressure ------------------------------------------- */

typedef struct submitter {
  wp_pool *p;
  wp_ctx *ctx;
  uint64_t id;
  int rc;
  sem_t *about_to_block;
} submitter;

static void *submit_thread(void *arg) {
  submitter *s = arg;
  sem_post(s->about_to_block);
  s->rc = wp_pool_submit(s->p, s->id, NULL, s->ctx);
  return NULL;
}

TEST(backpressure_bound_holds) {
  const size_t bound = 6;
  gate g;
  gate_init(&g);
  the_gate = &g;
  rec r;
  rec_init(&r, 100);
  wp_pool *p = make_pool(2, bound, gated_task, &r);
  for (size_t i = 1; i <= bound; i++) ASSERT_OK(wp_pool_try_submit(p, i, NULL));
  /* Full: try-submit refuses, a bounded submit times out. */
  ASSERT_EQ(wp_pool_try_submit(p, 99, NULL), WP_EAGAIN);
  wp_ctx *short_ctx;
  ASSERT_OK(wp_ctx_with_timeout(NULL, 20 * MS, &short_ctx));
  ASSERT_EQ(wp_pool_submit(p, 99, NULL, short_ctx), WP_ETIMEDOUT);
  wp_ctx_release(short_ctx);
  sem_wait_n(&g.started, 2);
  wp_pool_stats st;
  wp_pool_stats_get(p, &st);
  ASSERT_EQ(st.queued + st.running + st.waiting, bound);
  ASSERT_EQ(st.running, 2);
  ASSERT_EQ(st.queued, bound - 2);
  ASSERT_EQ(atomic_load(&g.max_running), 2);
  /* Open the gate: everything drains, the bound frees up. */
  wp_ctx_cancel(g.open);
  for (size_t i = bound + 1; i <= 60; i++)
    ASSERT_OK(wp_pool_submit(p, i, NULL, NULL));
  ASSERT_OK(wp_pool_shutdown(p, NULL));
  rec_check_once(&r, 60);
  wp_pool_destroy(p);
  rec_free(&r);
  gate_free(&g);
}

/* The bound with submitters racing on the lock-free path: four threads
 * try-submit at once until refused, while the two workers hold their first
 * jobs. Exactly bound jobs get in, however the credits race. */
typedef struct racer {
  wp_pool *p;
  pthread_barrier_t *go;
  uint64_t first_id;
  size_t accepted;
} racer;

static void *race_submit(void *arg) {
  racer *r = arg;
  pthread_barrier_wait(r->go);
  for (uint64_t id = r->first_id;; id++) {
    int rc = wp_pool_try_submit(r->p, id, NULL);
    if (rc == WP_EAGAIN) break;
    ASSERT_OK(rc);
    r->accepted++;
  }
  return NULL;
}

TEST(backpressure_bound_holds_with_racing_submitters) {
  const size_t bound = 8;
  gate g;
  gate_init(&g);
  the_gate = &g;
  rec r;
  rec_init(&r, 4 * 100 + 1);
  wp_pool *p = make_pool(2, bound, gated_task, &r);
  pthread_barrier_t go;
  pthread_barrier_init(&go, NULL, 5);
  racer rs[4];
  pthread_t t[4];
  for (int i = 0; i < 4; i++) {
    rs[i] = (racer){p, &go, (uint64_t)i * 100 + 1, 0};
    ASSERT_EQ(pthread_create(&t[i], NULL, race_submit, &rs[i]), 0);
  }
  pthread_barrier_wait(&go);
  size_t total = 0;
  for (int i = 0; i < 4; i++) {
    pthread_join(t[i], NULL);
    total += rs[i].accepted;
  }
  ASSERT_EQ(total, bound);
  sem_wait_n(&g.started, 2);
  wp_pool_stats st;
  wp_pool_stats_get(p, &st);
  ASSERT_EQ(st.queued + st.running + st.waiting, bound);
  wp_ctx_cancel(g.open);
  ASSERT_OK(wp_pool_shutdown(p, NULL));
  size_t results = 0;
  for (size_t i = 1; i <= 4 * 100; i++) {
    ASSERT(atomic_load(&r.count[i]) <= 1);
    results += (size_t)atomic_load(&r.count[i]);
  }
  ASSERT_EQ(results, bound);
  wp_pool_destroy(p);
  pthread_barrier_destroy(&go);
  rec_free(&r);
  gate_free(&g);
}

TEST(blocked_submitter_woken_by_its_context) {
  gate g;
  gate_init(&g);
  the_gate = &g;
  rec r;
  rec_init(&r, 10);
  wp_pool *p = make_pool(1, 1, gated_task, &r);
  ASSERT_OK(wp_pool_submit(p, 1, NULL, NULL));
  sem_t about;
  sem_init(&about, 0, 0);
  submitter s = {.p = p, .id = 2, .about_to_block = &about};
  ASSERT_OK(wp_ctx_with_cancel(NULL, &s.ctx));
  pthread_t t;
  ASSERT_EQ(pthread_create(&t, NULL, submit_thread, &s), 0);
  sem_wait_n(&about, 1);
  wp_ctx_cancel(s.ctx); /* whether it already sleeps or not, it must return */
  pthread_join(t, NULL);
  ASSERT_EQ(s.rc, WP_ECANCELED);
  wp_ctx_cancel(g.open);
  ASSERT_OK(wp_pool_shutdown(p, NULL));
  rec_check_once(&r, 1); /* the refused job has no result */
  wp_pool_destroy(p);
  wp_ctx_release(s.ctx);
  sem_destroy(&about);
  rec_free(&r);
  gate_free(&g);
}

TEST(blocked_submitter_woken_by_shutdown_now) {
  gate g;
  gate_init(&g);
  the_gate = &g;
  rec r;
  rec_init(&r, 10);
  wp_pool *p = make_pool(1, 2, gated_task, &r);
  ASSERT_OK(wp_pool_submit(p, 1, NULL, NULL));
  ASSERT_OK(wp_pool_submit(p, 2, NULL, NULL));
  sem_wait_n(&g.started, 1);
  sem_t about;
  sem_init(&about, 0, 0);
  submitter s = {.p = p, .id = 3, .about_to_block = &about};
  pthread_t t;
  ASSERT_EQ(pthread_create(&t, NULL, submit_thread, &s), 0);
  sem_wait_n(&about, 1);
  ASSERT_OK(wp_pool_shutdown_now(p, NULL));
  pthread_join(t, NULL);
  ASSERT_EQ(s.rc, WP_ECLOSED);
  rec_check_once(&r, 2);
  ASSERT_EQ(atomic_load(&r.err[1]), WP_ECANCELED); /* was running */
  ASSERT_EQ(atomic_load(&r.attempts[1]), 1);
  ASSERT_EQ(atomic_load(&r.err[2]), WP_ECANCELED); /* was queued */
  ASSERT_EQ(atomic_load(&r.attempts[2]), 0);
  wp_pool_destroy(p);
  sem_destroy(&about);
  rec_free(&r);
  gate_free(&g);
}

/* ---- guarantee 3: no crash on misuse of shutdown ------------------------- */

TEST(submit_after_shutdown_is_closed) {
  for (int now = 0; now < 2; now++) {
    rec r;
    rec_init(&r, 10);
    wp_pool *p = make_pool(2, 4, noop_task, &r);
    ASSERT_OK(wp_pool_submit(p, 1, NULL, NULL));
    if (now)
      ASSERT_OK(wp_pool_shutdown_now(p, NULL));
    else
      ASSERT_OK(wp_pool_shutdown(p, NULL));
    ASSERT_EQ(wp_pool_submit(p, 2, NULL, NULL), WP_ECLOSED);
    ASSERT_EQ(wp_pool_try_submit(p, 3, NULL), WP_ECLOSED);
    /* Shutting down again, either way, is harmless. */
    ASSERT_OK(wp_pool_shutdown(p, NULL));
    ASSERT_OK(wp_pool_shutdown_now(p, NULL));
    rec_check_once(&r, 1);
    wp_pool_destroy(p);
    rec_free(&r);
  }
}

/* ---- guarantee 4: Shutdown drains, ShutdownNow cancels ------------------- */

TEST(shutdown_drains_everything) {
  gate g;
  gate_init(&g);
  the_gate = &g;
  rec r;
  rec_init(&r, 8);
  wp_pool *p = make_pool(2, 8, gated_task, &r);
  for (size_t i = 1; i <= 8; i++) ASSERT_OK(wp_pool_submit(p, i, NULL, NULL));
  sem_wait_n(&g.started, 2);
  /* A bounded Shutdown gives up while tasks are blocked, and changes
   * nothing: the pool keeps draining. */
  wp_ctx *dl;
  ASSERT_OK(wp_ctx_with_timeout(NULL, 20 * MS, &dl));
  ASSERT_EQ(wp_pool_shutdown(p, dl), WP_ETIMEDOUT);
  wp_ctx_release(dl);
  ASSERT_EQ(wp_pool_submit(p, 9, NULL, NULL), WP_ECLOSED);
  wp_ctx_cancel(g.open);
  ASSERT_OK(wp_pool_shutdown(p, NULL));
  rec_check_once(&r, 8);
  for (size_t i = 1; i <= 8; i++) ASSERT_EQ(atomic_load(&r.err[i]), 0);
  wp_pool_destroy(p);
  rec_free(&r);
  gate_free(&g);
}

TEST(shutdown_now_cancels_running_and_queued) {
  int base = wp_test_thread_count();
  gate g;
  gate_init(&g);
  the_gate = &g;
  rec r;
  rec_init(&r, 20);
  wp_pool *p = make_pool(4, 20, gated_task, &r);
  for (size_t i = 1; i <= 20; i++) ASSERT_OK(wp_pool_submit(p, i, NULL, NULL));
  sem_wait_n(&g.started, 4);
  ASSERT_OK(wp_pool_shutdown_now(p, NULL));
  rec_check_once(&r, 20);
  unsigned ran = 0, never = 0;
  for (size_t i = 1; i <= 20; i++) {
    ASSERT_EQ(atomic_load(&r.err[i]), WP_ECANCELED);
    unsigned a = atomic_load(&r.attempts[i]);
    ASSERT(a <= 1);
    if (a == 1)
      ran++;
    else
      never++;
  }
  ASSERT_EQ(ran, 4);
  ASSERT_EQ(never, 16);
  wp_pool_stats st;
  wp_pool_stats_get(p, &st);
  ASSERT_EQ(st.canceled, 20);
  wp_pool_destroy(p);
  ASSERT_EQ(wp_test_thread_count_settles(base), base);
  rec_free(&r);
  gate_free(&g);
}

TEST(shutdown_now_deadline_with_stubborn_task) {
  gate g;
  gate_init(&g);
  the_gate = &g;
  rec r;
  rec_init(&r, 3);
  wp_pool *p = make_pool(1, 3, stubborn_task, &r);
  for (size_t i = 1; i <= 3; i++) ASSERT_OK(wp_pool_submit(p, i, NULL, NULL));
  sem_wait_n(&g.started, 1);
  wp_ctx *dl;
  ASSERT_OK(wp_ctx_with_timeout(NULL, 20 * MS, &dl));
  ASSERT_EQ(wp_pool_shutdown_now(p, dl), WP_ETIMEDOUT);
  wp_ctx_release(dl);
  /* The queued two are already canceled; the stubborn one is not done. */
  ASSERT_EQ(atomic_load(&r.total), 2);
  ASSERT_EQ(atomic_load(&r.count[1]), 0);
  wp_ctx_cancel(g.open);
  wp_pool_destroy(p); /* waits for it */
  rec_check_once(&r, 3);
  ASSERT_EQ(atomic_load(&r.err[1]), 0);
  rec_free(&r);
  gate_free(&g);
}

/* ---- the storm ----------------------------------------------------------- */

static int random_length_task(wp_ctx *ctx, wp_job *j, void *ws) {
  (void)ws;
  uint64_t x = wp_job_id(j) * 0x9e3779b97f4a7c15ull;
  unsigned spins = (unsigned)((x >> 40) % 20000);
  for (unsigned i = 0; i < spins; i++) {
    if ((i & 255) == 0 && wp_ctx_err(ctx)) return WP_ECANCELED;
    __asm__ volatile("" ::: "memory");
  }
  return 0;
}

typedef struct storm_producer {
  wp_pool *p;
  size_t max;
  atomic_size_t accepted;
  sem_t *started;
} storm_producer;

static void *storm_produce(void *arg) {
  storm_producer *sp = arg;
  sem_post(sp->started);
  for (size_t i = 1; i <= sp->max; i++) {
    int rc = wp_pool_submit(sp->p, i, NULL, NULL);
    if (rc == WP_ECLOSED) break;
    ASSERT_EQ(rc, 0);
    atomic_store(&sp->accepted, i);
  }
  return NULL;
}

TEST(storm_shutdown_now_at_random_moments) {
  int base = wp_test_thread_count();
  wp_rng rng;
  wp_rng_seed(&rng, wp_test_seed());
  unsigned rounds = (unsigned)(1000 * wp_test_scale());
  const size_t max_jobs = 4000;
  rec r;
  rec_init(&r, max_jobs);
  sem_t started;
  sem_init(&started, 0, 0);
  for (unsigned round = 0; round < rounds; round++) {
    memset(r.count, 0, (max_jobs + 1) * sizeof *r.count);
    atomic_store(&r.total, 0);
    wp_pool *p = make_pool(64, 128, random_length_task, &r);
    storm_producer sp = {.p = p, .max = max_jobs, .started = &started};
    atomic_init(&sp.accepted, 0);
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, storm_produce, &sp), 0);
    sem_wait_n(&started, 1);
    /* A random moment: after a random number of results, 0..255. */
    unsigned wait_for = (unsigned)wp_rng_below_eq(&rng, 255);
    while (atomic_load(&r.total) < wait_for &&
           atomic_load(&sp.accepted) < max_jobs)
      sched_yield();
    ASSERT_OK(wp_pool_shutdown_now(p, NULL));
    pthread_join(t, NULL);
    size_t accepted = atomic_load(&sp.accepted);
    wp_pool_stats st;
    wp_pool_stats_get(p, &st);
    ASSERT_EQ(st.submitted, accepted);
    ASSERT_EQ(st.ok + st.failed + st.canceled, accepted);
    wp_pool_destroy(p);
    rec_check_once(&r, accepted); /* accepted == results, no ID twice */
    while (sem_trywait(&r.any) == 0) {
    }
  }
  ASSERT_EQ(wp_test_thread_count_settles(base), base); /* no thread left */
  sem_destroy(&started);
  rec_free(&r);
}

/* ---- guarantee 5: a retry never occupies a worker ------------------------ */

static atomic_ulong first_attempt_of_1_failed_at;

static int fail_once_task(wp_ctx *ctx, wp_job *j, void *ws) {
  (void)ctx;
  (void)ws;
  if (wp_job_id(j) == 1 && wp_job_attempt(j) == 1) {
    wp_job_set_retry_after(j, 50 * MS);
    return 7;
  }
  return 0;
}

TEST(retry_waits_in_timer_queue_not_in_worker) {
  rec r;
  rec_init(&r, 3);
  wp_pool_config cfg = {0};
  cfg.workers = 1;
  cfg.max_outstanding = 2;
  cfg.task = fail_once_task;
  cfg.on_result = on_result;
  cfg.userdata = &r;
  cfg.retry.max_attempts = 3;
  cfg.retry.base_ns = MS;
  cfg.retry.cap_ns = 10 * MS;
  wp_pool *p;
  ASSERT_OK(wp_pool_create(&cfg, &p));
  (void)first_attempt_of_1_failed_at;
  ASSERT_OK(wp_pool_submit(p, 1, NULL, NULL));
  ASSERT_OK(wp_pool_submit(p, 2, NULL, NULL));
  /* The only worker runs job 2 while job 1 waits out its 50 ms. */
  sem_wait_n(&r.any, 1);
  ASSERT_EQ(atomic_load(&r.count[2]), 1);
  ASSERT_EQ(atomic_load(&r.count[1]), 0);
  /* Job 1 still holds its slot: with job 2 released, one more fits, then
   * the bound (2) is reached. */
  wp_pool_stats st;
  wp_pool_stats_get(p, &st);
  ASSERT_EQ(st.waiting + st.queued, 1);
  ASSERT_OK(wp_pool_shutdown(p, NULL)); /* drains the retry too */
  rec_check_once(&r, 2);
  ASSERT_EQ(atomic_load(&r.err[1]), 0);
  ASSERT_EQ(atomic_load(&r.attempts[1]), 2);
  ASSERT(atomic_load(&r.seq[2]) < atomic_load(&r.seq[1]));
  wp_pool_stats_get(p, &st);
  ASSERT_EQ(st.retries, 1);
  ASSERT_EQ(st.attempts, 3);
  wp_pool_destroy(p);
  rec_free(&r);
}

static int always_fail_task(wp_ctx *ctx, wp_job *j, void *ws) {
  (void)ctx;
  (void)ws;
  wp_job_set_retry_after(j, 3600LL * 1000 * MS); /* an hour */
  return 5;
}

TEST(shutdown_now_ends_backoff_at_once) {
  rec r;
  rec_init(&r, 4);
  wp_pool_config cfg = {0};
  cfg.workers = 2;
  cfg.max_outstanding = 4;
  cfg.task = always_fail_task;
  cfg.on_result = on_result;
  cfg.userdata = &r;
  cfg.retry.max_attempts = 5;
  wp_pool *p;
  ASSERT_OK(wp_pool_create(&cfg, &p));
  for (size_t i = 1; i <= 4; i++) ASSERT_OK(wp_pool_submit(p, i, NULL, NULL));
  /* All four fail once and wait an hour; the bound is full of waiters. */
  wp_pool_stats st;
  do {
    sched_yield();
    wp_pool_stats_get(p, &st);
  } while (st.waiting < 4);
  ASSERT_EQ(wp_pool_try_submit(p, 9, NULL), WP_EAGAIN);
  ASSERT_OK(wp_pool_shutdown_now(p, NULL));
  rec_check_once(&r, 4);
  for (size_t i = 1; i <= 4; i++) {
    ASSERT_EQ(atomic_load(&r.err[i]), WP_ECANCELED);
    ASSERT_EQ(atomic_load(&r.attempts[i]), 1);
  }
  wp_pool_destroy(p);
  rec_free(&r);
}

static int fail_first_attempt_task(wp_ctx *ctx, wp_job *j, void *ws) {
  (void)ctx;
  (void)ws;
  if (wp_job_attempt(j) > 1) return 0;
  wp_job_set_retry_after(j, 0); /* due at once */
  return 6;
}

TEST(retries_at_a_full_bound_never_wait_for_a_slot) {
  /* One worker, a bound of 2, and a submitter that keeps the bound full:
   * every job fails once and is due again at once. A retry keeps its slot
   * and goes back through the timer queue; were it offered again to the
   * bounded queue from the worker, the only worker would wait for a slot
   * that only it can free (and CTest's timeout fail the test). */
  const size_t n = 200;
  rec r;
  rec_init(&r, n);
  wp_pool_config cfg = pool_config(1, 2, fail_first_attempt_task, &r);
  cfg.retry.max_attempts = 2;
  wp_pool *p;
  ASSERT_OK(wp_pool_create(&cfg, &p));
  for (size_t i = 1; i <= n; i++) ASSERT_OK(wp_pool_submit(p, i, NULL, NULL));
  ASSERT_OK(wp_pool_shutdown(p, NULL));
  rec_check_once(&r, n);
  for (size_t i = 1; i <= n; i++) {
    ASSERT_EQ(atomic_load(&r.err[i]), 0);
    ASSERT_EQ(atomic_load(&r.attempts[i]), 2);
  }
  wp_pool_stats st;
  wp_pool_stats_get(p, &st);
  ASSERT_EQ(st.retries, n);
  ASSERT_EQ(st.attempts, 2 * n);
  wp_pool_destroy(p);
  rec_free(&r);
}

static int retryable_only_7(int err, void *ud) {
  (void)ud;
  return err == 7;
}

static int code_by_id_task(wp_ctx *ctx, wp_job *j, void *ws) {
  (void)ctx;
  (void)ws;
  return (int)wp_job_id(j); /* job 7 fails with 7, job 8 with 8 */
}

TEST(retry_policy_limits_attempts_and_predicate) {
  rec r;
  rec_init(&r, 8);
  wp_pool_config cfg = {0};
  cfg.workers = 2;
  cfg.task = code_by_id_task;
  cfg.on_result = on_result;
  cfg.userdata = &r;
  cfg.retry.max_attempts = 3;
  cfg.retry.base_ns = 1000;
  cfg.retry.cap_ns = 100000;
  cfg.retry.retryable = retryable_only_7;
  wp_pool *p;
  ASSERT_OK(wp_pool_create(&cfg, &p));
  ASSERT_OK(wp_pool_submit(p, 7, NULL, NULL));
  ASSERT_OK(wp_pool_submit(p, 8, NULL, NULL));
  ASSERT_OK(wp_pool_shutdown(p, NULL));
  for (size_t i = 1; i <= 8; i++) ASSERT_EQ(atomic_load(&r.count[i]), i >= 7);
  ASSERT_EQ(atomic_load(&r.err[7]), 7);
  ASSERT_EQ(atomic_load(&r.attempts[7]), 3); /* retried up to the limit */
  ASSERT_EQ(atomic_load(&r.err[8]), 8);
  ASSERT_EQ(atomic_load(&r.attempts[8]), 1); /* not retryable */
  wp_pool_stats st;
  wp_pool_stats_get(p, &st);
  ASSERT_EQ(st.retries, 2);
  ASSERT_EQ(st.failed, 2);
  wp_pool_destroy(p);
  rec_free(&r);
}

/* ---- short-task mode must not strand a job behind a long task ---------- */

static atomic_int mixed_block_id;

static int mixed_task(wp_ctx *ctx, wp_job *j, void *ws) {
  (void)ws;
  if ((int)wp_job_id(j) == atomic_load(&mixed_block_id)) {
    sem_post(&the_gate->started);
    wp_ctx *both;
    ASSERT_OK(wp_ctx_with_cancel(the_gate->open, &both));
    wp_ctx_hook h;
    if (wp_ctx_on_done(ctx, &h, (wp_ctx_done_cb)wp_ctx_cancel, both) == 0) {
      wp_ctx_wait(both, INT64_MAX);
      wp_ctx_hook_remove(&h);
    }
    wp_ctx_release(both);
  }
  return 0;
}

TEST(short_task_mode_does_not_strand_jobs) {
  /* A hundred thousand no-op jobs put the workers in short-task mode
   * (batches, no wake per submit), long enough for the time keepers to
   * probe and, finding that more workers awake do not help, to cap them
   * (keeper_sleeps_on). Then one job blocks, and jobs submitted after it
   * must still run on the other, sleeping workers: the time keeper joins
   * when nobody takes, cap or not. If they were stranded behind the blocked
   * job, this test would hang (and CTest's timeout fail it). */
  const size_t n = (size_t)(100000 * wp_test_scale());
  gate g;
  gate_init(&g);
  the_gate = &g;
  atomic_store(&mixed_block_id, (int)n + 1);
  rec r;
  rec_init(&r, n + 10);
  wp_pool *p = make_pool(4, 64, mixed_task, &r);
  for (size_t i = 1; i <= n; i++) ASSERT_OK(wp_pool_submit(p, i, NULL, NULL));
  sem_wait_n(&r.any, (unsigned)n);
  ASSERT_OK(wp_pool_submit(p, n + 1, NULL, NULL)); /* blocks its worker */
  sem_wait_n(&g.started, 1);
  for (size_t i = n + 2; i <= n + 10; i++)
    ASSERT_OK(wp_pool_submit(p, i, NULL, NULL));
  sem_wait_n(&r.any, 9); /* all nine, while job n+1 still blocks */
  ASSERT_EQ(atomic_load(&r.count[n + 1]), 0);
  wp_ctx_cancel(g.open);
  ASSERT_OK(wp_pool_shutdown(p, NULL));
  rec_check_once(&r, n + 10);
  wp_pool_destroy(p);
  rec_free(&r);
  gate_free(&g);
}

/* ---- guarantee 6: no global state ---------------------------------------- */

TEST(two_pools_are_independent) {
  gate g;
  gate_init(&g);
  the_gate = &g;
  rec ra, rb;
  rec_init(&ra, 8);
  rec_init(&rb, 5000);
  wp_pool *a = make_pool(2, 8, gated_task, &ra);
  wp_pool *b = make_pool(3, 0, noop_task, &rb);
  for (size_t i = 1; i <= 8; i++) ASSERT_OK(wp_pool_submit(a, i, NULL, NULL));
  sem_wait_n(&g.started, 2);
  for (size_t i = 1; i <= 2500; i++)
    ASSERT_OK(wp_pool_submit(b, i, NULL, NULL));
  /* Cancelling A touches nothing of B's. */
  ASSERT_OK(wp_pool_shutdown_now(a, NULL));
  for (size_t i = 2501; i <= 5000; i++)
    ASSERT_OK(wp_pool_submit(b, i, NULL, NULL));
  ASSERT_OK(wp_pool_shutdown(b, NULL));
  rec_check_once(&ra, 8);
  rec_check_once(&rb, 5000);
  for (size_t i = 1; i <= 5000; i++) ASSERT_EQ(atomic_load(&rb.err[i]), 0);
  wp_pool_stats sb;
  wp_pool_stats_get(b, &sb);
  ASSERT_EQ(sb.canceled, 0);
  wp_pool_destroy(a);
  wp_pool_destroy(b);
  rec_free(&ra);
  rec_free(&rb);
  gate_free(&g);
}

/* ---- per-worker state ---------------------------------------------------- */

typedef struct wstate_log {
  atomic_int inits, cleanups, fail_at;
  atomic_int tasks_with_own_state;
  pthread_t owner[16];
} wstate_log;

static int ws_init(void *ud, unsigned index, void **ws) {
  wstate_log *l = ud;
  if ((int)index == atomic_load(&l->fail_at)) return WP_ENOMEM;
  unsigned *s = malloc(sizeof *s);
  if (!s) return WP_ENOMEM;
  *s = index;
  l->owner[index] = pthread_self();
  *ws = s;
  atomic_fetch_add(&l->inits, 1);
  return 0;
}

static void ws_cleanup(void *ud, unsigned index, void *ws) {
  wstate_log *l = ud;
  ASSERT_EQ(*(unsigned *)ws, index);
  ASSERT(pthread_equal(l->owner[index], pthread_self()));
  free(ws);
  atomic_fetch_add(&l->cleanups, 1);
}

static wstate_log *the_log;

static int ws_task(wp_ctx *ctx, wp_job *j, void *ws) {
  (void)ctx;
  (void)j;
  unsigned idx = *(unsigned *)ws;
  if (pthread_equal(the_log->owner[idx], pthread_self()))
    atomic_fetch_add(&the_log->tasks_with_own_state, 1);
  return 0;
}

static void count_result(const wp_result *res, void *ud) {
  (void)res;
  (void)ud;
}

TEST(worker_init_and_cleanup_run_on_each_worker) {
  wstate_log l = {0};
  atomic_store(&l.fail_at, -1);
  the_log = &l;
  wp_pool_config cfg = {0};
  cfg.workers = 16;
  cfg.task = ws_task;
  cfg.worker_init = ws_init;
  cfg.worker_cleanup = ws_cleanup;
  cfg.on_result = count_result;
  cfg.userdata = &l;
  wp_pool *p;
  ASSERT_OK(wp_pool_create(&cfg, &p));
  ASSERT_EQ(atomic_load(&l.inits), 16); /* all ran before create returned */
  for (size_t i = 1; i <= 1000; i++)
    ASSERT_OK(wp_pool_submit(p, i, NULL, NULL));
  ASSERT_OK(wp_pool_shutdown(p, NULL));
  ASSERT_EQ(atomic_load(&l.cleanups), 16);
  ASSERT_EQ(atomic_load(&l.tasks_with_own_state), 1000);
  wp_pool_destroy(p);
}

TEST(failed_worker_init_leaves_nothing) {
  int base = wp_test_thread_count();
  wstate_log l = {0};
  atomic_store(&l.fail_at, 11);
  wp_pool_config cfg = {0};
  cfg.workers = 16;
  cfg.task = noop_task;
  cfg.worker_init = ws_init;
  cfg.worker_cleanup = ws_cleanup;
  cfg.on_result = count_result;
  cfg.userdata = &l;
  wp_pool *p = (wp_pool *)&l;
  ASSERT_EQ(wp_pool_create(&cfg, &p), WP_ENOMEM);
  ASSERT(p == NULL);
  ASSERT_EQ(atomic_load(&l.inits), 15);
  ASSERT_EQ(atomic_load(&l.cleanups), 15);
  ASSERT_EQ(wp_test_thread_count_settles(base), base);
}

TEST(invalid_configs_are_refused) {
  rec r;
  rec_init(&r, 1);
  wp_chan *c;
  ASSERT_OK(wp_chan_create(sizeof(wp_result), 4, &c));
  struct {
    unsigned workers;
    bool task, driver, cb, chan;
  } cases[] = {
      {0, true, false, true, false},  {10001, true, false, true, false},
      {4, false, false, true, false}, {4, true, true, true, false},
      {4, true, false, false, false}, {4, true, false, true, true},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    wp_pool_config cfg = {0};
    cfg.workers = cases[i].workers;
    if (cases[i].task) cfg.task = noop_task;
    if (cases[i].driver) cfg.driver = (wp_driver_fn)1;
    if (cases[i].cb) cfg.on_result = on_result;
    if (cases[i].chan) cfg.results = c;
    wp_pool *p = (wp_pool *)c;
    ASSERT_EQ(wp_pool_create(&cfg, &p), WP_EINVAL);
    ASSERT(p == NULL);
  }
  ASSERT_EQ(wp_pool_create(NULL, NULL), WP_EINVAL);
  wp_pool_destroy(NULL);
  wp_chan_destroy(c);
  rec_free(&r);
}

TEST(ten_thousand_workers) {
  /* TSan cannot track more than ~8k threads at once. */
  unsigned n = UNDER_TSAN ? 4000 : 10000;
  int base = wp_test_thread_count();
  rec r;
  rec_init(&r, 30000);
  wp_pool_config cfg = {0};
  cfg.workers = n;
  cfg.task = noop_task;
  cfg.on_result = on_result;
  cfg.userdata = &r;
  cfg.stack_size = 64 * 1024;
  wp_pool *p;
  ASSERT_OK(wp_pool_create(&cfg, &p));
  ASSERT_EQ(wp_test_thread_count(), base + (int)n);
  for (size_t i = 1; i <= 30000; i++)
    ASSERT_OK(wp_pool_submit(p, i, NULL, NULL));
  ASSERT_OK(wp_pool_shutdown(p, NULL));
  rec_check_once(&r, 30000);
  wp_pool_destroy(p);
  ASSERT_EQ(wp_test_thread_count_settles(base), base);
  rec_free(&r);
}

/* ---- the driver kind: an event loop holding many jobs -------------------- */

#define LOOP_SLOTS 32

typedef struct loop_state {
  int efd;
} loop_state;

static void loop_wake(void *arg) {
  loop_state *ls = arg;
  uint64_t one = 1;
  ssize_t n = write(ls->efd, &one, sizeof one);
  (void)n;
}

/* Holds up to LOOP_SLOTS jobs "in flight" and finishes them only when it has
 * a full set, or at shutdown (what's left completes then), or at cancel (as
 * canceled): a stand-in for transfers that end in any order. */
static void test_driver(wp_worker *w, void *ws, void *ud) {
  (void)ws;
  (void)ud;
  loop_state ls;
  ls.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  ASSERT(ls.efd >= 0);
  wp_worker_set_wake(w, loop_wake, &ls);
  wp_job *held[LOOP_SLOTS];
  size_t nheld = 0;
  bool closed = false;
  for (;;) {
    if (wp_ctx_err(wp_worker_ctx(w))) {
      while (nheld) wp_worker_finish(w, held[--nheld], WP_ECANCELED);
    }
    if (!closed && nheld < LOOP_SLOTS) {
      int n = wp_worker_take(w, held + nheld, LOOP_SLOTS - nheld, 0);
      if (n == WP_ECLOSED)
        closed = true;
      else
        nheld += (size_t)n;
    }
    if (nheld == LOOP_SLOTS || (closed && nheld)) {
      /* "Transfers complete" in reverse order. */
      while (nheld) {
        wp_job *j = held[--nheld];
        wp_job_set_value(j, (void *)(uintptr_t)wp_job_id(j));
        wp_worker_finish(w, j, 0);
      }
      continue;
    }
    if (closed) break;
    int64_t due;
    if (wp_worker_arm(w, &due) == 1) continue;
    struct pollfd pfd = {.fd = ls.efd, .events = POLLIN};
    int rc = poll(&pfd, 1, due == INT64_MAX ? -1 : 1);
    ASSERT(rc >= 0 || errno == EINTR);
    uint64_t v;
    ssize_t rn = read(ls.efd, &v, sizeof v);
    (void)rn;
  }
  wp_worker_set_wake(w, NULL, NULL);
  close(ls.efd);
}

TEST(driver_workers_share_the_guarantees) {
  const size_t n = 10000;
  rec r;
  rec_init(&r, n);
  wp_pool_config cfg = {0};
  cfg.workers = 2;
  cfg.max_outstanding = 2 * LOOP_SLOTS + 7;
  cfg.driver = test_driver;
  cfg.on_result = on_result;
  cfg.userdata = &r;
  wp_pool *p;
  ASSERT_OK(wp_pool_create(&cfg, &p));
  for (size_t i = 1; i <= n; i++) ASSERT_OK(wp_pool_submit(p, i, NULL, NULL));
  ASSERT_OK(wp_pool_shutdown(p, NULL));
  rec_check_once(&r, n);
  for (size_t i = 1; i <= n; i++) ASSERT_EQ(atomic_load(&r.err[i]), 0);
  wp_pool_destroy(p);
  rec_free(&r);
}

TEST(driver_is_woken_by_shutdown_now) {
  /* 10 jobs never fill a loop's 32 slots: the driver holds them and sleeps
   * in poll with no deadline. Only the pool's wake at cancel ends that. */
  rec r;
  rec_init(&r, 10);
  wp_pool_config cfg = {0};
  cfg.workers = 1;
  cfg.max_outstanding = 64;
  cfg.driver = test_driver;
  cfg.on_result = on_result;
  cfg.userdata = &r;
  wp_pool *p;
  ASSERT_OK(wp_pool_create(&cfg, &p));
  for (size_t i = 1; i <= 10; i++) ASSERT_OK(wp_pool_submit(p, i, NULL, NULL));
  wp_pool_stats st;
  do {
    sched_yield();
    wp_pool_stats_get(p, &st);
  } while (st.running < 10);
  ASSERT_OK(wp_pool_shutdown_now(p, NULL));
  rec_check_once(&r, 10);
  for (size_t i = 1; i <= 10; i++) {
    ASSERT_EQ(atomic_load(&r.err[i]), WP_ECANCELED);
    ASSERT_EQ(atomic_load(&r.attempts[i]), 1);
  }
  wp_pool_destroy(p);
  rec_free(&r);
}

int main(int argc, char **argv) { return wp_test_main(argc, argv); }
