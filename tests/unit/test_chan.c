/* Unit tests of wp_chan (include/wpool/chan.h).
 *
 * What is checked: Go's buffered-channel semantics as a table (state x
 * operation x context -> result), FIFO order and exact item bytes across
 * ring wrap-around, wakeups of blocked senders and receivers (by the other
 * side, by close, by a context canceled elsewhere or by a deadline),
 * MPMC stress with every item received exactly once (single sends and the
 * pool's batch sends mixed), a batch send ended by close, the readiness
 * descriptor against a model, invalid arguments and destroy.
 *
 * Threads are coordinated with barriers, semaphores and the channels
 * themselves, never with sleeps. A thread that must finish is waited for
 * with a bound (thr_join) so that a lost wakeup fails with a message rather
 * than hanging until the CTest timeout; the bound is never what makes a test
 * pass. Random choices come from wp_test_seed() (printed; replay with
 * WP_TEST_SEED=<n>).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/internal.h" /* wp__chan_send_all: the pool's batch send */
#include "wp_test.h"
#include "wpool/chan.h"
#include "wpool/ctx.h"
#include "wpool/error.h"

/* Seconds a thread may take to finish once it should: only a bug gets near. */
enum { WATCHDOG_S = 10, STRESS_WATCHDOG_S = 30 };
#define MS ((int64_t)1000000)

/* ---- helpers ------------------------------------------------------------ */

#include "wp_test_util.h"

/* Contexts the tables use. */
enum ctxk { CX_NULL, CX_BG, CX_LIVE, CX_CANCELED, CX_EXPIRED };

static wp_ctx *make_ctx(enum ctxk k) {
  wp_ctx *c = NULL;
  switch (k) {
    case CX_NULL:
      return NULL;
    case CX_BG:
      return wp_ctx_background();
    case CX_LIVE:
      ASSERT_OK(wp_ctx_with_cancel(NULL, &c));
      break;
    case CX_CANCELED:
      ASSERT_OK(wp_ctx_with_cancel(NULL, &c));
      wp_ctx_cancel(c);
      ASSERT_EQ(wp_ctx_err(c), WP_ECANCELED);
      break;
    case CX_EXPIRED: /* a deadline in the past: ended at creation */
      ASSERT_OK(wp_ctx_with_deadline(NULL, 0, &c));
      ASSERT_EQ(wp_ctx_err(c), WP_ETIMEDOUT);
      break;
  }
  return c;
}

static void drop_ctx(wp_ctx *c) {
  if (c && c != wp_ctx_background()) wp_ctx_release(c);
}

/* ---- creation, destroy ----------------------------------------------------
 */

TEST(chan_create_invalid_args) {
  static const struct {
    size_t item, cap;
    int rc;
  } rows[] = {
      {0, 1, WP_EINVAL},
      {1, 0, WP_EINVAL},
      {0, 0, WP_EINVAL},
      {SIZE_MAX, 2, WP_EINVAL},         /* product overflows */
      {2, SIZE_MAX, WP_EINVAL},         /* product overflows */
      {SIZE_MAX / 2 + 1, 2, WP_EINVAL}, /* exactly 2^64 */
      {(size_t)1 << (sizeof(size_t) * 4), (size_t)1 << (sizeof(size_t) * 4),
       WP_EINVAL}, /* exactly 2^64 */
      {1, 1, 0},
      {24, 64, 0},
      {4096, 3, 0},
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    static int dummy;
    wp_chan *c = (wp_chan *)&dummy; /* not NULL: must be overwritten */
    int rc = wp_chan_create(rows[i].item, rows[i].cap, &c);
    if (rc != rows[i].rc)
      WP_FAIL_("row %zu (%zu x %zu): rc %d, want %d", i, rows[i].item,
               rows[i].cap, rc, rows[i].rc);
    if (rc != 0) {
      ASSERT(c == NULL);
      continue;
    }
    ASSERT(c != NULL);
    ASSERT_EQ(wp_chan_cap(c), rows[i].cap);
    ASSERT_EQ(wp_chan_len(c), 0);
    wp_chan_destroy(c);
  }
}

TEST(chan_destroy) {
  wp_chan_destroy(NULL); /* no-op */

  /* Destroy with items still inside, open and closed, with and without the
   * descriptor: ASan's leak check sees anything left behind; the descriptor
   * is closed. */
  for (int variant = 0; variant < 4; variant++) {
    wp_chan *c = NULL;
    ASSERT_OK(wp_chan_create(sizeof(uint64_t), 4, &c));
    for (uint64_t v = 0; v < 3; v++) ASSERT_OK(wp_chan_try_send(c, &v));
    if (variant & 1) ASSERT_OK(wp_chan_close(c));
    int fd = -1;
    if (variant & 2) {
      ASSERT_OK(wp_chan_fd(c, &fd));
      ASSERT(fd >= 0);
      ASSERT(fd_readable(fd));
    }
    wp_chan_destroy(c);
    if (fd >= 0) ASSERT(!fd_is_open(fd)); /* single-threaded: no reuse */
  }
}

/* ---- FIFO order, exact bytes, wrap-around -------------------------------- */

enum { MAXSZ = 100, GUARD = 16 };

static void pattern(unsigned char *p, size_t n, uint64_t seq) {
  for (size_t j = 0; j < n; j++) p[j] = (unsigned char)(seq * 131 + j * 7 + 1);
}

static void recv_expect(wp_chan *c, size_t sz, uint64_t seq, int blocking) {
  unsigned char out[MAXSZ + GUARD], want[MAXSZ];
  memset(out, 0xEE, sizeof out);
  int rc = blocking ? wp_chan_recv(c, out, NULL) : wp_chan_try_recv(c, out);
  ASSERT_EQ(rc, 0);
  pattern(want, sz, seq);
  if (memcmp(out, want, sz) != 0)
    WP_FAIL_("item #%llu (size %zu): received bytes differ from sent",
             (unsigned long long)seq, sz);
  for (size_t j = sz; j < sizeof out; j++) /* wrote exactly item_size bytes */
    ASSERT_EQ(out[j], 0xEE);
}

