/* The tool's observability pieces, pure parts first: log encoders (JSON,
 * logfmt, text) with exact expected lines, timestamps, the listen-address
 * parser, the OTLP JSON encoder; then the span exporter's bounded buffer
 * against a collector that is not there. The formats are checked against
 * real parsers (Python's json, a logfmt splitter, promtool, Prometheus) in
 * tests/integration/test_obs.py. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/utf8.h" /* wp__hex */
#include "obs/log.h"
#include "obs/serve.h"
#include "obs/trace.h"
#include "wp_test.h"
#include "wp_test_util.h"
#include "wpool/wpool.h"

static const char *logfmt(const char *s, size_t n, wp__buf *b) {
  wp__buf_reset(b);
  wp__logfmt_value(b, s, n);
  return b->data;
}

TEST(logfmt_values_bare_or_quoted) {
  wp__buf b;
  wp__buf_init(&b);
  ASSERT_STREQ(logfmt("abc", 3, &b), "abc");
  ASSERT_STREQ(logfmt("http://h/p?q=1", 14, &b), "\"http://h/p?q=1\"");
  ASSERT_STREQ(logfmt("", 0, &b), "\"\"");
  ASSERT_STREQ(logfmt(NULL, 5, &b), "\"\"");
  ASSERT_STREQ(logfmt("a b", 3, &b), "\"a b\"");
  ASSERT_STREQ(logfmt("say \"hi\"", 8, &b), "\"say \\\"hi\\\"\"");
  ASSERT_STREQ(logfmt("back\\slash", 10, &b), "\"back\\\\slash\"");
  ASSERT_STREQ(logfmt("l1\nl2\t\x01", 7, &b), "\"l1\\nl2\\t\\u0001\"");
  ASSERT_STREQ(logfmt("\xc3\xa9", 2, &b), "\"\xc3\xa9\"");
  ASSERT_STREQ(logfmt("x\xff", 2, &b), "\"x\xef\xbf\xbd\"");
  ASSERT_STREQ(logfmt("nul\0in", 6, &b), "\"nul\\u0000in\"");
  ASSERT_STREQ(logfmt("del\x7f", 4, &b), "\"del\\u007f\"");
  wp__buf_free(&b);
}

TEST(rfc3339_milliseconds_utc) {
  char ts[32];
  wp__rfc3339_ms(ts, 0);
  ASSERT_STREQ(ts, "1970-01-01T00:00:00.000Z");
  wp__rfc3339_ms(ts, 1795855152780999999LL);
  ASSERT_STREQ(ts, "2026-11-28T08:39:12.780Z");
  wp__rfc3339_ms(ts, -1); /* a nanosecond before the epoch */
  ASSERT_STREQ(ts, "1969-12-31T23:59:59.999Z");
  wp__rfc3339_ms(ts, INT64_MAX); /* 2262: fine */
  ASSERT_STREQ(ts, "2262-04-11T23:47:16.854Z");
  wp__rfc3339_ms(ts, INT64_MIN); /* clamped to year 1677 is fine too */
  ASSERT_EQ(strlen(ts), 24);
}

static const wp__log_field fields[] = {
    {.key = "id", .type = WP__F_UINT, .u = 7},
    {.key = "url", .type = WP__F_STR, .s = "http://h/\"x\" y", .n = 14},
    {.key = "status", .type = WP__F_NULL},
    {.key = "elapsed_ms", .type = WP__F_DOUBLE, .d = 1.5},
    {.key = "ok", .type = WP__F_BOOL, .b = false},
    {.key = "delta", .type = WP__F_INT, .i = -3},
    {.key = "bad", .type = WP__F_DOUBLE, .d = 1.0 / 0.0},
};

TEST(records_in_each_format) {
  wp__buf b;
  wp__buf_init(&b);
  const int64_t t = 1795855152780000000LL;
  const size_t n = sizeof fields / sizeof fields[0];
  wp__log_format_record(&b, WP__LOG_JSON, t, WP__LOG_WARN, "giving up", fields,
                        n);
  ASSERT_STREQ(b.data,
               "{\"ts\":\"2026-11-28T08:39:12.780Z\",\"level\":\"warn\","
               "\"msg\":\"giving up\",\"id\":7,\"url\":\"http://h/\\\"x\\\" "
               "y\",\"status\":null,\"elapsed_ms\":1.500,\"ok\":false,"
               "\"delta\":-3,\"bad\":null}\n");
  wp__buf_reset(&b);
  wp__log_format_record(&b, WP__LOG_LOGFMT, t, WP__LOG_INFO, "run start",
                        fields, n);
  ASSERT_STREQ(b.data,
               "ts=2026-11-28T08:39:12.780Z level=info msg=\"run start\" id=7 "
               "url=\"http://h/\\\"x\\\" y\" elapsed_ms=1.500 ok=false "
               "delta=-3\n");
  wp__buf_reset(&b);
  wp__log_format_record(&b, WP__LOG_TEXT, t, WP__LOG_DEBUG, "attempt", fields,
                        2);
  ASSERT_STREQ(b.data,
               "2026-11-28T08:39:12.780Z DEBUG attempt id=7 "
               "url=\"http://h/\\\"x\\\" y\"\n");
  /* A message that is not plain text is quoted in text too. */
  wp__buf_reset(&b);
  wp__log_format_record(&b, WP__LOG_TEXT, t, WP__LOG_ERROR, "two\nlines", NULL,
                        0);
  ASSERT_STREQ(b.data, "2026-11-28T08:39:12.780Z ERROR \"two\\nlines\"\n");
  wp__buf_free(&b);
}

