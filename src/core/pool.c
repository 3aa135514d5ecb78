/* The worker pool.
 *
 * Design. The pool owns everything that the guarantees depend on: the job
 * slots, the ready queue, the retry timer queue, the outstanding bound, the
 * root context and the counters, all under one mutex (mu). A worker of either
 * kind only takes jobs (wp_worker_take / wp_worker_arm) and finishes them
 * (wp_worker_finish); the built-in task driver is written on those calls like
 * any event-loop driver, so every guarantee is implemented once, here.
 *
 * Job slots. max_outstanding slots are allocated at creation; a slot is
 * FREE -> QUEUED (ring) -> TAKEN (a worker) -> [WAITING (heap) -> QUEUED ...]
 * -> result delivered -> FREE. Submit takes a free slot or waits (this is
 * the outstanding bound: queued + taken + waiting <= max_outstanding), so the
 * ring and the heap, each of capacity max_outstanding, never overflow, and
 * memory is fixed at creation.
 *
 * Exactly one result: a slot's result is delivered by whoever removes it from
 * the pool's structures under mu for the last time: the worker that finishes
 * it (wp_worker_finish) or wp_pool_shutdown_now, which empties the ring and
 * the heap itself. A retry is decided under mu, so it races with neither.
 *
 * Results are delivered with no lock held; the slot is released afterwards,
 * in batches (a worker's finished slots go back at its next take, or after
 * 64), so a no-op job costs one lock round per batch on the worker side.
 * A task worker's batch of short tasks ends together: one clock read for
 * all their results (a read costs ~50 ns on a virtual machine here).
 *
 * Submitting. A submit takes no lock while slots are free: it takes a
 * credit (one per free slot) and pushes the job's ID, argument and key into
 * the inbox, a lock-free ring (jring.h) that carries them in its cells. It
 * never writes a job slot: a slot's lines were last written on a worker's
 * core, and fetching them to the submitter's and back cost more than a
 * whole no-op job. Whoever next holds mu for the ring (a worker's take, a
 * driver's arm, stats, shutdown) first moves the inbox into the ring, in
 * order, filling a free slot for each and counting the jobs as submitted
 * there (credits + inbox <= free slots, so there always is one). A
 * submitter locks mu only to wake someone (want_wake: a task worker sleeps
 * or a driver is armed; the push and that read, and a sleeper's store and
 * its last look at the inbox, are seq_cst, so one of the two always sees
 * the other), or to wait for a credit. Closing closes the inbox and moves what
 * it holds under mu: no push succeeds after, and every job accepted before gets
 * its one result. Credits are given back under mu, so a submitter waiting for
 * one cannot miss it.
 *
 * Waking. Task workers sleep on work_cv; a submit signals only when a worker
 * sleeps that no earlier signal is already waking (wakes_pending), so a busy
 * pool makes no futex calls. Drivers arm themselves and are woken through
 * their callback, one per job pushed. Retries: a sleeping task worker becomes
 * the time keeper and sleeps until the earliest due time; drivers are told the
 * time by wp_worker_arm.
 *
 * Shutdown: closed stops intake; workers exit when nothing is queued or
 * waiting. ShutdownNow also sets canceling, empties ring and heap into
 * canceled results, and cancels the root context. Both then wait for the
 * workers to exit and join them.
 *
 * Lock order: pool mu, then nothing else of the library (contexts' hooks
 * are registered and removed with mu released; wake callbacks must not take
 * library locks).
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "core/jring.h"
#include "core/pool_metrics.h"
#include "wpool/error.h"
#include "wpool/limit.h"
#include "wpool/pool.h"
#include "wpool/retry.h"

#define MAX_WORKERS 10000
/* A task worker batches only while its tasks average under SHORT_TASK_NS,
 * and takes at most as many as it runs in about BATCH_NS (at most
 * TASK_BATCH), so a job waits behind its batch-mates for about BATCH_NS at
 * most. No-op tasks come 128 to a batch: on a machine where a system call
 * costs ~1.2 us (this virtual machine), the lock round, the clock reads and
 * the wakes of a batch are what a no-op job costs, and 16 to a batch was
 * half the rate of 128. */
#define TASK_BATCH 128
#define SHORT_TASK_NS 20000
#define BATCH_NS ((int64_t)16 * SHORT_TASK_NS)
/* With many workers, a worker takes at most its fair share of the ready
 * queue, but never less than this many (when there are that many). */
#define FAIR_MIN 64
/* A worker's finished slots go back after this many (or at its next take,
 * or before it sleeps): never in the middle of a batch. */
#define RELEASE_BATCH TASK_BATCH
/* Results for a results channel are sent in batches of up to this many per
 * worker (fewer with many workers: see wp_pool_create). */
#define RESULT_BATCH ((size_t)2 * TASK_BATCH)
#define RESULT_BATCH_MIN 32
/* How long an idle worker (at most MAX_SPINNERS at once) or a submitter at
 * the bound looks for work or space before it sleeps. */
#define SPIN_NS 30000
#define MAX_SPINNERS 1
/* In short-task mode, the longest a queued job waits while a worker sleeps
 * (see wake_one_locked). */
#define LAG_NS 200000
/* In short-task mode, how long a cap on the workers awake lasts before a
 * time keeper tries one more again (keeper_sleeps_on). */
#define CAP_NS 20000000
/* In short-task mode, a worker that finds only a few jobs in the inbox
 * waits up to GATHER_NS for a batch of them (see gather_inbox). */
#define GATHER_NS 2000
#define GATHER_MIN 16 /* a smaller batch is not worth waiting for */

struct wp_job {
  uint64_t id;
  void *arg;
  void *value;
  int err;
  unsigned attempts;
  int64_t started_ns;     /* first attempt's start; 0: never started */
  int64_t due_ns;         /* while waiting in the heap */
  int64_t retry_after_ns; /* < 0: use the computed backoff */
  int64_t deadline_ns;    /* job_timeout: set at the first start */
  uint64_t key;           /* per_key */
  wp_ctx *ctx;
  wp_job *next; /* free list, a worker's finished or expired list, or the
                   list of jobs set aside for their key */
  unsigned char outcome;
};

/* per_key: one entry per key that has jobs running or set aside. Open
 * addressing with linear probing; an entry goes away when both are 0. */
typedef struct keyslot {
  uint64_t key;
  unsigned running;
  bool used;
  wp_job *head, *tail; /* set aside, in order */
} keyslot;

enum { OUT_OK, OUT_FAILED, OUT_CANCELED };

struct wp_worker {
  wp_pool *pool;
  unsigned index;
  pthread_t thread;
  bool started;
  void *state;
  int init_rc;
  wp_wake_cb wake; /* guarded by pool mu */
  void *wake_arg;
  bool armed;
  wp_worker *arm_next;
  /* Worker-local: finished jobs whose slots are not yet released. */
  wp_job *done;
  unsigned ndone;
  unsigned done_by[3];
  unsigned not_started; /* taken, then finished canceled without running */
  bool short_tasks; /* task workers: its last batch averaged < SHORT_TASK_NS */
  wp_result *results; /* for the results channel: the pool's results_cap */
  unsigned nresults;
  wp_rng rng;
  wp_job *expired; /* taken past their deadline: deliver, then done */
  int64_t take_ns; /* the clock at its last take that returned jobs */
};