TEST(chan_fifo_wraparound_table) {
  static const size_t sizes[] = {1, 3, 8, 24, MAXSZ};
  static const size_t caps[] = {1, 2, 7, 64};
  for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
    for (size_t ci = 0; ci < sizeof caps / sizeof caps[0]; ci++) {
      size_t sz = sizes[si], cap = caps[ci];
      wp_chan *c = NULL;
      unsigned char in[MAXSZ], out[MAXSZ];
      uint64_t sseq = 0, rseq = 0;
      ASSERT_OK(wp_chan_create(sz, cap, &c));
      ASSERT_EQ(wp_chan_cap(c), cap);
      ASSERT_EQ(wp_chan_len(c), 0);
      ASSERT_EQ(wp_chan_try_recv(c, out), WP_EAGAIN); /* bound: empty */

      /* Fill to the brim, alternating try-send and send. */
      for (size_t k = 0; k < cap; k++) {
        pattern(in, sz, sseq++);
        if (k % 2)
          ASSERT_OK(wp_chan_send(c, in, NULL));
        else
          ASSERT_OK(wp_chan_try_send(c, in));
        ASSERT_EQ(wp_chan_len(c), k + 1);
      }
      pattern(in, sz, 999999);
      ASSERT_EQ(wp_chan_try_send(c, in), WP_EAGAIN); /* bound: full */
      ASSERT_EQ(wp_chan_try_send(c, in), WP_EAGAIN);
      ASSERT_EQ(wp_chan_len(c), cap);

      /* Drain in order; the refused item never shows up. */
      for (size_t k = 0; k < cap; k++) {
        recv_expect(c, sz, rseq++, (int)(k % 2));
        ASSERT_EQ(wp_chan_len(c), cap - k - 1);
      }
      ASSERT_EQ(wp_chan_try_recv(c, out), WP_EAGAIN);

      /* Keep cap-1 items inside and push 3*cap+5 more through, so the
       * storage wraps around several times at every offset. */
      for (size_t k = 0; k + 1 < cap; k++) {
        pattern(in, sz, sseq++);
        ASSERT_OK(wp_chan_try_send(c, in));
      }
      for (size_t k = 0; k < 3 * cap + 5; k++) {
        pattern(in, sz, sseq++);
        ASSERT_OK(wp_chan_send(c, in, NULL));
        ASSERT_EQ(wp_chan_len(c), cap);
        recv_expect(c, sz, rseq++, (int)(k % 2));
        ASSERT_EQ(wp_chan_len(c), cap - 1);
      }
      while (rseq < sseq) recv_expect(c, sz, rseq++, 0);
      ASSERT_EQ(wp_chan_len(c), 0);
      ASSERT_EQ(wp_chan_try_recv(c, out), WP_EAGAIN);
      wp_chan_destroy(c);
    }
  }
}

/* ---- Go's behaviours, as a table ------------------------------------------
 */

enum op { OP_TRY_SEND, OP_SEND, OP_TRY_RECV, OP_RECV, OP_CLOSE };

/* The channel has capacity FULL and holds items 1..fill (1 is the oldest);
 * a send sends 99. Blocking forms appear only where they cannot wait, or with
 * a context that has already ended. */
enum { FULL = 3 };
static const struct go_row {
  const char *what;
  int closed, fill;
  enum op op;
  enum ctxk ck;
  int rc, len_after;
} go_rows[] = {
    /* open, empty */
    {"try-send into empty", 0, 0, OP_TRY_SEND, CX_NULL, 0, 1},
    {"send into empty", 0, 0, OP_SEND, CX_NULL, 0, 1},
    {"send into empty, background", 0, 0, OP_SEND, CX_BG, 0, 1},
    {"send into empty, live ctx", 0, 0, OP_SEND, CX_LIVE, 0, 1},
    {"send with room wins over canceled ctx", 0, 0, OP_SEND, CX_CANCELED, 0, 1},
    {"send with room wins over expired ctx", 0, 0, OP_SEND, CX_EXPIRED, 0, 1},
    {"try-recv on empty", 0, 0, OP_TRY_RECV, CX_NULL, WP_EAGAIN, 0},
    {"recv on empty, canceled ctx", 0, 0, OP_RECV, CX_CANCELED, WP_ECANCELED,
     0},
    {"recv on empty, expired ctx", 0, 0, OP_RECV, CX_EXPIRED, WP_ETIMEDOUT, 0},
    {"close empty", 0, 0, OP_CLOSE, CX_NULL, 0, 0},
    /* open, one item */
    {"try-send, room left", 0, 1, OP_TRY_SEND, CX_NULL, 0, 2},
    {"send, room left, canceled ctx", 0, 1, OP_SEND, CX_CANCELED, 0, 2},
    {"try-recv one", 0, 1, OP_TRY_RECV, CX_NULL, 0, 0},
    {"recv one", 0, 1, OP_RECV, CX_NULL, 0, 0},
    {"recv one, background", 0, 1, OP_RECV, CX_BG, 0, 0},
    {"recv item wins over canceled ctx", 0, 1, OP_RECV, CX_CANCELED, 0, 0},
    {"recv item wins over expired ctx", 0, 1, OP_RECV, CX_EXPIRED, 0, 0},
    {"close with one item", 0, 1, OP_CLOSE, CX_NULL, 0, 1},
    /* open, full */
    {"try-send at capacity", 0, FULL, OP_TRY_SEND, CX_NULL, WP_EAGAIN, FULL},
    {"send at capacity, canceled ctx", 0, FULL, OP_SEND, CX_CANCELED,
     WP_ECANCELED, FULL},
    {"send at capacity, expired ctx", 0, FULL, OP_SEND, CX_EXPIRED,
     WP_ETIMEDOUT, FULL},
    {"try-recv from full", 0, FULL, OP_TRY_RECV, CX_NULL, 0, FULL - 1},
    {"recv from full, live ctx", 0, FULL, OP_RECV, CX_LIVE, 0, FULL - 1},
    {"recv from full, canceled ctx", 0, FULL, OP_RECV, CX_CANCELED, 0,
     FULL - 1},
    {"close full", 0, FULL, OP_CLOSE, CX_NULL, 0, FULL},
    /* closed, empty */
    {"try-send on closed", 1, 0, OP_TRY_SEND, CX_NULL, WP_ECLOSED, 0},
    {"send on closed", 1, 0, OP_SEND, CX_NULL, WP_ECLOSED, 0},
    {"send on closed, live ctx", 1, 0, OP_SEND, CX_LIVE, WP_ECLOSED, 0},
    {"send on closed, canceled ctx", 1, 0, OP_SEND, CX_CANCELED, WP_ECLOSED, 0},
    {"try-recv closed drained", 1, 0, OP_TRY_RECV, CX_NULL, WP_ECLOSED, 0},
    {"recv closed drained", 1, 0, OP_RECV, CX_NULL, WP_ECLOSED, 0},
    {"recv closed wins over canceled ctx", 1, 0, OP_RECV, CX_CANCELED,
     WP_ECLOSED, 0},
    {"recv closed wins over expired ctx", 1, 0, OP_RECV, CX_EXPIRED, WP_ECLOSED,
     0},
    {"second close", 1, 0, OP_CLOSE, CX_NULL, WP_ECLOSED, 0},
    /* closed, one item left */
    {"try-send on closed, items left", 1, 1, OP_TRY_SEND, CX_NULL, WP_ECLOSED,
     1},
    {"send on closed, items left, canceled", 1, 1, OP_SEND, CX_CANCELED,
     WP_ECLOSED, 1},
    {"try-recv drains closed", 1, 1, OP_TRY_RECV, CX_NULL, 0, 0},
    {"recv drains closed", 1, 1, OP_RECV, CX_NULL, 0, 0},
    {"recv drains closed, canceled ctx", 1, 1, OP_RECV, CX_CANCELED, 0, 0},
    {"second close, items left", 1, 1, OP_CLOSE, CX_NULL, WP_ECLOSED, 1},
    /* closed, full */
    {"try-send on closed full", 1, FULL, OP_TRY_SEND, CX_NULL, WP_ECLOSED,
     FULL},
    {"send on closed full", 1, FULL, OP_SEND, CX_NULL, WP_ECLOSED, FULL},
    {"send on closed full wins over canceled ctx", 1, FULL, OP_SEND,
     CX_CANCELED, WP_ECLOSED, FULL},
    {"send on closed full wins over expired ctx", 1, FULL, OP_SEND, CX_EXPIRED,
     WP_ECLOSED, FULL},
    {"recv drains closed full, expired ctx", 1, FULL, OP_RECV, CX_EXPIRED, 0,
     FULL - 1},
    {"try-recv drains closed full", 1, FULL, OP_TRY_RECV, CX_NULL, 0, FULL - 1},
    {"second close, full", 1, FULL, OP_CLOSE, CX_NULL, WP_ECLOSED, FULL},
};

