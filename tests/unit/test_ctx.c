/* Unit tests of wp_ctx (include/wpool/ctx.h).
 *
 * What is checked: the background context; cancel and its reach in the tree
 * (descendants, never ancestors or siblings); children of ended parents;
 * deadlines (effective deadline, past deadlines, deadlines that fire by
 * themselves through the library's timer thread, seen by wp_ctx_wait, by a
 * done-callback and by the descriptor); which error wins; done-callbacks
 * (exactly once, removal before, during and from inside the callback);
 * wp_ctx_wait with a deadline; reference counting; concurrency stress; and
 * the timer thread going away when no deadline is pending.
 *
 * Threads are coordinated with barriers, semaphores and the contexts
 * themselves, never with sleeps. A thread that must finish is waited for
 * with a bound (thr_join) so that a missed wakeup fails with a message rather
 * than hanging until the CTest timeout; the bound never makes a test pass.
 * The one wait on the clock is wp_test_thread_count_settles(): it observes
 * an external fact that no API reports (the library's timer thread exits by
 * itself once no deadline is pending, and an exited thread takes a moment
 * to leave /proc); it coordinates nothing. Random
 * choices come from wp_test_seed() (printed; replay with WP_TEST_SEED=<n>).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wp_test.h"
#include "wpool/ctx.h"
#include "wpool/error.h"

enum { WATCHDOG_S = 10, STRESS_WATCHDOG_S = 30 };
#define MS ((int64_t)1000000)
#define HOUR ((int64_t)3600 * 1000 * MS)

/* ---- helpers ------------------------------------------------------------ */

#include "wp_test_util.h"

/* A done-callback that counts, remembers when and on which thread it ran,
 * and posts a semaphore if given one. */
typedef struct counter {
  atomic_int n;
  _Atomic int64_t at;
  pthread_t thread;
  sem_t *sem;
} counter;

static void counter_init(counter *c, sem_t *sem) {
  atomic_init(&c->n, 0);
  atomic_init(&c->at, 0);
  c->sem = sem;
}

static void count_cb(void *arg) {
  counter *c = arg;
  c->thread = pthread_self();
  atomic_store(&c->at, wp_now_ns());
  atomic_fetch_add(&c->n, 1);
  if (c->sem) sem_post(c->sem);
}

/* Waits for ctx to end in another thread, with wp_ctx_wait(ctx, INT64_MAX):
 * the main thread does not look at ctx meanwhile. */
struct wait_arg {
  wp_ctx *ctx;
  int64_t deadline;
  sem_t *ready;
  int rc;
  int64_t at;
};

static void wait_thread(void *p) {
  struct wait_arg *a = p;
  if (a->ready) sem_post(a->ready);
  a->rc = wp_ctx_wait(a->ctx, a->deadline);
  a->at = wp_now_ns();
}

/* wp_ctx_wait(ctx, deadline) on a helper thread, bounded by the watchdog;
 * returns its result and, in *at, when it returned (may be NULL). */
static int wait_until_in_thread(wp_ctx *ctx, int64_t deadline, int64_t *at) {
  struct wait_arg a = {.ctx = ctx, .deadline = deadline, .rc = 1};
  thr t;
  thr_start(&t, wait_thread, &a);
  thr_join(&t, WATCHDOG_S, "wp_ctx_wait");
  if (at) *at = a.at;
  return a.rc;
}

static int wait_in_thread(wp_ctx *ctx) {
  return wait_until_in_thread(ctx, INT64_MAX, NULL);
}

/* Short deadlines and slow machines. On a loaded host or under a sanitizer a
 * deadline a few milliseconds away can pass before a test has finished
 * setting up (its hooks, say), and the library is then right to refuse them
 * (wp_ctx_on_done returns WP_ETIMEDOUT). Tests that need their set-up in
 * place before the deadline loop: set up with timeout t; if the deadline
 * came first, undo and start again with 2t. The loop only ever lengthens a
 * timeout; it never makes a wrong result pass. */

/* ---- background, cancel ---------------------------------------------------
 */

TEST(ctx_background) {
  wp_ctx *bg = wp_ctx_background();
  ASSERT(bg != NULL);
  ASSERT(wp_ctx_background() == bg);
  ASSERT_EQ(wp_ctx_err(bg), 0);
  ASSERT_EQ(wp_ctx_deadline(bg), INT64_MAX);
  for (int i = 0; i < 1000; i++) ASSERT(wp_ctx_ref(bg) == bg);
  for (int i = 0; i < 2000; i++) wp_ctx_release(bg); /* no-ops */
  wp_ctx_cancel(bg);                                 /* no-op */
  ASSERT_EQ(wp_ctx_err(bg), 0);
  wp_ctx_release(NULL);

  int64_t until = wp_now_ns() + 2 * MS, at = 0;
  ASSERT_EQ(wait_until_in_thread(bg, until, &at), WP_EAGAIN);
  ASSERT_GE(at, until);

  counter cnt;
  wp_ctx_hook h;
  counter_init(&cnt, NULL);
  ASSERT_EQ(wp_ctx_on_done(bg, &h, count_cb, &cnt), 0);
  ASSERT_EQ(wp_ctx_hook_remove(&h), 0);
  ASSERT_EQ(atomic_load(&cnt.n), 0);

  /* Background never ends, so it has no descriptor (ctx.h): an error, and
   * the out-parameter untouched. */
  int fd = -1;
  ASSERT_EQ(wp_ctx_fd(bg, &fd), WP_EINVAL);
  ASSERT_EQ(fd, -1);

  /* A child of background works as usual, and ending it leaves bg alone. */
  wp_ctx *c = NULL;
  ASSERT_OK(wp_ctx_with_cancel(bg, &c));
  ASSERT_EQ(wp_ctx_err(c), 0);
  ASSERT_EQ(wp_ctx_deadline(c), INT64_MAX);
  wp_ctx_cancel(c);
  ASSERT_EQ(wp_ctx_err(c), WP_ECANCELED);
  ASSERT_EQ(wp_ctx_err(bg), 0);
  wp_ctx_release(c);
  ASSERT_EQ(wp_ctx_err(bg), 0);
}

TEST(ctx_with_cancel_basic) {
  wp_ctx *parents[] = {NULL, wp_ctx_background()};
  for (size_t i = 0; i < 2; i++) {
    wp_ctx *c = (wp_ctx *)&parents; /* not NULL: must be overwritten */
    ASSERT_OK(wp_ctx_with_cancel(parents[i], &c));
    ASSERT(c != NULL && c != wp_ctx_background());
    ASSERT_EQ(wp_ctx_err(c), 0);
    ASSERT_EQ(wp_ctx_deadline(c), INT64_MAX);
    int64_t until = wp_now_ns() + 1 * MS, at = 0;
    ASSERT_EQ(wait_until_in_thread(c, until, &at), WP_EAGAIN);
    ASSERT_GE(at, until);
    wp_ctx_cancel(c);
    ASSERT_EQ(wp_ctx_err(c), WP_ECANCELED);
    wp_ctx_cancel(c); /* second cancel changes nothing */
    ASSERT_EQ(wp_ctx_err(c), WP_ECANCELED);
    ASSERT_EQ(wp_ctx_wait(c, INT64_MAX), WP_ECANCELED);
    wp_ctx_release(c);
  }
  ASSERT_EQ(wp_ctx_with_cancel(NULL, NULL), WP_EINVAL);
}

TEST(ctx_refcount) {
  wp_ctx *c = NULL;
  int fd = -1;
  ASSERT_OK(wp_ctx_with_cancel(NULL, &c));
  ASSERT_OK(wp_ctx_fd(c, &fd));
  ASSERT(wp_ctx_ref(c) == c);
  ASSERT(wp_ctx_ref(c) == c);
  wp_ctx_release(c); /* two references left */
  wp_ctx_release(c);
  ASSERT_EQ(wp_ctx_err(c), 0);
  wp_ctx_cancel(c);
  ASSERT_EQ(wp_ctx_err(c), WP_ECANCELED);
  ASSERT(fd_is_open(fd)); /* valid until the last release */
  ASSERT(fd_readable(fd));
  wp_ctx_release(c); /* last: frees (ASan: no leak, no use after free) */
  ASSERT(!fd_is_open(fd));
}

/* The tree below; for each node as the target, cancel it and check that
 * exactly the target and its descendants ended, each done-callback ran once,
 * then cancel the root and check everything, then release in random order.
 *
 *        0
 *      /   \
 *     1     2
 *    / \     \
 *   3   4     6
 *   |
 *   5
 *   |
 *   7
 * Nodes 2 and 5 carry a deadline an hour away: a pending deadline changes
 * nothing about cancel. */
enum { TREE_N = 8 };
static const int tree_parent[TREE_N] = {-1, 0, 0, 1, 1, 3, 2, 5};
static const int tree_deadline[TREE_N] = {0, 0, 1, 0, 0, 1, 0, 0};

static int is_ancestor_or_self(int a, int n) {
  for (; n >= 0; n = tree_parent[n])
    if (n == a) return 1;
  return 0;
}

