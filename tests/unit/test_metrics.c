/* Metrics: the registry, the Prometheus text it renders (exact texts), the
 * escapes, lock-free updates from many threads, and a pool's own metrics
 * against its statistics. promtool and a real Prometheus check the served
 * text in tests/integration/test_obs.py. */
#include <math.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "obs/prom.h"
#include "wp_test.h"
#include "wp_test_util.h"
#include "wpool/wpool.h"

static char *render(wp_metrics *m) {
  char *text = NULL;
  size_t len = 0;
  ASSERT_OK(wp_metrics_render(m, &text, &len));
  ASSERT(text);
  ASSERT_EQ(strlen(text), len);
  return text;
}

/* The value of the sample line that starts with `series ` (-1: none). */
static double sample(const char *text, const char *series) {
  size_t n = strlen(series);
  for (const char *p = text; p && *p;) {
    if (strncmp(p, series, n) == 0 && p[n] == ' ')
      return strtod(p + n + 1, NULL);
    p = strchr(p, '\n');
    if (p) p++;
  }
  return -1;
}

TEST(render_exact_text) {
  wp_metrics *m;
  ASSERT_OK(wp_metrics_create(&m));
  wp_counter *ok, *bad;
  wp_gauge *g;
  wp_histogram *h;
  ASSERT_OK(wp_metrics_counter(m, "jobs_total", "Jobs done.",
                               (const char *[]){"outcome", "ok", NULL}, &ok));
  ASSERT_OK(wp_metrics_counter(m, "jobs_total", "ignored: first help wins",
                               (const char *[]){"outcome", "failed", NULL},
                               &bad));
  ASSERT_OK(wp_metrics_gauge(m, "depth", "Queue depth.", NULL, &g));
  static const double b[] = {0.001, 0.5, 1};
  ASSERT_OK(wp_metrics_histogram(m, "lat_seconds", "Latency.",
                                 (const char *[]){"op", "get", NULL}, b, 3,
                                 &h));
  wp_counter_add(ok, 3);
  wp_counter_add(bad, 1);
  wp_gauge_set(g, 2.5);
  wp_gauge_add(g, -1);
  wp_histogram_observe(h, 0.001); /* le is inclusive */
  wp_histogram_observe(h, 0.25);
  wp_histogram_observe(h, 7);
  wp_histogram_observe(h, NAN); /* ignored */
  char *t = render(m);
  ASSERT_STREQ(t,
               "# HELP jobs_total Jobs done.\n"
               "# TYPE jobs_total counter\n"
               "jobs_total{outcome=\"ok\"} 3\n"
               "jobs_total{outcome=\"failed\"} 1\n"
               "# HELP depth Queue depth.\n"
               "# TYPE depth gauge\n"
               "depth 1.5\n"
               "# HELP lat_seconds Latency.\n"
               "# TYPE lat_seconds histogram\n"
               "lat_seconds_bucket{op=\"get\",le=\"0.001\"} 1\n"
               "lat_seconds_bucket{op=\"get\",le=\"0.5\"} 2\n"
               "lat_seconds_bucket{op=\"get\",le=\"1\"} 2\n"
               "lat_seconds_bucket{op=\"get\",le=\"+Inf\"} 3\n"
               "lat_seconds_sum{op=\"get\"} 7.251\n"
               "lat_seconds_count{op=\"get\"} 3\n");
  free(t);
  ASSERT_EQ(wp_histogram_count(h), 3);
  ASSERT_EQ(wp_counter_value(ok), 3);
  wp_metrics_destroy(m);
}