TEST(chan_go_semantics_table) {
  for (size_t i = 0; i < sizeof go_rows / sizeof go_rows[0]; i++) {
    const struct go_row *r = &go_rows[i];
    wp_chan *c = NULL;
    ASSERT_OK(wp_chan_create(sizeof(int), FULL, &c));
    for (int v = 1; v <= r->fill; v++) ASSERT_OK(wp_chan_try_send(c, &v));
    if (r->closed) ASSERT_OK(wp_chan_close(c));
    wp_ctx *ctx = make_ctx(r->ck);

    int item = 99, got = -1, rc = 0;
    switch (r->op) {
      case OP_TRY_SEND:
        rc = wp_chan_try_send(c, &item);
        break;
      case OP_SEND:
        rc = wp_chan_send(c, &item, ctx);
        break;
      case OP_TRY_RECV:
        rc = wp_chan_try_recv(c, &got);
        break;
      case OP_RECV:
        rc = wp_chan_recv(c, &got, ctx);
        break;
      case OP_CLOSE:
        rc = wp_chan_close(c);
        break;
    }
    if (rc != r->rc)
      WP_FAIL_("row %zu \"%s\": rc %d (%s), want %d (%s)", i, r->what, rc,
               wp_strerror(rc), r->rc, wp_strerror(r->rc));
    if (wp_chan_len(c) != (size_t)r->len_after)
      WP_FAIL_("row %zu \"%s\": len %zu, want %d", i, r->what, wp_chan_len(c),
               r->len_after);
    ASSERT_EQ(wp_chan_cap(c), FULL);

    /* What is left: the oldest item went if a receive succeeded; 99 was
     * appended if a send succeeded; nothing else changed. */
    int recvd = (r->op == OP_TRY_RECV || r->op == OP_RECV) && rc == 0;
    int sent = (r->op == OP_TRY_SEND || r->op == OP_SEND) && rc == 0;
    if (recvd && got != 1)
      WP_FAIL_("row %zu \"%s\": received %d, want 1", i, r->what, got);
    int n = 0;
    for (int v = recvd ? 2 : 1; v <= r->fill; v++, n++) {
      ASSERT_OK(wp_chan_try_recv(c, &got));
      if (got != v)
        WP_FAIL_("row %zu \"%s\": drained %d, want %d", i, r->what, got, v);
    }
    if (sent) {
      ASSERT_OK(wp_chan_try_recv(c, &got));
      ASSERT_EQ(got, 99);
      n++;
    }
    ASSERT_EQ(n, r->len_after);
    int closed = r->closed || r->op == OP_CLOSE;
    ASSERT_EQ(wp_chan_try_recv(c, &got), closed ? WP_ECLOSED : WP_EAGAIN);
    ASSERT_EQ(wp_chan_try_send(c, &item), closed ? WP_ECLOSED : 0);
    drop_ctx(ctx);
    wp_chan_destroy(c);
  }
}

/* ---- blocking waits -------------------------------------------------------
 */

typedef struct waiter {
  wp_chan *c;
  wp_ctx *ctx;
  pthread_barrier_t *bar; /* optional: start together */
  sem_t *ready;           /* optional: posted just before the call */
  int value;              /* sent, or received */
  int rc;
} waiter;

static void recv_waiter(void *p) {
  waiter *w = p;
  if (w->bar) pthread_barrier_wait(w->bar);
  if (w->ready) sem_post(w->ready);
  w->rc = wp_chan_recv(w->c, &w->value, w->ctx);
}

static void send_waiter(void *p) {
  waiter *w = p;
  if (w->bar) pthread_barrier_wait(w->bar);
  if (w->ready) sem_post(w->ready);
  w->rc = wp_chan_send(w->c, &w->value, w->ctx);
}

/* A receiver waiting on an empty channel is woken by a send; a sender
 * waiting on a full one by a receive. Whether the other thread is already
 * asleep when the main thread acts is up to the scheduler (nothing in the
 * API says so); the result must be the same either way, and over the rounds
 * both orders occur. */
TEST(chan_blocking_handoff_table) {
  static const struct {
    int recv_side; /* 1: the thread receives; 0: it sends */
    enum ctxk ck;
  } rows[] = {{1, CX_NULL}, {1, CX_LIVE}, {1, CX_BG},
              {0, CX_NULL}, {0, CX_LIVE}, {0, CX_BG}};
  int rounds = scaled(30);
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    for (int round = 0; round < rounds; round++) {
      wp_chan *c = NULL;
      sem_t ready;
      thr t;
      ASSERT_OK(wp_chan_create(sizeof(int), 1, &c));
      ASSERT_EQ(sem_init(&ready, 0, 0), 0);
      wp_ctx *ctx = make_ctx(rows[i].ck);
      waiter w = {.c = c, .ctx = ctx, .ready = &ready, .value = -1};
      if (rows[i].recv_side) {
        thr_start(&t, recv_waiter, &w);
        sem_wait_bounded(&ready, WATCHDOG_S, "receiver start");
        int v = 1000 + round;
        ASSERT_OK(wp_chan_send(c, &v, NULL));
        thr_join(&t, WATCHDOG_S, "receiver woken by send");
        ASSERT_EQ(w.rc, 0);
        ASSERT_EQ(w.value, 1000 + round);
        ASSERT_EQ(wp_chan_len(c), 0);
      } else {
        int first = 1, got = 0;
        ASSERT_OK(wp_chan_try_send(c, &first));
        w.value = 2000 + round;
        thr_start(&t, send_waiter, &w);
        sem_wait_bounded(&ready, WATCHDOG_S, "sender start");
        ASSERT_OK(wp_chan_recv(c, &got, NULL));
        ASSERT_EQ(got, 1);
        thr_join(&t, WATCHDOG_S, "sender woken by recv");
        ASSERT_EQ(w.rc, 0);
        ASSERT_OK(wp_chan_try_recv(c, &got));
        ASSERT_EQ(got, 2000 + round);
      }
      drop_ctx(ctx);
      sem_destroy(&ready);
      wp_chan_destroy(c);
    }
  }
}

