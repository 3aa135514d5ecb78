/* Cancellation contexts.
 *
 * Design. Each context has a mutex guarding its list of children, its done
 * hooks and its descriptor; its error is an atomic written once, under that
 * mutex, so wp_ctx_err() is a single load. Ending a context (cancel_with):
 * under its mutex, set the error and steal the lists; then, with no lock
 * held, end each child, run each hook, and wake wp_ctx_wait() callers. So
 * callbacks never run under a library lock and may call back in.
 *
 * References. The caller's references are strong. A child holds a strong
 * reference on its parent; the parent's list of children is weak (a child
 * unlinks itself when freed, and the parent only takes a child it can still
 * reference: ref_if_live). The timer heap is weak in the same way, so a
 * released context never lingers until its deadline.
 *
 * Deadlines: one timer thread for the process, started when the first
 * pending deadline is armed and gone (detached, it exits) when none is left.
 * It sleeps on a condition variable until the earliest deadline, then ends
 * that context with WP_ETIMEDOUT.
 *
 * Lock order: timers.mu is never held while taking a context's mutex, and a
 * parent's mutex is never held while taking a child's: ending a tree takes
 * one mutex at a time.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/eventfd.h>
#else
#include <fcntl.h>
#endif

#include "core/internal.h"
#include "wpool/ctx.h"
#include "wpool/error.h"

/* A hook is ARMED in ctx->hooks; when the context ends all move to
 * ctx->firing (PENDING) and run one at a time (FIRING, ctx->current). */
enum { HOOK_IDLE, HOOK_ARMED, HOOK_PENDING, HOOK_FIRING, HOOK_DONE };

#define NOT_IN_HEAP SIZE_MAX

struct wp_ctx {
  atomic_int err;
  atomic_int refs;
  bool background;
  bool timed; /* was put in the timer heap (immutable after creation) */
  pthread_mutex_t mu;
  pthread_cond_t cv; /* hook removal, wp_ctx_wait() */
  wp_ctx *parent;
  /* Membership in parent->children; guarded by parent->mu. */
  wp_ctx *sib_next, *sib_prev;
  bool linked;
  /* Guarded by mu. */
  wp_ctx *children;
  wp_ctx_hook *hooks;
  wp_ctx_hook *firing;  /* hooks not yet run once ended */
  wp_ctx_hook *current; /* the hook running now; NULL if it removed itself */
  int fd_read, fd_write;
  pthread_t firer;
  /* Immutable after creation. */
  int64_t deadline;
  /* Guarded by timers.mu. */
  size_t heap_idx;
};

static wp_ctx background = {
    .err = 0,
    .refs = 1,
    .background = true,
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .cv = PTHREAD_COND_INITIALIZER,
    .fd_read = -1,
    .fd_write = -1,
    .deadline = INT64_MAX,
    .heap_idx = NOT_IN_HEAP,
};

int64_t wp_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void wp__ns_to_timespec(int64_t ns, struct timespec *ts) {
  if (ns < 0) ns = 0;
  ts->tv_sec = (time_t)(ns / 1000000000);
  ts->tv_nsec = (long)(ns % 1000000000);
}

int wp__cond_init_monotonic(pthread_cond_t *cv) {
  pthread_condattr_t a;
  if (pthread_condattr_init(&a) != 0) return WP_ESYSTEM;
  int rc = pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
  if (rc == 0) rc = pthread_cond_init(cv, &a);
  pthread_condattr_destroy(&a);
  return rc == 0 ? 0 : WP_ESYSTEM;
}

int wp__cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu,
                        int64_t deadline_ns) {
  if (deadline_ns == INT64_MAX) return pthread_cond_wait(cv, mu);
  struct timespec ts;
  wp__ns_to_timespec(deadline_ns, &ts);
  return pthread_cond_timedwait(cv, mu, &ts);
}

/* ---- the timer heap ---------------------------------------------------- */

static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  wp_ctx **heap;
  size_t len, cap;
  bool running;
} timers = {.mu = PTHREAD_MUTEX_INITIALIZER};

static pthread_once_t timers_once = PTHREAD_ONCE_INIT;
static int timers_init_rc;

