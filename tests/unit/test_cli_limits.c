/* Unit tests of the retry and limit option parsers of `wpool fetch`
 * (src/cli/limits.h): --backoff, --rate, --max-failures, and the failure
 * limit check (count and share forms, the 20-job minimum). Tables. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli/limits.h"
#include "fetch/fetch.h"
#include "wp_test.h"

#define MS 1000000LL
#define SEC 1000000000LL

TEST(backoff_values) {
  static const struct {
    const char *in;
    int rc;
    int64_t base, cap;
  } t[] = {
      {"100ms,10s", 0, 100 * MS, 10 * SEC},
      {"1ms,1ms", 0, MS, MS},
      {"1.5s,1m", 0, 1500 * MS, 60 * SEC},
      {"1ns,2h", 0, 1, 7200 * SEC},
      {"", -1, 0, 0},
      {",", -1, 0, 0},
      {"100ms", -1, 0, 0},
      {"100ms,", -1, 0, 0},
      {",10s", -1, 0, 0},
      {"0,10s", -1, 0, 0},     /* base must be above 0 */
      {"10s,100ms", -1, 0, 0}, /* cap below base */
      {"100ms,10s,1m", -1, 0, 0},
      {"100,10s", -1, 0, 0}, /* no unit */
      {"100ms, 10s", -1, 0, 0},
      {"-1s,2s", -1, 0, 0},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    int64_t b = -1, c = -1;
    int rc = wp__parse_backoff(t[i].in, &b, &c);
    if (rc != t[i].rc) WP_FAIL_("'%s': rc %d", t[i].in, rc);
    if (rc == 0 && (b != t[i].base || c != t[i].cap))
      WP_FAIL_("'%s': %lld,%lld", t[i].in, (long long)b, (long long)c);
    if (rc != 0 && (b != -1 || c != -1)) WP_FAIL_("'%s': touched", t[i].in);
  }
}

TEST(rate_values) {
  static const struct {
    const char *in;
    int rc;
    double per_sec;
  } t[] = {
      {"50", 0, 50},        {"50/s", 0, 50},    {"600/m", 0, 10},
      {"1/m", 0, 1.0 / 60}, {"0.5", 0, 0.5},    {"2.5/s", 0, 2.5},
      {"1000000", 0, 1e6},  {"1/h", -1, 0},     {"0", -1, 0},
      {"0/s", -1, 0},       {"1000001", -1, 0}, {"-5", -1, 0},
      {"+5", -1, 0},        {"5/", -1, 0},      {"/s", -1, 0},
      {"", -1, 0},          {"5/x", -1, 0},     {"1e3", -1, 0},
      {"inf", -1, 0},       {"nan", -1, 0},     {"0x10", -1, 0},
      {"1..2", -1, 0},      {".", -1, 0},       {"5 /s", -1, 0},
      {"0.01/m", -1, 0}, /* below 1/h */
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    double r = -1;
    int rc = wp__parse_rate(t[i].in, &r);
    if (rc != t[i].rc) WP_FAIL_("'%s': rc %d", t[i].in, rc);
    if (rc == 0 && fabs(r - t[i].per_sec) > 1e-9 * t[i].per_sec)
      WP_FAIL_("'%s': %g", t[i].in, r);
    if (rc != 0 && r != -1) WP_FAIL_("'%s': touched", t[i].in);
  }
}