/* Two threads bounce a counter over two capacity-1 channels: each side
 * blocks on every round, so every receive must be woken by the other's send. */
struct pingpong {
  wp_chan *a, *b;
  wp_ctx *ctx;
  int rounds;
};

static void echo_thread(void *p) {
  struct pingpong *pp = p;
  int v, rc;
  for (int i = 0;; i++) {
    rc = wp_chan_recv(pp->a, &v, (i % 2) ? pp->ctx : NULL);
    if (rc == WP_ECLOSED) break;
    ASSERT_OK(rc);
    v++;
    ASSERT_OK(wp_chan_send(pp->b, &v, (i % 2) ? NULL : pp->ctx));
  }
}

static void ping_thread(void *p) {
  struct pingpong *pp = p;
  for (int i = 0; i < pp->rounds; i++) {
    int v = i * 3, got = -1;
    ASSERT_OK(wp_chan_send(pp->a, &v, NULL));
    ASSERT_OK(wp_chan_recv(pp->b, &got, (i % 3) ? pp->ctx : NULL));
    ASSERT_EQ(got, i * 3 + 1);
  }
  ASSERT_OK(wp_chan_close(pp->a));
}

TEST(chan_pingpong) {
  struct pingpong pp = {.rounds = scaled(5000)};
  thr ping, echo;
  ASSERT_OK(wp_chan_create(sizeof(int), 1, &pp.a));
  ASSERT_OK(wp_chan_create(sizeof(int), 1, &pp.b));
  ASSERT_OK(wp_ctx_with_cancel(NULL, &pp.ctx));
  thr_start(&echo, echo_thread, &pp);
  thr_start(&ping, ping_thread, &pp);
  thr_join(&ping, STRESS_WATCHDOG_S, "ping side");
  thr_join(&echo, WATCHDOG_S, "echo side sees close");
  ASSERT_EQ(wp_chan_len(pp.a), 0);
  ASSERT_EQ(wp_chan_len(pp.b), 0);
  wp_ctx_release(pp.ctx);
  wp_chan_destroy(pp.a);
  wp_chan_destroy(pp.b);
}

/* N receivers on an empty channel; close wakes every one with WP_ECLOSED.
 * The barrier starts them together and each posts `ready` right before its
 * receive, so by the time the main thread has collected N posts most are
 * asleep in wp_chan_recv(); one that is not yet finds the channel closed and
 * empty, which must give the same result. A receiver that close fails to
 * wake trips the watchdog. */
TEST(chan_close_wakes_all_receivers) {
  enum { N = 8 };
  int rounds = scaled(20);
  for (int round = 0; round < rounds; round++) {
    wp_chan *c = NULL;
    pthread_barrier_t bar;
    sem_t ready;
    thr t[N];
    waiter w[N];
    ASSERT_OK(wp_chan_create(sizeof(int), 4, &c));
    ASSERT_EQ(pthread_barrier_init(&bar, NULL, N + 1), 0);
    ASSERT_EQ(sem_init(&ready, 0, 0), 0);
    /* Odd rounds: every receiver waits with the same live context, so the
     * context has several waiters at once. */
    wp_ctx *ctx = (round % 2) ? make_ctx(CX_LIVE) : NULL;
    for (int i = 0; i < N; i++) {
      w[i] = (waiter){.c = c,
                      .ctx = ctx,
                      .bar = &bar,
                      .ready = &ready,
                      .value = -1,
                      .rc = 1};
      thr_start(&t[i], recv_waiter, &w[i]);
    }
    pthread_barrier_wait(&bar);
    for (int i = 0; i < N; i++) sem_wait_bounded(&ready, WATCHDOG_S, "start");
    ASSERT_OK(wp_chan_close(c));
    for (int i = 0; i < N; i++) {
      thr_join(&t[i], WATCHDOG_S, "receiver woken by close");
      ASSERT_EQ(w[i].rc, WP_ECLOSED);
      ASSERT_EQ(w[i].value, -1);
    }
    ASSERT_EQ(wp_chan_len(c), 0);
    ASSERT_EQ(wp_chan_close(c), WP_ECLOSED);
    if (ctx) ASSERT_EQ(wp_ctx_err(ctx), 0);
    drop_ctx(ctx);
    pthread_barrier_destroy(&bar);
    sem_destroy(&ready);
    wp_chan_destroy(c);
  }
}

/* N senders on a full channel; close wakes every one with WP_ECLOSED and
 * none of their items gets in: len stays, the original items drain in order,
 * then WP_ECLOSED. */
TEST(chan_close_wakes_all_senders) {
  enum { N = 8, CAP = 2 };
  int rounds = scaled(20);
  for (int round = 0; round < rounds; round++) {
    wp_chan *c = NULL;
    pthread_barrier_t bar;
    sem_t ready;
    thr t[N];
    waiter w[N];
    ASSERT_OK(wp_chan_create(sizeof(int), CAP, &c));
    for (int v = 1; v <= CAP; v++) ASSERT_OK(wp_chan_try_send(c, &v));
    ASSERT_EQ(pthread_barrier_init(&bar, NULL, N + 1), 0);
    ASSERT_EQ(sem_init(&ready, 0, 0), 0);
    wp_ctx *ctx = (round % 2) ? make_ctx(CX_LIVE) : NULL;
    for (int i = 0; i < N; i++) {
      w[i] = (waiter){.c = c,
                      .ctx = ctx,
                      .bar = &bar,
                      .ready = &ready,
                      .value = 100 + i,
                      .rc = 1};
      thr_start(&t[i], send_waiter, &w[i]);
    }
    pthread_barrier_wait(&bar);
    for (int i = 0; i < N; i++) sem_wait_bounded(&ready, WATCHDOG_S, "start");
    ASSERT_OK(wp_chan_close(c));
    for (int i = 0; i < N; i++) {
      thr_join(&t[i], WATCHDOG_S, "sender woken by close");
      ASSERT_EQ(w[i].rc, WP_ECLOSED);
    }
    ASSERT_EQ(wp_chan_len(c), CAP);
    for (int v = 1; v <= CAP; v++) {
      int got = -1;
      ASSERT_OK(wp_chan_recv(c, &got, NULL));
      ASSERT_EQ(got, v);
    }
    int got = -1;
    ASSERT_EQ(wp_chan_recv(c, &got, NULL), WP_ECLOSED);
    drop_ctx(ctx);
    pthread_barrier_destroy(&bar);
    sem_destroy(&ready);
    wp_chan_destroy(c);
  }
}

/* A blocked receive (empty channel) or send (full channel) returns
 * WP_ECANCELED when another thread cancels its context, or an ancestor of
 * it; the channel is unchanged and still works afterwards. */
