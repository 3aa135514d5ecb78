/* The durable stores' pure decoders, the SQLite state (against a real
 * SQLite file), and the pool hooks a store resumes with (on_retry,
 * wp_pool_submit_resumed). */
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store.h"
#include "wp_test.h"
#include "wpool/wpool.h"

#define MS 1000000LL

/* ---- decoders -------------------------------------------------------- */

#define C(s) \
  { s, sizeof(s) - 1 }
#define NUL \
  { NULL, 0 }

TEST(decode_result_valid_rows) {
  wp__col ok[] = {C("7"), C("http://a/"), C("1"),    C("200"),
                  NUL,    C("2"),         C("12.5"), C("100")};
  wp__outrec r;
  char err[128];
  ASSERT_EQ(wp__store_decode_result(ok, 8, &r, err, sizeof err), 0);
  ASSERT_EQ(r.id, 7);
  ASSERT_EQ(r.url_len, 9);
  ASSERT(r.ok);
  ASSERT_EQ(r.status, 200);
  ASSERT(r.error == NULL);
  ASSERT_EQ(r.attempts, 2);
  ASSERT(r.elapsed_ms == 12.5);
  ASSERT_EQ(r.bytes, 100);
  /* PostgreSQL's booleans, a failure with no status. */
  wp__col pg[] = {C("9"),       C("x"), C("f"), NUL,
                  C("refused"), C("0"), C("0"), C("0")};
  ASSERT_EQ(wp__store_decode_result(pg, 8, &r, err, sizeof err), 0);
  ASSERT(!r.ok);
  ASSERT_EQ(r.status, -1);
  ASSERT_STREQ(r.error, "refused");
}