static void timers_init(void) {
  timers_init_rc = wp__cond_init_monotonic(&timers.cv);
}

static void heap_swap(size_t a, size_t b) {
  wp_ctx *t = timers.heap[a];
  timers.heap[a] = timers.heap[b];
  timers.heap[b] = t;
  timers.heap[a]->heap_idx = a;
  timers.heap[b]->heap_idx = b;
}

static void heap_up(size_t i) {
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (timers.heap[p]->deadline <= timers.heap[i]->deadline) break;
    heap_swap(i, p);
    i = p;
  }
}

static void heap_down(size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < timers.len && timers.heap[l]->deadline < timers.heap[m]->deadline)
      m = l;
    if (r < timers.len && timers.heap[r]->deadline < timers.heap[m]->deadline)
      m = r;
    if (m == i) break;
    heap_swap(i, m);
    i = m;
  }
}

/* Caller holds timers.mu. */
static void heap_remove(wp_ctx *c) {
  size_t i = c->heap_idx;
  if (i == NOT_IN_HEAP) return;
  c->heap_idx = NOT_IN_HEAP;
  timers.len--;
  if (i == timers.len) return;
  timers.heap[i] = timers.heap[timers.len];
  timers.heap[i]->heap_idx = i;
  heap_up(i);
  heap_down(timers.heap[i]->heap_idx);
}

static bool ref_if_live(wp_ctx *c) {
  int n = atomic_load_explicit(&c->refs, memory_order_relaxed);
  while (n > 0) {
    if (atomic_compare_exchange_weak_explicit(
            &c->refs, &n, n + 1, memory_order_acq_rel, memory_order_relaxed))
      return true;
  }
  return false;
}

static void cancel_with(wp_ctx *c, int err);

static void *timer_main(void *arg) {
  (void)arg;
  pthread_mutex_lock(&timers.mu);
  for (;;) {
    if (timers.len == 0) {
      timers.running = false;
      break;
    }
    wp_ctx *top = timers.heap[0];
    int64_t now = wp_now_ns();
    if (top->deadline > now) {
      wp__cond_wait_until(&timers.cv, &timers.mu, top->deadline);
      continue;
    }
    heap_remove(top);
    if (!ref_if_live(top)) continue; /* being freed by its last release */
    pthread_mutex_unlock(&timers.mu);
    cancel_with(top, WP_ETIMEDOUT);
    wp_ctx_release(top);
    pthread_mutex_lock(&timers.mu);
  }
  pthread_mutex_unlock(&timers.mu);
  return NULL;
}

static int timer_arm(wp_ctx *c) {
  pthread_once(&timers_once, timers_init);
  if (timers_init_rc != 0) return timers_init_rc;
  pthread_mutex_lock(&timers.mu);
  if (timers.len == timers.cap) {
    size_t ncap = timers.cap ? timers.cap * 2 : 64;
    /* An array of pointers: sizeof *nh is meant. */
    /* NOLINTNEXTLINE(bugprone-sizeof-expression) */
    wp_ctx **nh = realloc(timers.heap, ncap * sizeof *nh);
    if (!nh) {
      pthread_mutex_unlock(&timers.mu);
      return WP_ENOMEM;
    }
    timers.heap = nh;
    timers.cap = ncap;
  }
  c->heap_idx = timers.len;
  timers.heap[timers.len++] = c;
  heap_up(c->heap_idx);
  if (!timers.running) {
    pthread_attr_t attr;
    pthread_t t;
    int rc = pthread_attr_init(&attr);
    if (rc == 0) {
      pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
      sigset_t all, old;
      sigfillset(&all);
      pthread_sigmask(SIG_SETMASK, &all, &old); /* the thread blocks signals */
      rc = pthread_create(&t, &attr, timer_main, NULL);
      pthread_sigmask(SIG_SETMASK, &old, NULL);
      pthread_attr_destroy(&attr);
    }
    if (rc != 0) {
      heap_remove(c);
      pthread_mutex_unlock(&timers.mu);
      return WP_ESYSTEM;
    }
    timers.running = true;
  } else if (timers.heap[0] == c) {
    pthread_cond_signal(&timers.cv);
  }
  pthread_mutex_unlock(&timers.mu);
  return 0;
}