TEST(chan_wait_canceled_from_other_thread_table) {
  static const struct {
    int recv_side;
    int depth; /* which context is canceled: 0 the waiter's, 1 its parent, 2
                  grandparent */
  } rows[] = {{1, 0}, {1, 1}, {1, 2}, {0, 0}, {0, 1}, {0, 2}};
  int rounds = scaled(10);
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    for (int round = 0; round < rounds; round++) {
      wp_chan *c = NULL;
      wp_ctx *chain[3]; /* chain[0] is the waiter's, chain[2] the oldest */
      sem_t ready;
      thr t;
      ASSERT_OK(wp_chan_create(sizeof(int), 2, &c));
      ASSERT_OK(wp_ctx_with_cancel(NULL, &chain[2]));
      ASSERT_OK(wp_ctx_with_cancel(chain[2], &chain[1]));
      ASSERT_OK(wp_ctx_with_cancel(chain[1], &chain[0]));
      ASSERT_EQ(sem_init(&ready, 0, 0), 0);
      waiter w = {.c = c, .ctx = chain[0], .ready = &ready, .value = 77};
      size_t len0 = 0;
      if (!rows[i].recv_side) {
        for (int v = 1; v <= 2; v++) ASSERT_OK(wp_chan_try_send(c, &v));
        len0 = 2;
      }
      thr_start(&t, rows[i].recv_side ? recv_waiter : send_waiter, &w);
      sem_wait_bounded(&ready, WATCHDOG_S, "waiter start");
      wp_ctx_cancel(chain[rows[i].depth]);
      thr_join(&t, WATCHDOG_S, "waiter woken by cancel");
      ASSERT_EQ(w.rc, WP_ECANCELED);
      ASSERT_EQ(wp_chan_len(c), len0);
      if (rows[i].recv_side) {
        ASSERT_EQ(w.value, 77); /* nothing was received */
      } else {
        int got;
        for (int v = 1; v <= 2; v++) {
          ASSERT_OK(wp_chan_try_recv(c, &got));
          ASSERT_EQ(got, v);
        }
      }
      int v = 5, got = 0; /* still a working channel */
      ASSERT_EQ(wp_chan_try_recv(c, &got), WP_EAGAIN);
      ASSERT_OK(wp_chan_try_send(c, &v));
      ASSERT_OK(wp_chan_try_recv(c, &got));
      ASSERT_EQ(got, 5);
      for (int k = 0; k < 3; k++) wp_ctx_release(chain[k]);
      sem_destroy(&ready);
      wp_chan_destroy(c);
    }
  }
}

/* A blocked receive or send with a timeout context returns WP_ETIMEDOUT by
 * itself (the library's timer ends the context; nobody polls), not before
 * the deadline, and leaves the channel unchanged. */
struct timed_wait {
  wp_chan *c;
  int recv_side;
  int64_t timeout;
  int64_t deadline, returned_at;
  int rc;
};

static void timed_wait_thread(void *p) {
  struct timed_wait *tw = p;
  wp_ctx *ctx = NULL;
  int v = 42;
  ASSERT_OK(wp_ctx_with_timeout(NULL, tw->timeout, &ctx));
  tw->deadline = wp_ctx_deadline(ctx);
  tw->rc = tw->recv_side ? wp_chan_recv(tw->c, &v, ctx)
                         : wp_chan_send(tw->c, &v, ctx);
  tw->returned_at = wp_now_ns();
  ASSERT_EQ(v, 42);
  ASSERT_EQ(wp_ctx_err(ctx), WP_ETIMEDOUT);
  wp_ctx_release(ctx);
}

TEST(chan_wait_timeout_table) {
  static const struct {
    int recv_side;
    int64_t timeout;
  } rows[] = {{1, 1 * MS}, {1, 20 * MS}, {0, 1 * MS}, {0, 20 * MS}};
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    wp_chan *c = NULL;
    thr t;
    ASSERT_OK(wp_chan_create(sizeof(int), 1, &c));
    int one = 1, got = 0;
    if (!rows[i].recv_side) ASSERT_OK(wp_chan_try_send(c, &one));
    struct timed_wait tw = {.c = c,
                            .recv_side = rows[i].recv_side,
                            .timeout = rows[i].timeout,
                            .rc = 1};
    thr_start(&t, timed_wait_thread, &tw);
    thr_join(&t, WATCHDOG_S, "wait with a timeout context");
    ASSERT_EQ(tw.rc, WP_ETIMEDOUT);
    ASSERT_GE(tw.returned_at, tw.deadline);
    ASSERT_EQ(wp_chan_len(c), rows[i].recv_side ? 0 : 1);
    if (!rows[i].recv_side) {
      ASSERT_OK(wp_chan_try_recv(c, &got));
      ASSERT_EQ(got, 1);
    }
    ASSERT_EQ(wp_chan_try_recv(c, &got), WP_EAGAIN);
    wp_chan_destroy(c);
  }
}

/* Two waiters on the same channel, one with a context: canceling it ends
 * that wait only. The other keeps waiting and gets the next item (receive),
 * or its item goes in once there is room (send), and the canceled sender's
 * item never appears. */
TEST(chan_cancel_one_waiter_others_stay) {
  int rounds = scaled(20);
  for (int round = 0; round < rounds; round++) {
    for (int recv_side = 0; recv_side <= 1; recv_side++) {
      wp_chan *c = NULL;
      wp_ctx *ctx = make_ctx(CX_LIVE);
      sem_t ready;
      thr t1, t2;
      ASSERT_OK(wp_chan_create(sizeof(int), 1, &c));
      ASSERT_EQ(sem_init(&ready, 0, 0), 0);
      int one = 1;
      if (!recv_side) ASSERT_OK(wp_chan_try_send(c, &one));
      waiter w1 = {.c = c, .ctx = ctx, .ready = &ready, .value = 2};
      waiter w2 = {.c = c, .ctx = NULL, .ready = &ready, .value = 3};
      void (*fn)(void *) = recv_side ? recv_waiter : send_waiter;
      thr_start(&t1, fn, &w1);
      thr_start(&t2, fn, &w2);
      sem_wait_bounded(&ready, WATCHDOG_S, "start");
      sem_wait_bounded(&ready, WATCHDOG_S, "start");
      wp_ctx_cancel(ctx);
      thr_join(&t1, WATCHDOG_S, "canceled waiter");
      ASSERT_EQ(w1.rc, WP_ECANCELED);
      int got = 0;
      if (recv_side) {
        int v = 7;
        ASSERT_OK(wp_chan_send(c, &v, NULL));
        thr_join(&t2, WATCHDOG_S, "other receiver gets the item");
        ASSERT_EQ(w2.rc, 0);
        ASSERT_EQ(w2.value, 7);
      } else {
        ASSERT_OK(wp_chan_recv(c, &got, NULL));
        ASSERT_EQ(got, 1);
        thr_join(&t2, WATCHDOG_S, "other sender gets in");
        ASSERT_EQ(w2.rc, 0);
        ASSERT_OK(wp_chan_try_recv(c, &got));
        ASSERT_EQ(got, 3); /* not 2: the canceled send left nothing behind */
      }
      ASSERT_EQ(wp_chan_try_recv(c, &got), WP_EAGAIN);
      drop_ctx(ctx);
      sem_destroy(&ready);
      wp_chan_destroy(c);
    }
  }
}