TEST(ctx_cancel_tree_table) {
  uint64_t rng = wp_test_seed();
  for (int target = 0; target < TREE_N; target++) {
    wp_ctx *node[TREE_N];
    wp_ctx_hook hook[TREE_N];
    counter cnt[TREE_N];
    int fd[TREE_N];
    for (int i = 0; i < TREE_N; i++) {
      /* tree_parent[i] < i: the parent was made in an earlier round. */
      /* cppcheck-suppress uninitvar */
      wp_ctx *par = tree_parent[i] < 0 ? NULL : node[tree_parent[i]];
      if (tree_deadline[i])
        ASSERT_OK(wp_ctx_with_timeout(par, HOUR, &node[i]));
      else
        ASSERT_OK(wp_ctx_with_cancel(par, &node[i]));
      counter_init(&cnt[i], NULL);
      ASSERT_EQ(wp_ctx_on_done(node[i], &hook[i], count_cb, &cnt[i]), 0);
      ASSERT_OK(wp_ctx_fd(node[i], &fd[i]));
    }
    wp_ctx_cancel(node[target]);
    for (int pass = 0; pass < 2; pass++) { /* a second cancel changes nothing */
      for (int i = 0; i < TREE_N; i++) {
        int want = is_ancestor_or_self(target, i) ? WP_ECANCELED : 0;
        if (wp_ctx_err(node[i]) != want)
          WP_FAIL_("cancel node %d: node %d err %d, want %d", target, i,
                   wp_ctx_err(node[i]), want);
        /* Callbacks ran on this thread before wp_ctx_cancel returned. */
        ASSERT_EQ(atomic_load(&cnt[i].n), want ? 1 : 0);
        ASSERT_EQ(fd_readable(fd[i]), want ? 1 : 0);
      }
      wp_ctx_cancel(node[target]);
    }
    wp_ctx_cancel(node[0]);
    for (int i = 0; i < TREE_N; i++) {
      ASSERT_EQ(wp_ctx_err(node[i]), WP_ECANCELED);
      ASSERT_EQ(atomic_load(&cnt[i].n), 1);
      ASSERT(fd_readable(fd[i]));
      ASSERT_EQ(wp_ctx_hook_remove(&hook[i]), 1);
    }
    int order[TREE_N]; /* release order: random, parents often first */
    for (int i = 0; i < TREE_N; i++) order[i] = i;
    for (int i = TREE_N - 1; i > 0; i--) {
      int j = (int)rng_below(&rng, (uint32_t)i + 1), tmp = order[i];
      order[i] = order[j];
      order[j] = tmp;
    }
    for (int i = 0; i < TREE_N; i++) wp_ctx_release(node[order[i]]);
  }
}

/* A child made from a parent that has already ended starts ended with the
 * parent's error, whatever its own constructor asks for (Go gives the same:
 * propagation happens before the child's own deadline is looked at). */
enum parent_end { PE_CANCELED, PE_PAST_DEADLINE, PE_FIRED };
enum child_kind {
  CK_CANCEL,
  CK_DEADLINE_FUTURE,
  CK_DEADLINE_PAST,
  CK_TIMEOUT_HOUR,
  CK_TIMEOUT_ZERO
};

static wp_ctx *make_child(wp_ctx *parent, enum child_kind k) {
  wp_ctx *c = NULL;
  switch (k) {
    case CK_CANCEL:
      ASSERT_OK(wp_ctx_with_cancel(parent, &c));
      break;
    case CK_DEADLINE_FUTURE:
      ASSERT_OK(wp_ctx_with_deadline(parent, wp_now_ns() + HOUR, &c));
      break;
    case CK_DEADLINE_PAST:
      ASSERT_OK(wp_ctx_with_deadline(parent, 1, &c));
      break;
    case CK_TIMEOUT_HOUR:
      ASSERT_OK(wp_ctx_with_timeout(parent, HOUR, &c));
      break;
    case CK_TIMEOUT_ZERO:
      ASSERT_OK(wp_ctx_with_timeout(parent, 0, &c));
      break;
  }
  ASSERT(c != NULL);
  return c;
}

TEST(ctx_child_of_ended_parent_table) {
  static const struct {
    enum parent_end pe;
    int err;
  } parents[] = {{PE_CANCELED, WP_ECANCELED},
                 {PE_PAST_DEADLINE, WP_ETIMEDOUT},
                 {PE_FIRED, WP_ETIMEDOUT}};
  static const enum child_kind kids[] = {CK_CANCEL, CK_DEADLINE_FUTURE,
                                         CK_DEADLINE_PAST, CK_TIMEOUT_HOUR,
                                         CK_TIMEOUT_ZERO};
  for (size_t pi = 0; pi < 3; pi++) {
    for (size_t ki = 0; ki < sizeof kids / sizeof kids[0]; ki++) {
      wp_ctx *p = NULL;
      switch (parents[pi].pe) {
        case PE_CANCELED:
          ASSERT_OK(wp_ctx_with_cancel(NULL, &p));
          wp_ctx_cancel(p);
          break;
        case PE_PAST_DEADLINE:
          ASSERT_OK(wp_ctx_with_deadline(NULL, wp_now_ns() - MS, &p));
          break;
        case PE_FIRED: /* ended by the timer thread */
          ASSERT_OK(wp_ctx_with_timeout(NULL, 1 * MS, &p));
          ASSERT_EQ(wait_in_thread(p), WP_ETIMEDOUT);
          break;
      }
      int want = parents[pi].err;
      ASSERT_EQ(wp_ctx_err(p), want);
      wp_ctx *c = make_child(p, kids[ki]);
      if (wp_ctx_err(c) != want)
        WP_FAIL_("parent kind %zu, child kind %zu: err %d, want %d", pi, ki,
                 wp_ctx_err(c), want);
      int fd;
      ASSERT_OK(wp_ctx_fd(c, &fd));
      ASSERT(fd_readable(fd));
      counter cnt;
      wp_ctx_hook h;
      counter_init(&cnt, NULL);
      ASSERT_EQ(wp_ctx_on_done(c, &h, count_cb, &cnt), want);
      ASSERT_EQ(wp_ctx_hook_remove(&h), 1);
      ASSERT_EQ(atomic_load(&cnt.n), 0);
      ASSERT_EQ(wp_ctx_wait(c, INT64_MAX), want);
      wp_ctx *gc = make_child(c, CK_CANCEL); /* and so on down */
      ASSERT_EQ(wp_ctx_err(gc), want);
      wp_ctx_cancel(c); /* too late: nothing changes */
      ASSERT_EQ(wp_ctx_err(c), want);
      ASSERT_EQ(wp_ctx_err(gc), want);
      wp_ctx_release(p);
      wp_ctx_release(c);
      wp_ctx_release(gc);
    }
  }
}

/* ---- deadlines ------------------------------------------------------------
 */

/* A deadline in the past (or now: Go's WithTimeout(0)) gives a context that
 * has already ended with WP_ETIMEDOUT. */
TEST(ctx_deadline_in_past_table) {
  static const struct {
    int timeout; /* 1: value is a timeout; 0: an absolute deadline */
    int64_t value;
    int relative_to_now; /* deadline only: value is added to wp_now_ns() */
  } rows[] =
      {
          {0, 0, 0},         {0, 1, 0}, {0, INT64_MIN, 0}, {0, -MS, 1},
          {0, -1, 1},        {1, 0, 0}, {1, -1, 0},        {1, -HOUR, 0},
          {1, INT64_MIN, 0}, /* saturates: no overflow (UBSan) */
      };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    wp_ctx *c = NULL;
    if (rows[i].timeout) {
      ASSERT_OK(wp_ctx_with_timeout(NULL, rows[i].value, &c));
    } else {
      int64_t d = rows[i].value + (rows[i].relative_to_now ? wp_now_ns() : 0);
      ASSERT_OK(wp_ctx_with_deadline(NULL, d, &c));
    }
    if (wp_ctx_err(c) != WP_ETIMEDOUT)
      WP_FAIL_("row %zu: err %d right after creation, want WP_ETIMEDOUT", i,
               wp_ctx_err(c));
    ASSERT_LE(wp_ctx_deadline(c), wp_now_ns());
    int fd;
    ASSERT_OK(wp_ctx_fd(c, &fd));
    ASSERT(fd_readable(fd));
    ASSERT_EQ(wp_ctx_wait(c, INT64_MAX), WP_ETIMEDOUT);
    counter cnt;
    wp_ctx_hook h;
    counter_init(&cnt, NULL);
    ASSERT_EQ(wp_ctx_on_done(c, &h, count_cb, &cnt), WP_ETIMEDOUT);
    ASSERT_EQ(wp_ctx_hook_remove(&h), 1);
    ASSERT_EQ(atomic_load(&cnt.n), 0);
    wp_ctx_cancel(c);
    ASSERT_EQ(wp_ctx_err(c), WP_ETIMEDOUT); /* first end wins */
    wp_ctx_release(c);
  }
}

/* The effective deadline is the earlier of the context's own and its
 * parent's (which may itself be inherited). Deadlines are far in the future
 * so nothing fires during the test. */