/* Threads log at once through one logger, each formatting in a buffer of
 * its own outside the mutex: every record arrives whole, on a line of its
 * own, with the bytes its thread wrote (a thread's records differ in length,
 * so a buffer reused without a reset, or shared, would show). */
enum { LOG_THREADS = 4, LOG_RECORDS = 300 };
typedef struct {
  wp__log *log;
  pthread_barrier_t *go;
  int k;
} log_arg;

static void log_writer(void *p) {
  log_arg *a = p;
  char url[512];
  pthread_barrier_wait(a->go);
  for (int i = 0; i < LOG_RECORDS; i++) {
    size_t n = 50 + 100 * (size_t)a->k + 40 * (size_t)(i % 3);
    memset(url, 'a' + a->k, n);
    wp__log_field f[] = {WP__FUINT("thread", (uint64_t)a->k),
                         WP__FUINT("i", (uint64_t)i),
                         WP__FBYTES("url", url, n)};
    wp__log_write(a->log, WP__LOG_INFO, "rec", f, 3);
  }
}

TEST(log_records_whole_from_many_threads) {
  char path[] = "/tmp/wpool-test-log.XXXXXX";
  int fd = mkstemp(path);
  ASSERT(fd >= 0);
  close(fd);
  wp__log *l;
  char err[256];
  ASSERT_EQ(
      wp__log_open(&l, WP__LOG_LOGFMT, WP__LOG_INFO, path, err, sizeof err), 0);
  pthread_barrier_t go;
  ASSERT_EQ(pthread_barrier_init(&go, NULL, LOG_THREADS), 0);
  thr t[LOG_THREADS];
  log_arg a[LOG_THREADS];
  for (int k = 0; k < LOG_THREADS; k++) {
    a[k] = (log_arg){l, &go, k};
    thr_start(&t[k], log_writer, &a[k]);
  }
  for (int k = 0; k < LOG_THREADS; k++) thr_join(&t[k], 60, "log writer");
  pthread_barrier_destroy(&go);
  ASSERT_EQ(wp__log_lost(l), 0);
  wp__log_close(l);

  FILE *f = fopen(path, "r");
  ASSERT(f != NULL);
  int seen[LOG_THREADS][LOG_RECORDS] = {{0}};
  char line[1024];
  int lines = 0;
  while (fgets(line, sizeof line, f)) {
    lines++;
    int k, i;
    char *u = strstr(line, " url=");
    ASSERT(u != NULL);
    ASSERT_EQ(sscanf(strstr(line, " thread="), " thread=%d i=%d", &k, &i), 2);
    ASSERT(k >= 0 && k < LOG_THREADS && i >= 0 && i < LOG_RECORDS);
    size_t n = 50 + 100 * (size_t)k + 40 * (size_t)(i % 3);
    u += 5;
    ASSERT_EQ(strspn(u, (char[]){(char)('a' + k), '\0'}), n);
    ASSERT_STREQ(u + n, "\n");
    seen[k][i]++;
  }
  fclose(f);
  unlink(path);
  ASSERT_EQ(lines, LOG_THREADS * LOG_RECORDS);
  for (int k = 0; k < LOG_THREADS; k++)
    for (int i = 0; i < LOG_RECORDS; i++) ASSERT_EQ(seen[k][i], 1);
}

TEST(log_level_and_format_names) {
  enum wp__log_level l;
  enum wp__log_format f;
  ASSERT_EQ(wp__parse_log_level("debug", &l), 0);
  ASSERT_EQ(l, WP__LOG_DEBUG);
  ASSERT_EQ(wp__parse_log_level("warn", &l), 0);
  ASSERT_EQ(l, WP__LOG_WARN);
  ASSERT_EQ(wp__parse_log_level("WARN", &l), -1);
  ASSERT_EQ(wp__parse_log_level("", &l), -1);
  ASSERT_EQ(wp__parse_log_format("logfmt", &f), 0);
  ASSERT_EQ(f, WP__LOG_LOGFMT);
  ASSERT_EQ(wp__parse_log_format("jsonl", &f), -1);
}

