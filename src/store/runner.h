/* The queue runner: a worker process's side of the PostgreSQL queue, for any
 * pool (the fetch engine in `wpool work`, a no-op task in bench/store).
 *
 *   feeder (wp__qrunner_run, the caller's thread): claims batches with FOR
 *     UPDATE SKIP LOCKED and submits each job into the pool; waits on
 *     LISTEN/NOTIFY (or the earliest run-at) when nothing is claimable;
 *   completer thread: records the ends the pool reports
 *     (wp__qrunner_complete), in batches, one statement each;
 *   heartbeat thread: renews this worker's leases every renew interval,
 *     takes back expired leases (any worker's), marks the worker alive.
 * Each thread has its own connection (libpq connections are not shared).
 *
 * Retries: the pool itself never retries (max_attempts 1); a failed attempt
 * that is retryable goes back to the queue with run-at = now + the same
 * full-jitter backoff as the pool's in-memory retries (wp_backoff_full_jitter),
 * or + the delay of the result's Retry-After when it has one (as the pool's
 * wp_job_set_retry_after), so it survives a restart of every worker and may
 * run on another machine.
 *
 * Stop: wp__qrunner_stop() (thread-safe) ends claiming: the feeder releases
 * the claimed jobs it has not submitted and returns. The caller then drains
 * its pool (or cancels it: a canceled job is released, its claim not
 * counted), and wp__qrunner_finish() records the last ends and releases
 * whatever this worker still holds.
 */
#ifndef WPOOL_STORE_RUNNER_H
#define WPOOL_STORE_RUNNER_H

#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"
#include "wpool/wpool.h"

typedef struct wp__qrunner wp__qrunner;

typedef struct wp__qrunner_config {
  const char *conninfo; /* NULL: WPOOL_DATABASE_URL or libpq's PG* */
  const char *queue;    /* "default" if NULL */
  int64_t lease_ns;     /* a claim's lease (default 30 s) */
  int64_t renew_ns;     /* heartbeat interval (default and at most
                           lease / 3: create refuses more) */
  unsigned batch;       /* jobs per claim (default 64) */
  bool exit_when_empty; /* return once the queue holds nothing to run */
  wp_pool *pool;        /* where claimed jobs go (max_attempts must be 1) */
  /* The job's arg for the pool, made from the claimed row (which is valid
   * only during the call); NULL: out of memory (the job is released). */
  void *(*make_arg)(const wp__qjob *qj, void *userdata);
  void (*free_arg)(void *arg, void *userdata); /* a job never submitted */
  wp_retry_policy retry; /* max_attempts counts every claim that ran */
  void *userdata;
} wp__qrunner_config;

/* The end of one job, as the caller's result callback reports it. */
typedef struct wp__qresult {
  int64_t id;
  unsigned attempts; /* from the claim (wp__qjob.attempts) */
  int err;           /* the pool's result code: 0, WP_ECANCELED, ... */
  int status;        /* -1: none */
  const char *error; /* NULL: none */
  double elapsed_ms;
  uint64_t bytes;
  /* A retry's delay the server asked for (Retry-After): replaces the
   * backoff when has_retry_after. */
  bool has_retry_after;
  int64_t retry_after_ns;
} wp__qresult;

typedef struct wp__qrunner_stats {
  uint64_t claimed, ok, failed, retried, released;
  /* Results (or releases) whose write to the database failed: their jobs
   * run again once their lease ends. */
  uint64_t unrecorded;
} wp__qrunner_stats;

/* Connects (three connections), checks the schema, registers the worker.
 * Returns 0, or -1 with a message in err (never the password). */
int wp__qrunner_create(const wp__qrunner_config *cfg, wp__qrunner **out,
                       char *err, size_t errlen);

/* The feeder: returns 0 when stopped or (exit_when_empty) when the queue is
 * empty, -1 with a message on a database error. Call once. */
int wp__qrunner_run(wp__qrunner *r, char *err, size_t errlen);

/* Stop claiming (thread-safe; from a signal-handling thread). */
void wp__qrunner_stop(wp__qrunner *r);

/* Reports a job's end (thread-safe; from the pool's result callback). May
 * block while the completer is behind (a bounded queue). Returns what the
 * queue will record: WP__Q_DONE (final, ok or failed), WP__Q_RETRY (back
 * with a run-at) or WP__Q_RELEASE (canceled: back, its claim uncounted). */
int wp__qrunner_complete(wp__qrunner *r, const wp__qresult *res);

/* After the pool is drained or canceled: records every end, stops the
 * threads, releases what this worker still holds, unregisters it. Returns 0
 * or -1 (the first database error of the completer or heartbeat). */
int wp__qrunner_finish(wp__qrunner *r, char *err, size_t errlen);

void wp__qrunner_stats_get(wp__qrunner *r, wp__qrunner_stats *out);
const char *wp__qrunner_worker_id(const wp__qrunner *r);

/* NULL is a no-op. */
void wp__qrunner_destroy(wp__qrunner *r);

#endif