enum pk { PK_NULL, PK_CANCEL, PK_DEADLINE, PK_INHERITED };
#define NONE INT64_MAX
TEST(ctx_deadline_is_min_table) {
  static const struct {
    const char *what;
    enum pk parent;
    int64_t parent_off; /* hours after base, for PK_DEADLINE / PK_INHERITED */
    int child_has_deadline;
    int64_t child_off;
    int64_t want_off; /* NONE: INT64_MAX */
  } rows[] = {
      {"no deadline anywhere", PK_NULL, 0, 0, 0, NONE},
      {"cancel-only parent", PK_CANCEL, 0, 0, 0, NONE},
      {"own deadline, background parent", PK_NULL, 0, 1, 2, 2},
      {"own deadline, cancel-only parent", PK_CANCEL, 0, 1, 2, 2},
      {"inherits parent's", PK_DEADLINE, 3, 0, 0, 3},
      {"parent's is earlier", PK_DEADLINE, 1, 1, 5, 1},
      {"own is earlier", PK_DEADLINE, 5, 1, 1, 1},
      {"equal", PK_DEADLINE, 4, 1, 4, 4},
      {"grandparent's, inherited twice", PK_INHERITED, 2, 0, 0, 2},
      {"grandparent's is earlier", PK_INHERITED, 2, 1, 6, 2},
      {"own is earlier than grandparent's", PK_INHERITED, 6, 1, 2, 2},
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    int64_t base = wp_now_ns() + HOUR;
    wp_ctx *gp = NULL, *p = NULL, *c = NULL;
    switch (rows[i].parent) {
      case PK_NULL:
        break;
      case PK_CANCEL:
        ASSERT_OK(wp_ctx_with_cancel(NULL, &p));
        break;
      case PK_DEADLINE:
        ASSERT_OK(
            wp_ctx_with_deadline(NULL, base + rows[i].parent_off * HOUR, &p));
        break;
      case PK_INHERITED:
        ASSERT_OK(
            wp_ctx_with_deadline(NULL, base + rows[i].parent_off * HOUR, &gp));
        ASSERT_OK(wp_ctx_with_cancel(gp, &p));
        break;
    }
    if (rows[i].child_has_deadline)
      ASSERT_OK(wp_ctx_with_deadline(p, base + rows[i].child_off * HOUR, &c));
    else
      ASSERT_OK(wp_ctx_with_cancel(p, &c));
    int64_t want =
        rows[i].want_off == NONE ? INT64_MAX : base + rows[i].want_off * HOUR;
    if (wp_ctx_deadline(c) != want)
      WP_FAIL_("row %zu \"%s\": deadline %lld, want %lld", i, rows[i].what,
               (long long)wp_ctx_deadline(c), (long long)want);
    ASSERT_EQ(wp_ctx_err(c), 0);
    wp_ctx_cancel(c); /* ending the child leaves its ancestors alone */
    if (p) ASSERT_EQ(wp_ctx_err(p), 0);
    if (gp) ASSERT_EQ(wp_ctx_err(gp), 0);
    wp_ctx_release(c);
    wp_ctx_release(p);
    wp_ctx_release(gp);
  }

  /* Timeouts: now + timeout, saturating at INT64_MAX (= no deadline), and
   * still bounded by the parent's. */
  wp_ctx *p = NULL, *c = NULL;
  int64_t before = wp_now_ns();
  ASSERT_OK(wp_ctx_with_timeout(NULL, HOUR, &c));
  int64_t after = wp_now_ns();
  ASSERT_GE(wp_ctx_deadline(c), before + HOUR);
  ASSERT_LE(wp_ctx_deadline(c), after + HOUR);
  wp_ctx_release(c);
  static const int64_t huge[] = {INT64_MAX, INT64_MAX - 1, INT64_MAX - 1000};
  for (size_t i = 0; i < 3;
       i++) { /* now + huge saturates (UBSan: no overflow) */
    ASSERT_OK(wp_ctx_with_timeout(NULL, huge[i], &c));
    if (wp_ctx_deadline(c) != INT64_MAX || wp_ctx_err(c) != 0)
      WP_FAIL_(
          "timeout INT64_MAX - %lld: deadline %lld, err %d (want no "
          "deadline, running)",
          (long long)(INT64_MAX - huge[i]), (long long)wp_ctx_deadline(c),
          wp_ctx_err(c));
    wp_ctx_release(c);
  }
  ASSERT_OK(wp_ctx_with_deadline(NULL, INT64_MAX, &c));
  ASSERT_EQ(wp_ctx_deadline(c), INT64_MAX);
  ASSERT_EQ(wp_ctx_err(c), 0);
  wp_ctx_release(c);
  int64_t pd = wp_now_ns() + 2 * HOUR;
  ASSERT_OK(wp_ctx_with_deadline(NULL, pd, &p));
  ASSERT_OK(wp_ctx_with_timeout(p, INT64_MAX, &c));
  ASSERT_EQ(wp_ctx_deadline(c), pd);
  wp_ctx_release(c);
  ASSERT_OK(wp_ctx_with_timeout(p, 5 * HOUR, &c));
  ASSERT_EQ(wp_ctx_deadline(c), pd);
  wp_ctx_release(c);
  wp_ctx_release(p);
}

/* A timeout fires by itself: threads blocked in wp_ctx_wait(ctx, INT64_MAX)
 * return WP_ETIMEDOUT, not before the deadline, with nobody polling. */
TEST(ctx_timeout_fires_wait_table) {
  static const struct {
    int64_t timeout;
    int waiters;
  } rows[] = {{1 * MS, 1}, {20 * MS, 1}, {1 * MS, 4}, {20 * MS, 4}};
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    wp_ctx *c = NULL;
    thr t[4];
    struct wait_arg a[4];
    ASSERT_OK(wp_ctx_with_timeout(NULL, rows[i].timeout, &c));
    int64_t d = wp_ctx_deadline(c);
    for (int k = 0; k < rows[i].waiters; k++) {
      a[k] = (struct wait_arg){.ctx = c, .deadline = INT64_MAX, .rc = 1};
      thr_start(&t[k], wait_thread, &a[k]);
    }
    for (int k = 0; k < rows[i].waiters; k++) {
      thr_join(&t[k], WATCHDOG_S, "wp_ctx_wait on a timeout context");
      ASSERT_EQ(a[k].rc, WP_ETIMEDOUT);
      ASSERT_GE(a[k].at, d);
    }
    ASSERT_EQ(wp_ctx_err(c), WP_ETIMEDOUT);
    wp_ctx_release(c);
  }
}

/* A timeout fires by itself: the done-callback runs once, on the library's
 * timer thread (not ours), not before the deadline, and posts a semaphore. */
TEST(ctx_timeout_fires_callback) {
  static const int64_t timeouts[] = {1, 1 * MS,
                                     20 * MS}; /* 1 ns: may be refused */
  for (size_t i = 0; i < sizeof timeouts / sizeof timeouts[0]; i++) {
    sem_t sem;
    counter cnt;
    wp_ctx_hook h;
    wp_ctx *c = NULL;
    ASSERT_EQ(sem_init(&sem, 0, 0), 0);
    counter_init(&cnt, &sem);
    ASSERT_OK(wp_ctx_with_timeout(NULL, timeouts[i], &c));
    int64_t d = wp_ctx_deadline(c);
    int rc = wp_ctx_on_done(c, &h, count_cb, &cnt);
    if (rc == WP_ETIMEDOUT) { /* 1 ns already passed: refused, not called */
      ASSERT_EQ(wp_ctx_hook_remove(&h), 1);
      ASSERT_EQ(atomic_load(&cnt.n), 0);
    } else {
      ASSERT_EQ(rc, 0);
      sem_wait_bounded(&sem, WATCHDOG_S, "done-callback of a timeout");
      ASSERT_EQ(atomic_load(&cnt.n), 1);
      ASSERT_GE(atomic_load(&cnt.at), d);
      ASSERT(!pthread_equal(cnt.thread, pthread_self()));
      ASSERT_EQ(wp_ctx_err(c), WP_ETIMEDOUT);
      ASSERT_EQ(wp_ctx_hook_remove(&h), 1);
      ASSERT_EQ(atomic_load(&cnt.n), 1);
    }
    wp_ctx_release(c);
    sem_destroy(&sem);
  }
}

/* A timeout fires by itself: the descriptor becomes readable, seen by a
 * thread blocked in poll() with an infinite timeout, and stays readable. */
struct fd_poll {
  int fd;
  int64_t at;
};

static void poll_forever(void *p) {
  struct fd_poll *fp = p;
  struct pollfd pfd = {.fd = fp->fd, .events = POLLIN};
  int r;
  do r = poll(&pfd, 1, -1);
  while (r < 0 && errno == EINTR);
  ASSERT_EQ(r, 1);
  ASSERT(pfd.revents & POLLIN);
  fp->at = wp_now_ns();
}

TEST(ctx_timeout_fires_fd) {
  static const int64_t timeouts[] = {1 * MS, 50 * MS};
  for (size_t i = 0; i < sizeof timeouts / sizeof timeouts[0]; i++) {
    wp_ctx *c = NULL;
    thr t;
    struct fd_poll fp = {.fd = -1};
    ASSERT_OK(wp_ctx_with_timeout(NULL, timeouts[i], &c));
    int64_t d = wp_ctx_deadline(c);
    ASSERT_OK(wp_ctx_fd(c, &fp.fd));
    /* Readable only once the deadline has passed. */
    if (fd_readable(fp.fd)) ASSERT_GE(wp_now_ns(), d);
    thr_start(&t, poll_forever, &fp);
    thr_join(&t, WATCHDOG_S, "poll(-1) on the descriptor of a timeout context");
    ASSERT_GE(fp.at, d);
    ASSERT_EQ(wp_ctx_err(c), WP_ETIMEDOUT);
    ASSERT(fd_readable(fp.fd));
    ASSERT(fd_readable(fp.fd));
    wp_ctx_release(c);
  }
}

/* A parent's deadline ends its children and grandchildren with WP_ETIMEDOUT,
 * whatever deadline of their own they have (later, or none); also when the
 * parent has been released before it fires. */
TEST(ctx_parent_deadline_ends_child_table) {
  static const enum child_kind kids[] = {CK_CANCEL, CK_DEADLINE_FUTURE,
                                         CK_TIMEOUT_HOUR};
  for (int release_parent = 0; release_parent <= 1; release_parent++) {
    for (size_t ki = 0; ki < sizeof kids / sizeof kids[0]; ki++) {
      sem_t sem;
      counter cnt;
      wp_ctx_hook h;
      wp_ctx *p = NULL;
      ASSERT_EQ(sem_init(&sem, 0, 0), 0);
      counter_init(&cnt, &sem);
      wp_ctx *c, *gc;
      int64_t d;
      for (int64_t t = 5 * MS;; t *= 2) {
        ASSERT_OK(wp_ctx_with_timeout(NULL, t, &p));
        d = wp_ctx_deadline(p);
        c = make_child(p, kids[ki]);
        gc = make_child(c, CK_CANCEL);
        ASSERT_EQ(wp_ctx_deadline(c), d);
        ASSERT_EQ(wp_ctx_deadline(gc), d);
        int rc = wp_ctx_on_done(gc, &h, count_cb, &cnt);
        if (rc == 0) break;
        ASSERT_EQ(rc, WP_ETIMEDOUT); /* the deadline came first: again */
        wp_ctx_release(gc);
        wp_ctx_release(c);
        wp_ctx_release(p);
      }
      if (release_parent) wp_ctx_release(p);
      ASSERT_EQ(wait_in_thread(c), WP_ETIMEDOUT);
      sem_wait_bounded(&sem, WATCHDOG_S, "grandchild's done-callback");
      ASSERT_EQ(wp_ctx_err(gc), WP_ETIMEDOUT);
      ASSERT_GE(atomic_load(&cnt.at), d);
      if (!release_parent) {
        ASSERT_EQ(wp_ctx_wait(p, INT64_MAX), WP_ETIMEDOUT);
        wp_ctx_release(p);
      }
      ASSERT_EQ(wp_ctx_hook_remove(&h), 1);
      ASSERT_EQ(atomic_load(&cnt.n), 1);
      wp_ctx_release(c);
      wp_ctx_release(gc);
      sem_destroy(&sem);
    }
  }
}