struct wp_pool {
  /* Read-only after creation. */
  wp_pool_config cfg;
  size_t bound;
  wp_job *slots;
  /* The lock-free side of submit (see "Submitting" above): credits (free
   * slots not promised to a job in the inbox; taken without mu, given back
   * under it), and jobs accepted but not yet moved into the ring.
   * Cache-line aligned (the pool is allocated so): what a submitter reads
   * on every submit must not share a line with what the workers write
   * under mu. */
  _Alignas(WP__CACHE_LINE) atomic_size_t credits;
  wp__jring inbox;
  /* A submit that pushed into the inbox must lock mu and move it into the
   * ring, waking someone: a task worker sleeps or a driver is armed. Set
   * under mu (only when it changes), read by submitters without it
   * (seq_cst: see jring.h). */
  _Alignas(WP__CACHE_LINE) atomic_bool want_wake;
  atomic_bool stop;     /* closed */
  atomic_uint spinning; /* task workers spinning for work */
  /* How long a submitter at the bound spins for a slot (see submit): SPIN_NS
   * while spins find one, halved after each that does not. Only a hint:
   * read and written without mu, relaxed. */
  _Atomic int64_t submit_spin_ns;
  atomic_uint submit_spin_misses;
  /* The workers' side: under mu. */
  _Alignas(WP__CACHE_LINE) pthread_mutex_t mu;
  pthread_cond_t work_cv;  /* task workers waiting for jobs */
  pthread_cond_t space_cv; /* submitters waiting for a slot */
  pthread_cond_t state_cv; /* creation and shutdown waiting on workers */
  pthread_cond_t gate_cv;  /* workers waiting for creation to finish */
  wp_job *free_slots;      /* a stack: the slot a worker just freed is reused */
  wp_job **ring;
  size_t ring_head, ring_len;
  /* Mirror read without mu by spinners: updated under mu. */
  atomic_size_t avail; /* ring_len */
  wp_job **heap;       /* retry timer queue, by due_ns */
  size_t heap_len;
  size_t taken;
  unsigned idle, wakes_pending, space_waiters;
  /* Short-task mode: how many task workers stay awake (keeper_sleeps_on). */
  uint64_t takes;       /* takes that returned jobs: the workers' progress */
  unsigned awake_cap;   /* 0: no cap */
  int64_t cap_until;    /* the cap is dropped (and probed again) then */
  int64_t probe_ns;     /* a keeper joined to see if one more worker helps */
  double probe_rate;    /* jobs finished per ns before it joined */
  unsigned probe_awake; /* workers awake before it joined */
  bool keeper;     /* a sleeping task worker on a timer: retries, short mode */
  bool short_mode; /* task workers' last batch ran short tasks */
  wp_worker *armed;
  bool closed, canceling;
  /* Creation: workers wait for go/abort after their init. */
  unsigned inits_done;
  int init_rc;
  bool gate_open, abort_start;
  unsigned live;
  bool joined;
  uint64_t submitted, n_ok, n_failed, n_canceled, attempts, retries;
  wp_ctx *root;
  wp_worker *workers;
  unsigned nworkers;
  wp_result *results_buf; /* the workers' results buffers, one allocation */
  unsigned results_cap;   /* each worker's share of it */
  /* Limits (all under mu). */
  bool rate_on;
  wp_bucket bucket;
  keyslot *keys; /* per_key: 2^k >= 2 * bound entries */
  size_t keys_mask, held;
  wp__pool_metrics metrics; /* cfg.metrics; no series if NULL */
};

/* ---- job accessors ------------------------------------------------------ */

uint64_t wp_job_id(const wp_job *j) { return j->id; }
void *wp_job_arg(const wp_job *j) { return j->arg; }
unsigned wp_job_attempt(const wp_job *j) { return j->attempts; }
wp_ctx *wp_job_ctx(const wp_job *j) { return j->ctx; }
void wp_job_set_value(wp_job *j, void *value) { j->value = value; }
void wp_job_set_retry_after(wp_job *j, int64_t delay_ns) {
  j->retry_after_ns = delay_ns < 0 ? 0 : delay_ns;
}
int64_t wp_job_deadline(const wp_job *j) { return j->deadline_ns; }

unsigned wp_worker_index(const wp_worker *w) { return w->index; }
wp_ctx *wp_worker_ctx(const wp_worker *w) { return w->pool->root; }

/* ---- the retry heap (caller holds mu) ---------------------------------- */

static void heap_push(wp_pool *p, wp_job *j) {
  size_t i = p->heap_len++;
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (p->heap[parent]->due_ns <= j->due_ns) break;
    p->heap[i] = p->heap[parent];
    i = parent;
  }
  p->heap[i] = j;
}

static wp_job *heap_pop(wp_pool *p) {
  wp_job *top = p->heap[0];
  wp_job *last = p->heap[--p->heap_len];
  size_t i = 0, n = p->heap_len;
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    int64_t md = last->due_ns;
    if (l < n && p->heap[l]->due_ns < md) {
      m = l;
      md = p->heap[l]->due_ns;
    }
    if (r < n && p->heap[r]->due_ns < md) m = r;
    if (m == i) break;
    p->heap[i] = p->heap[m];
    i = m;
  }
  if (n > 0) p->heap[i] = last;
  return top;
}

/* ---- the ready queue (caller holds mu) --------------------------------- */

static void ring_push(wp_pool *p, wp_job *j) {
  size_t tail = p->ring_head + p->ring_len;
  if (tail >= p->bound) tail -= p->bound;
  p->ring[tail] = j;
  p->ring_len++;
  atomic_store_explicit(&p->avail, p->ring_len, memory_order_relaxed);
}

static wp_job *ring_pop(wp_pool *p) {
  wp_job *j = p->ring[p->ring_head];
  if (++p->ring_head == p->bound) p->ring_head = 0;
  p->ring_len--;
  atomic_store_explicit(&p->avail, p->ring_len, memory_order_relaxed);
  return j;
}

/* A job set aside for its key has waited already: it goes first. */
static void ring_push_front(wp_pool *p, wp_job *j) {
  p->ring_head = p->ring_head == 0 ? p->bound - 1 : p->ring_head - 1;
  p->ring[p->ring_head] = j;
  p->ring_len++;
  atomic_store_explicit(&p->avail, p->ring_len, memory_order_relaxed);
}

/* ---- per-key slots (caller holds mu) ------------------------------------ */

static void wake_one_locked(wp_pool *p);
static void want_wake_update_locked(wp_pool *p);

/* Is there a sleeping task worker that a new job should wake? Not if every
 * sleeper is being woken already (wakes_pending). Not with short tasks and
 * a worker awake: it will be back for the job within a batch; should its
 * next task be long after all, the time keeper (a sleeper on a LAG_NS timer
 * while this mode lasts) takes the job, and if there is no keeper yet, a
 * wake makes one. wake_one_locked and want_wake (what a lock-free submit
 * reads) both decide by this. */
static bool sleeper_to_wake_locked(const wp_pool *p) {
  return p->idle > p->wakes_pending &&
         !(p->short_mode && p->idle < p->nworkers && p->keeper);
}

static size_t key_home(const wp_pool *p, uint64_t key) {
  return (size_t)((key * 0x9e3779b97f4a7c15ull) >> 17) & p->keys_mask;
}

/* The entry of key, made if absent. The table never fills: every entry has
 * a job running or set aside, so there are at most bound entries in
 * 2 * bound places. */
static keyslot *key_get(wp_pool *p, uint64_t key) {
  size_t i = key_home(p, key);
  while (p->keys[i].used && p->keys[i].key != key) i = (i + 1) & p->keys_mask;
  keyslot *k = &p->keys[i];
  if (!k->used) {
    k->used = true;
    k->key = key;
    k->running = 0;
    k->head = k->tail = NULL;
  }
  return k;
}

/* Removes an unused entry; shifts later entries of its probe run back so
 * that lookups need no tombstones. */
static void key_remove(wp_pool *p, keyslot *k) {
  size_t i = (size_t)(k - p->keys), j = i;
  p->keys[i].used = false;
  for (;;) {
    j = (j + 1) & p->keys_mask;
    if (!p->keys[j].used) return;
    size_t h = key_home(p, p->keys[j].key);
    /* Entry j may move to the hole at i unless its home lies cyclically in
     * (i, j]. */
    bool stays = i <= j ? (i < h && h <= j) : (i < h || h <= j);
    if (stays) continue;
    p->keys[i] = p->keys[j];
    p->keys[j].used = false;
    i = j;
  }
}

/* If k has a free slot, the first job set aside for it (if any) gets it: it
 * goes to the front of the queue. A key with nothing running or waiting
 * leaves the table. */
static void key_kick_locked(wp_pool *p, keyslot *k) {
  wp_job *next = NULL;
  if (k->running < p->cfg.limits.per_key && k->head) {
    next = k->head;
    k->head = next->next;
    if (!k->head) k->tail = NULL;
    next->next = NULL;
    p->held--;
  }
  if (k->running == 0 && !k->head) key_remove(p, k);
  if (next) {
    ring_push_front(p, next);
    wake_one_locked(p);
  }
}

/* j's attempt ended: its key has a free slot. */
static void key_release_locked(wp_pool *p, wp_job *j) {
  keyslot *k = key_get(p, j->key);
  if (k->running > 0) k->running--;
  key_kick_locked(p, k);
}

/* A job entered the ring: wake one sleeping task worker or one armed driver,
 * unless a wake is already on its way to someone. */
