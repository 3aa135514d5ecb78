/* The queue runner: see runner.h.
 *
 * Counters: `submitted` (feeder) and `recorded` (completer, after each
 * batch's statement) tell when everything this worker ran is in the
 * database: the feeder waits for that before it decides the queue is empty.
 * Locks: mu (the completer's ring and the counters) is a leaf; no database
 * call is made with it held.
 */
#define _GNU_SOURCE
#include "store/runner.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "wpool/error.h"
#include "wpool/retry.h"

#define FINISH_BATCH 1024

struct wp__qrunner {
  wp__qrunner_config cfg;
  char *conninfo, *queue;
  char worker[160];
  wp__pg *feed, *done, *beat;
  int wakefd;
  atomic_bool stopping;
  wp_ctx *stop_ctx; /* canceled at stop: ends a submit waiting for room */
  wp_ctx *end_ctx;  /* canceled at finish: ends the heartbeat's sleep */

  pthread_mutex_t mu;
  pthread_cond_t cv_items, cv_space, cv_recorded;
  wp__qdone *ring, *batch;
  size_t cap, head, len;
  bool comp_stop;
  uint64_t submitted, recorded;
  pthread_t comp, hb;
  bool comp_started, hb_started;
  wp_rng rng; /* the completer's */

  int failed;
  char errmsg[512];
  atomic_uint_fast64_t claimed, ok, nfailed, retried, released, unrecorded;
};

static void set_error(wp__qrunner *r, const char *msg) {
  pthread_mutex_lock(&r->mu);
  if (!r->failed) {
    r->failed = 1;
    snprintf(r->errmsg, sizeof r->errmsg, "%s", msg);
  }
  pthread_mutex_unlock(&r->mu);
}

static void wake_feeder(wp__qrunner *r) {
  uint64_t one = 1;
  ssize_t n;
  do {
    n = write(r->wakefd, &one, sizeof one);
  } while (n < 0 && errno == EINTR);
}

void wp__qrunner_stop(wp__qrunner *r) {
  atomic_store(&r->stopping, true);
  wp_ctx_cancel(r->stop_ctx);
  pthread_mutex_lock(&r->mu);
  pthread_cond_broadcast(&r->cv_recorded);
  pthread_mutex_unlock(&r->mu);
  wake_feeder(r);
}

/* ---- the completer ------------------------------------------------------- */

static void push_done(wp__qrunner *r, const wp__qdone *d) {
  pthread_mutex_lock(&r->mu);
  while (r->len == r->cap) pthread_cond_wait(&r->cv_space, &r->mu);
  r->ring[(r->head + r->len) % r->cap] = *d;
  r->len++;
  if (r->len == 1) pthread_cond_signal(&r->cv_items);
  pthread_mutex_unlock(&r->mu);
}

/* Errors go into a text column: printable ASCII only (an error may quote
 * URL bytes, which need not be valid UTF-8). */
static void copy_error(char *dst, size_t n, const char *src) {
  size_t o = 0;
  for (; src && *src && o + 1 < n; src++) {
    unsigned char c = (unsigned char)*src;
    char ch = *src;
    if (c < 0x20 || c >= 0x7f) ch = '?';
    dst[o++] = ch;
  }
  dst[o] = '\0';
}

int wp__qrunner_complete(wp__qrunner *r, const wp__qresult *res) {
  wp__qdone d;
  memset(&d, 0, sizeof d);
  d.id = res->id;
  d.attempts = res->attempts; /* the fencing token of the finish */
  d.status = res->status;
  d.elapsed_ms = res->elapsed_ms;
  d.bytes = res->bytes;
  const wp_retry_policy *rp = &r->cfg.retry;
  if (res->err == 0) {
    d.kind = WP__Q_DONE;
    d.ok = true;
    atomic_fetch_add(&r->ok, 1);
  } else if (res->err == WP_ECANCELED) {
    d.kind = WP__Q_RELEASE;
    atomic_fetch_add(&r->released, 1);
  } else {
    copy_error(d.error, sizeof d.error, res->error ? res->error : "failed");
    if (!d.error[0]) snprintf(d.error, sizeof d.error, "failed");
    bool retry =
        res->attempts < rp->max_attempts &&
        (rp->retryable ? rp->retryable(res->err, r->cfg.userdata) != 0 : true);
    d.kind = retry ? WP__Q_RETRY : WP__Q_DONE;
    if (retry && res->has_retry_after) {
      d.delay_set = true;
      d.delay_ns = res->retry_after_ns < 0 ? 0 : res->retry_after_ns;
    }
    atomic_fetch_add(retry ? &r->retried : &r->nfailed, 1);
  }
  push_done(r, &d);
  return d.kind;
}