TEST(same_series_twice_is_the_same_pointer) {
  wp_metrics *m;
  ASSERT_OK(wp_metrics_create(&m));
  wp_counter *a, *b, *c;
  ASSERT_OK(wp_metrics_counter(m, "x_total", "",
                               (const char *[]){"k", "v", NULL}, &a));
  ASSERT_OK(wp_metrics_counter(m, "x_total", "",
                               (const char *[]){"k", "v", NULL}, &b));
  ASSERT_OK(wp_metrics_counter(m, "x_total", "",
                               (const char *[]){"k", "w", NULL}, &c));
  ASSERT(a == b);
  ASSERT(a != c);
  wp_histogram *h1, *h2;
  static const double b1[] = {1, 2}, b2[] = {1, 3};
  ASSERT_OK(wp_metrics_histogram(m, "h", "", NULL, b1, 2, &h1));
  ASSERT_OK(wp_metrics_histogram(m, "h", "", NULL, b1, 2, &h2));
  ASSERT(h1 == h2);
  ASSERT_EQ(wp_metrics_histogram(m, "h", "", NULL, b2, 2, &h2), WP_EINVAL);
  ASSERT(h2 == NULL);
  wp_metrics_destroy(m);
}

TEST(bad_registrations_are_refused) {
  wp_metrics *m;
  ASSERT_OK(wp_metrics_create(&m));
  wp_counter *c;
  wp_gauge *g;
  wp_histogram *h;
  static const double ok_b[] = {1}, dec[] = {2, 1}, inf[] = {1, INFINITY};
  ASSERT_EQ(wp_metrics_counter(m, "", "", NULL, &c), WP_EINVAL);
  ASSERT_EQ(wp_metrics_counter(m, "9lives", "", NULL, &c), WP_EINVAL);
  ASSERT_EQ(wp_metrics_counter(m, "a-b", "", NULL, &c), WP_EINVAL);
  ASSERT_EQ(
      wp_metrics_counter(m, "a", "", (const char *[]){"__x", "v", NULL}, &c),
      WP_EINVAL);
  ASSERT_EQ(
      wp_metrics_counter(m, "a", "", (const char *[]){"a:b", "v", NULL}, &c),
      WP_EINVAL);
  ASSERT_EQ(wp_metrics_counter(m, "a", "",
                               (const char *[]){"k", "1", "k", "2", NULL}, &c),
            WP_EINVAL);
  ASSERT_EQ(wp_metrics_histogram(m, "h", "", (const char *[]){"le", "1", NULL},
                                 ok_b, 1, &h),
            WP_EINVAL);
  ASSERT_EQ(wp_metrics_histogram(m, "h", "", NULL, dec, 2, &h), WP_EINVAL);
  ASSERT_EQ(wp_metrics_histogram(m, "h", "", NULL, inf, 2, &h), WP_EINVAL);
  ASSERT_EQ(wp_metrics_histogram(m, "h", "", NULL, ok_b, 0, &h), WP_EINVAL);
  ASSERT_OK(wp_metrics_counter(m, "ns:a_total", "", NULL, &c));
  ASSERT_EQ(wp_metrics_gauge(m, "ns:a_total", "", NULL, &g), WP_EINVAL);
  ASSERT(g == NULL);
  /* Refusals left nothing behind. */
  char *t = render(m);
  ASSERT_STREQ(t,
               "# HELP ns:a_total \n# TYPE ns:a_total counter\nns:a_total 0\n");
  free(t);
  /* NULL series are no-ops. */
  wp_counter_add(NULL, 1);
  wp_gauge_set(NULL, 1);
  wp_histogram_observe(NULL, 1);
  wp_metrics_destroy(m);
  wp_metrics_destroy(NULL);
}

TEST(labels_and_help_are_escaped) {
  wp_metrics *m;
  ASSERT_OK(wp_metrics_create(&m));
  wp_counter *c;
  /* Backslash, quote, newline, a bad UTF-8 byte and a valid é. */
  ASSERT_OK(wp_metrics_counter(
      m, "e_total", "a \\ \"q\"\nline \xff",
      (const char *[]){"v", "a\\b\"c\nd\xff\xc3\xa9", NULL}, &c));
  char *t = render(m);
  ASSERT_STREQ(t,
               "# HELP e_total a \\\\ \"q\"\\nline \xef\xbf\xbd\n"
               "# TYPE e_total counter\n"
               "e_total{v=\"a\\\\b\\\"c\\nd\xef\xbf\xbd\xc3\xa9\"} 0\n");
  free(t);
  wp_metrics_destroy(m);
}

