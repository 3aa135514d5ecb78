/* The post's pipeline, written with libwpool:
 *
 *   producer -> jobs (bounded) -> workers -> results channel -> collector
 *
 * then the post's shutdown order: the producer ends intake, the pool drains
 * and joins its workers (wg.Wait()), the results channel is closed
 * (close(results)), and the collector is joined (<-done).
 *
 * The task is real work with a real failure: it factors a number and fails
 * (like the post's "bobobo") when the input is not a positive integer. Every
 * call is checked; the program exits 1 if anything is off.
 *
 *   ./pipeline [WORKERS] [JOBS]
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wpool/wpool.h>

#define ERR_NOT_A_NUMBER 1 /* a task's own error code (positive) */

typedef struct job {
  char input[32];
  uint64_t smallest_factor;
} job;

/* The task: runs on a worker thread. Returns 0 or a failure code. */
static int factor_task(wp_ctx *ctx, wp_job *wj, void *wstate) {
  (void)wstate;
  job *j = wp_job_arg(wj);
  char *end;
  unsigned long long n = strtoull(j->input, &end, 10);
  if (end == j->input || *end != '\0' || n < 2) return ERR_NOT_A_NUMBER;
  uint64_t f = n;
  for (uint64_t d = 2; d * d <= n; d++) {
    if ((d & 1023) == 0 && wp_ctx_err(ctx)) return wp_ctx_err(ctx);
    if (n % d == 0) {
      f = d;
      break;
    }
  }
  j->smallest_factor = f;
  return 0;
}

typedef struct collector {
  wp_chan *results;
  uint64_t ok, failed, count;
} collector;

/* The collector: drains the results channel until it is closed. */
static void *collect(void *arg) {
  collector *c = arg;
  wp_result r;
  int rc;
  while ((rc = wp_chan_recv(c->results, &r, NULL)) == 0) {
    job *j = r.arg;
    c->count++;
    if (r.err == 0) {
      c->ok++;
      if (r.id <= 5 || r.id % 1000 == 0)
        printf("job %" PRIu64 " done: %s has smallest factor %" PRIu64 "\n",
               r.id, j->input, j->smallest_factor);
    } else {
      c->failed++;
      printf(
          "job %" PRIu64 " failed: %s: %s\n", r.id, j->input,
          r.err == ERR_NOT_A_NUMBER ? "not a number >= 2" : wp_strerror(r.err));
    }
  }
  if (rc != WP_ECLOSED) fprintf(stderr, "collector: %s\n", wp_strerror(rc));
  return NULL;
}

int main(int argc, char **argv) {
  unsigned workers = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 4;
  size_t njobs = argc > 2 ? (size_t)strtoull(argv[2], NULL, 10) : 3000;
  if (workers < 1 || njobs < 1) {
    fprintf(stderr, "usage: %s [WORKERS>=1] [JOBS>=1]\n", argv[0]);
    return 2;
  }
  job *jobs = calloc(njobs, sizeof *jobs);
  if (!jobs) {
    fprintf(stderr, "out of memory\n");
    return 1;
  }
  for (size_t i = 0; i < njobs; i++) {
    if (i == 2)
      snprintf(jobs[i].input, sizeof jobs[i].input, "bobobo");
    else
      snprintf(jobs[i].input, sizeof jobs[i].input, "%llu",
               1000003ULL * (unsigned long long)(i + 1) + 12345ULL);
  }

  collector col = {0};
  int rc = wp_chan_create(sizeof(wp_result), 2 * (size_t)workers, &col.results);
  if (rc != 0) {
    fprintf(stderr, "wp_chan_create: %s\n", wp_strerror(rc));
    free(jobs);
    return 1;
  }
  pthread_t collector_thread;
  if (pthread_create(&collector_thread, NULL, collect, &col) != 0) {
    fprintf(stderr, "pthread_create failed\n");
    wp_chan_destroy(col.results);
    free(jobs);
    return 1;
  }

  wp_pool_config cfg = {0};
  cfg.workers = workers;
  cfg.max_outstanding = 2 * (size_t)workers; /* the jobs channel's bound */
  cfg.task = factor_task;
  cfg.results = col.results;
  wp_pool *pool = NULL;
  int status = 0;
  rc = wp_pool_create(&cfg, &pool);
  if (rc != 0) {
    fprintf(stderr, "wp_pool_create: %s\n", wp_strerror(rc));
    status = 1;
  }

  /* The producer: submit blocks while the pool is saturated. */
  size_t accepted = 0;
  for (size_t i = 0; pool && i < njobs; i++) {
    rc = wp_pool_submit(pool, i + 1, &jobs[i], NULL);
    if (rc != 0) {
      fprintf(stderr, "submit job %zu: %s\n", i + 1, wp_strerror(rc));
      status = 1;
      break;
    }
    accepted++;
  }

  /* Shutdown in the post's order. */
  if (pool) {
    rc = wp_pool_shutdown(pool, NULL); /* wg.Wait() */
    if (rc != 0) {
      fprintf(stderr, "wp_pool_shutdown: %s\n", wp_strerror(rc));
      status = 1;
    }
    wp_pool_stats st;
    wp_pool_stats_get(pool, &st);
    wp_pool_destroy(pool);
    if (st.submitted != accepted ||
        st.ok + st.failed + st.canceled != accepted) {
      fprintf(stderr, "stats disagree: submitted %" PRIu64 " of %zu\n",
              st.submitted, accepted);
      status = 1;
    }
  }
  rc = wp_chan_close(col.results); /* close(results) */
  if (rc != 0) {
    fprintf(stderr, "wp_chan_close: %s\n", wp_strerror(rc));
    status = 1;
  }
  pthread_join(collector_thread, NULL); /* <-done */
  wp_chan_destroy(col.results);

  printf("%" PRIu64 " results for %zu jobs: %" PRIu64 " ok, %" PRIu64
         " failed\n",
         col.count, accepted, col.ok, col.failed);
  if (col.count != accepted) status = 1;
  free(jobs);
  return status;
}