static void wake_one_locked(wp_pool *p) {
  if (p->armed) { /* drivers: one wake per job pushed */
    wp_worker *w = p->armed;
    p->armed = w->arm_next;
    w->armed = false;
    w->arm_next = NULL;
    want_wake_update_locked(p);
    if (w->wake) w->wake(w->wake_arg);
    return;
  }
  if (!sleeper_to_wake_locked(p)) return;
  /* A spinning worker rechecks the ring under mu before it sleeps, so it
   * cannot miss this job. */
  if (atomic_load_explicit(&p->spinning, memory_order_relaxed) > 0) return;
  p->wakes_pending++;
  want_wake_update_locked(p);
  pthread_cond_signal(&p->work_cv);
}

/* Shutdown and cancel: everyone must look again. */
static void wake_all_locked(wp_pool *p) {
  pthread_cond_broadcast(&p->work_cv);
  pthread_cond_broadcast(&p->space_cv);
  pthread_cond_broadcast(&p->state_cv);
  p->armed = NULL;
  want_wake_update_locked(p);
  for (unsigned i = 0; i < p->nworkers; i++) {
    wp_worker *w = &p->workers[i];
    w->armed = false;
    w->arm_next = NULL;
    if (w->wake) w->wake(w->wake_arg);
  }
}

/* ---- the inbox (caller holds mu) ---------------------------------------- */

/* Would wake_one_locked wake anyone now (a spinner aside, which the
 * submitter reads itself)? Kept up to date under mu after every change of
 * armed, idle, wakes_pending, keeper or short_mode. Every change that can
 * make it true is followed, under the same hold of mu, by a look at the
 * inbox: a worker going to sleep (idle), a woken worker or time keeper
 * going on to take (wakes_pending, keeper), a take (short_mode), an arming
 * driver. seq_cst (with the push's publication): a sleeper that stored true
 * and then found the inbox empty is woken by every later push (jring.h). */
static void want_wake_update_locked(wp_pool *p) {
  bool want = p->armed != NULL || sleeper_to_wake_locked(p);
  if (atomic_load_explicit(&p->want_wake, memory_order_relaxed) != want)
    atomic_store_explicit(&p->want_wake, want, memory_order_seq_cst);
}

static void count_submitted_locked(wp_pool *p) {
  p->submitted++;
  wp_counter_add(p->metrics.submitted, 1);
}

/* A job leaves the inbox: it is now submitted and queued. */
static void accept_locked(wp_pool *p, wp_job *j, bool wake) {
  count_submitted_locked(p);
  ring_push(p, j);
  if (wake) wake_one_locked(p);
}

static void job_init(wp_job *j, uint64_t id, void *arg, uint64_t key,
                     unsigned attempts) {
  j->next = NULL;
  j->id = id;
  j->arg = arg;
  j->value = NULL;
  j->err = 0;
  j->attempts = attempts;
  j->started_ns = 0;
  j->deadline_ns = INT64_MAX;
  j->key = key;
  j->retry_after_ns = -1;
}

/* A free slot for a job whose submitter holds a credit (caller holds mu):
 * every credit stands for a slot on the stack, so there is one. */
static wp_job *slot_get_locked(wp_pool *p, const wp__jitem *it,
                               unsigned attempts) {
  wp_job *j = p->free_slots;
  p->free_slots = j->next;
  job_init(j, it->id, it->arg, it->key, attempts);
  return j;
}

/* Moves the published jobs of the inbox into the ring, in order, waking a
 * worker for each if wake (a worker that drains in order to take does not:
 * wp_worker_take wakes another if it leaves work behind). Stops at a job
 * still being pushed: its submitter drains after it, under mu. */
static size_t inbox_drain_locked(wp_pool *p, bool wake) {
  size_t n = 0;
  wp__jitem it;
  while (wp__jring_pop_1(&p->inbox, &it)) {
    accept_locked(p, slot_get_locked(p, &it, 0), wake);
    n++;
  }
  return n;
}

/* Closing (closed is being set): no push succeeds after this, and every job
 * accepted before is moved into the ring, waiting for those still being
 * pushed (a few instructions away; they need no lock to finish). */
static void inbox_close_locked(wp_pool *p) {
  size_t end = wp__jring_close(&p->inbox);
  unsigned spins = 0;
  while (wp__jring_head(&p->inbox) < end) {
    wp__jitem it;
    if (wp__jring_pop_1(&p->inbox, &it))
      accept_locked(p, slot_get_locked(p, &it, 0), false);
    else
      wp__backoff(&spins);
  }
}

/* Moves every retry that is due into the ring. */
static size_t move_due_locked(wp_pool *p) {
  if (p->heap_len == 0) return 0;
  int64_t now = wp_now_ns();
  size_t n = 0;
  while (p->heap_len > 0 && p->heap[0]->due_ns <= now) {
    ring_push(p, heap_pop(p));
    n++;
  }
  return n;
}

static uint64_t finished_count_locked(const wp_pool *p) {
  return p->n_ok + p->n_failed + p->n_canceled;
}

/* A time keeper in short-task mode woke on its LAG_NS timer (taken, done
 * and t0: the workers' takes, the jobs finished and the clock when it went
 * to sleep). Does it sleep on (true) or join the workers awake (false)?
 *
 * It joins if they took nothing meanwhile: one may be in a long task after
 * all, and the jobs queued behind it must not wait. Otherwise joining is a
 * probe: short tasks do not block, so one more worker helps only if there
 * is a core for it, and where there is none (the submitter, the results'
 * receiver and the workers already share the cores) it only adds lock
 * rounds and context switches: 64 workers awake on 2 cores ran no-op jobs at
 * half the rate of one. So the next keeper compares the rate after the
 * probe with the rate before: not 10% better, and no keeper joins while
 * as many workers as before the probe are awake, for CAP_NS (the extra one
 * goes back to sleep when it next finds nothing queued), after which a
 * keeper probes again. */
static bool keeper_sleeps_on(wp_pool *p, uint64_t taken, uint64_t done,
                             int64_t t0) {
  if (p->takes == taken) return false;
  int64_t now = wp_now_ns();
  double rate = (double)(finished_count_locked(p) - done) /
                (double)(now > t0 ? now - t0 : 1);
  unsigned awake = p->nworkers - p->idle;
  if (p->probe_ns && t0 >= p->probe_ns) { /* this window followed a probe */
    if (rate < p->probe_rate * 1.1) {
      p->awake_cap = p->probe_awake > 0 ? p->probe_awake : 1;
      p->cap_until = now + CAP_NS;
    }
    p->probe_ns = 0;
  }
  if (p->awake_cap && now >= p->cap_until) p->awake_cap = 0;
  if (p->awake_cap && awake >= p->awake_cap) return true;
  p->probe_ns = now;
  p->probe_rate = rate;
  p->probe_awake = awake;
  return false;
}

/* What wp_worker_take reports as WP_ECLOSED: shutdown began and nothing is
 * queued, waiting for a retry, or set aside for its key. Jobs still running
 * may yet come back (as retries, or by bringing back a job set aside for
 * their key): the workers that hold them keep taking. */
static bool finished_locked(const wp_pool *p) {
  return p->closed && p->ring_len == 0 && p->heap_len == 0 && p->held == 0;
}

/* Is the head of the queue held back by the rate limit at now? */
static bool rate_blocked_locked(const wp_pool *p, int64_t now) {
  return p->rate_on && p->ring_len > 0 &&
         wp_bucket_avail(&p->bucket, now, 1) == 0;
}

static void free_slot_locked(wp_pool *p, wp_job *j) {
  j->next = p->free_slots;
  p->free_slots = j;
}

/* Gives n credits back. Under mu: a submitter that waits for one rechecks
 * under mu, so a credit given under mu cannot slip past its wait. */
static void credits_give_locked(wp_pool *p, size_t n) {
  atomic_fetch_add_explicit(&p->credits, n, memory_order_relaxed);
  if (p->space_waiters) {
    if (n == 1)
      pthread_cond_signal(&p->space_cv);
    else
      pthread_cond_broadcast(&p->space_cv);
  }
}

/* Takes a credit if there is one: the right to put one job in the inbox
 * (or, under mu, in a slot). Any thread, no lock. Relaxed: the credit
 * guards no data (the inbox cell carries the job, the slot is filled under
 * mu). */
static bool credit_take(wp_pool *p) {
  size_t c = atomic_load_explicit(&p->credits, memory_order_relaxed);
  do {
    if (c == 0) return false;
  } while (!atomic_compare_exchange_weak_explicit(
      &p->credits, &c, c - 1, memory_order_relaxed, memory_order_relaxed));
  return true;
}