TEST(prom_double_shortest_and_special) {
  static const struct {
    double v;
    const char *want;
  } cases[] = {
      {0, "0"},
      {-0.0, "0"},
      {1, "1"},
      {0.001, "0.001"},
      {0.1, "0.1"},
      {2.5, "2.5"},
      {60, "60"},
      {1e-9, "1e-09"},
      {123456789, "123456789"},
      {1.0 / 3, "0.3333333333333333"},
      {NAN, "NaN"},
      {INFINITY, "+Inf"},
      {-INFINITY, "-Inf"},
  };
  char buf[32];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    ASSERT_STREQ(wp__prom_double(buf, sizeof buf, cases[i].v), cases[i].want);
    if (isfinite(cases[i].v)) ASSERT(strtod(buf, NULL) == cases[i].v);
  }
}

/* ---- lock-free updates -------------------------------------------------- */

#define THREADS 8
#define ADDS 20000

typedef struct shared {
  wp_counter *c;
  wp_gauge *g;
  wp_histogram *h;
  wp_metrics *m;
} shared;

static void adder(void *arg) {
  shared *s = arg;
  for (int i = 0; i < ADDS; i++) {
    wp_counter_add(s->c, 1);
    wp_gauge_add(s->g, 1);
    wp_histogram_observe(s->h, (double)(i % 4));
    if (i % 5000 == 0) { /* renders race with the updates */
      char *t;
      ASSERT_OK(wp_metrics_render(s->m, &t, NULL));
      free(t);
    }
  }
}

TEST(concurrent_updates_add_up) {
  shared s;
  ASSERT_OK(wp_metrics_create(&s.m));
  static const double b[] = {0.5, 1.5, 2.5};
  ASSERT_OK(wp_metrics_counter(s.m, "c_total", "", NULL, &s.c));
  ASSERT_OK(wp_metrics_gauge(s.m, "g", "", NULL, &s.g));
  ASSERT_OK(wp_metrics_histogram(s.m, "h", "", NULL, b, 3, &s.h));
  thr t[THREADS];
  for (int i = 0; i < THREADS; i++) thr_start(&t[i], adder, &s);
  for (int i = 0; i < THREADS; i++) thr_join(&t[i], 120, "adder");
  ASSERT_EQ(wp_counter_value(s.c), THREADS * ADDS);
  ASSERT(wp_gauge_value(s.g) == THREADS * ADDS);
  ASSERT_EQ(wp_histogram_count(s.h), THREADS * ADDS);
  char *text = render(s.m);
  /* 0,1,2,3 a quarter each: cumulative 1/4, 2/4, 3/4, all; sum 6/4 each. */
  ASSERT_EQ((long long)sample(text, "h_bucket{le=\"0.5\"}"),
            THREADS * ADDS / 4);
  ASSERT_EQ((long long)sample(text, "h_bucket{le=\"1.5\"}"),
            THREADS * ADDS / 2);
  ASSERT_EQ((long long)sample(text, "h_bucket{le=\"2.5\"}"),
            THREADS * ADDS * 3 / 4);
  ASSERT_EQ((long long)sample(text, "h_bucket{le=\"+Inf\"}"), THREADS * ADDS);
  ASSERT_EQ((long long)sample(text, "h_sum"), THREADS * ADDS / 4 * 6);
  free(text);
  wp_metrics_destroy(s.m);
}

/* ---- process metrics ---------------------------------------------------- */