/* Whichever end comes first stays: cancel before the deadline gives
 * WP_ECANCELED and the deadline passing later changes nothing (error,
 * callback count); a deadline that fired is not turned into WP_ECANCELED by
 * a later cancel. */
TEST(ctx_first_end_wins_table) {
  for (int cancel_first = 0; cancel_first <= 1; cancel_first++) {
    counter cnt, ccnt;
    wp_ctx_hook h, ch;
    wp_ctx *c = NULL, *child = NULL, *probe = NULL;
    sem_t sem;
    int64_t d;
    ASSERT_EQ(sem_init(&sem, 0, 0), 0);
    for (int64_t t = 10 * MS;; t *= 2) {
      counter_init(&cnt, &sem);
      counter_init(&ccnt, &sem);
      ASSERT_OK(wp_ctx_with_timeout(NULL, t, &c));
      ASSERT_OK(wp_ctx_with_cancel(c, &child));
      d = wp_ctx_deadline(c);
      int rc1 = wp_ctx_on_done(c, &h, count_cb, &cnt);
      int rc2 = wp_ctx_on_done(child, &ch, count_cb, &ccnt);
      if (cancel_first) wp_ctx_cancel(c);
      if (rc1 == 0 && rc2 == 0 &&
          (!cancel_first || wp_ctx_err(c) == WP_ECANCELED))
        break;
      /* The deadline came first: undo and again. */
      ASSERT_EQ(wp_ctx_err(c), WP_ETIMEDOUT);
      wp_ctx_hook_remove(&h);
      wp_ctx_hook_remove(&ch);
      while (sem_trywait(&sem) == 0) {
      }
      wp_ctx_release(child);
      wp_ctx_release(c);
    }
    int want;
    if (cancel_first) {
      want = WP_ECANCELED;
      /* Let the deadline pass: a second context whose deadline comes 10 ms
       * after c's is waited for, so the timer has gone past c's deadline. */
      ASSERT_OK(wp_ctx_with_deadline(NULL, d + 10 * MS, &probe));
      ASSERT_EQ(wait_in_thread(probe), WP_ETIMEDOUT);
      wp_ctx_release(probe);
    } else {
      ASSERT_EQ(wait_in_thread(c), WP_ETIMEDOUT);
      want = WP_ETIMEDOUT;
      wp_ctx_cancel(c);
    }
    /* wp_ctx_wait() returns once the error is set, which may be before the
     * timer thread has run the callbacks (a remove then would rightly return
     * 0): wait for both callbacks. */
    sem_wait_bounded(&sem, WATCHDOG_S, "callbacks");
    sem_wait_bounded(&sem, WATCHDOG_S, "callbacks");
    ASSERT_EQ(sem_trywait(&sem), -1);
    ASSERT_EQ(wp_ctx_hook_remove(&h), 1);
    ASSERT_EQ(wp_ctx_hook_remove(&ch), 1);
    wp_ctx_cancel(child);
    ASSERT_EQ(wp_ctx_err(c), want);
    ASSERT_EQ(wp_ctx_err(child), want);
    ASSERT_EQ(wp_ctx_wait(c, INT64_MAX), want);
    ASSERT_EQ(atomic_load(&cnt.n), 1);
    ASSERT_EQ(atomic_load(&ccnt.n), 1);
    wp_ctx_release(child);
    wp_ctx_release(c);
    sem_destroy(&sem);
  }
}

/* wp_ctx_wait with a deadline of its own. */
enum wk {
  WK_LIVE,
  WK_BG,
  WK_CANCELED,
  WK_EXPIRED,
  WK_TIMEOUT_HOUR,
  WK_TIMEOUT_SHORT
};
TEST(ctx_wait_with_deadline_table) {
  static const struct {
    const char *what;
    enum wk ctx;
    int64_t wait_off; /* wait deadline: now + wait_off (INT64_MIN, INT64_MAX as
                         is) */
    int rc;
  } rows[] = {
      {"live, deadline soon", WK_LIVE, 2 * MS, WP_EAGAIN},
      {"live, deadline passed", WK_LIVE, -MS, WP_EAGAIN},
      {"live, deadline INT64_MIN", WK_LIVE, INT64_MIN, WP_EAGAIN},
      {"background, deadline soon", WK_BG, 2 * MS, WP_EAGAIN},
      {"ctx with later deadline", WK_TIMEOUT_HOUR, 2 * MS, WP_EAGAIN},
      {"canceled, deadline far", WK_CANCELED, HOUR, WP_ECANCELED},
      {"canceled, deadline passed", WK_CANCELED, -MS, WP_ECANCELED},
      {"expired, no deadline", WK_EXPIRED, INT64_MAX, WP_ETIMEDOUT},
      {"expired, deadline passed", WK_EXPIRED, INT64_MIN, WP_ETIMEDOUT},
      {"ctx fires before the wait's deadline", WK_TIMEOUT_SHORT, HOUR,
       WP_ETIMEDOUT},
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    wp_ctx *c = NULL;
    switch (rows[i].ctx) {
      case WK_LIVE:
        ASSERT_OK(wp_ctx_with_cancel(NULL, &c));
        break;
      case WK_BG:
        c = wp_ctx_background();
        break;
      case WK_CANCELED:
        ASSERT_OK(wp_ctx_with_cancel(NULL, &c));
        wp_ctx_cancel(c);
        break;
      case WK_EXPIRED:
        ASSERT_OK(wp_ctx_with_deadline(NULL, 0, &c));
        break;
      case WK_TIMEOUT_HOUR:
        ASSERT_OK(wp_ctx_with_timeout(NULL, HOUR, &c));
        break;
      case WK_TIMEOUT_SHORT:
        ASSERT_OK(wp_ctx_with_timeout(NULL, 2 * MS, &c));
        break;
    }
    int64_t off = rows[i].wait_off;
    int64_t until =
        (off == INT64_MIN || off == INT64_MAX) ? off : wp_now_ns() + off;
    struct wait_arg a = {.ctx = c, .deadline = until, .rc = 1};
    thr t;
    thr_start(&t, wait_thread, &a);
    thr_join(&t, WATCHDOG_S, "wp_ctx_wait with a deadline");
    if (a.rc != rows[i].rc)
      WP_FAIL_("row %zu \"%s\": rc %d, want %d", i, rows[i].what, a.rc,
               rows[i].rc);
    if (a.rc == WP_EAGAIN) ASSERT_GE(a.at, until); /* not early */
    if (c != wp_ctx_background()) wp_ctx_release(c);
  }
}

/* Blocked waiters are woken by a cancel from another thread, of the context
 * itself or of an ancestor. */
TEST(ctx_wait_woken_by_cancel) {
  int rounds = scaled(20);
  for (int round = 0; round < rounds; round++) {
    wp_ctx *p = NULL, *c = NULL;
    sem_t ready;
    thr t[3];
    struct wait_arg a[3];
    ASSERT_OK(wp_ctx_with_cancel(NULL, &p));
    ASSERT_OK(wp_ctx_with_timeout(p, HOUR, &c));
    ASSERT_EQ(sem_init(&ready, 0, 0), 0);
    int64_t until[3] = {INT64_MAX, wp_now_ns() + HOUR, INT64_MAX};
    for (int k = 0; k < 3; k++) {
      a[k] = (struct wait_arg){.ctx = k == 2 ? p : c,
                               .deadline = until[k],
                               .ready = &ready,
                               .rc = 1};
      thr_start(&t[k], wait_thread, &a[k]);
    }
    for (int k = 0; k < 3; k++) sem_wait_bounded(&ready, WATCHDOG_S, "start");
    wp_ctx_cancel(round % 2 ? p : c);
    for (int k = 0; k < 2; k++) {
      thr_join(&t[k], WATCHDOG_S, "waiter woken by cancel");
      ASSERT_EQ(a[k].rc, WP_ECANCELED);
    }
    if (round % 2 == 0) { /* canceling the child leaves the parent running */
      ASSERT_EQ(wp_ctx_err(p), 0);
      wp_ctx_cancel(p);
    }
    thr_join(&t[2], WATCHDOG_S, "parent waiter");
    ASSERT_EQ(a[2].rc, WP_ECANCELED);
    sem_destroy(&ready);
    wp_ctx_release(c);
    wp_ctx_release(p);
  }
}

/* The descriptor: not readable while running, readable (and staying so)
 * once ended, however it ends and whether it was asked for before or after;
 * one descriptor per context. */
