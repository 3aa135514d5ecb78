/* wpool: the worker pool.
 *
 * A pool runs jobs on workers and delivers exactly one result per accepted
 * job, matched to it by the job's ID. Its guarantees (docs/design.md):
 *   1. exactly one result per accepted job, whatever happens;
 *   2. backpressure: outstanding jobs (queued + running + waiting for a retry)
 *      never exceed max_outstanding; submit blocks there, try-submit returns
 *      WP_EAGAIN;
 *   3. submit after shutdown returns WP_ECLOSED;
 *   4. wp_pool_shutdown() drains, wp_pool_shutdown_now() cancels; both join
 *      every thread and can be bounded by a context;
 *   5. a job waiting out its retry backoff holds no worker: it sits in the
 *      pool's timer queue and re-enters the queue when due;
 *   6. no global state; the pool never exits, aborts or prints;
 *   7. wp_pool_destroy() joins every thread and frees everything.
 *
 * Two kinds of worker share that one machinery:
 *   - task workers (cfg.task): a thread per worker runs the blocking task, one
 *     job at a time: the post's shape;
 *   - driver workers (cfg.driver): a thread per worker runs the driver, an
 *     event loop that holds many jobs at once. It takes jobs with
 *     wp_worker_take() (non-blocking), sleeps in its own poll after
 *     wp_worker_arm() (the pool calls its wake callback when jobs arrive, at
 *     shutdown and at cancel), and ends each job with wp_worker_finish().
 *     Task workers are themselves a driver built on the same three calls.
 *
 * Thread safety: every function is thread-safe unless marked otherwise.
 * Never call wp_pool_shutdown*, or wp_pool_destroy() from a worker or from a
 * result callback (it would wait for itself).
 */
#ifndef WPOOL_POOL_H
#define WPOOL_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "chan.h"
#include "ctx.h"
#include "metrics.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wp_pool wp_pool;
typedef struct wp_job wp_job;       /* a job between take and finish */
typedef struct wp_worker wp_worker; /* one per pool thread */

/* What the pool delivers, once per accepted job. */
typedef struct wp_result {
  uint64_t id;        /* the ID given to submit */
  void *arg;          /* the arg given to submit, handed back */
  void *value;        /* what the task stored with wp_job_set_value() */
  int err;            /* 0 = ok; the task's own non-zero code (the last
                         attempt's); or WP_ECANCELED: canceled (by
                         shutdown_now) before or while it ran */
  unsigned attempts;  /* attempts that started (0: never ran) */
  int64_t elapsed_ns; /* from the start of the first attempt to this
                         result (retries and their waits included; the
                         time spent queued is not); 0 if it never ran */
} wp_result;

/* The blocking task: runs one attempt of job on a worker thread and returns 0
 * for success or any non-zero code for failure (a failure may be retried, see
 * wp_retry_policy). ctx ends at shutdown_now (and at the job's own deadline):
 * a task should pass it to whatever it blocks on. wstate is the worker's
 * state from worker_init. */
typedef int (*wp_task_fn)(wp_ctx *ctx, wp_job *job, void *wstate);

/* The event-loop driver: runs on its worker's thread for the pool's whole
 * life. It must keep taking and finishing jobs until wp_worker_take()
 * returns WP_ECLOSED and it holds no job, then return. */
typedef void (*wp_driver_fn)(wp_worker *w, void *wstate, void *userdata);

/* Result delivery. Called on a worker thread, or on the thread that called
 * wp_pool_shutdown_now() for jobs it cancels; never with a pool lock held;
 * may be called concurrently from several threads. It may submit to other
 * pools, but must not wait for its own pool. */
typedef void (*wp_result_cb)(const wp_result *res, void *userdata);

/* Per-worker state, made and freed on the worker's own thread. init returns 0
 * or a WP_E* code (wp_pool_create() then fails with it). */
typedef int (*wp_worker_init_cb)(void *userdata, unsigned index, void **wstate);
typedef void (*wp_worker_cleanup_cb)(void *userdata, unsigned index,
                                     void *wstate);

/* Is a failure with this code worth another attempt? */
typedef int (*wp_retryable_cb)(int err, void *userdata);

/* Told that a failed attempt will be retried: the job has made `attempts`
 * attempts and the next starts in delay_ns. Called on the worker's thread
 * inside wp_worker_finish(), with no pool lock held, before the job can run
 * again (a durable store records the retry there). May block briefly; must
 * not wait for its own pool. */
typedef void (*wp_retry_cb)(uint64_t id, void *arg, unsigned attempts,
                            int64_t delay_ns, void *userdata);

typedef struct wp_retry_policy {
  unsigned max_attempts;     /* attempts in all; 0 or 1 = never retry */
  int64_t base_ns;           /* backoff: random(0, min(cap, base * 2^(n-1))) */
  int64_t cap_ns;            /*   before attempt n+1 (full jitter) */
  wp_retryable_cb retryable; /* NULL: any failure except WP_ECANCELED */
} wp_retry_policy;