TEST(process_metrics_follow_the_process) {
  wp_metrics *m;
  ASSERT_OK(wp_metrics_create(&m));
  ASSERT_OK(wp_metrics_add_process(m));
  char *t1 = render(m);
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  char *t2 = render(m);
  double before = sample(t1, "process_open_fds");
  double after = sample(t2, "process_open_fds");
  ASSERT_GT(before, 2); /* stdin, stdout, stderr at least */
  ASSERT_EQ((long long)(after - before), 2);
  ASSERT_GT(sample(t2, "process_resident_memory_bytes"), 0);
  ASSERT_GE(sample(t2, "process_virtual_memory_bytes"),
            sample(t2, "process_resident_memory_bytes"));
  ASSERT_GT(sample(t2, "process_max_fds"), 0);
  ASSERT_GE(sample(t2, "process_cpu_seconds_total"), 0);
  double start = sample(t2, "process_start_time_seconds");
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  /* Started in the last hour, not in the future (a second of slack for the
   * kernel's tick-rounded boot time). */
  ASSERT_LE(start, (double)now.tv_sec + 1);
  ASSERT_GT(start, (double)now.tv_sec - 3600);
  ASSERT(strstr(t2, "# TYPE process_cpu_seconds_total counter\n"));
  close(fds[0]);
  close(fds[1]);
  free(t1);
  free(t2);
  wp_metrics_destroy(m);
}

/* ---- a pool's own metrics ---------------------------------------------- */

typedef struct gate {
  sem_t started, go;
  atomic_int calls;
} gate;

/* Job IDs 1..4 block until released; even IDs fail on their first attempt
 * (and are retried), ID 3 always fails. */
static int gated_task(wp_ctx *ctx, wp_job *job, void *ws) {
  (void)ctx;
  (void)ws;
  gate *g = wp_job_arg(job);
  atomic_fetch_add(&g->calls, 1);
  uint64_t id = wp_job_id(job);
  if (id <= 4 && wp_job_attempt(job) == 1) {
    sem_post(&g->started);
    sem_wait_bounded(&g->go, 60, "release");
  }
  if (id == 3) return 7;
  if (id % 2 == 0 && wp_job_attempt(job) == 1) return 9;
  return 0;
}

static void ignore_result(const wp_result *r, void *ud) {
  (void)r;
  (void)ud;
}

TEST(pool_metrics_match_its_statistics) {
  wp_metrics *m;
  ASSERT_OK(wp_metrics_create(&m));
  gate g;
  ASSERT_EQ(sem_init(&g.started, 0, 0), 0);
  ASSERT_EQ(sem_init(&g.go, 0, 0), 0);
  atomic_init(&g.calls, 0);
  wp_pool_config cfg = {
      .workers = 4,
      .max_outstanding = 64,
      .task = gated_task,
      .on_result = ignore_result,
      .retry = {.max_attempts = 2, .base_ns = 1000, .cap_ns = 1000},
      .metrics = m,
      .metric_labels = (const char *[]){"pool", "p1", NULL}};
  wp_pool *p;
  ASSERT_OK(wp_pool_create(&cfg, &p));
  const int jobs = 40;
  for (int id = 1; id <= jobs; id++)
    ASSERT_OK(wp_pool_submit(p, (uint64_t)id, &g, NULL));
  /* All four workers are held by jobs 1..4: the rest are queued. */
  for (int i = 0; i < 4; i++)
    sem_wait_bounded(&g.started, 60, "jobs 1-4 started");
  char *mid = render(m);
  ASSERT_EQ((long long)sample(mid, "wpool_in_flight{pool=\"p1\"}"), 4);
  ASSERT_EQ((long long)sample(mid, "wpool_queue_depth{pool=\"p1\"}"), jobs - 4);
  ASSERT_EQ((long long)sample(mid, "wpool_workers{pool=\"p1\"}"), 4);
  ASSERT_EQ((long long)sample(mid, "wpool_jobs_submitted_total{pool=\"p1\"}"),
            jobs);
  ASSERT_EQ((long long)sample(
                mid, "wpool_jobs_completed_total{pool=\"p1\",outcome=\"ok\"}"),
            0);
  free(mid);
  for (int i = 0; i < 4; i++) sem_post(&g.go);
  ASSERT_OK(wp_pool_shutdown(p, NULL));
  wp_pool_stats st;
  wp_pool_stats_get(p, &st);
  char *end = render(m);
  ASSERT_EQ((long long)sample(
                end, "wpool_jobs_completed_total{pool=\"p1\",outcome=\"ok\"}"),
            (long long)st.ok);
  ASSERT_EQ(
      (long long)sample(
          end, "wpool_jobs_completed_total{pool=\"p1\",outcome=\"failed\"}"),
      (long long)st.failed);
  ASSERT_EQ(st.failed, 1); /* job 3 */
  ASSERT_EQ(st.ok, jobs - 1);
  ASSERT_EQ((long long)sample(end, "wpool_attempts_total{pool=\"p1\"}"),
            (long long)st.attempts);
  ASSERT_EQ((long long)sample(end, "wpool_attempts_total{pool=\"p1\"}"),
            atomic_load(&g.calls));
  ASSERT_EQ((long long)sample(end, "wpool_retries_total{pool=\"p1\"}"),
            (long long)st.retries);
  ASSERT_EQ(st.retries, jobs / 2 + 1); /* every even ID, and 3 */
  ASSERT_EQ(
      (long long)sample(end, "wpool_job_duration_seconds_count{pool=\"p1\"}"),
      jobs);
  ASSERT_EQ((long long)sample(end, "wpool_queue_depth{pool=\"p1\"}"), 0);
  ASSERT_EQ((long long)sample(end, "wpool_in_flight{pool=\"p1\"}"), 0);
  free(end);
  wp_pool_destroy(p);
  /* The registry outlives the pool: its gauges read 0, the counters stay. */
  char *after = render(m);
  ASSERT_EQ((long long)sample(after, "wpool_workers{pool=\"p1\"}"), 0);
  ASSERT_EQ((long long)sample(after, "wpool_jobs_submitted_total{pool=\"p1\"}"),
            jobs);
  free(after);
  sem_destroy(&g.started);
  sem_destroy(&g.go);
  wp_metrics_destroy(m);
}

