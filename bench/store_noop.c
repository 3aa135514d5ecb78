/* bench/store_noop: one worker process burning down a PostgreSQL queue with
 * a no-op task, through the same queue runner as `wpool work` (claim with
 * FOR UPDATE SKIP LOCKED in batches, leases, batched completion), on a pool
 * of task threads instead of the fetch engine. bench/store.sh runs 1, 2 and
 * 4 of these at once.
 *
 *   store_noop CONNINFO [QUEUE [THREADS [BATCH]]]
 *
 * Exits when the queue is empty; prints "jobs N secs S" on stdout. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/runner.h"
#include "wpool/wpool.h"

static wp__qrunner *runner;

static int noop(wp_ctx *ctx, wp_job *job, void *wstate) {
  (void)ctx;
  (void)job;
  (void)wstate;
  return 0;
}

/* The arg carries the claim's attempt number; nothing to allocate. */
static void *make_arg(const wp__qjob *qj, void *userdata) {
  (void)userdata;
  return (void *)(uintptr_t)qj->attempts;
}

static void free_arg(void *arg, void *userdata) {
  (void)arg;
  (void)userdata;
}

static void on_result(const wp_result *res, void *userdata) {
  (void)userdata;
  wp__qresult q;
  memset(&q, 0, sizeof q);
  q.id = (int64_t)res->id;
  q.attempts = (unsigned)(uintptr_t)res->arg;
  q.err = res->err;
  q.status = -1;
  q.elapsed_ms = (double)res->elapsed_ns / 1e6;
  wp__qrunner_complete(runner, &q);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: store_noop CONNINFO [QUEUE [THREADS [BATCH]]]\n");
    return 2;
  }
  unsigned threads = argc > 3 ? (unsigned)strtoul(argv[3], NULL, 10) : 2;
  unsigned batch = argc > 4 ? (unsigned)strtoul(argv[4], NULL, 10) : 500;
  if (threads < 1) threads = 1;
  if (batch < 1) batch = 1;
  wp_pool_config pc;
  memset(&pc, 0, sizeof pc);
  pc.workers = threads;
  pc.max_outstanding = batch;
  pc.task = noop;
  pc.on_result = on_result;
  wp_pool *pool;
  if (wp_pool_create(&pc, &pool) != 0) {
    fprintf(stderr, "store_noop: cannot create the pool\n");
    return 1;
  }
  wp__qrunner_config qc;
  memset(&qc, 0, sizeof qc);
  qc.conninfo = argv[1];
  qc.queue = argc > 2 ? argv[2] : "default";
  qc.batch = batch;
  qc.exit_when_empty = true;
  qc.pool = pool;
  qc.make_arg = make_arg;
  qc.free_arg = free_arg;
  qc.retry.max_attempts = 1;
  char err[1024];
  if (wp__qrunner_create(&qc, &runner, err, sizeof err) != 0) {
    fprintf(stderr, "store_noop: %s\n", err);
    wp_pool_destroy(pool);
    return 1;
  }
  int64_t t0 = wp_now_ns();
  int rc = wp__qrunner_run(runner, err, sizeof err);
  if (rc != 0) fprintf(stderr, "store_noop: %s\n", err);
  wp_pool_shutdown(pool, NULL);
  if (wp__qrunner_finish(runner, err, sizeof err) != 0) {
    fprintf(stderr, "store_noop: %s\n", err);
    rc = -1;
  }
  double secs = (double)(wp_now_ns() - t0) / 1e9;
  wp__qrunner_stats st;
  wp__qrunner_stats_get(runner, &st);
  printf("jobs %llu secs %.3f\n", (unsigned long long)st.ok, secs);
  wp__qrunner_destroy(runner);
  wp_pool_destroy(pool);
  return rc == 0 ? 0 : 1;
}