TEST(ctx_fd_table) {
  enum how { BY_CANCEL, BY_PARENT_CANCEL, BY_PAST_DEADLINE, BY_TIMEOUT };
  static const struct {
    enum how how;
    int fd_before; /* ask for the descriptor before the end */
  } rows[] = {{BY_CANCEL, 1},        {BY_CANCEL, 0},  {BY_PARENT_CANCEL, 1},
              {BY_PARENT_CANCEL, 0}, {BY_TIMEOUT, 1}, {BY_TIMEOUT, 0},
              {BY_PAST_DEADLINE, 0}};
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    wp_ctx *p = NULL, *c = NULL;
    int fd = -1, fd2 = -1;
    ASSERT_OK(wp_ctx_with_cancel(NULL, &p));
    switch (rows[i].how) {
      case BY_CANCEL:
      case BY_PARENT_CANCEL:
        ASSERT_OK(wp_ctx_with_cancel(p, &c));
        break;
      case BY_PAST_DEADLINE:
        ASSERT_OK(wp_ctx_with_deadline(p, 0, &c));
        break;
      case BY_TIMEOUT:
        ASSERT_OK(wp_ctx_with_timeout(p, 2 * MS, &c));
        break;
    }
    if (rows[i].fd_before) {
      ASSERT_OK(wp_ctx_fd(c, &fd));
      if (rows[i].how != BY_TIMEOUT) ASSERT(!fd_readable(fd));
    }
    switch (rows[i].how) {
      case BY_CANCEL:
        wp_ctx_cancel(c);
        break;
      case BY_PARENT_CANCEL:
        wp_ctx_cancel(p);
        break;
      case BY_PAST_DEADLINE:
        break;
      case BY_TIMEOUT:
        ASSERT_EQ(wait_in_thread(c), WP_ETIMEDOUT);
        break;
    }
    if (!rows[i].fd_before) ASSERT_OK(wp_ctx_fd(c, &fd));
    ASSERT(fd >= 0);
    if (rows[i].how == BY_TIMEOUT) {
      /* The timer thread ends c, then makes fd readable: wait for that. */
      struct pollfd pfd = {.fd = fd, .events = POLLIN};
      ASSERT_EQ(poll(&pfd, 1, WATCHDOG_S * 1000), 1);
    }
    /* After wp_ctx_cancel() returns (or at creation), readable at once. */
    if (!fd_readable(fd)) WP_FAIL_("row %zu: not readable after the end", i);
    ASSERT(fd_readable(fd));
    ASSERT_OK(wp_ctx_fd(c, &fd2));
    ASSERT_EQ(fd2, fd);
    wp_ctx_release(p);
    wp_ctx_release(c);
    /* With no deadline involved, nothing else holds c: fd is closed. */
    if (rows[i].how == BY_CANCEL || rows[i].how == BY_PARENT_CANCEL)
      ASSERT(!fd_is_open(fd));
  }
}

/* ---- done hooks -------------------------------------------------------------
 */

/* Many hooks on one context each run exactly once, however the context
 * ends, and further cancels (of it or its parent) never run them again. */
TEST(ctx_hooks_run_exactly_once_table) {
  enum how {
    BY_CANCEL,
    BY_CANCEL_TWICE,
    BY_PARENT,
    BY_TIMEOUT,
    BY_PARENT_TIMEOUT
  };
  static const enum how hows[] = {BY_CANCEL, BY_CANCEL_TWICE, BY_PARENT,
                                  BY_TIMEOUT, BY_PARENT_TIMEOUT};
  enum { M = 50 };
  for (size_t i = 0; i < sizeof hows / sizeof hows[0]; i++) {
    wp_ctx *p = NULL, *c = NULL;
    wp_ctx_hook h[M];
    counter cnt[M];
    sem_t sem;
    ASSERT_EQ(sem_init(&sem, 0, 0), 0);
    for (int64_t t = 2 * MS;; t *= 2) {
      if (hows[i] == BY_PARENT_TIMEOUT)
        ASSERT_OK(wp_ctx_with_timeout(NULL, t, &p));
      else
        ASSERT_OK(wp_ctx_with_cancel(NULL, &p));
      if (hows[i] == BY_TIMEOUT)
        ASSERT_OK(wp_ctx_with_timeout(p, t, &c));
      else
        ASSERT_OK(wp_ctx_with_cancel(p, &c));
      int k, rc = 0;
      for (k = 0; k < M; k++) {
        counter_init(&cnt[k], &sem);
        if ((rc = wp_ctx_on_done(c, &h[k], count_cb, &cnt[k])) != 0) break;
      }
      if (rc == 0) break;
      ASSERT_EQ(rc, WP_ETIMEDOUT); /* the deadline came first: again */
      /* The timer thread may still be running the hooks: one it has not
       * reached yet is removed (0, never runs), one it ran says 1. */
      for (int j = 0; j < k; j++) {
        int r = wp_ctx_hook_remove(&h[j]);
        ASSERT(r == 0 || r == 1);
        ASSERT_EQ(atomic_load(&cnt[j].n), r);
      }
      while (sem_trywait(&sem) == 0) {
      }
      wp_ctx_release(c);
      wp_ctx_release(p);
    }
    switch (hows[i]) {
      case BY_CANCEL:
        wp_ctx_cancel(c);
        break;
      case BY_CANCEL_TWICE:
        wp_ctx_cancel(c);
        wp_ctx_cancel(c);
        break;
      case BY_PARENT:
        wp_ctx_cancel(p);
        break;
      case BY_TIMEOUT:
      case BY_PARENT_TIMEOUT:
        break;
    }
    for (int k = 0; k < M; k++) sem_wait_bounded(&sem, WATCHDOG_S, "hooks");
    wp_ctx_cancel(c);
    wp_ctx_cancel(p);
    for (int k = 0; k < M; k++) {
      ASSERT_EQ(wp_ctx_hook_remove(&h[k]), 1);
      ASSERT_EQ(atomic_load(&cnt[k].n), 1);
    }
    ASSERT_EQ(sem_trywait(&sem), -1); /* no extra run */
    wp_ctx_release(c);
    wp_ctx_release(p);
    sem_destroy(&sem);
  }
}

/* A hook removed before the end never runs (remove returns 0); the others
 * still run; a removed hook can be registered again. */
TEST(ctx_hook_removed_before_end_never_runs) {
  wp_ctx *c = NULL, *p = NULL;
  wp_ctx_hook h[3];
  counter cnt[3];
  ASSERT_OK(wp_ctx_with_cancel(NULL, &p));
  ASSERT_OK(wp_ctx_with_timeout(p, HOUR, &c)); /* a pending deadline too */
  for (int k = 0; k < 3; k++) {
    counter_init(&cnt[k], NULL);
    ASSERT_EQ(wp_ctx_on_done(c, &h[k], count_cb, &cnt[k]), 0);
  }
  ASSERT_EQ(wp_ctx_hook_remove(&h[1]), 0);
  wp_ctx_cancel(p);
  ASSERT_EQ(wp_ctx_err(c), WP_ECANCELED);
  ASSERT_EQ(wp_ctx_hook_remove(&h[0]), 1);
  ASSERT_EQ(wp_ctx_hook_remove(&h[2]), 1);
  ASSERT_EQ(atomic_load(&cnt[0].n), 1);
  ASSERT_EQ(atomic_load(&cnt[1].n), 0);
  ASSERT_EQ(atomic_load(&cnt[2].n), 1);
  wp_ctx_release(c);
  wp_ctx_release(p);

  /* Remove every hook, let the context end: nothing runs. Re-register the
   * same hook memory on a fresh context: it runs once. */
  for (int pass = 0; pass < 2; pass++) {
    ASSERT_OK(wp_ctx_with_cancel(NULL, &c));
    counter_init(&cnt[0], NULL);
    for (int k = 0; k < 5; k++) { /* register, remove, again */
      ASSERT_EQ(wp_ctx_on_done(c, &h[0], count_cb, &cnt[0]), 0);
      if (pass == 1 && k == 4) break;
      ASSERT_EQ(wp_ctx_hook_remove(&h[0]), 0);
    }
    wp_ctx_cancel(c);
    ASSERT_EQ(atomic_load(&cnt[0].n), pass);
    if (pass == 1) ASSERT_EQ(wp_ctx_hook_remove(&h[0]), 1);
    wp_ctx_release(c);
  }
}

/* wp_ctx_on_done on an ended context registers nothing, returns the error
 * and never calls; removing that hook is safe and returns 1. */
TEST(ctx_on_done_after_end_table) {
  enum how { CANCELED, PAST_DEADLINE, FIRED, PARENT_CANCELED };
  static const struct {
    enum how how;
    int err;
  } rows[] = {{CANCELED, WP_ECANCELED},
              {PAST_DEADLINE, WP_ETIMEDOUT},
              {FIRED, WP_ETIMEDOUT},
              {PARENT_CANCELED, WP_ECANCELED}};
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    wp_ctx *p = NULL, *c = NULL;
    ASSERT_OK(wp_ctx_with_cancel(NULL, &p));
    switch (rows[i].how) {
      case CANCELED:
        ASSERT_OK(wp_ctx_with_cancel(p, &c));
        wp_ctx_cancel(c);
        break;
      case PAST_DEADLINE:
        ASSERT_OK(wp_ctx_with_deadline(p, 0, &c));
        break;
      case FIRED:
        ASSERT_OK(wp_ctx_with_timeout(p, 1 * MS, &c));
        ASSERT_EQ(wait_in_thread(c), WP_ETIMEDOUT);
        break;
      case PARENT_CANCELED:
        ASSERT_OK(wp_ctx_with_cancel(p, &c));
        wp_ctx_cancel(p);
        break;
    }
    counter cnt;
    wp_ctx_hook h;
    counter_init(&cnt, NULL);
    ASSERT_EQ(wp_ctx_on_done(c, &h, count_cb, &cnt), rows[i].err);
    wp_ctx_cancel(c);
    wp_ctx_cancel(p);
    ASSERT_EQ(wp_ctx_hook_remove(&h), 1);
    ASSERT_EQ(atomic_load(&cnt.n), 0);
    wp_ctx_release(c);
    wp_ctx_release(p);
  }
}

/* wp_ctx_hook_remove on its own hook, from inside the callback, returns 1 at
 * once; the callback may then free the hook (here: it is not touched again).
 * Ended by cancel on this thread, by a parent's cancel, by the timer. */
struct self_remove {
  wp_ctx_hook h;
  atomic_int calls;
  int rc;
  sem_t sem;
};