static void timer_disarm(wp_ctx *c) {
  pthread_mutex_lock(&timers.mu);
  if (c->heap_idx != NOT_IN_HEAP) {
    heap_remove(c);
    /* The thread may sleep until this deadline: let it recompute, and exit
     * if nothing is left. (timers.cv exists: c was armed.) */
    pthread_cond_signal(&timers.cv);
  }
  pthread_mutex_unlock(&timers.mu);
}

/* ---- contexts ---------------------------------------------------------- */

wp_ctx *wp_ctx_background(void) { return &background; }

static void signal_fd(wp_ctx *c) {
  if (c->fd_write < 0) return;
  uint64_t one = 1;
  ssize_t n;
  do {
    n = write(c->fd_write, &one, c->fd_write == c->fd_read ? 8 : 1);
  } while (n < 0 && errno == EINTR);
}

static void cancel_with(wp_ctx *c, int err) {
  if (c->background) return;
  pthread_mutex_lock(&c->mu);
  if (atomic_load_explicit(&c->err, memory_order_relaxed) != 0) {
    pthread_mutex_unlock(&c->mu);
    return;
  }
  atomic_store_explicit(&c->err, err, memory_order_release);
  c->firer = pthread_self();
  c->firing = c->hooks;
  c->hooks = NULL;
  for (wp_ctx_hook *h = c->firing; h; h = h->next_) h->state_ = HOOK_PENDING;
  /* Take the children we can still reference; chain them through sib_next
   * (they are out of our list now). */
  wp_ctx *taken = NULL;
  wp_ctx *ch = c->children;
  c->children = NULL;
  while (ch) {
    wp_ctx *next = ch->sib_next;
    ch->linked = false;
    ch->sib_next = ch->sib_prev = NULL;
    if (ref_if_live(ch)) {
      ch->sib_next = taken;
      taken = ch;
    }
    ch = next;
  }
  signal_fd(c);
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);

  if (c->timed) timer_disarm(c);
  while (taken) {
    wp_ctx *next = taken->sib_next;
    taken->sib_next = NULL;
    cancel_with(taken, err);
    wp_ctx_release(taken);
    taken = next;
  }
  /* Run the hooks one at a time; a hook may remove itself or others. */
  pthread_mutex_lock(&c->mu);
  wp_ctx_hook *h;
  while ((h = c->firing) != NULL) {
    c->firing = h->next_;
    if (c->firing) c->firing->prev_ = NULL;
    h->next_ = h->prev_ = NULL;
    h->state_ = HOOK_FIRING;
    c->current = h;
    pthread_mutex_unlock(&c->mu);
    h->cb_(h->arg_);
    pthread_mutex_lock(&c->mu);
    if (c->current == h) h->state_ = HOOK_DONE; /* else h may be gone */
    c->current = NULL;
    pthread_cond_broadcast(&c->cv);
  }
  pthread_mutex_unlock(&c->mu);
}

void wp_ctx_cancel(wp_ctx *ctx) {
  if (ctx) cancel_with(ctx, WP_ECANCELED);
}

int wp_ctx_err(const wp_ctx *ctx) {
  return atomic_load_explicit(&((wp_ctx *)ctx)->err, memory_order_acquire);
}

int64_t wp_ctx_deadline(const wp_ctx *ctx) { return ctx->deadline; }

wp_ctx *wp_ctx_ref(wp_ctx *ctx) {
  if (ctx && !ctx->background)
    atomic_fetch_add_explicit(&ctx->refs, 1, memory_order_relaxed);
  return ctx;
}