/* ---- MPMC stress ------------------------------------------------------------
 */

struct mpmc {
  wp_chan *c;
  int producers;
  uint32_t per; /* items per producer; item = producer * per + k */
  int timeouts; /* 1: waits use short timeout contexts and retry */
  wp_ctx *live; /* a context that never ends, used by some waits */
  atomic_uchar *seen;
  atomic_ullong sum;
  atomic_uint received;
};

struct mpmc_arg {
  struct mpmc *m;
  uint32_t id;
  uint64_t seed;
};

/* A fresh context for one wait: NULL, the shared live one, or (timeout
 * mode) a timeout of 0-200 us, so waits end by deadline all the time. */
static wp_ctx *mpmc_ctx(struct mpmc *m, uint64_t *rng, int *owned) {
  *owned = 0;
  if (m->timeouts && rng_below(rng, 2)) {
    wp_ctx *c = NULL;
    ASSERT_OK(wp_ctx_with_timeout(NULL, (int64_t)rng_below(rng, 200000), &c));
    *owned = 1;
    return c;
  }
  return rng_below(rng, 2) ? m->live : NULL;
}

static void mpmc_producer(void *p) {
  struct mpmc_arg *a = p;
  struct mpmc *m = a->m;
  uint64_t rng = a->seed;
  for (uint32_t k = 0; k < m->per;) {
    uint32_t item = a->id * m->per + k;
    int rc;
    if (rng_below(&rng, 4) == 0) { /* the pool's batch send: 1-8 items */
      uint32_t batch[8], n = 1 + (uint32_t)rng_below(&rng, 8);
      if (n > m->per - k) n = m->per - k;
      for (uint32_t i = 0; i < n; i++) batch[i] = item + i;
      ASSERT_OK(wp__chan_send_all(m->c, batch, n));
      k += n;
      continue;
    }
    if (rng_below(&rng, 3) == 0) {
      rc = wp_chan_try_send(m->c, &item);
      if (rc == WP_EAGAIN) continue;
    } else {
      int owned;
      wp_ctx *ctx = mpmc_ctx(m, &rng, &owned);
      rc = wp_chan_send(m->c, &item, ctx);
      if (owned) wp_ctx_release(ctx);
      if (rc == WP_ETIMEDOUT && m->timeouts) continue; /* item still ours */
    }
    ASSERT_OK(rc);
    k++;
  }
}

static void mpmc_consumer(void *p) {
  struct mpmc_arg *a = p;
  struct mpmc *m = a->m;
  uint64_t rng = a->seed;
  uint32_t total = (uint32_t)m->producers * m->per;
  int64_t *last = malloc(sizeof *last * (size_t)m->producers);
  ASSERT(last != NULL);
  for (int i = 0; i < m->producers; i++) last[i] = -1;
  for (;;) {
    uint32_t item = UINT32_MAX;
    int owned, rc;
    wp_ctx *ctx = mpmc_ctx(m, &rng, &owned);
    rc = wp_chan_recv(m->c, &item, ctx);
    if (owned) wp_ctx_release(ctx);
    if (rc == WP_ECLOSED) break;
    if (rc == WP_ETIMEDOUT && m->timeouts) continue;
    ASSERT_OK(rc);
    ASSERT_LT(item, total);
    unsigned prev = atomic_fetch_add(&m->seen[item], 1);
    if (prev != 0) WP_FAIL_("item %u received twice", item);
    /* One producer's items enter in order and the channel is FIFO, so any
     * one consumer sees each producer's items in increasing order. */
    uint32_t from = item / m->per;
    ASSERT_GT((int64_t)item, last[from]);
    last[from] = item;
    atomic_fetch_add(&m->sum, item);
    atomic_fetch_add(&m->received, 1);
  }
  free(last);
}

static void mpmc_run(int producers, int consumers, size_t cap, uint32_t per,
                     int timeouts, uint64_t seed) {
  struct mpmc m = {.producers = producers, .per = per, .timeouts = timeouts};
  uint32_t total = (uint32_t)producers * per;
  thr *pt = calloc((size_t)producers, sizeof *pt);
  thr *ct = calloc((size_t)consumers, sizeof *ct);
  struct mpmc_arg *pa = calloc((size_t)producers, sizeof *pa);
  struct mpmc_arg *ca = calloc((size_t)consumers, sizeof *ca);
  m.seen = calloc(total, sizeof *m.seen);
  ASSERT(pt && ct && pa && ca && m.seen);
  for (uint32_t i = 0; i < total; i++) atomic_init(&m.seen[i], 0);
  atomic_init(&m.sum, 0);
  atomic_init(&m.received, 0);
  ASSERT_OK(wp_chan_create(sizeof(uint32_t), cap, &m.c));
  ASSERT_OK(wp_ctx_with_cancel(NULL, &m.live));
  for (int i = 0; i < consumers; i++) {
    ca[i] = (struct mpmc_arg){&m, (uint32_t)i, rng_next(&seed)};
    thr_start(&ct[i], mpmc_consumer, &ca[i]);
  }
  for (int i = 0; i < producers; i++) {
    pa[i] = (struct mpmc_arg){&m, (uint32_t)i, rng_next(&seed)};
    thr_start(&pt[i], mpmc_producer, &pa[i]);
  }
  for (int i = 0; i < producers; i++)
    thr_join(&pt[i], STRESS_WATCHDOG_S, "producer");
  ASSERT_OK(wp_chan_close(m.c));
  for (int i = 0; i < consumers; i++)
    thr_join(&ct[i], STRESS_WATCHDOG_S, "consumer");
  ASSERT_EQ(atomic_load(&m.received), total);
  for (uint32_t i = 0; i < total; i++)
    if (atomic_load(&m.seen[i]) != 1)
      WP_FAIL_("item %u received %u times", i,
               (unsigned)atomic_load(&m.seen[i]));
  ASSERT_EQ(atomic_load(&m.sum), (unsigned long long)total * (total - 1) / 2);
  ASSERT_EQ(wp_chan_len(m.c), 0);
  ASSERT_EQ(wp_ctx_err(m.live), 0);
  wp_ctx_release(m.live);
  wp_chan_destroy(m.c);
  free(m.seen);
  free(pt);
  free(ct);
  free(pa);
  free(ca);
}