TEST(listen_addresses) {
  static const struct {
    const char *in;
    int family; /* 0: refused */
    const char *host;
    unsigned port;
  } cases[] = {
      {"9464", AF_INET, "127.0.0.1", 9464},
      {"0", AF_INET, "127.0.0.1", 0},
      {"127.0.0.1:9464", AF_INET, "127.0.0.1", 9464},
      {"localhost:80", AF_INET, "127.0.0.1", 80},
      {"0.0.0.0:65535", AF_INET, "0.0.0.0", 65535},
      {"[::1]:9", AF_INET6, "::1", 9},
      {"[::]:9", AF_INET6, "::", 9},
      {":9464", 0, NULL, 0},
      {"", 0, NULL, 0},
      {"65536", 0, NULL, 0},
      {"-1", 0, NULL, 0},
      {"127.0.0.1:", 0, NULL, 0},
      {"127.0.0.1:x", 0, NULL, 0},
      {"example.com:80", 0, NULL, 0},
      {"::1:80", 0, NULL, 0},
      {"[::1]", 0, NULL, 0},
      {"[127.0.0.1]:80", 0, NULL, 0},
      {"1.2.3.4.5:80", 0, NULL, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct sockaddr_storage ss;
    socklen_t len;
    char err[256] = "";
    int rc = wp__parse_listen_addr(cases[i].in, &ss, &len, err, sizeof err);
    if (!cases[i].family) {
      if (rc != -1) WP_FAIL_("'%s' should be refused", cases[i].in);
      ASSERT(err[0] != '\0');
      continue;
    }
    if (rc != 0) WP_FAIL_("'%s' refused: %s", cases[i].in, err);
    ASSERT_EQ(ss.ss_family, cases[i].family);
    char host[64];
    unsigned port;
    if (ss.ss_family == AF_INET) {
      struct sockaddr_in *a = (struct sockaddr_in *)&ss;
      inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
      port = ntohs(a->sin_port);
      ASSERT_EQ(len, sizeof *a);
    } else {
      struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
      inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
      port = ntohs(a->sin6_port);
      ASSERT_EQ(len, sizeof *a);
    }
    ASSERT_STREQ(host, cases[i].host);
    ASSERT_EQ(port, cases[i].port);
  }
}

/* wp__hex against snprintf's %02x, for every byte value and each length a
 * trace or span ID has; nothing is written past 2 * n. */
TEST(hex_matches_printf) {
  uint8_t in[256];
  for (size_t i = 0; i < sizeof in; i++) in[i] = (uint8_t)i;
  char got[2 * sizeof in + 1], want[2 * sizeof in + 1];
  memset(got, '#', sizeof got);
  wp__hex(got, in, sizeof in);
  ASSERT_EQ(got[2 * sizeof in], '#');
  for (size_t i = 0; i < sizeof in; i++)
    snprintf(want + 2 * i, 3, "%02x", (unsigned)in[i]);
  ASSERT(memcmp(got, want, 2 * sizeof in) == 0);
  static const size_t lens[] = {0, 1, 8, 16};
  for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
    memset(got, '#', sizeof got);
    wp__hex(got, in + 250 - lens[k], lens[k]);
    ASSERT_EQ(got[2 * lens[k]], '#');
    for (size_t i = 0; i < lens[k]; i++)
      snprintf(want + 2 * i, 3, "%02x", (unsigned)in[250 - lens[k] + i]);
    ASSERT(memcmp(got, want, 2 * lens[k]) == 0);
  }
}