/* Gives the worker's finished slots back (caller holds mu). */
static void release_done_locked(wp_pool *p, wp_worker *w) {
  if (w->ndone == 0) return;
  unsigned n = w->ndone;
  wp_job *j = w->done;
  while (j) {
    wp_job *next = j->next;
    free_slot_locked(p, j);
    j = next;
  }
  p->taken -= n;
  p->n_ok += w->done_by[OUT_OK];
  p->n_failed += w->done_by[OUT_FAILED];
  p->n_canceled += w->done_by[OUT_CANCELED];
  p->attempts -= w->not_started; /* counted at take, never started */
  w->not_started = 0;
  w->done = NULL;
  w->ndone = 0;
  memset(w->done_by, 0, sizeof w->done_by);
  credits_give_locked(p, n);
}

/* ---- results ------------------------------------------------------------ */

static unsigned char outcome_of(int err) {
  if (err == 0) return OUT_OK;
  return err == WP_ECANCELED ? OUT_CANCELED : OUT_FAILED;
}

/* now: the clock at the job's end (a read costs ~50 ns on some virtual
 * machines, as much as a whole no-op job: callers read it once per batch). */
static void make_result(wp_job *j, wp_result *r, int64_t now) {
  r->id = j->id;
  r->arg = j->arg;
  r->value = j->value;
  r->err = j->err;
  r->attempts = j->attempts;
  r->elapsed_ns = j->started_ns ? now - j->started_ns : 0;
  j->outcome = outcome_of(j->err);
}

/* Sends the worker's buffered results into the results channel, with one
 * lock round for the lot. No pool lock held. */
static void flush_results(wp_pool *p, wp_worker *w) {
  if (w && w->nresults) {
    (void)wp__chan_send_all(p->cfg.results, w->results, w->nresults);
    w->nresults = 0;
  }
}

/* Delivers j's result; no lock held. With a results channel, a worker
 * buffers up to results_cap results and sends them before it next takes
 * jobs (or sleeps, or exits), so its slots are released only after. */
static void deliver(wp_pool *p, wp_worker *w, wp_job *j, int64_t now) {
  wp_result r;
  make_result(j, &r, now);
  wp__pool_metrics_result(&p->metrics, &r, j->outcome);
  if (p->cfg.on_result) {
    p->cfg.on_result(&r, p->cfg.userdata);
  } else if (!w) {
    (void)wp_chan_send(p->cfg.results, &r, NULL);
  } else {
    w->results[w->nresults++] = r;
    if (w->nresults == p->results_cap) flush_results(p, w);
  }
}

/* ---- the worker side ---------------------------------------------------- */

void wp_worker_set_wake(wp_worker *w, wp_wake_cb cb, void *arg) {
  wp_pool *p = w->pool;
  pthread_mutex_lock(&p->mu);
  w->wake = cb;
  w->wake_arg = arg;
  pthread_mutex_unlock(&p->mu);
}

/* Takes up to max jobs from the ring (caller holds mu, ring not empty). A
 * worker takes a fair share when the ring is long, so that a batch never
 * keeps jobs from an idle worker. With limits: at most as many as the rate
 * allows now; a job whose key is saturated is set aside on its key's list
 * (and the next one looked at); a job past its deadline goes on the
 * worker's expired list. May return 0. */
static int take_locked(wp_pool *p, wp_worker *w, wp_job **jobs, size_t max,
                       int64_t now) {
  size_t share = max;
  if (p->cfg.driver || max > FAIR_MIN) {
    /* Event loops hold many jobs each, and a task worker batching no-op
     * tasks takes up to TASK_BATCH: take a fair share of the ring (but
     * FAIR_MIN at least, for a task worker), so a worker with room for
     * hundreds leaves work for the others. */
    share = (p->ring_len + p->nworkers - 1) / p->nworkers;
    if (p->cfg.task && share < FAIR_MIN) share = FAIR_MIN;
    if (share > max) share = max;
  }
  if (share > p->ring_len) share = p->ring_len;
  if (p->rate_on)
    share = wp_bucket_avail(&p->bucket, now,
                            share > UINT32_MAX ? UINT32_MAX : (unsigned)share);
  size_t n = 0;
  unsigned per_key = p->cfg.limits.per_key;
  while (n < share && p->ring_len > 0) {
    wp_job *j = ring_pop(p);
    if (j->deadline_ns <= now) { /* only with job_timeout (now > 0) */
      j->next = w->expired;
      w->expired = j;
      p->taken++;
      /* It may have been given its key's free slot (key_kick_locked) and
       * will not run: pass the slot on, or the next job set aside for the
       * key would wait forever. */
      if (per_key) key_kick_locked(p, key_get(p, j->key));
      continue;
    }
    if (per_key) {
      keyslot *k = key_get(p, j->key);
      if (k->running >= per_key) {
        j->next = NULL;
        if (k->tail)
          k->tail->next = j;
        else
          k->head = j;
        k->tail = j;
        p->held++;
        continue;
      }
      k->running++;
    }
    j->attempts++;
    j->retry_after_ns = -1;
    jobs[n++] = j;
  }
  if (p->rate_on) wp_bucket_take(&p->bucket, now, (unsigned)n);
  p->taken += n;
  p->attempts += n;
  return (int)n;
}

/* Delivers the jobs that take_locked found past their deadline: each ends
 * with its last attempt's error. Called with mu held; releases it while
 * delivering. */
static void deliver_expired(wp_pool *p, wp_worker *w);

/* Clock reads only where a limit needs them: 0 otherwise (no deadline is
 * <= 0, and the rate is off). */
static int64_t limits_now(const wp_pool *p) {
  return p->rate_on || p->cfg.job_timeout_ns ? wp_now_ns() : 0;
}

/* How many jobs a worker that would take up to max waits to see in the
 * inbox before it takes them (1: it does not wait). A submitter and a
 * worker on two cores that hand over one job at a time pass each cache
 * line of the inbox back and forth once per job, and the worker drains a
 * job or two per lock round; letting a batch gather (for at most
 * GATHER_NS: a lone job waits no longer) moves each line once and the jobs
 * in batches. Not when the bound is small: the submitter could not get
 * that far ahead. */
static size_t gather_size(const wp_pool *p, size_t max) {
  size_t k = p->bound / 4 < max ? p->bound / 4 : max;
  return k < GATHER_MIN ? 1 : k;
}

/* Short-task mode, nothing queued in the ring: if the inbox holds fewer
 * than want published jobs but at least one, spins until it holds want,
 * for up to GATHER_NS. No lock held. */
static void gather_inbox(wp_pool *p, size_t want) {
  if (want <= 1 || atomic_load_explicit(&p->avail, memory_order_relaxed) > 0)
    return;
  int64_t until = 0;
  for (unsigned i = 1;; i++) {
    /* No credit: the submitter cannot add a job until a worker gives
     * slots back (this one gives its own back after the gather). */
    if (!wp__jring_ready(&p->inbox, 1) || wp__jring_ready(&p->inbox, want) ||
        atomic_load_explicit(&p->credits, memory_order_relaxed) == 0 ||
        atomic_load_explicit(&p->stop, memory_order_relaxed))
      return;
    wp__cpu_relax();
    if ((i & 7) == 0) {
      int64_t now = wp_now_ns();
      if (until == 0)
        until = now + GATHER_NS;
      else if (now > until)
        return;
    }
  }
}

/* Called with mu held; returns with mu held. Spins (mu released) for up to
 * SPIN_NS while no job is there, if fewer than MAX_SPINNERS spin already.
 * Once a job is there it lets a batch of up to want gather (gather_inbox).
 * Returns true if it spun (whatever it saw). */
static bool spin_for_work(wp_pool *p, size_t want) {
  unsigned n = atomic_load_explicit(&p->spinning, memory_order_relaxed);
  do {
    if (n >= MAX_SPINNERS) return false;
  } while (!atomic_compare_exchange_weak_explicit(
      &p->spinning, &n, n + 1, memory_order_acq_rel, memory_order_relaxed));
  pthread_mutex_unlock(&p->mu);
  int64_t until = wp_now_ns() + SPIN_NS;
  for (unsigned i = 1;; i++) {
    if (atomic_load_explicit(&p->avail, memory_order_relaxed) > 0 ||
        atomic_load_explicit(&p->stop, memory_order_relaxed))
      break;
    if (wp__jring_nonempty(&p->inbox)) {
      gather_inbox(p, want);
      break;
    }
    wp__cpu_relax();
    if ((i & 63) == 0) {
      if (wp_now_ns() > until) break;
      sched_yield(); /* two threads on one core: let the other run */
    }
  }
  pthread_mutex_lock(&p->mu);
  /* Still under mu: a submit that saw us spinning made no wake call; we
   * recheck the ring before sleeping, so its job is not missed. */
  atomic_fetch_sub_explicit(&p->spinning, 1, memory_order_seq_cst);
  return true;
}