static void self_remove_cb(void *arg) {
  struct self_remove *s = arg;
  s->rc = wp_ctx_hook_remove(&s->h);
  atomic_fetch_add(&s->calls, 1);
  sem_post(&s->sem);
}

TEST(ctx_hook_remove_inside_callback_table) {
  enum how { BY_CANCEL, BY_PARENT, BY_TIMEOUT };
  static const enum how hows[] = {BY_CANCEL, BY_PARENT, BY_TIMEOUT};
  for (size_t i = 0; i < 3; i++) {
    struct self_remove *s = calloc(1, sizeof *s);
    wp_ctx *p = NULL, *c = NULL;
    ASSERT(s != NULL);
    atomic_init(&s->calls, 0);
    s->rc = -100;
    ASSERT_EQ(sem_init(&s->sem, 0, 0), 0);
    ASSERT_OK(wp_ctx_with_cancel(NULL, &p));
    for (int64_t t = 1 * MS;; t *= 2) {
      if (hows[i] == BY_TIMEOUT)
        ASSERT_OK(wp_ctx_with_timeout(p, t, &c));
      else
        ASSERT_OK(wp_ctx_with_cancel(p, &c));
      int rc = wp_ctx_on_done(c, &s->h, self_remove_cb, s);
      if (rc == 0) break;
      ASSERT_EQ(rc, WP_ETIMEDOUT); /* the deadline came first: again */
      wp_ctx_release(c);
    }
    if (hows[i] == BY_CANCEL) wp_ctx_cancel(c);
    if (hows[i] == BY_PARENT) wp_ctx_cancel(p);
    sem_wait_bounded(&s->sem, WATCHDOG_S, "self-removing callback");
    ASSERT_EQ(s->rc, 1);
    ASSERT_EQ(atomic_load(&s->calls), 1);
    wp_ctx_cancel(c);
    wp_ctx_cancel(p);
    ASSERT_EQ(atomic_load(&s->calls), 1);
    wp_ctx_release(c);
    wp_ctx_release(p);
    sem_destroy(&s->sem);
    free(s); /* hook freed without another remove: ASan would see misuse */
  }
}

/* From inside a callback, removing another hook of the same context that
 * has not run yet returns 0 and it never runs; or it already ran, returns
 * 1. Either way it runs at most once and the answer matches. */
struct other_remove {
  wp_ctx_hook a, b;
  counter cb_b;
  int rc;
};

static void remove_other_cb(void *arg) {
  struct other_remove *o = arg;
  o->rc = wp_ctx_hook_remove(&o->b);
}

TEST(ctx_hook_remove_other_inside_callback) {
  for (int order = 0; order < 2; order++) {
    struct other_remove o;
    wp_ctx *c = NULL;
    o.rc = -100;
    counter_init(&o.cb_b, NULL);
    ASSERT_OK(wp_ctx_with_cancel(NULL, &c));
    if (order == 0) {
      ASSERT_EQ(wp_ctx_on_done(c, &o.a, remove_other_cb, &o), 0);
      ASSERT_EQ(wp_ctx_on_done(c, &o.b, count_cb, &o.cb_b), 0);
    } else {
      ASSERT_EQ(wp_ctx_on_done(c, &o.b, count_cb, &o.cb_b), 0);
      ASSERT_EQ(wp_ctx_on_done(c, &o.a, remove_other_cb, &o), 0);
    }
    wp_ctx_cancel(c);
    ASSERT(o.rc == 0 || o.rc == 1);
    ASSERT_EQ(atomic_load(&o.cb_b.n), o.rc);
    ASSERT_EQ(wp_ctx_hook_remove(&o.a), 1);
    wp_ctx_release(c);
  }
}

/* wp_ctx_hook_remove from another thread while the callback runs waits for
 * it to return, then returns 1. The callback blocks on a semaphore that the
 * test releases only after the remover has started; `state` (atomic) and
 * `payload` (plain: TSan reports a race if remove returned without a
 * happens-before edge from the callback's end) show the order. Whether the
 * remover is already inside wp_ctx_hook_remove() when the callback is
 * released is up to the scheduler; the result must be the same either way,
 * and over the rounds both happen. */
struct slow_cb {
  sem_t entered, release;
  atomic_int state; /* 0 not started, 1 running, 2 returned */
  int payload;
};

static void slow_cb_fn(void *arg) {
  struct slow_cb *s = arg;
  atomic_store(&s->state, 1);
  sem_post(&s->entered);
  sem_wait_bounded(&s->release, WATCHDOG_S, "release of the slow callback");
  s->payload = 42;
  atomic_store(&s->state, 2);
}

struct remover {
  wp_ctx_hook *h;
  struct slow_cb *s;
  sem_t *ready;
  int rc, state_after, payload;
};

static void remover_fn(void *p) {
  struct remover *r = p;
  sem_post(r->ready);
  r->rc = wp_ctx_hook_remove(r->h);
  r->state_after = atomic_load(&r->s->state);
  r->payload = r->s->payload;
}

static void cancel_fn(void *p) { wp_ctx_cancel(p); }

TEST(ctx_hook_remove_waits_for_running_callback) {
  int rounds = scaled(20);
  for (int round = 0; round < rounds; round++) {
    int by_timer = round % 2; /* callback on the timer thread, or a canceler */
    struct slow_cb s;
    wp_ctx_hook h;
    wp_ctx *c = NULL;
    sem_t ready;
    thr tc, tr;
    ASSERT_EQ(sem_init(&s.entered, 0, 0), 0);
    ASSERT_EQ(sem_init(&s.release, 0, 0), 0);
    ASSERT_EQ(sem_init(&ready, 0, 0), 0);
    atomic_init(&s.state, 0);
    s.payload = 0;
    for (int64_t t = 1 * MS;; t *= 2) {
      if (by_timer)
        ASSERT_OK(wp_ctx_with_timeout(NULL, t, &c));
      else
        ASSERT_OK(wp_ctx_with_cancel(NULL, &c));
      int rc = wp_ctx_on_done(c, &h, slow_cb_fn, &s);
      if (rc == 0) break;
      ASSERT_EQ(rc, WP_ETIMEDOUT); /* the deadline came first: again */
      wp_ctx_release(c);
    }
    if (!by_timer) thr_start(&tc, cancel_fn, c);
    sem_wait_bounded(&s.entered, WATCHDOG_S, "callback start");
    ASSERT_EQ(atomic_load(&s.state), 1);
    struct remover r = {.h = &h, .s = &s, .ready = &ready, .rc = -100};
    thr_start(&tr, remover_fn, &r);
    sem_wait_bounded(&ready, WATCHDOG_S, "remover start");
    sem_post(&s.release);
    thr_join(&tr, WATCHDOG_S, "remove while the callback runs");
    if (!by_timer) thr_join(&tc, WATCHDOG_S, "cancel running the callback");
    ASSERT_EQ(r.rc, 1);
    if (r.state_after != 2)
      WP_FAIL_("wp_ctx_hook_remove returned while the callback ran (state %d)",
               r.state_after);
    ASSERT_EQ(r.payload, 42);
    ASSERT_EQ(wp_ctx_err(c), by_timer ? WP_ETIMEDOUT : WP_ECANCELED);
    wp_ctx_release(c);
    sem_destroy(&s.entered);
    sem_destroy(&s.release);
    sem_destroy(&ready);
  }
}

/* Cancel and remove race on two threads, many times: remove returns 0 and
 * the callback never runs, or returns 1 after the callback has returned. */
struct race {
  pthread_barrier_t start, end;
  wp_ctx *c;
  wp_ctx_hook h;
  counter cnt;
  int rounds;
  int rc, seen;
};

static void race_canceler(void *p) {
  struct race *r = p;
  for (int i = 0; i < r->rounds; i++) {
    pthread_barrier_wait(&r->start);
    wp_ctx_cancel(r->c);
    pthread_barrier_wait(&r->end);
  }
}

static void race_remover(void *p) {
  struct race *r = p;
  for (int i = 0; i < r->rounds; i++) {
    pthread_barrier_wait(&r->start);
    r->rc = wp_ctx_hook_remove(&r->h);
    r->seen = atomic_load(&r->cnt.n);
    pthread_barrier_wait(&r->end);
  }
}

TEST(ctx_hook_cancel_remove_race) {
  struct race r;
  thr a, b;
  int got[2] = {0, 0};
  r.rounds = scaled(2000);
  ASSERT_EQ(pthread_barrier_init(&r.start, NULL, 3), 0);
  ASSERT_EQ(pthread_barrier_init(&r.end, NULL, 3), 0);
  thr_start(&a, race_canceler, &r);
  thr_start(&b, race_remover, &r);
  for (int i = 0; i < r.rounds; i++) {
    ASSERT_OK(wp_ctx_with_cancel(NULL, &r.c));
    counter_init(&r.cnt, NULL);
    ASSERT_EQ(wp_ctx_on_done(r.c, &r.h, count_cb, &r.cnt), 0);
    pthread_barrier_wait(&r.start);
    pthread_barrier_wait(&r.end);
    ASSERT(r.rc == 0 || r.rc == 1);
    ASSERT_EQ(r.seen, r.rc); /* 1: callback had already returned */
    ASSERT_EQ(atomic_load(&r.cnt.n), r.rc);
    ASSERT_EQ(wp_ctx_err(r.c), WP_ECANCELED);
    got[r.rc]++;
    wp_ctx_release(r.c);
  }
  thr_join(&a, WATCHDOG_S, "canceler");
  thr_join(&b, WATCHDOG_S, "remover");
  pthread_barrier_destroy(&r.start);
  pthread_barrier_destroy(&r.end);
  fprintf(stderr, "remove won %d times, cancel won %d times\n", got[0], got[1]);
}

/* A callback may call back into the library: here one on A cancels an
 * unrelated context, makes and releases a child of it, and cancels A's own
 * parent (and so A's sibling). Run on a helper thread so that a deadlock
 * fails with a message. */