TEST(chan_mpmc_stress_table) {
  static const struct {
    int p, c;
    size_t cap;
    int per;
  } rows[] = {
      {1, 1, 1, 4000},  {4, 4, 8, 2500}, {2, 6, 3, 3000},
      {6, 2, 64, 1500}, {3, 3, 1, 2000},
  };
  uint64_t seed = wp_test_seed();
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
    mpmc_run(rows[i].p, rows[i].c, rows[i].cap, (uint32_t)scaled(rows[i].per),
             0, rng_next(&seed));
}

/* The same, with waits constantly ended by tiny deadlines and retried: a
 * wait that ends with an error must leave the item with the sender and the
 * channel unchanged, even when the deadline races with an item or room. */
TEST(chan_mpmc_stress_with_timeouts) {
  uint64_t seed = wp_test_seed();
  mpmc_run(3, 3, 2, (uint32_t)scaled(1500), 1, rng_next(&seed));
  mpmc_run(2, 2, 1, (uint32_t)scaled(1000), 1, rng_next(&seed));
}

/* A batch send blocked on a full channel and ended by close: it returns
 * WP_ECLOSED, and what it got in before is a prefix of the batch, received
 * in order. */
struct batch_close {
  wp_chan *c;
  int rc;
};

static void batch_sender(void *p) {
  struct batch_close *b = p;
  uint32_t items[10];
  for (uint32_t i = 0; i < 10; i++) items[i] = i;
  b->rc = wp__chan_send_all(b->c, items, 10);
}

TEST(chan_batch_send_ended_by_close_sends_a_prefix) {
  struct batch_close b = {NULL, -1};
  thr t;
  ASSERT_OK(wp_chan_create(sizeof(uint32_t), 4, &b.c));
  thr_start(&t, batch_sender, &b);
  /* The sender fills the channel and waits for room (half of it). */
  int64_t until = wp_now_ns() + WATCHDOG_S * 1000 * MS;
  while (wp_chan_len(b.c) < 4) {
    if (wp_now_ns() > until) WP_FAIL_("the batch never filled the channel");
    sched_yield();
  }
  uint32_t item = UINT32_MAX;
  ASSERT_OK(wp_chan_recv(b.c, &item, NULL));
  ASSERT_EQ(item, 0u);
  ASSERT_OK(wp_chan_close(b.c));
  thr_join(&t, WATCHDOG_S, "batch sender");
  ASSERT_EQ(b.rc, WP_ECLOSED);
  uint32_t next = 1;
  int rc;
  while ((rc = wp_chan_recv(b.c, &item, NULL)) == 0) {
    ASSERT_EQ(item, next);
    next++;
  }
  ASSERT_EQ(rc, WP_ECLOSED);
  /* 1-3 were in; the one freed slot may have taken 4 before the close. */
  ASSERT(next == 4 || next == 5);
  wp_chan_destroy(b.c);
}

/* A batch send into a channel with two receivers asleep wakes both: a
 * receiver that was woken takes one item and does not pass the wake on, so
 * a single signal would leave the second asleep with an item there (until
 * the next send or a close, and this test sends nothing more). */
struct batch_recv {
  wp_chan *c;
  uint32_t item;
  int rc;
};

static void batch_receiver(void *p) {
  struct batch_recv *r = p;
  r->rc = wp_chan_recv(r->c, &r->item, NULL);
}

TEST(chan_batch_send_wakes_every_sleeping_receiver) {
  for (int round = 0; round < 20; round++) {
    wp_chan *c;
    ASSERT_OK(wp_chan_create(sizeof(uint32_t), 8, &c));
    struct batch_recv r[2] = {{c, UINT32_MAX, -1}, {c, UINT32_MAX, -1}};
    thr t[2];
    thr_start(&t[0], batch_receiver, &r[0]);
    thr_start(&t[1], batch_receiver, &r[1]);
    /* Both announced as waiting: each is asleep, or about to be under the
     * channel's mutex (the send's wake takes it). */
    int64_t until = wp_now_ns() + WATCHDOG_S * 1000 * MS;
    while (wp__chan_recv_waiters(c) < 2) {
      if (wp_now_ns() > until) WP_FAIL_("the receivers never waited");
      sched_yield();
    }
    uint32_t items[2] = {7, 8};
    ASSERT_OK(wp__chan_send_all(c, items, 2));
    thr_join(&t[0], WATCHDOG_S, "receiver 1");
    thr_join(&t[1], WATCHDOG_S, "receiver 2");
    ASSERT_OK(r[0].rc);
    ASSERT_OK(r[1].rc);
    ASSERT_EQ(r[0].item + r[1].item, 15u);
    wp_chan_destroy(c);
  }
}

/* ---- the readiness descriptor ---------------------------------------------
 */

/* Readable exactly while a try-receive would not return WP_EAGAIN: an item
 * is there, or the channel is closed. Checked after every step. */
TEST(chan_fd_transitions_table) {
  static const struct {
    enum op op;
    int rc;
    int readable; /* after the step */
  } steps[] = {
      {OP_TRY_RECV, WP_EAGAIN, 0},
      {OP_TRY_SEND, 0, 1},
      {OP_TRY_SEND, 0, 1},
      {OP_TRY_SEND, WP_EAGAIN, 1}, /* full */
      {OP_TRY_RECV, 0, 1},
      {OP_TRY_RECV, 0, 0}, /* empty */
      {OP_TRY_RECV, WP_EAGAIN, 0},
      {OP_SEND, 0, 1},
      {OP_RECV, 0, 0},
      {OP_SEND, 0, 1},
      {OP_SEND, 0, 1},
      {OP_TRY_RECV, 0, 1},
      {OP_CLOSE, 0, 1}, /* closed with an item */
      {OP_TRY_SEND, WP_ECLOSED, 1},
      {OP_CLOSE, WP_ECLOSED, 1},
      {OP_TRY_RECV, 0, 1}, /* closed and drained: still readable */
      {OP_TRY_RECV, WP_ECLOSED, 1},
      {OP_RECV, WP_ECLOSED, 1},
  };
  wp_chan *c = NULL;
  int fd = -1, fd2 = -1, v = 0;
  ASSERT_OK(wp_chan_create(sizeof(int), 2, &c));
  ASSERT_OK(wp_chan_fd(c, &fd));
  ASSERT(fd >= 0);
  ASSERT(!fd_readable(fd));
  for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
    int rc = 0;
    switch (steps[i].op) {
      case OP_TRY_SEND:
        rc = wp_chan_try_send(c, &v);
        break;
      case OP_SEND:
        rc = wp_chan_send(c, &v, NULL);
        break;
      case OP_TRY_RECV:
        rc = wp_chan_try_recv(c, &v);
        break;
      case OP_RECV:
        rc = wp_chan_recv(c, &v, NULL);
        break;
      case OP_CLOSE:
        rc = wp_chan_close(c);
        break;
    }
    if (rc != steps[i].rc)
      WP_FAIL_("step %zu: rc %d, want %d", i, rc, steps[i].rc);
    if (fd_readable(fd) != steps[i].readable)
      WP_FAIL_("step %zu: readable %d, want %d", i, !steps[i].readable,
               steps[i].readable);
    if (fd_readable(fd) != steps[i].readable) /* polling does not consume it */
      WP_FAIL_("step %zu: readiness changed by poll", i);
  }
  ASSERT_OK(wp_chan_fd(c, &fd2));
  ASSERT_EQ(fd2, fd); /* one descriptor per channel */
  wp_chan_destroy(c);

  /* Closing an empty channel makes an existing descriptor readable. */
  ASSERT_OK(wp_chan_create(sizeof(int), 2, &c));
  ASSERT_OK(wp_chan_fd(c, &fd));
  ASSERT(!fd_readable(fd));
  ASSERT_OK(wp_chan_close(c));
  ASSERT(fd_readable(fd));
  ASSERT_EQ(wp_chan_try_recv(c, &v), WP_ECLOSED);
  ASSERT(fd_readable(fd));
  wp_chan_destroy(c);

  /* Created on first use while items are inside, or after close: readable
   * at once. */
  for (int closed = 0; closed <= 1; closed++) {
    ASSERT_OK(wp_chan_create(sizeof(int), 3, &c));
    if (!closed) {
      ASSERT_OK(wp_chan_try_send(c, &v));
      ASSERT_OK(wp_chan_try_send(c, &v));
    } else {
      ASSERT_OK(wp_chan_close(c));
    }
    ASSERT_OK(wp_chan_fd(c, &fd));
    ASSERT(fd_readable(fd));
    if (!closed) {
      ASSERT_OK(wp_chan_try_recv(c, &v));
      ASSERT(fd_readable(fd));
      ASSERT_OK(wp_chan_try_recv(c, &v));
      ASSERT(!fd_readable(fd));
    }
    wp_chan_destroy(c);
  }
}