int wp_worker_take(wp_worker *w, wp_job **jobs, size_t max, int flags) {
  wp_pool *p = w->pool;
  if (!jobs || max == 0) return WP_EINVAL;
  int rc;
  bool spun = false, was_keeper = false;
  unsigned late_spins = 0;
  flush_results(p, w);
  /* A task worker batching short tasks (max > 1) lets a batch gather. */
  size_t want = p->cfg.task && (flags & WP_TAKE_WAIT) ? gather_size(p, max) : 1;
  gather_inbox(p, want);
  pthread_mutex_lock(&p->mu);
  if (p->cfg.task && p->short_mode != w->short_tasks) {
    p->short_mode = w->short_tasks;
    want_wake_update_locked(p); /* the loop below looks at the inbox */
  }
  release_done_locked(p, w);
  for (;;) {
    inbox_drain_locked(p, false);
    move_due_locked(p);
    int64_t now = limits_now(p);
    if (p->ring_len > 0 && !rate_blocked_locked(p, now)) {
      rc = take_locked(p, w, jobs, max, now);
      /* Work left behind and nobody looking for it (sleeper_to_wake_locked:
       * in short-task mode the time keeper looks, and if there is none
       * yet, a wake makes one), or a time keeper that leaves: wake a
       * sleeper (to take it, or to keep the time). */
      if (p->idle > p->wakes_pending &&
          ((p->ring_len > 0 && sleeper_to_wake_locked(p) &&
            atomic_load_explicit(&p->spinning, memory_order_relaxed) == 0) ||
           (was_keeper && (p->heap_len > 0 || p->short_mode ||
                           (p->rate_on && p->ring_len > 0))))) {
        p->wakes_pending++;
        want_wake_update_locked(p);
        pthread_cond_signal(&p->work_cv);
      }
      if (w->expired) deliver_expired(p, w);
      /* Everything looked at was set aside or expired: look again (or
       * sleep) unless the caller does not wait. */
      if (rc > 0 || !(flags & WP_TAKE_WAIT)) break;
      continue;
    }
    if (finished_locked(p)) {
      /* Workers asleep while retries or rate-limited jobs were pending
       * must see this too (once: they exit, or stop arming). */
      if (p->idle > 0 || p->armed) wake_all_locked(p);
      rc = WP_ECLOSED;
      break;
    }
    if (!(flags & WP_TAKE_WAIT)) {
      rc = 0;
      break;
    }
    if (!spun && p->heap_len == 0 && spin_for_work(p, want)) {
      spun = true;
      continue; /* recheck under mu */
    }
    spun = true;
    /* Sleep. One sleeper keeps the time: until the first retry is due,
     * and, in short-task mode while another worker is awake, every LAG_NS. */
    int64_t until = INT64_MAX;
    bool keep = false, lag_only = false;
    if (!p->keeper) {
      if (p->heap_len > 0) {
        until = p->heap[0]->due_ns;
        keep = true;
      }
      if (p->ring_len > 0 && p->rate_on) { /* the next turn of the rate */
        int64_t t = wp_bucket_next(&p->bucket);
        if (t < until) until = t;
        keep = true;
      }
      if (p->short_mode && p->idle + 1 < p->nworkers) {
        int64_t lag = wp_now_ns() + LAG_NS;
        lag_only = !keep;
        if (lag < until) until = lag;
        keep = true;
      }
    }
    p->idle++;
    want_wake_update_locked(p);
    /* A job pushed (or claimed, and still being copied) before want_wake
     * became visible: its submitter may not come to wake us, so look once
     * more (jring.h). */
    if (inbox_drain_locked(p, false) > 0 || wp__jring_nonempty(&p->inbox)) {
      p->idle--;
      want_wake_update_locked(p);
      if (p->ring_len == 0) { /* a push still copying: let it finish */
        pthread_mutex_unlock(&p->mu);
        wp__backoff(&late_spins);
        pthread_mutex_lock(&p->mu);
      }
      continue;
    }
    if (keep) {
      p->keeper = true;
      want_wake_update_locked(p); /* false, if anything: always safe */
      was_keeper = true;
      for (;;) {
        uint64_t taken = p->takes, done = finished_count_locked(p);
        int64_t t0 = wp_now_ns();
        int wrc = wp__cond_wait_until(&p->work_cv, &p->mu, until);
        if (wrc != ETIMEDOUT || !lag_only || p->wakes_pending > 0 ||
            p->closed || !p->short_mode || p->heap_len > 0 ||
            !keeper_sleeps_on(p, taken, done, t0))
          break;
        until = wp_now_ns() + LAG_NS;
      }
      p->keeper = false;
    } else {
      was_keeper = false;
      pthread_cond_wait(&p->work_cv, &p->mu);
    }
    p->idle--;
    if (p->wakes_pending) p->wakes_pending--;
    want_wake_update_locked(p); /* the loop goes on to look at the inbox */
  }
  if (rc > 0) p->takes++;
  pthread_mutex_unlock(&p->mu);
  if (rc > 0) {
    /* elapsed_ns counts from the first attempt's start (one clock read per
     * batch, outside the lock); so does the job's deadline. */
    int64_t now = wp_now_ns();
    w->take_ns = now;
    int64_t budget = p->cfg.job_timeout_ns;
    for (int i = 0; i < rc; i++)
      if (jobs[i]->started_ns == 0) {
        jobs[i]->started_ns = now;
        if (budget > 0)
          jobs[i]->deadline_ns =
              budget > INT64_MAX - now ? INT64_MAX - 1 : now + budget;
      }
  }
  return rc;
}

int wp_worker_arm(wp_worker *w, int64_t *next_due) {
  wp_pool *p = w->pool;
  int rc;
  flush_results(p, w);
  pthread_mutex_lock(&p->mu);
  release_done_locked(p, w);
  inbox_drain_locked(p, false);
  move_due_locked(p);
  int64_t due = p->heap_len ? p->heap[0]->due_ns : INT64_MAX;
  bool ready = p->ring_len > 0;
  if (ready && p->rate_on && rate_blocked_locked(p, wp_now_ns())) {
    ready = false; /* not before the rate's next turn */
    int64_t t = wp_bucket_next(&p->bucket);
    if (t < due) due = t;
  }
  if (next_due) *next_due = due;
  if (ready || finished_locked(p)) {
    rc = 1;
  } else {
    if (!w->armed) {
      w->armed = true;
      w->arm_next = p->armed;
      p->armed = w;
      want_wake_update_locked(p);
    }
    rc = 0;
    /* As a worker going to sleep does: a job pushed (or being pushed)
     * before want_wake was visible is ours to see now (and then we are not
     * armed after all; a take finds it once it is copied in). */
    if (inbox_drain_locked(p, false) > 0 || wp__jring_nonempty(&p->inbox)) {
      if (p->armed == w) { /* still first: nobody woke us meanwhile */
        p->armed = w->arm_next;
        w->armed = false;
        w->arm_next = NULL;
        want_wake_update_locked(p);
      }
      rc = 1;
    }
  }
  pthread_mutex_unlock(&p->mu);
  return rc;
}

/* A job (j->due_ns set, no longer counted as taken) goes into the timer
 * queue. Guarantee 5: not the bounded queue; it stays outstanding (its slot
 * is held), so submit cannot overflow. Caller holds mu. */
static void schedule_locked(wp_pool *p, wp_job *j) {
  heap_push(p, j);
  if (p->heap[0] == j) {
    if (p->idle > p->wakes_pending) {
      p->wakes_pending++;
      want_wake_update_locked(p);
      pthread_cond_signal(&p->work_cv);
    }
    for (wp_worker *a = p->armed; a; a = a->arm_next)
      if (a->wake) a->wake(a->wake_arg); /* to shorten their sleep */
  }
}

static bool should_retry(wp_pool *p, wp_job *j, int err) {
  const wp_retry_policy *rp = &p->cfg.retry;
  if (err == 0 || j->attempts >= rp->max_attempts) return false;
  if (wp_ctx_err(j->ctx) != 0) return false;
  if (rp->retryable) return rp->retryable(err, p->cfg.userdata) != 0;
  return err != WP_ECANCELED;
}