static void *completer(void *arg) {
  wp__qrunner *r = arg;
  wp__qdone *batch = r->batch;
  char err[512];
  for (;;) {
    pthread_mutex_lock(&r->mu);
    while (r->len == 0 && !r->comp_stop)
      pthread_cond_wait(&r->cv_items, &r->mu);
    if (r->len == 0) {
      pthread_mutex_unlock(&r->mu);
      break;
    }
    size_t n = 0;
    while (r->len > 0 && n < FINISH_BATCH) {
      batch[n++] = r->ring[r->head];
      r->head = (r->head + 1) % r->cap;
      r->len--;
    }
    pthread_cond_broadcast(&r->cv_space);
    pthread_mutex_unlock(&r->mu);
    /* The same backoff as the pool's in-memory retries (unless the server
     * said when: Retry-After). */
    for (size_t i = 0; i < n; i++)
      if (batch[i].kind == WP__Q_RETRY && !batch[i].delay_set)
        batch[i].delay_ns =
            wp_backoff_full_jitter(r->cfg.retry.base_ns, r->cfg.retry.cap_ns,
                                   batch[i].attempts, &r->rng);
    if (wp__pg_finish(r->done, r->worker, batch, n, err, sizeof err) != 0) {
      atomic_fetch_add(&r->unrecorded, n);
      set_error(r, err);
      wp__qrunner_stop(r); /* claim no more: leases bring these back */
    }
    pthread_mutex_lock(&r->mu);
    r->recorded += n;
    pthread_cond_broadcast(&r->cv_recorded);
    pthread_mutex_unlock(&r->mu);
  }
  return NULL;
}

/* ---- the heartbeat ------------------------------------------------------- */

static void *heartbeat(void *arg) {
  wp__qrunner *r = arg;
  char err[512];
  int misses = 0;
  for (;;) {
    if (wp_ctx_wait(r->end_ctx, wp_now_ns() + r->cfg.renew_ns) != WP_EAGAIN)
      break;
    long reaped = 0;
    if (wp__pg_heartbeat(r->beat, r->worker, r->queue, r->cfg.lease_ns, &reaped,
                         err, sizeof err) == 0) {
      misses = 0;
    } else if (++misses == 3) {
      /* One missed renewal does no harm (a lease outlasts three renewal
       * intervals); three in a row put the leases at risk: stop claiming
       * and say why. */
      set_error(r, err);
      wp__qrunner_stop(r);
      break;
    }
  }
  return NULL;
}

/* ---- create, run, finish ------------------------------------------------- */