TEST(max_failures_values_and_check) {
  static const struct {
    const char *in;
    int rc;
    uint64_t n;
    bool pct;
  } t[] = {
      {"1", 0, 1, false},     {"250", 0, 250, false}, {"10%", 0, 10, true},
      {"100%", 0, 100, true}, {"1%", 0, 1, true},     {"0", -1, 0, false},
      {"0%", -1, 0, false},   {"101%", -1, 0, false}, {"%", -1, 0, false},
      {"", -1, 0, false},     {"-1", -1, 0, false},   {"5%%", -1, 0, false},
      {"1.5", -1, 0, false},  {"5 %", -1, 0, false},  {"x", -1, 0, false},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    wp__fail_limit l = {0, false};
    int rc = wp__parse_fail_limit(t[i].in, &l);
    if (rc != t[i].rc) WP_FAIL_("'%s': rc %d", t[i].in, rc);
    if (rc == 0 && (l.n != t[i].n || l.percent != t[i].pct))
      WP_FAIL_("'%s': %llu %d", t[i].in, (unsigned long long)l.n, l.percent);
  }
  wp__fail_limit none = {0, false}, three = {3, false}, half = {50, true};
  ASSERT(!wp__fail_limit_hit(&none, 1000, 1000));
  ASSERT(!wp__fail_limit_hit(&three, 2, 100));
  ASSERT(wp__fail_limit_hit(&three, 3, 3));
  ASSERT(wp__fail_limit_hit(&three, 4, 100));
  /* The share form waits for 20 jobs done, then compares failed / done. */
  ASSERT(!wp__fail_limit_hit(&half, 19, 19));
  ASSERT(wp__fail_limit_hit(&half, 10, 20));
  ASSERT(!wp__fail_limit_hit(&half, 9, 20));
  ASSERT(!wp__fail_limit_hit(&half, 500, 1001));
  ASSERT(wp__fail_limit_hit(&half, 501, 1001));
  wp__fail_limit all = {100, true}, one = {1, true};
  ASSERT(!wp__fail_limit_hit(&all, 99, 100));
  ASSERT(wp__fail_limit_hit(&all, 100, 100));
  ASSERT(wp__fail_limit_hit(&one, 1, 100));
  ASSERT(!wp__fail_limit_hit(&one, 0, 100));
}

static int open_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  if (!d) return -1;
  int n = 0;
  while (readdir(d)) n++;
  closedir(d);
  return n;
}

static void no_result(const wp_result *res, void *userdata) {
  (void)res;
  (void)userdata;
}

/* What the file descriptor check counts for the engine is what an engine
 * opens: for loop counts and concurrencies on both sides of a multi
 * handle's 128 transfers (wp__fetch_fds). */
TEST(fetch_fds_are_what_an_engine_opens) {
  static const unsigned t[][2] = {{1, 1},   {16, 2},  {128, 1}, {129, 1},
                                  {256, 2}, {257, 2}, {300, 3}, {1000, 2}};
  for (size_t i = 0; i <= sizeof t / sizeof t[0]; i++) {
    /* The first create also initializes libcurl: warm up with it. */
    unsigned c = i == 0 ? 4 : t[i - 1][0], loops = i == 0 ? 1 : t[i - 1][1];
    wp__fetch_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.concurrency = c;
    cfg.loops = loops;
    cfg.on_result = no_result;
    char err[256];
    int before = open_fds();
    wp__fetch *f = NULL;
    ASSERT_EQ(wp__fetch_create(&cfg, &f, err, sizeof err), 0);
    int during = open_fds();
    wp__fetch_destroy(f);
    if (i == 0) continue;
    ASSERT_EQ((uint64_t)(during - before), wp__fetch_fds(c, loops));
    ASSERT_EQ(open_fds(), before);
  }
}

TEST(nofile_need_and_plan) {
  /* What is counted: a socket per transfer, the loops', the inputs', the
   * metrics server's and the queue's, on top of the base. */
  wp__nofile_use u = {10000, 2 * 4, 1, false, false};
  ASSERT_EQ(wp__nofile_need(&u), (uint64_t)(WP__NOFILE_BASE + 10000 + 8 + 1));
  u.metrics = true;
  u.queue = true;
  ASSERT_EQ(wp__nofile_need(&u),
            (uint64_t)(WP__NOFILE_BASE + 10000 + 8 + 1 + WP__NOFILE_METRICS +
                       WP__NOFILE_QUEUE));
  static const struct {
    uint64_t need, soft, hard;
    int rc;
    uint64_t to;
  } t[] = {
      {10041, 20000, 20000, 0, 0},        /* enough */
      {10041, 10041, 10041, 0, 0},        /* exactly enough */
      {10041, 256, 20000, 1, 20000},      /* raised to the hard limit */
      {10041, 256, 10041, 1, 10041},      /* the hard limit just enough */
      {10041, 256, 10040, -1, 0},         /* one short */
      {10041, 256, 1024, -1, 0},          /* far short */
      {10041, 256, UINT64_MAX, 1, 10041}, /* unlimited hard: to the need */
      {10041, UINT64_MAX, UINT64_MAX, 0, 0},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    uint64_t to = 0;
    int rc = wp__nofile_plan(t[i].need, t[i].soft, t[i].hard, &to);
    if (rc != t[i].rc || to != t[i].to)
      WP_FAIL_("row %zu: rc %d to %llu", i, rc, (unsigned long long)to);
  }
}

int main(int argc, char **argv) { return wp_test_main(argc, argv); }