/* The result of a job, from the worker that holds it (no lock held). */
static void finish_done(wp_pool *p, wp_worker *w, wp_job *j, int64_t now) {
  deliver(p, w, j, now);
  j->next = w->done;
  w->done = j;
  w->ndone++;
  w->done_by[j->outcome]++;
  if (w->ndone >= RELEASE_BATCH) {
    flush_results(p, w);
    pthread_mutex_lock(&p->mu);
    release_done_locked(p, w);
    pthread_mutex_unlock(&p->mu);
  }
}

static void deliver_expired(wp_pool *p, wp_worker *w) {
  wp_job *list = w->expired;
  w->expired = NULL;
  pthread_mutex_unlock(&p->mu);
  int64_t now = wp_now_ns();
  while (list) {
    wp_job *j = list;
    list = j->next;
    /* Only a retried job has a deadline and can expire: err is the last
     * attempt's. */
    if (j->err == 0) j->err = WP_ETIMEDOUT;
    finish_done(p, w, j, now);
  }
  flush_results(p, w);
  pthread_mutex_lock(&p->mu);
  /* Their slots go back now: the caller may sleep next, and a submitter
   * waiting for a slot must not wait for this worker's next take. */
  release_done_locked(p, w);
}

/* started: the attempt ran (false: taken, then canceled before it began).
 * now: the clock when it ended. */
static void finish(wp_worker *w, wp_job *j, int err, bool started,
                   int64_t now) {
  wp_pool *p = w->pool;
  j->err = err;
  if (started) wp_counter_add(p->metrics.attempts, 1);
  bool retry =
      err != 0 && p->cfg.retry.max_attempts > 1 && should_retry(p, j, err);
  if (retry) {
    int64_t delay =
        j->retry_after_ns >= 0
            ? j->retry_after_ns
            : wp_backoff_full_jitter(p->cfg.retry.base_ns, p->cfg.retry.cap_ns,
                                     j->attempts, &w->rng);
    j->due_ns = delay > INT64_MAX - now ? INT64_MAX : now + delay;
    /* A retry that could not start before the deadline: the job ends now,
     * with this attempt's error. */
    if (j->due_ns >= j->deadline_ns) retry = false;
    /* Told before the job can run again, so a durable store records the
     * retry before the next attempt's result. */
    if (retry && p->cfg.on_retry)
      p->cfg.on_retry(j->id, j->arg, j->attempts, delay, p->cfg.userdata);
  }
  if (retry || p->cfg.limits.per_key) {
    pthread_mutex_lock(&p->mu);
    if (p->cfg.limits.per_key) key_release_locked(p, j);
    if (retry && !p->canceling) {
      p->taken--;
      p->retries++;
      wp_counter_add(p->metrics.retries, 1);
      schedule_locked(p, j);
      pthread_mutex_unlock(&p->mu);
      return;
    }
    pthread_mutex_unlock(&p->mu);
  }
  finish_done(p, w, j, now);
}

void wp_worker_finish(wp_worker *w, wp_job *j, int err) {
  finish(w, j, err, true, wp_now_ns());
}

/* The post's worker, as a driver: one blocking task at a time. */
static void task_driver(wp_worker *w, void *state, void *userdata) {
  (void)userdata;
  wp_pool *p = w->pool;
  wp_job *batch[TASK_BATCH];
  int n;
  /* Batching saves lock rounds on short tasks; a long task would make its
   * batch-mates wait, so batches start at 1 and grow only while every batch
   * averages under SHORT_TASK_NS per job, to what the last batch's average
   * says runs in BATCH_NS. */
  size_t batch_max = 1;
  while ((n = wp_worker_take(w, batch, batch_max, WP_TAKE_WAIT)) > 0) {
    int64_t t0 = w->take_ns;
    int errs[TASK_BATCH];
    bool ran[TASK_BATCH];
    for (int i = 0; i < n; i++) {
      wp_job *j = batch[i];
      ran[i] = false;
      if (wp_ctx_err(j->ctx) != 0) {
        j->attempts--; /* taken, never started */
        w->not_started++;
        errs[i] = WP_ECANCELED;
        continue;
      }
      ran[i] = true;
      if (j->deadline_ns == INT64_MAX) {
        errs[i] = p->cfg.task(j->ctx, j, state);
        continue;
      }
      /* job_timeout: this attempt's context ends at the job's deadline. */
      wp_ctx *c;
      int rc = wp_ctx_with_deadline(j->ctx, j->deadline_ns, &c);
      if (rc == 0) {
        rc = p->cfg.task(c, j, state);
        wp_ctx_release(c);
      }
      errs[i] = rc;
    }
    /* The batch ends together: one clock read for every result in it (a
     * batch has more than one job only while tasks are short, so its
     * results wait at most about BATCH_NS). */
    int64_t end = wp_now_ns();
    for (int i = 0; i < n; i++) finish(w, batch[i], errs[i], ran[i], end);
    int64_t spent = end - t0;
    w->short_tasks = spent < (int64_t)n * SHORT_TASK_NS;
    batch_max = 1;
    if (w->short_tasks) {
      int64_t avg = spent / n;
      batch_max =
          avg <= BATCH_NS / TASK_BATCH ? TASK_BATCH : (size_t)(BATCH_NS / avg);
    }
  }
}

