/* Unit tests of the lock-free submission ring (src/core/jring.h): the
 * pool's inbox.
 *
 * What is checked: FIFO order and wrap-around on one thread; pop on empty;
 * many producers and consumers at once with every item popped exactly once,
 * whole (its three words belong together), and each producer's items in
 * its order; close at a random moment while
 * producers push: every push that returned 0 is drained, none that returned
 * -1 is, and nothing is pushed after the close.
 *
 * As in the pool, the number of items in the ring never exceeds its room:
 * producers take a token (a semaphore) per item and consumers give it back,
 * so the ring is never full and a push only ever waits for a late popper.
 * Threads are coordinated with semaphores and barriers, never with sleeps.
 */
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/jring.h"
#include "wp_test.h"

/* An item's id is producer << 32 | sequence; its arg and key are derived
 * from the id, so that an item torn between two pushes shows. */
static wp__jitem item_of(unsigned prod, uint32_t seq) {
  uint64_t id = ((uint64_t)prod << 32) | seq;
  wp__jitem it = {id, (void *)(uintptr_t)(id * 3 + 1), ~id};
  return it;
}
static bool whole(const wp__jitem *it) {
  return it->arg == (void *)(uintptr_t)(it->id * 3 + 1) && it->key == ~it->id;
}
static unsigned prod_of(const wp__jitem *it) {
  return (unsigned)(it->id >> 32);
}
static uint32_t seq_of(const wp__jitem *it) {
  return (uint32_t)(it->id & 0xffffffffu);
}
static int push(wp__jring *r, unsigned prod, uint32_t seq) {
  wp__jitem it = item_of(prod, seq);
  return wp__jring_push(r, &it);
}

TEST(jring_fifo_and_wraparound) {
  wp__jring r;
  wp__jitem it;
  ASSERT_EQ(wp__jring_init(&r, 5), 0); /* room rounds up to 8 */
  ASSERT(!wp__jring_pop(&r, &it));
  ASSERT(!wp__jring_nonempty(&r));
  uint32_t next_in = 0, next_out = 0;
  /* Vary the fill level so that every cell is reused at every phase. */
  for (unsigned round = 0; round < 1000; round++) {
    unsigned k = 1 + round % 5;
    for (unsigned i = 0; i < k; i++) ASSERT_EQ(push(&r, 0, next_in++), 0);
    ASSERT(wp__jring_nonempty(&r));
    for (unsigned i = 0; i < k; i++) {
      ASSERT(wp__jring_pop(&r, &it));
      ASSERT(whole(&it));
      ASSERT_EQ(seq_of(&it), next_out);
      next_out++;
    }
    ASSERT(!wp__jring_pop(&r, &it));
    ASSERT(!wp__jring_nonempty(&r));
  }
  ASSERT_EQ(wp__jring_head(&r), (size_t)next_in);
  wp__jring_free(&r);
}

TEST(jring_close_ends_pushes) {
  wp__jring r;
  wp__jitem it;
  ASSERT_EQ(wp__jring_init(&r, 4), 0);
  ASSERT_EQ(push(&r, 0, 0), 0);
  ASSERT_EQ(push(&r, 0, 1), 0);
  ASSERT_EQ(wp__jring_close(&r), (size_t)2);
  ASSERT_EQ(push(&r, 0, 2), -1);
  /* What was pushed before the close is still there, in order. */
  ASSERT(wp__jring_pop(&r, &it));
  ASSERT_EQ(seq_of(&it), 0u);
  ASSERT(wp__jring_pop(&r, &it));
  ASSERT_EQ(seq_of(&it), 1u);
  ASSERT(!wp__jring_pop(&r, &it));
  ASSERT_EQ(wp__jring_close(&r), (size_t)2); /* again: the same end */
  wp__jring_free(&r);
}

#define NPROD 4
#define NCONS 3