/* Random operations against a model of a Go channel: return codes, values,
 * len and readiness must agree after every operation. The descriptor is
 * first asked for at a random step, the channel is closed at a random late
 * step. Replay with WP_TEST_SEED. */
TEST(chan_fd_random_model) {
  static const size_t caps[] = {1, 2, 5, 16};
  enum { OPS = 3000 };
  uint64_t rng = wp_test_seed();
  for (size_t ci = 0; ci < sizeof caps / sizeof caps[0]; ci++) {
    size_t cap = caps[ci];
    uint32_t q[16], head = 0, len = 0, next = 0;
    int closed = 0, fd = -1;
    int fd_at = (int)rng_below(&rng, 200);
    int close_at = OPS / 2 + (int)rng_below(&rng, OPS / 2);
    wp_chan *c = NULL;
    ASSERT_OK(wp_chan_create(sizeof(uint32_t), cap, &c));
    for (int i = 0; i < OPS; i++) {
      if (i == fd_at) ASSERT_OK(wp_chan_fd(c, &fd));
      uint32_t r = rng_below(&rng, 100), v = UINT32_MAX;
      int rc, want;
      if (i == close_at || (closed && r < 2)) {
        rc = wp_chan_close(c);
        want = closed ? WP_ECLOSED : 0;
        closed = 1;
      } else if (r < 50) { /* send: blocking only where it cannot wait */
        int blocking = r < 10 && (closed || len < cap);
        v = next;
        rc = blocking ? wp_chan_send(c, &v, NULL) : wp_chan_try_send(c, &v);
        want = closed ? WP_ECLOSED : len == cap ? WP_EAGAIN : 0;
        if (want == 0) q[(head + len++) % cap] = next++;
      } else {
        int blocking = r < 60 && (closed || len > 0);
        rc = blocking ? wp_chan_recv(c, &v, NULL) : wp_chan_try_recv(c, &v);
        want = len > 0 ? 0 : closed ? WP_ECLOSED : WP_EAGAIN;
        if (want == 0) {
          if (v != q[head])
            WP_FAIL_("op %d: received %u, want %u", i, v, q[head]);
          head = (head + 1) % (uint32_t)cap;
          len--;
        }
      }
      if (rc != want)
        WP_FAIL_("op %d (cap %zu): rc %d, want %d", i, cap, rc, want);
      if (wp_chan_len(c) != len)
        WP_FAIL_("op %d (cap %zu): len %zu, want %u", i, cap, wp_chan_len(c),
                 len);
      if (fd >= 0 && fd_readable(fd) != (len > 0 || closed))
        WP_FAIL_("op %d (cap %zu, len %u, closed %d): readable %d", i, cap, len,
                 closed, !(len > 0 || closed));
    }
    wp_chan_destroy(c);
  }
}

/* An event loop's view: a thread polls the descriptor with no timeout and is
 * woken by a send from another thread, then by close. */
struct poller {
  wp_chan *c;
  sem_t *ready;
  int rc, value;
};

static void poll_then_recv(void *p) {
  struct poller *pl = p;
  int fd = -1;
  ASSERT_OK(wp_chan_fd(pl->c, &fd));
  sem_post(pl->ready);
  struct pollfd pfd = {.fd = fd, .events = POLLIN};
  int r;
  do r = poll(&pfd, 1, -1);
  while (r < 0 && errno == EINTR);
  ASSERT_EQ(r, 1);
  ASSERT(pfd.revents & POLLIN);
  pl->rc = wp_chan_try_recv(pl->c, &pl->value);
}

TEST(chan_fd_wakes_poller) {
  int rounds = scaled(20);
  for (int round = 0; round < rounds; round++) {
    wp_chan *c = NULL;
    sem_t ready;
    thr t;
    ASSERT_OK(wp_chan_create(sizeof(int), 1, &c));
    ASSERT_EQ(sem_init(&ready, 0, 0), 0);
    if (round % 2) { /* descriptor already exists when the poller starts */
      int fd;
      ASSERT_OK(wp_chan_fd(c, &fd));
    }
    struct poller pl = {.c = c, .ready = &ready, .rc = 1, .value = -1};
    thr_start(&t, poll_then_recv, &pl);
    sem_wait_bounded(&ready, WATCHDOG_S, "poller start");
    int v = 300 + round;
    ASSERT_OK(wp_chan_send(c, &v, NULL));
    thr_join(&t, WATCHDOG_S, "poller woken by send");
    ASSERT_EQ(pl.rc, 0);
    ASSERT_EQ(pl.value, 300 + round);

    pl = (struct poller){.c = c, .ready = &ready, .rc = 1, .value = -1};
    thr_start(&t, poll_then_recv, &pl);
    sem_wait_bounded(&ready, WATCHDOG_S, "poller start");
    ASSERT_OK(wp_chan_close(c));
    thr_join(&t, WATCHDOG_S, "poller woken by close");
    ASSERT_EQ(pl.rc, WP_ECLOSED);
    sem_destroy(&ready);
    wp_chan_destroy(c);
  }
}

int main(int argc, char **argv) { return wp_test_main(argc, argv); }