static void *worker_main(void *arg) {
  wp_worker *w = arg;
  wp_pool *p = w->pool;
  int rc = 0;
  if (p->cfg.worker_init)
    rc = p->cfg.worker_init(p->cfg.userdata, w->index, &w->state);
  pthread_mutex_lock(&p->mu);
  w->init_rc = rc;
  if (rc != 0 && p->init_rc == 0) p->init_rc = rc;
  p->inits_done++;
  /* Only the creator waits there, and only for the last init: one wake, not
   * one per worker (with 10,000 workers, a broadcast each is 10^8 wakes). */
  if (p->inits_done == p->live) pthread_cond_signal(&p->state_cv);
  while (!p->gate_open) pthread_cond_wait(&p->gate_cv, &p->mu);
  bool run = !p->abort_start && rc == 0;
  pthread_mutex_unlock(&p->mu);

  if (run) {
    if (p->cfg.task)
      task_driver(w, w->state, p->cfg.userdata);
    else
      p->cfg.driver(w, w->state, p->cfg.userdata);
  }
  if (rc == 0 && p->cfg.worker_cleanup)
    p->cfg.worker_cleanup(p->cfg.userdata, w->index, w->state);

  flush_results(p, w);
  pthread_mutex_lock(&p->mu);
  release_done_locked(p, w);
  w->wake = NULL;
  p->live--;
  if (p->live == 0) pthread_cond_broadcast(&p->state_cv);
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

/* ---- life cycle -----------------------------------------------------------
 */

/* What wp_pool_create allocates, and p itself (NULLs are fine). */
static void pool_arrays_free(wp_pool *p) {
  free(p->keys);
  free(p->results_buf);
  free(p->workers);
  free(p->heap);
  free(p->ring);
  wp__jring_free(&p->inbox);
  free(p->slots);
  free(p);
}

static void pool_free(wp_pool *p) {
  wp_ctx_release(p->root);
  pthread_cond_destroy(&p->gate_cv);
  pthread_cond_destroy(&p->state_cv);
  pthread_cond_destroy(&p->space_cv);
  pthread_cond_destroy(&p->work_cv);
  pthread_mutex_destroy(&p->mu);
  pool_arrays_free(p);
}

static void join_all(wp_pool *p) {
  for (unsigned i = 0; i < p->nworkers; i++)
    if (p->workers[i].started) pthread_join(p->workers[i].thread, NULL);
}

int wp_pool_create(const wp_pool_config *cfg, wp_pool **out) {
  if (!out) return WP_EINVAL;
  *out = NULL;
  if (!cfg || cfg->workers < 1 || cfg->workers > MAX_WORKERS ||
      !cfg->task == !cfg->driver || !cfg->on_result == !cfg->results)
    return WP_EINVAL;
  if (cfg->results && wp_chan_cap(cfg->results) == 0) return WP_EINVAL;
  const wp_limits *lim = &cfg->limits;
  if (!(lim->rate >= 0) || (lim->per_key && !lim->key) ||
      cfg->job_timeout_ns < 0)
    return WP_EINVAL;
  wp_bucket bucket;
  if (lim->rate > 0 && wp_bucket_init(&bucket, lim->rate, lim->burst) != 0)
    return WP_EINVAL;
  size_t bound =
      cfg->max_outstanding ? cfg->max_outstanding : 2 * (size_t)cfg->workers;
  if (bound > SIZE_MAX / sizeof(wp_job)) return WP_EINVAL;

  wp_pool *p = wp__calloc_lines(sizeof *p);
  if (!p) return WP_ENOMEM;
  p->cfg = *cfg;
  p->bound = bound;
  p->nworkers = cfg->workers;
  p->slots = calloc(bound, sizeof *p->slots);
  /* Arrays of pointers: sizeof *p->ring and *p->heap are meant. */
  /* NOLINTNEXTLINE(bugprone-sizeof-expression) */
  p->ring = calloc(bound, sizeof *p->ring);
  /* NOLINTNEXTLINE(bugprone-sizeof-expression) */
  p->heap = calloc(bound, sizeof *p->heap);
  p->workers = calloc(cfg->workers, sizeof *p->workers);
  if (lim->rate > 0) {
    p->rate_on = true;
    p->bucket = bucket;
  }
  if (lim->per_key) {
    size_t cap = 16;
    while (cap < 2 * bound && cap <= SIZE_MAX / 4) cap *= 2;
    p->keys_mask = cap - 1;
    p->keys = calloc(cap, sizeof *p->keys);
  }
  /* A results channel: each worker buffers a batch (RESULT_BATCH with a
   * few workers; with thousands, what their share of the bound needs). */
  size_t rcap = bound / cfg->workers;
  if (rcap < RESULT_BATCH_MIN) rcap = RESULT_BATCH_MIN;
  if (rcap > RESULT_BATCH) rcap = RESULT_BATCH;
  p->results_cap = (unsigned)rcap;
  if (cfg->results)
    p->results_buf = calloc((size_t)cfg->workers * rcap, sizeof(wp_result));
  int qb = wp__jring_init(&p->inbox, bound);
  if (!p->slots || !p->ring || !p->heap || !p->workers ||
      (lim->per_key && !p->keys) || (cfg->results && !p->results_buf) ||
      qb != 0) {
    pool_arrays_free(p);
    return WP_ENOMEM;
  }
  int rc = WP_ESYSTEM;
  if (wp__mutex_init_adaptive(&p->mu) != 0) goto fail_mu;
  if (wp__cond_init_monotonic(&p->work_cv) != 0) goto fail_work;
  if (pthread_cond_init(&p->space_cv, NULL) != 0) goto fail_space;
  if (pthread_cond_init(&p->state_cv, NULL) != 0) goto fail_state;
  if (pthread_cond_init(&p->gate_cv, NULL) != 0) {
    pthread_cond_destroy(&p->state_cv);
    goto fail_state;
  }
  rc = wp_ctx_with_cancel(NULL, &p->root);
  if (rc != 0) goto fail_ctx;
  rc = wp__pool_metrics_init(&p->metrics, cfg->metrics, cfg->metric_labels, p);
  if (rc != 0) goto fail_metrics;

  atomic_init(&p->submit_spin_ns, SPIN_NS);
  atomic_init(&p->submit_spin_misses, 0);
  for (size_t i = bound; i-- > 0;) {
    p->slots[i].ctx = p->root;
    p->slots[i].deadline_ns = INT64_MAX;
    free_slot_locked(p, &p->slots[i]);
  }
  atomic_init(&p->credits, bound);
  uint64_t seed = cfg->seed ? cfg->seed : (uint64_t)wp_now_ns();

  pthread_attr_t attr;
  if (pthread_attr_init(&attr) != 0) goto fail_attr;
  if (cfg->stack_size) pthread_attr_setstacksize(&attr, cfg->stack_size);
  /* Workers block every signal: only the application turns a signal into a
   * cancel. They inherit the mask of the creating thread. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  rc = 0;
  for (unsigned i = 0; i < cfg->workers; i++) {
    wp_worker *w = &p->workers[i];
    w->pool = p;
    w->index = i;
    if (p->results_buf) w->results = p->results_buf + (size_t)i * rcap;
    wp_rng_seed(&w->rng, seed + i * 0x9e3779b97f4a7c15ull);
    pthread_mutex_lock(&p->mu);
    p->live++;
    pthread_mutex_unlock(&p->mu);
    if (pthread_create(&w->thread, &attr, worker_main, w) != 0) {
      pthread_mutex_lock(&p->mu);
      p->live--;
      pthread_mutex_unlock(&p->mu);
      rc = WP_ESYSTEM;
      break;
    }
    w->started = true;
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&attr);

  /* Wait for every started worker's init, then open the gate: run, or (if
   * anything failed) clean up and exit. */
  pthread_mutex_lock(&p->mu);
  unsigned started = p->live;
  while (p->inits_done < started) pthread_cond_wait(&p->state_cv, &p->mu);
  if (rc == 0) rc = p->init_rc;
  p->abort_start = rc != 0;
  p->gate_open = true;
  pthread_cond_broadcast(&p->gate_cv);
  pthread_mutex_unlock(&p->mu);
  if (rc != 0) {
    join_all(p);
    pool_free(p);
    return rc;
  }
  rc = wp__pool_metrics_start(&p->metrics);
  if (rc != 0) {
    wp_pool_destroy(p);
    return rc;
  }
  *out = p;
  return 0;

fail_attr:
  rc = WP_ESYSTEM;
fail_metrics:
  wp_ctx_release(p->root);
fail_ctx:
  pthread_cond_destroy(&p->gate_cv);
  pthread_cond_destroy(&p->state_cv);
fail_state:
  pthread_cond_destroy(&p->space_cv);
fail_space:
  pthread_cond_destroy(&p->work_cv);
fail_work:
  pthread_mutex_destroy(&p->mu);
fail_mu:
  pool_arrays_free(p);
  return rc;
}

static void wake_space(void *arg) {
  wp_pool *p = arg;
  pthread_mutex_lock(&p->mu);
  pthread_cond_broadcast(&p->space_cv);
  pthread_cond_broadcast(&p->state_cv);
  pthread_mutex_unlock(&p->mu);
}

static void schedule_locked(wp_pool *p, wp_job *j);

/* Slots come back in batches, often within microseconds: a submitter at the
 * bound looks for one for a while before paying for a sleep and a wake. But
 * when jobs are long (a transfer of 100 us, a task of 1 ms), a slot comes
 * back once per job and the spin only burns a core that the tasks (or, for
 * fetch, the server on the same machine) could use. So the budget adapts:
 * SPIN_NS after a spin that found a slot, halved after one that did not;
 * at 0, one wait in 32 spins again (SPIN_NS / 8) to notice that jobs got
 * shorter. */
static int64_t submit_spin_budget(wp_pool *p) {
  int64_t b = atomic_load_explicit(&p->submit_spin_ns, memory_order_relaxed);
  if (b > 0) return b;
  unsigned m = atomic_fetch_add_explicit(&p->submit_spin_misses, 1,
                                         memory_order_relaxed);
  return (m & 31) == 31 ? SPIN_NS / 8 : 0;
}

static void submit_spin(wp_pool *p, wp_ctx *ctx, bool cancelable,
                        int64_t budget) {
  int64_t until = wp_now_ns() + budget;
  bool found = false;
  for (unsigned i = 1;; i++) {
    if (atomic_load_explicit(&p->credits, memory_order_relaxed) > 0) {
      found = true;
      break;
    }
    if (atomic_load_explicit(&p->stop, memory_order_relaxed) ||
        (cancelable && wp_ctx_err(ctx)))
      return;
    wp__cpu_relax();
    if ((i & 63) == 0) {
      if (wp_now_ns() > until) break;
      sched_yield();
    }
  }
  int64_t b = atomic_load_explicit(&p->submit_spin_ns, memory_order_relaxed);
  b = found ? SPIN_NS : b / 2;
  if (b < SPIN_NS / 64) b = 0;
  atomic_store_explicit(&p->submit_spin_ns, b, memory_order_relaxed);
}

/* The fast path: a credit and a push into the inbox, no lock, unless a
 * worker must be woken. WP_EAGAIN: no credit, take the slow path. */
static int submit_fast(wp_pool *p, uint64_t id, void *arg, uint64_t key) {
  if (atomic_load_explicit(&p->stop, memory_order_acquire)) return WP_ECLOSED;
  if (!credit_take(p)) return WP_EAGAIN;
  wp__jitem it = {id, arg, key};
  if (wp__jring_push(&p->inbox, &it) != 0) {
    /* Closed since we looked: the credit goes back, the job was not
     * taken. */
    pthread_mutex_lock(&p->mu);
    credits_give_locked(p, 1);
    pthread_mutex_unlock(&p->mu);
    return WP_ECLOSED;
  }
  /* A spinning worker will see the job (it looks at the inbox, and under mu
   * before it sleeps). */
  if (atomic_load_explicit(&p->want_wake, memory_order_seq_cst) &&
      atomic_load_explicit(&p->spinning, memory_order_seq_cst) == 0) {
    pthread_mutex_lock(&p->mu);
    inbox_drain_locked(p, true);
    pthread_mutex_unlock(&p->mu);
  }
  return 0;
}

static int submit(wp_pool *p, uint64_t id, void *arg, wp_ctx *ctx, bool wait,
                  unsigned attempts, int64_t due_ns) {
  if (!p) return WP_EINVAL;
  uint64_t key = 0;
  if (p->cfg.limits.per_key) key = p->cfg.limits.key(arg, p->cfg.userdata);
  if (attempts == 0 && due_ns <= 0) {
    int rc = submit_fast(p, id, arg, key);
    if (rc != WP_EAGAIN) return rc;
  }
  bool cancelable = wait && ctx && ctx != wp_ctx_background();
  bool hooked = false, spun = false;
  wp_ctx_hook hook;
  int rc;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    if (p->closed) {
      rc = WP_ECLOSED;
      break;
    }
    /* Credits are given back under mu, so none comes while we hold it
     * (submitters only take them). */
    if (credit_take(p)) {
      /* Behind the jobs accepted before it. */
      inbox_drain_locked(p, true);
      wp__jitem it = {id, arg, key};
      wp_job *j = slot_get_locked(p, &it, attempts);
      if (due_ns > 0 && due_ns > wp_now_ns()) {
        /* A resumed retry: into the timer queue like any retry. */
        count_submitted_locked(p);
        j->due_ns = due_ns;
        schedule_locked(p, j);
      } else {
        accept_locked(p, j, true);
      }
      rc = 0;
      break;
    }
    if (!wait) {
      rc = WP_EAGAIN;
      break;
    }
    if (cancelable) {
      rc = wp_ctx_err(ctx);
      if (rc != 0) break;
      if (!hooked) {
        pthread_mutex_unlock(&p->mu);
        wp_ctx_on_done(ctx, &hook, wake_space, p);
        hooked = true;
        pthread_mutex_lock(&p->mu);
        continue;
      }
    }
    if (!spun) {
      spun = true;
      int64_t budget = submit_spin_budget(p);
      if (budget > 0) {
        pthread_mutex_unlock(&p->mu);
        submit_spin(p, ctx, cancelable, budget);
        pthread_mutex_lock(&p->mu);
        continue;
      }
    }
    p->space_waiters++;
    pthread_cond_wait(&p->space_cv, &p->mu);
    p->space_waiters--;
  }
  pthread_mutex_unlock(&p->mu);
  if (hooked) wp_ctx_hook_remove(&hook);
  return rc;
}