typedef struct shared {
  wp__jring r;
  sem_t room;             /* tokens: items that may be in the ring */
  pthread_barrier_t go;   /* everyone starts together */
  uint32_t per_prod;      /* items each producer tries to push */
  atomic_uint producing;  /* producers still pushing */
  atomic_bool closed;     /* close test: the ring was closed */
  uint32_t pushed[NPROD]; /* pushes that returned 0 */
  uint8_t *seen;          /* [NPROD * per_prod] pops per item */
  atomic_uint bad;        /* order or identity violations */
  /* The pool's pattern: pops under a lock with wp__jring_pop_1. */
  bool pop_1;
  pthread_mutex_t mu;
} shared;

typedef struct prod_arg {
  shared *s;
  unsigned id;
} prod_arg;

static void *producer(void *arg) {
  prod_arg *a = arg;
  shared *s = a->s;
  pthread_barrier_wait(&s->go);
  uint32_t i;
  for (i = 0; i < s->per_prod; i++) {
    while (sem_wait(&s->room) != 0) {
    }
    if (push(&s->r, a->id, i) != 0) {
      sem_post(&s->room);
      break; /* closed: nothing more can go in */
    }
  }
  s->pushed[a->id] = i;
  atomic_fetch_sub(&s->producing, 1);
  return NULL;
}

/* Pops until the producers are done and the ring is empty. Each producer's
 * items must come out in its order (one consumer sees a subsequence). */
static void *consumer(void *arg) {
  shared *s = arg;
  int64_t last[NPROD];
  for (unsigned p = 0; p < NPROD; p++) last[p] = -1;
  pthread_barrier_wait(&s->go);
  unsigned spins = 0;
  for (;;) {
    wp__jitem it;
    bool got;
    if (s->pop_1) {
      pthread_mutex_lock(&s->mu);
      got = wp__jring_pop_1(&s->r, &it);
      pthread_mutex_unlock(&s->mu);
    } else {
      got = wp__jring_pop(&s->r, &it);
    }
    if (!got) {
      if (atomic_load(&s->producing) == 0 && !wp__jring_nonempty(&s->r)) break;
      if (atomic_load(&s->closed)) break; /* the closer drains the rest */
      wp__backoff(&spins);
      continue;
    }
    unsigned p = prod_of(&it);
    uint32_t q = seq_of(&it);
    if (!whole(&it) || p >= NPROD || q >= s->per_prod ||
        (int64_t)q <= last[p]) {
      atomic_fetch_add(&s->bad, 1);
    } else {
      last[p] = q;
      s->seen[(size_t)p * s->per_prod + q]++;
    }
    sem_post(&s->room);
  }
  return NULL;
}

static void shared_init(shared *s, uint32_t per_prod, unsigned room) {
  memset(s, 0, sizeof *s);
  s->per_prod = per_prod;
  if (wp__jring_init(&s->r, room) != 0) abort();
  sem_init(&s->room, 0, room);
  pthread_mutex_init(&s->mu, NULL);
  pthread_barrier_init(&s->go, NULL, NPROD + NCONS + 1);
  atomic_init(&s->producing, NPROD);
  s->seen = calloc((size_t)NPROD * per_prod, 1);
  if (!s->seen) abort();
}

static void shared_destroy(shared *s) {
  free(s->seen);
  pthread_mutex_destroy(&s->mu);
  pthread_barrier_destroy(&s->go);
  sem_destroy(&s->room);
  wp__jring_free(&s->r);
}

/* Starts the producers and consumers; they begin together, with the
 * caller, at s->go. */
static void start_threads(shared *s, pthread_t *pt, pthread_t *ct,
                          prod_arg *pa) {
  for (unsigned i = 0; i < NPROD; i++) {
    pa[i] = (prod_arg){s, i};
    ASSERT_EQ(pthread_create(&pt[i], NULL, producer, &pa[i]), 0);
  }
  for (unsigned i = 0; i < NCONS; i++)
    ASSERT_EQ(pthread_create(&ct[i], NULL, consumer, s), 0);
  pthread_barrier_wait(&s->go);
}

static void run_mpmc(bool pop_1);