/* The key of a job, for wp_limits.per_key: jobs with equal keys share that
 * limit (the fetch engine: a hash of the URL's host:port). Called once per
 * job, in submit, on the submitting thread, with no pool lock held; it must
 * not call into the pool. */
typedef uint64_t (*wp_key_cb)(void *arg, void *userdata);

/* Limits on when attempts start. A job that may not start yet stays in the
 * pool: it holds no worker (no transfer slot of a driver), it counts
 * against max_outstanding, and ShutdownNow ends it at once as canceled.
 *  - rate: at most `rate` attempts start per second in the whole pool,
 *    retries included, evenly spaced; at most `burst` at once (0: the
 *    default, max(2, rate * 20 ms); see wpool/limit.h). A job waiting for
 *    its turn waits in the queue, in order.
 *  - per_key: at most per_key jobs with one key run at once. A job whose key
 *    is saturated is set aside (per key, in order) when a worker reaches it,
 *    and the worker takes the next job: no head-of-line blocking. It goes
 *    back to the front of the queue when a job of its key ends its attempt.
 *    Memory: a table of 2 * max_outstanding keys, allocated at creation. */
typedef struct wp_limits {
  double rate;      /* attempts per second (1e-6 to 1e9); 0 = no limit */
  unsigned burst;   /* 0 = default */
  unsigned per_key; /* 0 = no limit */
  wp_key_cb key;    /* required with per_key */
} wp_limits;

typedef struct wp_pool_config {
  unsigned workers;       /* 1 to 10000 threads */
  size_t max_outstanding; /* bound on queued + running + waiting jobs;
                             0 = 2 * workers */
  wp_task_fn task;        /* exactly one of task and driver */
  wp_driver_fn driver;
  wp_worker_init_cb worker_init;       /* optional */
  wp_worker_cleanup_cb worker_cleanup; /* optional */
  wp_result_cb on_result; /* exactly one of on_result and results */
  wp_chan *results;       /* channel of wp_result items; the pool sends,
                             never closes it; it must be drained */
  void *userdata;         /* passed to every callback */
  wp_retry_policy retry;
  uint64_t seed;     /* for the backoff jitter; 0 = from the clock */
  size_t stack_size; /* per thread; 0 = the system's default */
  /* Optional: the pool registers and keeps up to date, in this registry
   * (which must outlive the pool), wpool_jobs_submitted_total,
   * wpool_jobs_completed_total{outcome="ok|failed|canceled"},
   * wpool_job_duration_seconds (histogram, 1 ms to 60 s),
   * wpool_attempts_total, wpool_retries_total, and the gauges
   * wpool_queue_depth, wpool_in_flight, wpool_workers, wpool_retry_waiting
   * (read at each render; after destroy they read 0). Counters cost one
   * relaxed atomic per event, no lock. metric_labels (NULL, or name, value
   * pairs, NULL-terminated, at most 16 pairs) are added to every series:
   * two pools sharing a registry need different ones. */
  wp_metrics *metrics;
  const char *const *metric_labels;
  wp_limits limits;
  /* The budget of one job, from the start of its first attempt, over all
   * its attempts and waits; 0 = none. An attempt runs with a context that
   * ends at the deadline (drivers: see wp_job_deadline); no retry is
   * scheduled that would start after it (the job ends with its last error
   * instead); a job found past it while it waits for a rate turn or a key
   * slot ends with its last error. */
  int64_t job_timeout_ns;
  wp_retry_cb on_retry; /* optional */
} wp_pool_config;

/* Starts the pool: creates every worker thread and runs worker_init on each.
 * Returns 0 and stores the pool in *out, or fails with nothing left behind
 * (every started thread joined) and *out = NULL: WP_EINVAL, WP_ENOMEM,
 * WP_ESYSTEM (a thread could not start) or worker_init's code. */
int wp_pool_create(const wp_pool_config *cfg, wp_pool **out);

/* Offers a job. Waits while max_outstanding jobs are outstanding; ctx bounds
 * the wait (NULL: no bound). Returns 0 if accepted: exactly one result will
 * follow. Otherwise the job was not accepted and no result follows:
 * WP_ECLOSED after shutdown began, or the context's error. */
int wp_pool_submit(wp_pool *p, uint64_t id, void *arg, wp_ctx *ctx);

/* Like wp_pool_submit() but never waits: WP_EAGAIN at the bound. */
int wp_pool_try_submit(wp_pool *p, uint64_t id, void *arg);

/* Like wp_pool_submit() for a job resumed from a durable store: it has
 * already made `attempts` attempts (its result counts them too, and the retry
 * policy's max_attempts includes them), and it waits in the timer queue
 * until due_ns (wp_now_ns() clock; 0 or past: runs as soon as a worker is
 * free). Same returns and ownership as wp_pool_submit(). */