struct reentrant {
  wp_ctx *other, *parent;
  int child_err;
};

static void reentrant_cb(void *arg) {
  struct reentrant *r = arg;
  wp_ctx *c = NULL;
  wp_ctx_cancel(r->other);
  ASSERT_OK(wp_ctx_with_cancel(r->other, &c));
  r->child_err = wp_ctx_err(c);
  wp_ctx_release(c);
  wp_ctx_cancel(r->parent);
}

TEST(ctx_callback_calls_into_library) {
  wp_ctx *p = NULL, *a = NULL, *sib = NULL, *other = NULL;
  wp_ctx_hook h;
  thr t;
  ASSERT_OK(wp_ctx_with_cancel(NULL, &p));
  ASSERT_OK(wp_ctx_with_cancel(p, &a));
  ASSERT_OK(wp_ctx_with_cancel(p, &sib));
  ASSERT_OK(wp_ctx_with_cancel(NULL, &other));
  struct reentrant r = {.other = other, .parent = p, .child_err = 1};
  ASSERT_EQ(wp_ctx_on_done(a, &h, reentrant_cb, &r), 0);
  thr_start(&t, cancel_fn, a);
  thr_join(&t, WATCHDOG_S, "cancel whose callback re-enters the library");
  ASSERT_EQ(r.child_err, WP_ECANCELED);
  ASSERT_EQ(wp_ctx_err(other), WP_ECANCELED);
  ASSERT_EQ(wp_ctx_err(p), WP_ECANCELED);
  ASSERT_EQ(wp_ctx_err(sib), WP_ECANCELED);
  ASSERT_EQ(wp_ctx_hook_remove(&h), 1);
  wp_ctx_release(a);
  wp_ctx_release(sib);
  wp_ctx_release(p);
  wp_ctx_release(other);
}

/* A hook holds a reference: the context may be released with a hook still
 * registered; the deadline still fires and the callback runs; removing the
 * hook then drops the last reference (ASan: no leak, no use after free). */
TEST(ctx_hook_keeps_context_alive) {
  sem_t sem;
  counter cnt;
  wp_ctx_hook h;
  wp_ctx *c = NULL;
  ASSERT_EQ(sem_init(&sem, 0, 0), 0);
  counter_init(&cnt, &sem);
  for (int64_t t = 2 * MS;; t *= 2) {
    ASSERT_OK(wp_ctx_with_timeout(NULL, t, &c));
    int rc = wp_ctx_on_done(c, &h, count_cb, &cnt);
    if (rc == 0) break;
    ASSERT_EQ(rc, WP_ETIMEDOUT); /* the deadline came first: again */
    wp_ctx_release(c);
  }
  wp_ctx_release(c);
  sem_wait_bounded(&sem, WATCHDOG_S, "callback of a released context");
  ASSERT_EQ(wp_ctx_hook_remove(&h), 1);
  ASSERT_EQ(atomic_load(&cnt.n), 1);
  sem_destroy(&sem);
}

/* ---- lifetime and stress ----------------------------------------------------
 */

/* Releasing a parent before its children is fine: they keep working, can be
 * canceled, have children of their own, and still end when the released
 * parent's deadline passes. */
TEST(ctx_release_parent_first) {
  wp_ctx *p = NULL, *c1 = NULL, *c2 = NULL, *gc = NULL;
  ASSERT_OK(wp_ctx_with_cancel(NULL, &p));
  ASSERT_OK(wp_ctx_with_cancel(p, &c1));
  ASSERT_OK(wp_ctx_with_timeout(p, HOUR, &c2));
  wp_ctx_release(p);
  ASSERT_OK(wp_ctx_with_cancel(c1, &gc));
  ASSERT_EQ(wp_ctx_err(c1), 0);
  ASSERT_EQ(wp_ctx_err(c2), 0);
  ASSERT_EQ(wp_ctx_err(gc), 0);
  wp_ctx_cancel(c1);
  ASSERT_EQ(wp_ctx_err(gc), WP_ECANCELED);
  ASSERT_EQ(wp_ctx_err(c2), 0); /* sibling untouched */
  wp_ctx_release(c1);           /* before its child again */
  ASSERT_EQ(wp_ctx_err(gc), WP_ECANCELED);
  wp_ctx_release(gc);
  wp_ctx_release(c2);

  ASSERT_OK(wp_ctx_with_timeout(NULL, 2 * MS, &p));
  ASSERT_OK(wp_ctx_with_cancel(p, &c1));
  ASSERT_OK(wp_ctx_with_cancel(c1, &gc));
  wp_ctx_release(p);
  wp_ctx_release(c1);
  ASSERT_EQ(wait_in_thread(gc), WP_ETIMEDOUT);
  wp_ctx_release(gc);
}

/* Threads create children (and grandchildren) of one parent, some with a
 * deadline, some with a hook, cancel some themselves, release some at once
 * and keep the rest, while another thread cancels the parent halfway. The
 * main thread releases its reference on the parent right after starting
 * them. At the end every kept child is canceled, every hook ran exactly once
 * or was removed before running; a child made after the parent was seen
 * canceled starts canceled. ASan: nothing leaks; TSan: no race. */
struct kid {
  wp_ctx *c;
  wp_ctx_hook h;
  counter cnt;
  int hooked; /* 0 none, 1 registered, -1 refused (already ended) */
};

struct stress {
  wp_ctx *parent;
  int workers, per;
  sem_t half;
  pthread_barrier_t after_cancel;
};

struct stress_w {
  struct stress *s;
  wp_ctx *parent; /* this thread's own reference */
  uint64_t seed;
  struct kid *kids;
};

static void check_removed(struct kid *k) {
  int r = wp_ctx_hook_remove(&k->h);
  int n = atomic_load(&k->cnt.n);
  if (k->hooked == 1) {
    ASSERT(r == 0 || r == 1);
    ASSERT_EQ(n, r);
  } else {
    ASSERT_EQ(r, 1);
    ASSERT_EQ(n, 0);
  }
}

static void stress_worker(void *p) {
  struct stress_w *w = p;
  struct stress *s = w->s;
  uint64_t rng = w->seed;
  int kept = 0;
  for (int i = 0; i < s->per; i++) {
    if (i == s->per / 2) sem_post(&s->half);
    wp_ctx *par = w->parent;
    if (kept > 0 && rng_below(&rng, 4) == 0) /* a grandchild */
      par = w->kids[rng_below(&rng, (uint32_t)kept)].c;
    int perr = wp_ctx_err(par);
    struct kid *k = &w->kids[kept];
    k->c = NULL;
    if (rng_below(&rng, 4) == 0)
      ASSERT_OK(wp_ctx_with_timeout(par, HOUR, &k->c));
    else
      ASSERT_OK(wp_ctx_with_cancel(par, &k->c));
    int e = wp_ctx_err(k->c);
    if (perr != 0) ASSERT_EQ(e, perr); /* parent already ended */
    ASSERT(e == 0 || e == WP_ECANCELED);
    counter_init(&k->cnt, NULL);
    k->hooked = 0;
    if (rng_below(&rng, 2)) {
      int hr = wp_ctx_on_done(k->c, &k->h, count_cb, &k->cnt);
      ASSERT(hr == 0 || hr == WP_ECANCELED);
      k->hooked = hr == 0 ? 1 : -1;
    }
    switch (rng_below(&rng, 4)) {
      case 0: /* cancel it ourselves (racing the parent's cancel), keep it */
        wp_ctx_cancel(k->c);
        /* Its callback has run, unless the parent's cancel got there first
         * and is running it on the other thread: checked after the barrier. */
        ASSERT_EQ(wp_ctx_err(k->c), WP_ECANCELED);
        kept++;
        break;
      case 1:
        kept++;
        break;
      default: /* release at once; the slot is reused */
        if (k->hooked) check_removed(k);
        wp_ctx_release(k->c);
        break;
    }
  }
  pthread_barrier_wait(&s->after_cancel);
  /* Kept children in creation order: parents before their grandchildren. */
  for (int i = 0; i < kept; i++) {
    struct kid *k = &w->kids[i];
    ASSERT_EQ(wp_ctx_err(k->c), WP_ECANCELED);
    if (k->hooked == 1) ASSERT_EQ(atomic_load(&k->cnt.n), 1);
    if (k->hooked) check_removed(k);
    wp_ctx_release(k->c);
  }
  wp_ctx_release(w->parent);
}

static void stress_canceler(void *p) {
  struct stress_w *w = p;
  struct stress *s = w->s;
  for (int i = 0; i < s->workers; i++)
    sem_wait_bounded(&s->half, STRESS_WATCHDOG_S, "workers halfway");
  wp_ctx_cancel(w->parent);
  ASSERT_EQ(wp_ctx_err(w->parent), WP_ECANCELED);
  pthread_barrier_wait(&s->after_cancel);
  wp_ctx_release(w->parent);
}

TEST(ctx_stress_children_vs_parent_cancel) {
  enum { W = 4 };
  struct stress s = {.workers = W, .per = scaled(3000)};
  struct stress_w w[W + 1];
  thr t[W + 1];
  uint64_t seed = wp_test_seed();
  ASSERT_EQ(sem_init(&s.half, 0, 0), 0);
  ASSERT_EQ(pthread_barrier_init(&s.after_cancel, NULL, W + 1), 0);
  ASSERT_OK(wp_ctx_with_cancel(NULL, &s.parent));
  for (int i = 0; i <= W; i++) {
    w[i] = (struct stress_w){
        .s = &s, .parent = wp_ctx_ref(s.parent), .seed = rng_next(&seed)};
    if (i < W) {
      w[i].kids = calloc((size_t)s.per, sizeof *w[i].kids);
      ASSERT(w[i].kids != NULL);
    }
  }
  for (int i = 0; i <= W; i++)
    thr_start(&t[i], i < W ? stress_worker : stress_canceler, &w[i]);
  wp_ctx_release(s.parent); /* the threads hold their own references */
  for (int i = 0; i <= W; i++)
    thr_join(&t[i], STRESS_WATCHDOG_S, "stress thread");
  for (int i = 0; i < W; i++) free(w[i].kids);
  pthread_barrier_destroy(&s.after_cancel);
  sem_destroy(&s.half);
}