static int slow_task(wp_ctx *ctx, wp_job *job, void *ws) {
  (void)job;
  (void)ws;
  wp_ctx_wait(ctx, INT64_MAX); /* until shutdown_now */
  return WP_ECANCELED;
}

TEST(pool_metrics_count_canceled_jobs) {
  wp_metrics *m;
  ASSERT_OK(wp_metrics_create(&m));
  wp_pool_config cfg = {.workers = 2,
                        .max_outstanding = 10,
                        .task = slow_task,
                        .on_result = ignore_result,
                        .metrics = m};
  wp_pool *p;
  ASSERT_OK(wp_pool_create(&cfg, &p));
  for (int id = 1; id <= 10; id++)
    ASSERT_OK(wp_pool_submit(p, (uint64_t)id, NULL, NULL));
  ASSERT_OK(wp_pool_shutdown_now(p, NULL));
  wp_pool_stats st;
  wp_pool_stats_get(p, &st);
  char *t = render(m);
  ASSERT_EQ(
      (long long)sample(t, "wpool_jobs_completed_total{outcome=\"canceled\"}"),
      10);
  ASSERT_EQ((long long)sample(t, "wpool_attempts_total"),
            (long long)st.attempts);
  /* Only the jobs that ran have a duration. */
  ASSERT_EQ((long long)sample(t, "wpool_job_duration_seconds_count"),
            (long long)st.attempts);
  free(t);
  wp_pool_destroy(p);
  wp_metrics_destroy(m);
}

TEST(two_pools_one_registry) {
  wp_metrics *m;
  ASSERT_OK(wp_metrics_create(&m));
  wp_pool *a, *b;
  wp_pool_config cfg = {.workers = 1,
                        .task = slow_task,
                        .on_result = ignore_result,
                        .metrics = m,
                        .metric_labels = (const char *[]){"pool", "a", NULL}};
  ASSERT_OK(wp_pool_create(&cfg, &a));
  cfg.workers = 3;
  cfg.metric_labels = (const char *[]){"pool", "b", NULL};
  ASSERT_OK(wp_pool_create(&cfg, &b));
  char *t = render(m);
  ASSERT_EQ((long long)sample(t, "wpool_workers{pool=\"a\"}"), 1);
  ASSERT_EQ((long long)sample(t, "wpool_workers{pool=\"b\"}"), 3);
  free(t);
  wp_pool_destroy(a);
  wp_pool_destroy(b);
  wp_metrics_destroy(m);
}

int main(int argc, char **argv) { return wp_test_main(argc, argv); }