int wp_pool_submit(wp_pool *p, uint64_t id, void *arg, wp_ctx *ctx) {
  return submit(p, id, arg, ctx, true, 0, 0);
}

int wp_pool_try_submit(wp_pool *p, uint64_t id, void *arg) {
  return submit(p, id, arg, NULL, false, 0, 0);
}

int wp_pool_submit_resumed(wp_pool *p, uint64_t id, void *arg,
                           unsigned attempts, int64_t due_ns, wp_ctx *ctx) {
  return submit(p, id, arg, ctx, true, attempts, due_ns);
}

/* Waits (bounded by ctx) until every worker has exited, then joins them. */
static int wait_and_join(wp_pool *p, wp_ctx *ctx) {
  bool cancelable = ctx && ctx != wp_ctx_background();
  bool hooked = false;
  wp_ctx_hook hook;
  int rc = 0;
  pthread_mutex_lock(&p->mu);
  while (p->live > 0) {
    if (cancelable) {
      rc = wp_ctx_err(ctx);
      if (rc != 0) break;
      if (!hooked) {
        pthread_mutex_unlock(&p->mu);
        wp_ctx_on_done(ctx, &hook, wake_space, p);
        hooked = true;
        pthread_mutex_lock(&p->mu);
        continue;
      }
    }
    pthread_cond_wait(&p->state_cv, &p->mu);
  }
  bool join = rc == 0 && !p->joined;
  if (join) p->joined = true;
  pthread_mutex_unlock(&p->mu);
  if (hooked) wp_ctx_hook_remove(&hook);
  /* Every worker has left its last critical section (live is decremented
   * last), so these joins return at once. */
  if (join) join_all(p);
  return rc;
}

int wp_pool_shutdown(wp_pool *p, wp_ctx *ctx) {
  if (!p) return WP_EINVAL;
  pthread_mutex_lock(&p->mu);
  if (!p->closed) {
    p->closed = true;
    atomic_store(&p->stop, true);
    inbox_close_locked(p);
    wake_all_locked(p);
  }
  pthread_mutex_unlock(&p->mu);
  return wait_and_join(p, ctx);
}

int wp_pool_shutdown_now(wp_pool *p, wp_ctx *ctx) {
  if (!p) return WP_EINVAL;
  wp_job *victims = NULL;
  unsigned n = 0;
  /* One critical section closes the pool and takes every job not running:
   * a submitter waiting for a slot (freed when running jobs end on the
   * cancel below) must see WP_ECLOSED, and no worker may find a queued job
   * to start in between. */
  pthread_mutex_lock(&p->mu);
  if (!p->closed) inbox_close_locked(p);
  p->closed = true;
  atomic_store(&p->stop, true);
  bool first = !p->canceling;
  if (first) {
    p->canceling = true;
    while (p->ring_len > 0) {
      wp_job *j = ring_pop(p);
      j->next = victims;
      victims = j;
      n++;
    }
    while (p->heap_len > 0) {
      wp_job *j = heap_pop(p);
      j->next = victims;
      victims = j;
      n++;
    }
    /* Jobs set aside for their key. Their entries stay while jobs of the
     * key run; each goes away when the last one finishes. */
    for (size_t i = 0; p->held > 0 && i <= p->keys_mask; i++) {
      keyslot *k = &p->keys[i];
      if (!k->used) continue;
      while (k->head) {
        wp_job *j = k->head;
        k->head = j->next;
        j->next = victims;
        victims = j;
        n++;
        p->held--;
      }
      k->tail = NULL;
    }
  }
  pthread_cond_broadcast(&p->space_cv);
  pthread_mutex_unlock(&p->mu);
  /* Cancel before waking: a driver woken below must already see its
   * context ended, or it could finish its jobs as if nothing happened. */
  wp_ctx_cancel(p->root);
  pthread_mutex_lock(&p->mu);
  if (first) wake_all_locked(p);
  pthread_mutex_unlock(&p->mu);

  if (n > 0) {
    /* Queued and waiting jobs end here, canceled, never run again. */
    int64_t now = wp_now_ns();
    for (wp_job *j = victims; j; j = j->next) {
      j->err = WP_ECANCELED;
      deliver(p, NULL, j, now);
    }
    pthread_mutex_lock(&p->mu);
    while (victims) {
      wp_job *next = victims->next;
      free_slot_locked(p, victims);
      victims = next;
    }
    p->n_canceled += n;
    credits_give_locked(p, n);
    pthread_mutex_unlock(&p->mu);
  }
  return wait_and_join(p, ctx);
}

void wp_pool_destroy(wp_pool *p) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  bool joined = p->joined;
  pthread_mutex_unlock(&p->mu);
  if (!joined) wp_pool_shutdown_now(p, NULL);
  wp__pool_metrics_stop(&p->metrics);
  pool_free(p);
}

void wp_pool_stats_get(wp_pool *p, wp_pool_stats *out) {
  pthread_mutex_lock(&p->mu);
  inbox_drain_locked(p, true); /* jobs accepted are submitted and queued */
  out->submitted = p->submitted;
  out->ok = p->n_ok;
  out->failed = p->n_failed;
  out->canceled = p->n_canceled;
  out->attempts = p->attempts;
  out->retries = p->retries;
  out->queued = p->ring_len;
  out->waiting = p->heap_len;
  out->running = p->taken;
  out->workers = p->nworkers;
  out->held = p->held;
  pthread_mutex_unlock(&p->mu);
}