TEST(decode_result_bad_rows_name_the_column) {
  static const struct {
    int col;
    wp__col v;
    const char *want;
  } cases[] = {
      {0, C("0"), "id"},
      {0, C("-1"), "id"},
      {0, C("1x"), "id"},
      {0, C(""), "id"},
      {0, NUL, "id"},
      {0, C("99999999999999999999"), "id"},
      {1, NUL, "url"},
      {2, C("2"), "ok"},
      {2, C("true"), "ok"},
      {3, C("99"), "status"},
      {3, C("1000"), "status"},
      {3, C("2OO"), "status"},
      {4, C(""), "error"},
      {4, C("boom"), "ok/error"},
      {5, C("-1"), "attempts"},
      {5, C("4294967296"), "attempts"},
      {6, C("nan"), "elapsed_ms"},
      {6, C("inf"), "elapsed_ms"},
      {6, C("-1"), "elapsed_ms"},
      {6, C("1e999"), "elapsed_ms"},
      {6, C("0x10"), "elapsed_ms"},
      {7, C("-5"), "bytes"},
      {7, NUL, "bytes"},
      /* A NUL inside a number is damage, not its end (fuzz_store found
       * "12\0x" read as 12). */
      {0, C("12\0x"), "id"},
      {6, C("1\0005"), "elapsed_ms"}, /* \000 then 5 */
      {7, C("5\0000"), "bytes"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    wp__col row[] = {C("7"), C("http://a/"), C("1"),    C("200"),
                     NUL,    C("2"),         C("12.5"), C("100")};
    row[cases[i].col] = cases[i].v;
    wp__outrec r;
    char err[128] = "";
    if (wp__store_decode_result(row, 8, &r, err, sizeof err) != -1)
      WP_FAIL_("case %zu: accepted", i);
    if (!strstr(err, cases[i].want))
      WP_FAIL_("case %zu: '%s' does not name %s", i, err, cases[i].want);
  }
  wp__outrec r;
  char err[128];
  wp__col short_row[] = {C("7")};
  ASSERT_EQ(wp__store_decode_result(short_row, 1, &r, err, sizeof err), -1);
}

/* Quoting for messages: always NUL-terminated within dstlen, and cut only
 * before a byte whose form does not fit (it used to stop five bytes short
 * of the end: fuzz_store found "abcdefghi" in 10 bytes given as "abcde"). */
TEST(store_quote_fits_and_cuts_only_when_needed) {
  char d[10];
  wp__store_quote(d, sizeof d, "abcdefghi", 9);
  ASSERT_STREQ(d, "abcdefghi");
  wp__store_quote(d, sizeof d, "abcdefghij", 10);
  ASSERT_STREQ(d, "abcdefghi");
  wp__store_quote(d, sizeof d, "abcdef\x01", 7);
  ASSERT_STREQ(d, "abcdef"); /* "\x01" needs 4 more and the NUL: 11 */
  wp__store_quote(d, sizeof d, "abcde\\", 6);
  ASSERT_STREQ(d, "abcde\\x5c"); /* exactly 10 with the NUL */
  wp__store_quote(d, 1, "abc", 3);
  ASSERT_STREQ(d, "");
  wp__store_quote(d, 2, "abc", 3);
  ASSERT_STREQ(d, "a");
  wp__store_quote(d, 4, "\xff", 1);
  ASSERT_STREQ(d, "");
  wp__store_quote(d, 5, "\xffz", 2);
  ASSERT_STREQ(d, "\\xff");
  wp__store_quote(d, sizeof d, "a\0b", 3);
  ASSERT_STREQ(d, "a\\x00b");
}

/* The password never survives in a message, and one made of the mask's own
 * character ends (it used to be found again in its mask, forever). */
TEST(pg_redact_masks_every_occurrence_and_ends) {
  char msg[128];
  strcpy(msg, "auth failed for s3cret (s3cret)");
  wp__pg_redact(msg, "postgresql://u:s3cret@127.0.0.1:5/db");
  ASSERT(strstr(msg, "s3cret") == NULL);
  ASSERT_EQ(strcmp(msg, "auth failed for *** (***)"), 0);
  strcpy(msg, "pw *** and ** end");
  wp__pg_redact(msg, "postgresql://u:***@127.0.0.1:5/db");
  ASSERT_EQ(strcmp(msg, "pw *** and ** end"), 0);
  strcpy(msg, "x * y");
  wp__pg_redact(msg, "postgresql://u:*@127.0.0.1:5/db");
  ASSERT_EQ(strcmp(msg, "x * y"), 0);
}

TEST(decode_qjob) {
  wp__col ok[] = {C("42"), C("http://h/p"), NUL, C("3")};
  wp__qjob j;
  char err[128];
  ASSERT_EQ(wp__store_decode_qjob(ok, 4, &j, err, sizeof err), 0);
  ASSERT_EQ(j.id, 42);
  ASSERT_EQ(j.attempts, 3);
  ASSERT(j.bad == NULL);
  wp__col bad[] = {C("42"), C("zz"), C("not a URL"), C("1")};
  ASSERT_EQ(wp__store_decode_qjob(bad, 4, &j, err, sizeof err), 0);
  ASSERT_EQ(j.bad_len, 9);
  wp__col zero[] = {C("42"), C("zz"), NUL, C("0")}; /* claimed: >= 1 */
  ASSERT_EQ(wp__store_decode_qjob(zero, 4, &j, err, sizeof err), -1);
  wp__col noid[] = {C("x"), C("zz"), NUL, C("1")};
  ASSERT_EQ(wp__store_decode_qjob(noid, 4, &j, err, sizeof err), -1);
}

/* ---- the SQLite state ------------------------------------------------ */

typedef struct sink {
  pthread_mutex_t mu;
  int committed, failed;
  uint64_t order[16];
  int n;
} sink;

static void on_commit(void *token, bool committed, const char *err,
                      void *userdata) {
  (void)err;
  sink *s = userdata;
  pthread_mutex_lock(&s->mu);
  if (committed)
    s->committed++;
  else
    s->failed++;
  if (token && s->n < 16) s->order[s->n++] = (uint64_t)(uintptr_t)token;
  pthread_mutex_unlock(&s->mu);
}

static int collect(const wp__outrec *r, void *userdata) {
  wp__outrec *out = userdata;
  size_t i = 0;
  while (out[i].id) i++;
  out[i] = *r;
  char *u = malloc(r->url_len + 1);
  ASSERT(u != NULL);
  memcpy(u, r->url, r->url_len);
  out[i].url = u;
  out[i].error = r->error ? strdup(r->error) : NULL;
  return 0;
}

TEST(state_roundtrip_lock_and_lookup) {
  char path[] = "/tmp/wpool-state-XXXXXX";
  int fd = mkstemp(path);
  ASSERT(fd >= 0);
  close(fd);
  char err[512];
  wp__state *s;
  ASSERT_EQ(wp__state_open(path, &s, err, sizeof err), 0);
  ASSERT_EQ(wp__state_max_id(s), 0);
  wp__state *s2;
  ASSERT_EQ(wp__state_open(path, &s2, err, sizeof err), -1);
  ASSERT(strstr(err, "in use by another wpool process"));
  ASSERT(s2 == NULL);

  sink k = {.mu = PTHREAD_MUTEX_INITIALIZER};
  ASSERT_EQ(wp__state_start_writer(s, 2, on_commit, &k, err, sizeof err), 0);
  wp__state_rec rec;
  /* Pushed out of ID order: results come back in ID order. */
  uint64_t ids[] = {3, 1, 2};
  for (int i = 0; i < 3; i++) {
    memset(&rec, 0, sizeof rec);
    rec.done = ids[i] != 2;
    rec.run_at_unix_ns = 1234567;
    rec.r.id = ids[i];
    rec.r.url = ids[i] == 3 ? "http://x/\n\0y" : "http://x/";
    rec.r.url_len = ids[i] == 3 ? 12 : 9;
    rec.r.ok = ids[i] == 1;
    rec.r.status = ids[i] == 1 ? 200 : -1;
    rec.r.error = ids[i] == 1 ? NULL : "refused";
    rec.r.attempts = 2;
    rec.r.elapsed_ms = 1.5;
    rec.r.bytes = 10;
    wp__state_push(s, &rec, (void *)(uintptr_t)ids[i]);
  }
  wp__state_push(s, NULL, (void *)(uintptr_t)9); /* not stored, still told */
  ASSERT_EQ(wp__state_stop_writer(s, err, sizeof err), 0);
  ASSERT_EQ(k.committed, 4);
  ASSERT_EQ(k.failed, 0);
  ASSERT_EQ(k.order[0], 3); /* callbacks in push order */
  ASSERT_EQ(k.order[1], 1);
  ASSERT_EQ(k.order[3], 9);
  wp__state_close(s);

  ASSERT_EQ(wp__state_open(path, &s, err, sizeof err), 0);
  ASSERT_EQ(wp__state_max_id(s), 3);
  unsigned att = 0;
  int64_t run_at = 0;
  ASSERT_EQ(
      wp__state_lookup(s, 1, "http://x/", 9, &att, &run_at, err, sizeof err),
      WP__STATE_DONE);
  ASSERT_EQ(
      wp__state_lookup(s, 2, "http://x/", 9, &att, &run_at, err, sizeof err),
      WP__STATE_RETRY);
  ASSERT_EQ(att, 2);
  ASSERT_EQ(run_at, 1234567);
  ASSERT_EQ(wp__state_lookup(s, 3, "http://x/\n\0y", 12, &att, &run_at, err,
                             sizeof err),
            WP__STATE_DONE);
  ASSERT_EQ(
      wp__state_lookup(s, 1, "http://z/", 9, &att, &run_at, err, sizeof err),
      -2);
  ASSERT_STREQ(err, "the state has 'http://x/'");
  ASSERT_EQ(
      wp__state_lookup(s, 4, "http://x/", 9, &att, &run_at, err, sizeof err),
      WP__STATE_NEW);
  wp__state_close(s);

  wp__outrec got[8];
  memset(got, 0, sizeof got);
  ASSERT_EQ(wp__state_results(path, collect, got, err, sizeof err), 0);
  ASSERT_EQ(got[0].id, 1); /* the retry (2) has no final result */
  ASSERT_EQ(got[1].id, 3);
  ASSERT_EQ(got[2].id, 0);
  ASSERT(got[0].ok);
  ASSERT_EQ(got[0].status, 200);
  ASSERT_EQ(got[1].url_len, 12);
  ASSERT_EQ(memcmp(got[1].url, "http://x/\n\0y", 12), 0);
  ASSERT_STREQ(got[1].error, "refused");
  ASSERT_EQ(got[1].attempts, 2);
  for (int i = 0; i < 2; i++) {
    free((void *)got[i].url);
    free((void *)got[i].error);
  }
  unlink(path);
  char side[64];
  snprintf(side, sizeof side, "%s-wal", path);
  unlink(side);
  snprintf(side, sizeof side, "%s-shm", path);
  unlink(side);
}

/* ---- the pool hooks a store resumes with ------------------------------ */

typedef struct hooks {
  atomic_uint retry_calls;
  atomic_uint last_retry_attempts;
  atomic_uint first_attempt_seen;
  atomic_llong started_ns;
  unsigned fail_until; /* attempts below this fail */
  sem_t done;
  wp_result res;
} hooks;

static int flaky_task(wp_ctx *ctx, wp_job *job, void *wstate) {
  (void)ctx;
  (void)wstate;
  hooks *h = wp_job_arg(job);
  unsigned zero = 0;
  atomic_compare_exchange_strong(&h->first_attempt_seen, &zero,
                                 wp_job_attempt(job));
  long long z = 0;
  atomic_compare_exchange_strong(&h->started_ns, &z, (long long)wp_now_ns());
  return wp_job_attempt(job) < h->fail_until ? 7 : 0;
}

static void hook_retry(uint64_t id, void *arg, unsigned attempts,
                       int64_t delay_ns, void *userdata) {
  (void)id;
  (void)userdata;
  hooks *h = arg;
  ASSERT(delay_ns >= 0);
  atomic_fetch_add(&h->retry_calls, 1);
  atomic_store(&h->last_retry_attempts, attempts);
}

static void hook_result(const wp_result *res, void *userdata) {
  (void)userdata;
  hooks *h = res->arg;
  h->res = *res;
  sem_post(&h->done);
}

static void hooks_init(hooks *h, unsigned fail_until) {
  memset(h, 0, sizeof *h);
  sem_init(&h->done, 0, 0);
  h->fail_until = fail_until;
}

static wp_pool *hook_pool(void) {
  wp_pool_config c;
  memset(&c, 0, sizeof c);
  c.workers = 2;
  c.task = flaky_task;
  c.on_result = hook_result;
  c.on_retry = hook_retry;
  c.retry.max_attempts = 5;
  c.retry.base_ns = 1 * MS;
  c.retry.cap_ns = 2 * MS;
  wp_pool *p;
  ASSERT_EQ(wp_pool_create(&c, &p), 0);
  return p;
}

TEST(pool_on_retry_tells_each_retry_before_it_runs) {
  wp_pool *p = hook_pool();
  hooks h;
  hooks_init(&h, 3); /* attempts 1, 2 fail; 3 succeeds */
  ASSERT_EQ(wp_pool_submit(p, 1, &h, NULL), 0);
  sem_wait(&h.done);
  ASSERT_EQ(h.res.err, 0);
  ASSERT_EQ(h.res.attempts, 3);
  ASSERT_EQ(atomic_load(&h.retry_calls), 2);
  ASSERT_EQ(atomic_load(&h.last_retry_attempts), 2);
  wp_pool_destroy(p);
  sem_destroy(&h.done);
}

TEST(pool_submit_resumed_continues_the_attempt_count) {
  wp_pool *p = hook_pool();
  hooks h;
  hooks_init(&h, 4); /* a job that made 2 attempts: 3 fails, 4 succeeds */
  ASSERT_EQ(wp_pool_submit_resumed(p, 1, &h, 2, 0, NULL), 0);
  sem_wait(&h.done);
  ASSERT_EQ(h.res.err, 0);
  ASSERT_EQ(atomic_load(&h.first_attempt_seen), 3);
  ASSERT_EQ(h.res.attempts, 4);
  ASSERT_EQ(atomic_load(&h.retry_calls), 1);

  /* max_attempts counts the attempts made before: 4 made, 1 left. */
  hooks g;
  hooks_init(&g, 100);
  ASSERT_EQ(wp_pool_submit_resumed(p, 2, &g, 4, 0, NULL), 0);
  sem_wait(&g.done);
  ASSERT_EQ(g.res.err, 7);
  ASSERT_EQ(g.res.attempts, 5);
  ASSERT_EQ(atomic_load(&g.retry_calls), 0);
  wp_pool_destroy(p);
  sem_destroy(&h.done);
  sem_destroy(&g.done);
}

TEST(pool_submit_resumed_waits_for_its_due_time) {
  wp_pool *p = hook_pool();
  hooks h;
  hooks_init(&h, 0);
  int64_t due = wp_now_ns() + 30 * MS;
  ASSERT_EQ(wp_pool_submit_resumed(p, 1, &h, 1, due, NULL), 0);
  sem_wait(&h.done);
  ASSERT_EQ(h.res.err, 0);
  ASSERT_EQ(h.res.attempts, 2);
  /* Never early (a lower bound only: robust on a loaded machine). */
  ASSERT_GE(atomic_load(&h.started_ns), due);
  /* Canceled while it waits: one result, at once, with its attempts. */
  hooks g;
  hooks_init(&g, 0);
  ASSERT_EQ(
      wp_pool_submit_resumed(p, 2, &g, 3, wp_now_ns() + 3600000 * MS, NULL), 0);
  ASSERT_EQ(wp_pool_shutdown_now(p, NULL), 0);
  sem_wait(&g.done);
  ASSERT_EQ(g.res.err, WP_ECANCELED);
  ASSERT_EQ(g.res.attempts, 3);
  ASSERT_EQ(atomic_load(&g.started_ns), 0);
  wp_pool_destroy(p);
  sem_destroy(&h.done);
  sem_destroy(&g.done);
}

int main(int argc, char **argv) { return wp_test_main(argc, argv); }