void wp_ctx_release(wp_ctx *ctx) {
  if (!ctx || ctx->background) return;
  if (atomic_fetch_sub_explicit(&ctx->refs, 1, memory_order_acq_rel) != 1)
    return;
  /* Last reference. Children and hooks each hold a reference, so there are
   * none; only the weak links to us remain: the timer heap and the parent's
   * list. Both skip us from now on (ref_if_live fails). */
  if (ctx->timed) timer_disarm(ctx);
  wp_ctx *parent = ctx->parent;
  if (parent && !parent->background) {
    pthread_mutex_lock(&parent->mu);
    if (ctx->linked) {
      if (ctx->sib_prev)
        ctx->sib_prev->sib_next = ctx->sib_next;
      else
        parent->children = ctx->sib_next;
      if (ctx->sib_next) ctx->sib_next->sib_prev = ctx->sib_prev;
      ctx->linked = false;
    }
    pthread_mutex_unlock(&parent->mu);
  }
  wp_ctx_release(parent);
  if (ctx->fd_read >= 0) close(ctx->fd_read);
  if (ctx->fd_write >= 0 && ctx->fd_write != ctx->fd_read) close(ctx->fd_write);
  pthread_cond_destroy(&ctx->cv);
  pthread_mutex_destroy(&ctx->mu);
  free(ctx);
}

static int ctx_new(wp_ctx *parent, int64_t deadline, wp_ctx **out) {
  if (!out) return WP_EINVAL;
  *out = NULL;
  if (!parent) parent = &background;
  wp_ctx *c = calloc(1, sizeof *c);
  if (!c) return WP_ENOMEM;
  if (pthread_mutex_init(&c->mu, NULL) != 0) {
    free(c);
    return WP_ESYSTEM;
  }
  if (wp__cond_init_monotonic(&c->cv) != 0) {
    pthread_mutex_destroy(&c->mu);
    free(c);
    return WP_ESYSTEM;
  }
  atomic_init(&c->refs, 1);
  atomic_init(&c->err, 0);
  c->fd_read = c->fd_write = -1;
  c->heap_idx = NOT_IN_HEAP;
  c->parent = wp_ctx_ref(parent);
  c->deadline = deadline < parent->deadline ? deadline : parent->deadline;
  bool own_deadline = deadline < parent->deadline;

  /* timed is set before the child is published in the parent's list, so a
   * cancel that takes it from there sees it (and disarms). */
  c->timed = own_deadline && deadline > wp_now_ns();

  int perr = 0;
  if (!parent->background) {
    pthread_mutex_lock(&parent->mu);
    perr = atomic_load_explicit(&parent->err, memory_order_relaxed);
    if (perr == 0) {
      c->sib_next = parent->children;
      if (parent->children) parent->children->sib_prev = c;
      parent->children = c;
      c->linked = true;
    }
    pthread_mutex_unlock(&parent->mu);
  }
  if (perr != 0) {
    atomic_store(&c->err, perr);
    c->timed = false; /* never published, never armed */
  } else if (c->timed) {
    int rc = timer_arm(c);
    if (rc != 0) {
      /* Published in the parent's list: release unlinks it. */
      wp_ctx_release(c);
      return rc;
    }
    /* A parent's cancel may have ended c between publishing and arming; its
     * disarm found nothing to remove then, so remove it now. */
    if (wp_ctx_err(c) != 0) timer_disarm(c);
  } else if (own_deadline) {
    cancel_with(c, WP_ETIMEDOUT); /* a deadline already past */
  }
  *out = c;
  return 0;
}

int wp_ctx_with_cancel(wp_ctx *parent, wp_ctx **out) {
  return ctx_new(parent, INT64_MAX, out);
}

int wp_ctx_with_deadline(wp_ctx *parent, int64_t deadline_ns, wp_ctx **out) {
  return ctx_new(parent, deadline_ns, out);
}

int wp_ctx_with_timeout(wp_ctx *parent, int64_t timeout_ns, wp_ctx **out) {
  int64_t now = wp_now_ns();
  int64_t dl = timeout_ns > INT64_MAX - now ? INT64_MAX : now + timeout_ns;
  if (timeout_ns == INT64_MAX) dl = INT64_MAX;
  return ctx_new(parent, dl, out);
}