/* One child is made (with or without a deadline, with a hook) on one thread
 * exactly while another cancels the parent, many times over, with the two
 * released together by a barrier: whichever wins, the child ends canceled
 * and its hook, if accepted, runs once. (TSan: no race between a child's
 * creation and its parent's cancel.) */
struct create_race {
  pthread_barrier_t start, end;
  wp_ctx *parent, *child;
  wp_ctx_hook h;
  counter cnt;
  int rounds, hook_rc;
};

static void create_race_maker(void *p) {
  struct create_race *r = p;
  for (int i = 0; i < r->rounds; i++) {
    pthread_barrier_wait(&r->start);
    if (i % 2)
      ASSERT_OK(wp_ctx_with_timeout(r->parent, HOUR, &r->child));
    else
      ASSERT_OK(wp_ctx_with_cancel(r->parent, &r->child));
    r->hook_rc = wp_ctx_on_done(r->child, &r->h, count_cb, &r->cnt);
    pthread_barrier_wait(&r->end);
  }
}

static void create_race_canceler(void *p) {
  struct create_race *r = p;
  for (int i = 0; i < r->rounds; i++) {
    pthread_barrier_wait(&r->start);
    wp_ctx_cancel(r->parent);
    pthread_barrier_wait(&r->end);
  }
}

TEST(ctx_child_creation_races_parent_cancel) {
  struct create_race r;
  thr a, b;
  r.rounds = scaled(2000);
  ASSERT_EQ(pthread_barrier_init(&r.start, NULL, 3), 0);
  ASSERT_EQ(pthread_barrier_init(&r.end, NULL, 3), 0);
  thr_start(&a, create_race_maker, &r);
  thr_start(&b, create_race_canceler, &r);
  for (int i = 0; i < r.rounds; i++) {
    ASSERT_OK(wp_ctx_with_cancel(NULL, &r.parent));
    counter_init(&r.cnt, NULL);
    pthread_barrier_wait(&r.start);
    pthread_barrier_wait(&r.end);
    ASSERT_EQ(wp_ctx_err(r.parent), WP_ECANCELED);
    ASSERT_EQ(wp_ctx_err(r.child), WP_ECANCELED);
    ASSERT(r.hook_rc == 0 || r.hook_rc == WP_ECANCELED);
    ASSERT_EQ(wp_ctx_hook_remove(&r.h), 1);
    ASSERT_EQ(atomic_load(&r.cnt.n), r.hook_rc == 0 ? 1 : 0);
    wp_ctx_release(r.child);
    wp_ctx_release(r.parent);
  }
  thr_join(&a, WATCHDOG_S, "maker");
  thr_join(&b, WATCHDOG_S, "canceler");
  pthread_barrier_destroy(&r.start);
  pthread_barrier_destroy(&r.end);
}

/* ---- the timer thread
 * --------------------------------------------------------- */

static void block_on(void *p) { sem_wait_bounded(p, WATCHDOG_S, "throwaway"); }

/* This process's thread count with no deadline pending. A throwaway thread
 * is started first, because a sanitizer runtime may start a helper thread of
 * its own on the first pthread_create; the count is taken while the
 * throwaway is certainly alive, minus one. */
static int thread_baseline(void) {
  thr t;
  sem_t go;
  ASSERT_EQ(sem_init(&go, 0, 0), 0);
  thr_start(&t, block_on, &go);
  int base = wp_test_thread_count() - 1;
  sem_post(&go);
  thr_join(&t, WATCHDOG_S, "throwaway thread");
  sem_destroy(&go);
  ASSERT_EQ(wp_test_thread_count_settles(base), base); /* the throwaway has left */
  return base;
}

/* Makes sure the timer thread has been through its loop at least once with
 * the deadlines pending now, so that it is (almost certainly) asleep until
 * the earliest of them rather than just starting: a short timeout is fired
 * and waited for. Without this, a timer thread that is not woken when its
 * only deadline goes away would still pass, by exiting on its first look. */
static void settle_timer_thread(void) {
  wp_ctx *s = NULL;
  ASSERT_OK(wp_ctx_with_timeout(NULL, 1 * MS, &s));
  ASSERT_EQ(wait_in_thread(s), WP_ETIMEDOUT);
  wp_ctx_release(s);
}

TEST(ctx_timer_thread_lifecycle) {
  int base = thread_baseline();
  wp_ctx *a = NULL, *b = NULL, *c = NULL;
  ASSERT_OK(wp_ctx_with_timeout(NULL, HOUR, &a));
  ASSERT_EQ(wp_test_thread_count(), base + 1); /* one timer thread */
  settle_timer_thread();
  ASSERT_OK(wp_ctx_with_timeout(NULL, 2 * HOUR, &b));
  ASSERT_EQ(wp_test_thread_count(), base + 1); /* still one */
  wp_ctx_cancel(a);
  ASSERT_EQ(wp_test_thread_count(), base + 1); /* b is pending: stays */
  wp_ctx_cancel(b);
  ASSERT_EQ(wp_test_thread_count_settles(base), base); /* nothing pending: goes */
  wp_ctx_release(a);
  wp_ctx_release(b);

  /* It comes back for a new deadline, and goes once that one fires. */
  ASSERT_OK(wp_ctx_with_timeout(NULL, 2 * MS, &c));
  ASSERT_EQ(wait_in_thread(c), WP_ETIMEDOUT);
  ASSERT_EQ(wp_test_thread_count_settles(base), base);
  wp_ctx_release(c);

  /* A child's deadline that the parent's cancel ends. */
  ASSERT_OK(wp_ctx_with_cancel(NULL, &a));
  ASSERT_OK(wp_ctx_with_timeout(a, HOUR, &b));
  ASSERT_EQ(wp_test_thread_count(), base + 1);
  settle_timer_thread();
  wp_ctx_cancel(a);
  ASSERT_EQ(wp_test_thread_count_settles(base), base);
  wp_ctx_release(b);
  wp_ctx_release(a);

  /* A past deadline or no deadline (INT64_MAX) has nothing to wait for. */
  ASSERT_OK(wp_ctx_with_deadline(NULL, 0, &a));
  ASSERT_OK(wp_ctx_with_timeout(NULL, INT64_MAX, &b));
  ASSERT_EQ(wp_test_thread_count_settles(base), base);
  wp_ctx_release(a);
  wp_ctx_release(b);
}

/* A context with a pending deadline that its owner releases (never canceled,
 * no children, no hooks) no longer exists, so nothing is pending: the timer
 * thread goes ("exists only while at least one context with a pending
 * deadline exists"). */
TEST(ctx_released_deadline_stops_timer_thread) {
  int base = thread_baseline();
  wp_ctx *a = NULL;
  ASSERT_OK(wp_ctx_with_timeout(NULL, HOUR, &a));
  ASSERT_EQ(wp_test_thread_count(), base + 1);
  settle_timer_thread();
  wp_ctx_release(a);
  ASSERT_EQ(wp_test_thread_count_settles(base), base);
}

/* Thousands of contexts with varied small timeouts all fire (callbacks
 * counted, each not before its deadline, each exactly once), and afterwards
 * the timer thread goes away, even while the ended contexts are still held. */
struct many {
  wp_ctx *c;
  wp_ctx_hook h;
  counter cnt;
};

TEST(ctx_many_timeouts_all_fire) {
  int n = scaled(2000);
  int base = thread_baseline();
  uint64_t rng = wp_test_seed();
  sem_t sem;
  struct many *m = calloc((size_t)n, sizeof *m);
  ASSERT(m != NULL);
  ASSERT_EQ(sem_init(&sem, 0, 0), 0);
  int64_t shared = wp_now_ns() + 5 * MS;
  for (int i = 0; i < n; i++) {
    counter_init(&m[i].cnt, &sem);
    /* 0.1 ms .. 30 ms; one in ten share the exact same deadline */
    if (i % 10 == 0)
      ASSERT_OK(wp_ctx_with_deadline(NULL, shared, &m[i].c));
    else
      ASSERT_OK(wp_ctx_with_timeout(
          NULL, 100000 + (int64_t)rng_below(&rng, 30 * 1000000), &m[i].c));
    int rc = wp_ctx_on_done(m[i].c, &m[i].h, count_cb, &m[i].cnt);
    if (rc == WP_ETIMEDOUT) { /* already passed on a slow machine: counts too */
      count_cb(&m[i].cnt);
      atomic_store(&m[i].cnt.at, wp_ctx_deadline(m[i].c));
    } else {
      ASSERT_EQ(rc, 0);
    }
  }
  for (int i = 0; i < n; i++)
    sem_wait_bounded(&sem, STRESS_WATCHDOG_S, "all timeouts");
  ASSERT_EQ(sem_trywait(&sem), -1);
  for (int i = 0; i < n; i++) {
    ASSERT_EQ(wp_ctx_err(m[i].c), WP_ETIMEDOUT);
    ASSERT_EQ(atomic_load(&m[i].cnt.n), 1);
    ASSERT_GE(atomic_load(&m[i].cnt.at), wp_ctx_deadline(m[i].c));
  }
  ASSERT_EQ(wp_test_thread_count_settles(base), base);
  for (int i = 0; i < n; i++) {
    ASSERT_EQ(wp_ctx_hook_remove(&m[i].h), 1);
    wp_ctx_release(m[i].c);
  }
  ASSERT_EQ(wp_test_thread_count_settles(base), base);
  free(m);
  sem_destroy(&sem);
}

int main(int argc, char **argv) { return wp_test_main(argc, argv); }