int wp__qrunner_create(const wp__qrunner_config *cfg, wp__qrunner **out,
                       char *err, size_t errlen) {
  *out = NULL;
  if (!cfg->pool || !cfg->make_arg || !cfg->free_arg) {
    snprintf(err, errlen, "invalid queue runner configuration");
    return -1;
  }
  wp__qrunner *r = calloc(1, sizeof *r);
  if (!r) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  r->cfg = *cfg;
  if (r->cfg.lease_ns <= 0) r->cfg.lease_ns = 30000000000LL;
  if (r->cfg.renew_ns <= 0) r->cfg.renew_ns = r->cfg.lease_ns / 3;
  if (r->cfg.renew_ns > r->cfg.lease_ns / 3) {
    /* Three renewals a lease: one missed heartbeat must not lose it (the
     * heartbeat gives up after three misses in a row). */
    snprintf(err, errlen, "--renew must be at most a third of --lease");
    free(r);
    return -1;
  }
  if (r->cfg.batch == 0) r->cfg.batch = 64;
  if (r->cfg.retry.max_attempts == 0) r->cfg.retry.max_attempts = 1;
  r->wakefd = -1;
  r->conninfo = strdup(wp__pg_conninfo(cfg->conninfo));
  r->queue = strdup(cfg->queue ? cfg->queue : "default");
  r->cap = (size_t)r->cfg.batch * 4 + FINISH_BATCH;
  r->ring = calloc(r->cap, sizeof *r->ring);
  r->batch = calloc(FINISH_BATCH, sizeof *r->batch);
  pthread_mutex_init(&r->mu, NULL);
  pthread_cond_init(&r->cv_items, NULL);
  pthread_cond_init(&r->cv_space, NULL);
  pthread_cond_init(&r->cv_recorded, NULL);
  char host[64] = "";
  gethostname(host, sizeof host - 1);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  wp_rng_seed(&r->rng, (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32));
  snprintf(r->worker, sizeof r->worker, "%s:%ld:%08x", host, (long)getpid(),
           (unsigned)wp_rng_next(&r->rng));
  if (!r->conninfo || !r->queue || !r->ring || !r->batch) {
    snprintf(err, errlen, "out of memory");
    goto fail;
  }
  r->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (r->wakefd < 0 || wp_ctx_with_cancel(NULL, &r->stop_ctx) != 0 ||
      wp_ctx_with_cancel(NULL, &r->end_ctx) != 0) {
    snprintf(err, errlen, "cannot set up the queue runner");
    goto fail;
  }
  if (wp__pg_connect(r->conninfo, &r->feed, err, errlen) != 0 ||
      wp__pg_check_schema(r->feed, err, errlen) != 0 ||
      wp__pg_connect(r->conninfo, &r->done, err, errlen) != 0 ||
      wp__pg_connect(r->conninfo, &r->beat, err, errlen) != 0)
    goto fail;
  long reaped;
  if (wp__pg_heartbeat(r->beat, r->worker, r->queue, r->cfg.lease_ns, &reaped,
                       err, errlen) != 0 ||
      wp__pg_listen(r->feed, err, errlen) != 0)
    goto fail;
  if (pthread_create(&r->comp, NULL, completer, r) != 0) {
    snprintf(err, errlen, "cannot start a thread");
    goto fail;
  }
  r->comp_started = true;
  if (pthread_create(&r->hb, NULL, heartbeat, r) != 0) {
    snprintf(err, errlen, "cannot start a thread");
    goto fail;
  }
  r->hb_started = true;
  *out = r;
  return 0;
fail:
  wp__qrunner_destroy(r);
  return -1;
}

typedef struct claimed {
  int64_t id;
  unsigned attempts; /* the claim's attempt number */
  void *arg;
} claimed;

typedef struct claim_ctx {
  wp__qrunner *r;
  claimed *c; /* r->cfg.batch of them: wp__pg_claim calls at most that many */
  size_t n;
} claim_ctx;

/* A claimed job that will not run: back to the queue, its claim not
 * counted; counted like a job ended by the pool. */
static void release_claim(wp__qrunner *r, int64_t id, unsigned attempts) {
  wp__qdone d;
  memset(&d, 0, sizeof d);
  d.id = id;
  d.attempts = attempts;
  d.kind = WP__Q_RELEASE;
  push_done(r, &d);
  pthread_mutex_lock(&r->mu);
  r->submitted++;
  pthread_mutex_unlock(&r->mu);
}

static void on_claimed(const wp__qjob *qj, void *userdata) {
  claim_ctx *cc = userdata;
  wp__qrunner *r = cc->r;
  void *arg = r->cfg.make_arg(qj, r->cfg.userdata);
  if (!arg) { /* out of memory: give it back */
    release_claim(r, qj->id, qj->attempts);
    return;
  }
  cc->c[cc->n].id = qj->id;
  cc->c[cc->n].attempts = qj->attempts;
  cc->c[cc->n].arg = arg;
  cc->n++;
}