int wp_pool_submit_resumed(wp_pool *p, uint64_t id, void *arg,
                           unsigned attempts, int64_t due_ns, wp_ctx *ctx);

/* Graceful: stops intake (waiting and later submits get WP_ECLOSED), lets
 * every queued, running and retry-waiting job finish, then joins every
 * thread. Returns 0 once done, or ctx's error if ctx ends first: the pool
 * goes on draining, and shutdown, shutdown_now or destroy may follow. */
int wp_pool_shutdown(wp_pool *p, wp_ctx *ctx);

/* Immediate: stops intake, cancels the context of every running job (a
 * driver is woken at once), completes every queued and retry-waiting job as
 * WP_ECANCELED without running it, waits for running jobs to return, and
 * joins every thread. Returns 0 once done, or ctx's error if ctx ends first
 * (a task that ignores its context): destroy then waits for it. */
int wp_pool_shutdown_now(wp_pool *p, wp_ctx *ctx);

/* wp_pool_shutdown_now(p, NULL) if not yet done, then frees the pool. NULL is
 * a no-op. */
void wp_pool_destroy(wp_pool *p);

typedef struct wp_pool_stats {
  uint64_t submitted;              /* accepted jobs */
  uint64_t ok, failed, canceled;   /* completed, by outcome */
  uint64_t attempts;               /* attempts started */
  uint64_t retries;                /* attempts scheduled after a failure */
  size_t queued, running, waiting; /* waiting: in the retry timer queue */
  unsigned workers;
  size_t held; /* set aside until a job of their key ends (per_key) */
} wp_pool_stats;

/* A consistent snapshot of the pool's counters. */
void wp_pool_stats_get(wp_pool *p, wp_pool_stats *out);

/* --- a job, seen by the worker that holds it ---------------------------- */
uint64_t wp_job_id(const wp_job *j);
void *wp_job_arg(const wp_job *j);
unsigned wp_job_attempt(const wp_job *j); /* 1 on the first attempt */
wp_ctx *wp_job_ctx(const wp_job *j);      /* ends at shutdown_now */
/* The value the result will carry (the last attempt's). */
void wp_job_set_value(wp_job *j, void *value);
/* Asks that, if this attempt fails and is retried, the next one waits
 * delay_ns instead of the computed backoff (HTTP Retry-After). A delay that
 * would pass the job's deadline ends the job with this attempt's error. */
void wp_job_set_retry_after(wp_job *j, int64_t delay_ns);
/* The job's deadline (wp_now_ns clock) under job_timeout_ns, INT64_MAX if
 * none: a driver bounds each attempt by it. */
int64_t wp_job_deadline(const wp_job *j);

/* --- the worker side, for drivers (and the built-in task driver) -------- */
enum { WP_TAKE_WAIT = 1 };

/* Takes up to max jobs into jobs[]. Returns how many (0 only without
 * WP_TAKE_WAIT), or WP_ECLOSED when shutdown began and nothing is queued,
 * waiting for a retry or set aside for its key (wp_limits.per_key). Jobs
 * still running may yet come back as retries: a driver that holds jobs
 * keeps taking until it holds none and take returns WP_ECLOSED. With
 * WP_TAKE_WAIT it blocks until at least one job is there or WP_ECLOSED.
 * Also releases the jobs that this worker finished since its last call.
 * Call only from the worker's thread. */
int wp_worker_take(wp_worker *w, wp_job **jobs, size_t max, int flags);

/* For a driver about to sleep in its own poll. Returns 1 if it should not
 * sleep (jobs can be taken now, or WP_ECLOSED is due); otherwise returns 0
 * and arms the worker: the pool will call the wake callback once when a job
 * arrives. Either way stores in *next_due the time (wp_now_ns() clock) at
 * which a retry becomes due or the rate limit lets the next job start,
 * INT64_MAX if none: the driver must not sleep past it. A driver that got
 * WP_ECLOSED and still holds jobs need not arm: it waits for its own jobs
 * (the pool calls the wake callback at cancel all the same). */
int wp_worker_arm(wp_worker *w, int64_t *next_due);

/* Called by the pool, from any thread and possibly under its lock, when an
 * armed worker has jobs, and always at shutdown and cancel: it must only
 * wake the driver (curl_multi_wakeup(), an eventfd write) and return. */
typedef void (*wp_wake_cb)(void *arg);
void wp_worker_set_wake(wp_worker *w, wp_wake_cb cb, void *arg);

/* Ends the current attempt of j with err (0 = ok). The pool then delivers
 * the result, or schedules a retry under its policy. j is gone afterwards.
 * The result callback (if any) runs inside this call. */
void wp_worker_finish(wp_worker *w, wp_job *j, int err);

unsigned wp_worker_index(const wp_worker *w);
wp_ctx *wp_worker_ctx(const wp_worker *w); /* ends at shutdown_now */

#ifdef __cplusplus
}
#endif
#endif