int wp_ctx_wait(wp_ctx *ctx, int64_t deadline_ns) {
  int err = wp_ctx_err(ctx);
  if (err) return err;
  if (ctx->background) {
    /* Never ends: wait out the deadline (or forever) on a private cv. */
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv;
    if (wp__cond_init_monotonic(&cv) != 0) return WP_ESYSTEM;
    pthread_mutex_lock(&mu);
    while (deadline_ns == INT64_MAX || wp_now_ns() < deadline_ns)
      wp__cond_wait_until(&cv, &mu, deadline_ns);
    pthread_mutex_unlock(&mu);
    pthread_cond_destroy(&cv);
    return WP_EAGAIN;
  }
  pthread_mutex_lock(&ctx->mu);
  while ((err = atomic_load_explicit(&ctx->err, memory_order_relaxed)) == 0) {
    if (deadline_ns != INT64_MAX && wp_now_ns() >= deadline_ns) break;
    wp__cond_wait_until(&ctx->cv, &ctx->mu, deadline_ns);
  }
  pthread_mutex_unlock(&ctx->mu);
  return err ? err : WP_EAGAIN;
}

int wp_ctx_fd(wp_ctx *ctx, int *fd) {
  if (!ctx || !fd || ctx->background) return WP_EINVAL;
  int rc = 0;
  pthread_mutex_lock(&ctx->mu);
  if (ctx->fd_read < 0) {
#ifdef __linux__
    int e = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (e >= 0) ctx->fd_read = ctx->fd_write = e;
#else
    int p[2];
    if (pipe(p) == 0) {
      fcntl(p[0], F_SETFD, FD_CLOEXEC);
      fcntl(p[1], F_SETFD, FD_CLOEXEC);
      fcntl(p[1], F_SETFL, O_NONBLOCK);
      ctx->fd_read = p[0];
      ctx->fd_write = p[1];
    }
#endif
    if (ctx->fd_read < 0)
      rc = WP_ESYSTEM;
    else if (atomic_load_explicit(&ctx->err, memory_order_relaxed) != 0)
      signal_fd(ctx);
  }
  if (rc == 0) *fd = ctx->fd_read;
  pthread_mutex_unlock(&ctx->mu);
  return rc;
}

int wp_ctx_on_done(wp_ctx *ctx, wp_ctx_hook *hook, wp_ctx_done_cb cb,
                   void *arg) {
  if (!ctx || !hook || !cb) return WP_EINVAL;
  hook->next_ = hook->prev_ = NULL;
  hook->ctx_ = NULL;
  hook->cb_ = cb;
  hook->arg_ = arg;
  hook->state_ = HOOK_IDLE;
  if (ctx->background) return 0;
  pthread_mutex_lock(&ctx->mu);
  int err = atomic_load_explicit(&ctx->err, memory_order_relaxed);
  if (err != 0) {
    hook->state_ = HOOK_DONE;
    pthread_mutex_unlock(&ctx->mu);
    return err;
  }
  hook->ctx_ = wp_ctx_ref(ctx);
  hook->state_ = HOOK_ARMED;
  hook->next_ = ctx->hooks;
  if (ctx->hooks) ctx->hooks->prev_ = hook;
  ctx->hooks = hook;
  pthread_mutex_unlock(&ctx->mu);
  return 0;
}

int wp_ctx_hook_remove(wp_ctx_hook *hook) {
  if (!hook) return WP_EINVAL;
  wp_ctx *c = hook->ctx_;
  if (!c) return hook->state_ == HOOK_IDLE ? 0 : 1;
  int ret;
  pthread_mutex_lock(&c->mu);
  if (hook->state_ == HOOK_ARMED || hook->state_ == HOOK_PENDING) {
    wp_ctx_hook **head = hook->state_ == HOOK_ARMED ? &c->hooks : &c->firing;
    if (hook->prev_)
      hook->prev_->next_ = hook->next_;
    else
      *head = hook->next_;
    if (hook->next_) hook->next_->prev_ = hook->prev_;
    ret = 0;
  } else if (hook->state_ == HOOK_FIRING &&
             pthread_equal(c->firer, pthread_self())) {
    c->current = NULL; /* from inside its own callback */
    ret = 1;
  } else {
    while (hook->state_ == HOOK_FIRING) pthread_cond_wait(&c->cv, &c->mu);
    ret = 1;
  }
  pthread_mutex_unlock(&c->mu);
  hook->ctx_ = NULL;
  hook->state_ = ret ? HOOK_DONE : HOOK_IDLE;
  wp_ctx_release(c);
  return ret;
}