int wp__qrunner_run(wp__qrunner *r, char *err, size_t errlen) {
  claim_ctx cc = {.r = r};
  cc.c = calloc(r->cfg.batch, sizeof *cc.c);
  if (!cc.c) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  int rc = 0;
  while (!atomic_load(&r->stopping)) {
    cc.n = 0;
    int n = wp__pg_claim(r->feed, r->queue, r->worker, r->cfg.lease_ns,
                         r->cfg.batch, on_claimed, &cc, err, errlen);
    /* A claim that failed part-way: the jobs handed out so far are given
     * back below, then we stop. */
    atomic_fetch_add(&r->claimed, n < 0 ? cc.n : (uint64_t)n);
    size_t i = 0;
    for (; n >= 0 && i < cc.n && !atomic_load(&r->stopping); i++) {
      pthread_mutex_lock(&r->mu);
      r->submitted++;
      pthread_mutex_unlock(&r->mu);
      if (wp_pool_submit(r->cfg.pool, (uint64_t)cc.c[i].id, cc.c[i].arg,
                         r->stop_ctx) != 0) {
        pthread_mutex_lock(&r->mu);
        r->submitted--;
        pthread_mutex_unlock(&r->mu);
        break;
      }
    }
    /* Claimed, never started (a stop came, or the claim failed): back to
     * the queue now. */
    for (; i < cc.n; i++) {
      r->cfg.free_arg(cc.c[i].arg, r->cfg.userdata);
      release_claim(r, cc.c[i].id, cc.c[i].attempts);
      atomic_fetch_add(&r->released, 1);
    }
    if (n < 0) {
      rc = -1;
      break;
    }
    if (n > 0) continue;

    int64_t ready = 0, waiting = 0, running = 0, due = INT64_MAX;
    if (r->cfg.exit_when_empty) {
      /* Our own jobs first: a failure may come back as a retry. */
      pthread_mutex_lock(&r->mu);
      while (r->recorded < r->submitted && !atomic_load(&r->stopping))
        pthread_cond_wait(&r->cv_recorded, &r->mu);
      pthread_mutex_unlock(&r->mu);
      if (atomic_load(&r->stopping)) break;
    }
    if (wp__pg_queue_counts(r->feed, r->queue, &ready, &waiting, &running, &due,
                            err, errlen) != 0) {
      rc = -1;
      break;
    }
    if (ready > 0) continue;
    if (r->cfg.exit_when_empty && waiting == 0 && running == 0) break;
    /* Idle: NOTIFY (an enqueue, a release, a lease taken back) wakes us;
     * else the first retry's run-at, or a heartbeat's time to look again
     * (a lease that expires elsewhere is taken back by a heartbeat). */
    int64_t t = due < r->cfg.renew_ns ? due : r->cfg.renew_ns;
    if (wp__pg_wait(r->feed, r->wakefd, t) < 0) {
      snprintf(err, errlen, "PostgreSQL: the connection was lost");
      rc = -1;
      break;
    }
  }
  free(cc.c);
  return rc;
}

int wp__qrunner_finish(wp__qrunner *r, char *err, size_t errlen) {
  wp__qrunner_stop(r);
  if (r->comp_started) {
    pthread_mutex_lock(&r->mu);
    r->comp_stop = true;
    pthread_cond_signal(&r->cv_items);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->comp, NULL);
    r->comp_started = false;
  }
  if (r->hb_started) {
    wp_ctx_cancel(r->end_ctx);
    pthread_join(r->hb, NULL);
    r->hb_started = false;
  }
  char e2[512];
  if (r->beat && wp__pg_unregister(r->beat, r->worker, e2, sizeof e2) != 0)
    set_error(r, e2);
  if (r->failed) {
    snprintf(err, errlen, "%s", r->errmsg);
    return -1;
  }
  return 0;
}

void wp__qrunner_stats_get(wp__qrunner *r, wp__qrunner_stats *out) {
  out->claimed = atomic_load(&r->claimed);
  out->ok = atomic_load(&r->ok);
  out->failed = atomic_load(&r->nfailed);
  out->retried = atomic_load(&r->retried);
  out->released = atomic_load(&r->released);
  out->unrecorded = atomic_load(&r->unrecorded);
}

const char *wp__qrunner_worker_id(const wp__qrunner *r) { return r->worker; }

void wp__qrunner_destroy(wp__qrunner *r) {
  if (!r) return;
  if (r->comp_started || r->hb_started) {
    char err[16];
    (void)wp__qrunner_finish(r, err, sizeof err);
  }
  wp__pg_close(r->feed);
  wp__pg_close(r->done);
  wp__pg_close(r->beat);
  if (r->wakefd >= 0) close(r->wakefd);
  wp_ctx_release(r->stop_ctx);
  wp_ctx_release(r->end_ctx);
  pthread_mutex_destroy(&r->mu);
  pthread_cond_destroy(&r->cv_items);
  pthread_cond_destroy(&r->cv_space);
  pthread_cond_destroy(&r->cv_recorded);
  free(r->ring);
  free(r->batch);
  free(r->conninfo);
  free(r->queue);
  free(r);
}