TEST(otlp_json_exact) {
  wp__span s[2];
  memset(s, 0, sizeof s);
  for (int i = 0; i < 16; i++) s[0].trace_id[i] = (uint8_t)(0xa0 + i);
  memcpy(s[1].trace_id, s[0].trace_id, 16);
  for (int i = 0; i < 8; i++) {
    s[0].span_id[i] = (uint8_t)(i + 1);
    s[1].span_id[i] = (uint8_t)(0x10 + i);
  }
  memcpy(s[1].parent_id, s[0].span_id, 8);
  s[0].name = "job";
  s[0].kind = WP__SPAN_INTERNAL;
  s[0].start_unix_ns = 1000;
  s[0].end_unix_ns = 3000;
  s[0].error = true;
  s[0].error_msg = "HTTP 404 \"Not Found\"";
  s[0].job_id = 5;
  s[0].attempt = 1;
  s[0].http_status = 404;
  s[1].name = "GET";
  s[1].kind = WP__SPAN_CLIENT;
  s[1].start_unix_ns = 1500;
  s[1].end_unix_ns = 2500;
  s[1].url = "http://h/\xff";
  s[1].job_id = 5;
  s[1].attempt = 1;
  s[1].http_status = -1;
  wp__buf b;
  wp__buf_init(&b);
  wp__otlp_json(&b, s, 2, "wpool");
  ASSERT_STREQ(
      b.data,
      "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service."
      "name\",\"value\":{\"stringValue\":\"wpool\"}}]},\"scopeSpans\":[{"
      "\"scope\":{\"name\":\"wpool\",\"version\":\"" WPOOL_VERSION
      "\"},\"spans\":["
      "{\"traceId\":\"a0a1a2a3a4a5a6a7a8a9aaabacadaeaf\",\"spanId\":"
      "\"0102030405060708\",\"name\":\"job\",\"kind\":1,"
      "\"startTimeUnixNano\":\"1000\",\"endTimeUnixNano\":\"3000\","
      "\"attributes\":[{\"key\":\"wpool.job.id\",\"value\":{\"intValue\":"
      "\"5\"}},{\"key\":\"wpool.attempts\",\"value\":{\"intValue\":\"1\"}},"
      "{\"key\":\"http.response.status_code\",\"value\":{\"intValue\":"
      "\"404\"}}],\"status\":{\"code\":2,\"message\":\"HTTP 404 "
      "\\\"Not Found\\\"\"}},"
      "{\"traceId\":\"a0a1a2a3a4a5a6a7a8a9aaabacadaeaf\",\"spanId\":"
      "\"1011121314151617\",\"parentSpanId\":\"0102030405060708\","
      "\"name\":\"GET\",\"kind\":3,\"startTimeUnixNano\":\"1500\","
      "\"endTimeUnixNano\":\"2500\",\"attributes\":[{\"key\":\"wpool.job."
      "id\",\"value\":{\"intValue\":\"5\"}},{\"key\":\"wpool.attempt\","
      "\"value\":{\"intValue\":\"1\"}},{\"key\":\"url.full\",\"value\":{"
      "\"stringValue\":\"http://h/\xef\xbf\xbd\"}}],\"status\":{\"code\":1}}"
      "]}]}]}");
  wp__buf_free(&b);
}

/* ---- the exporter's bounded buffer -------------------------------------- */

static atomic_int reports;
static void on_report(const char *why, void *arg) {
  (void)arg;
  ASSERT(why && *why);
  atomic_fetch_add(&reports, 1);
}

TEST(tracer_without_collector_drops_and_counts_every_span) {
  wp_metrics *m;
  ASSERT_OK(wp_metrics_create(&m));
  wp_counter *exported, *dropped;
  ASSERT_OK(wp_metrics_counter(m, "e_total", "", NULL, &exported));
  ASSERT_OK(wp_metrics_counter(m, "d_total", "", NULL, &dropped));
  atomic_store(&reports, 0);
  /* Port 1 on loopback: refused at once. A tiny buffer, to fill it. */
  wp__tracer_config tc = {.endpoint = "http://127.0.0.1:1/v1/traces",
                          .capacity = 4,
                          .batch = 2,
                          .exported = exported,
                          .dropped = dropped,
                          .report = on_report};
  wp__tracer *t;
  char err[256];
  ASSERT_EQ(wp__tracer_create(&tc, &t, err, sizeof err), 0);
  int refused_now = 0;
  for (int i = 0; i < 1000; i++) {
    wp__span s;
    memset(&s, 0, sizeof s);
    s.name = "GET";
    s.url = strdup("http://x/");
    s.error_msg = strdup("e");
    if (!wp__tracer_add(t, &s)) refused_now++;
  }
  ASSERT_GT(refused_now, 0); /* 1000 spans never fit in 4 */
  uint64_t ex, dr;
  wp__tracer_close(t, 2000000000LL, &ex, &dr);
  ASSERT_EQ(ex, 0);
  ASSERT_EQ(dr, 1000);
  ASSERT_EQ(wp_counter_value(dropped), 1000);
  ASSERT_EQ(wp_counter_value(exported), 0);
  ASSERT_EQ(atomic_load(&reports), 1); /* told once */
  wp__tracer_close(NULL, 0, &ex, &dr);
  ASSERT_EQ(ex + dr, 0);
  wp_metrics_destroy(m);
}

int main(int argc, char **argv) { return wp_test_main(argc, argv); }