/* Every item popped exactly once, whole, in each producer's order:
 * lock-free on both sides, and with the poppers serialized by a lock
 * (pop_1, as the pool drains its inbox). */
TEST(jring_mpmc_every_item_exactly_once) {
  run_mpmc(false);
  run_mpmc(true);
}

static void run_mpmc(bool pop_1) {
  shared s;
  uint32_t per = (uint32_t)(15000 * wp_test_scale());
  /* Little room: pushers and poppers meet on the same cells all the time. */
  shared_init(&s, per, 8);
  s.pop_1 = pop_1;
  pthread_t pt[NPROD], ct[NCONS];
  prod_arg pa[NPROD];
  start_threads(&s, pt, ct, pa);
  for (unsigned i = 0; i < NPROD; i++) pthread_join(pt[i], NULL);
  for (unsigned i = 0; i < NCONS; i++) pthread_join(ct[i], NULL);
  ASSERT_EQ(atomic_load(&s.bad), 0u);
  for (unsigned p = 0; p < NPROD; p++) {
    ASSERT_EQ(s.pushed[p], per);
    for (uint32_t q = 0; q < per; q++)
      ASSERT_EQ(s.seen[(size_t)p * per + q], 1);
  }
  wp__jitem it;
  ASSERT(!wp__jring_pop(&s.r, &it));
  shared_destroy(&s);
}

/* As the pool closes its inbox: close at a random moment, then pop until
 * the end position close returned, waiting for pushes still in progress. */
TEST(jring_close_while_pushing_drains_exactly_the_accepted) {
  unsigned seed = (unsigned)wp_test_seed();
  unsigned rounds = (unsigned)(40 * wp_test_scale());
  for (unsigned round = 0; round < rounds; round++) {
    shared s;
    uint32_t per = 20000;
    shared_init(&s, per, 16);
    pthread_t pt[NPROD], ct[NCONS];
    prod_arg pa[NPROD];
    start_threads(&s, pt, ct, pa);
    /* A random moment: after some number of pops (rand_r, seeded). */
    size_t after = (size_t)(rand_r(&seed) % (NPROD * 2000u));
    unsigned spins = 0;
    while (wp__jring_head(&s.r) < after && atomic_load(&s.producing) > 0)
      wp__backoff(&spins);
    size_t end = wp__jring_close(&s.r);
    atomic_store(&s.closed, true);
    for (unsigned i = 0; i < NCONS; i++) pthread_join(ct[i], NULL);
    /* The consumers stopped; the closer drains what is left, as the pool
     * does under its lock. Producers blocked on room are freed by it. */
    unsigned bad = 0;
    while (wp__jring_head(&s.r) < end) {
      wp__jitem it;
      if (!wp__jring_pop(&s.r, &it)) {
        wp__backoff(&spins);
        continue;
      }
      unsigned p = prod_of(&it);
      uint32_t q = seq_of(&it);
      if (!whole(&it) || p >= NPROD || q >= per)
        bad++;
      else
        s.seen[(size_t)p * per + q]++;
      sem_post(&s.room);
    }
    for (unsigned i = 0; i < NPROD; i++) pthread_join(pt[i], NULL);
    ASSERT_EQ(bad, 0u);
    ASSERT_EQ(atomic_load(&s.bad), 0u);
    /* Nothing after the end, and nothing can be pushed now. */
    wp__jitem it;
    ASSERT(!wp__jring_pop(&s.r, &it));
    ASSERT_EQ(push(&s.r, 0, 0), -1);
    size_t total = 0;
    for (unsigned p = 0; p < NPROD; p++) {
      total += s.pushed[p];
      /* Exactly the pushes that returned 0: a prefix of each producer's. */
      for (uint32_t q = 0; q < per; q++)
        ASSERT_EQ(s.seen[(size_t)p * per + q], q < s.pushed[p] ? 1 : 0);
    }
    ASSERT_EQ(total, end);
    shared_destroy(&s);
  }
}

int main(int argc, char **argv) { return wp_test_main(argc, argv); }
