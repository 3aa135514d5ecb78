/* wpool: the command-line tool.
 *
 *   wpool fetch [OPTIONS] [FILE...]
 *
 * Threads: the producer reads the input and submits one job per line; the
 * engine's loops fetch and call on_result(), which writes the output under
 * out_mu; the controller waits for signals and the --deadline and turns them
 * into a stop (first SIGINT/SIGTERM: read no more, drain) or a ShutdownNow
 * (second signal, the deadline, a closed output pipe); an optional progress
 * thread redraws the bar; main waits for the producer, then drains.
 *
 * The invariant scripts rely on: every line read that is a job gets exactly
 * one result line. A line whose submit is refused because the run is being
 * cancelled gets a "canceled" result here, in the producer.
 */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifdef WPOOL_MIMALLOC
#include <mimalloc.h>
#endif

#include "cli/input.h"
#include "cli/obs.h"
#include "cli/limits.h"
#include "cli/parse.h"
#include "cli/store_cmds.h"
#include "fetch/fetch.h"
#include "store/runner.h"
#include "store/store.h"
#include "wpool/wpool.h"

#define EXIT_OK 0
#define EXIT_SOME_FAILED 1
#define EXIT_USAGE 2
#define EXIT_SIGNAL 130

/* ---- options ---------------------------------------------------------- */

typedef struct options {
  unsigned workers;
  uint64_t queue; /* 0 = 2 * workers */
  unsigned loops;
  int64_t timeout_ns, connect_timeout_ns, deadline_ns;
  long max_redirects;
  uint64_t max_body;
  bool head;
  const char **headers;
  size_t nheaders;
  const char *user_agent;
  const char *output;
  enum wp__format format;
  bool ordered;
  int progress; /* -1: auto (stderr is a terminal) */
  char **files;
  size_t nfiles;
  wp__obs_options obs; /* metrics, logs, traces (cli/obs.h) */
  /* Retries and limits. */
  unsigned retries;
  int64_t backoff_base_ns, backoff_cap_ns, retry_after_max_ns;
  int64_t job_timeout_ns;
  double rate; /* per second; 0 = none */
  unsigned per_host;
  wp__fail_limit max_failures;
  const char *state; /* --state FILE: durable, resumable run */
  /* The first option given that only `wpool fetch` has a use for, and why
   * (wpool work refuses it); NULL: none. */
  const char *fetch_only, *fetch_only_why;
} options;

static void fetch_only(options *o, const char *name, const char *why) {
  if (!o->fetch_only) {
    o->fetch_only = name;
    o->fetch_only_why = why;
  }
}

#define WHY_RESULTS                                                        \
  "results stay in the database; print them with 'wpool results --db URL " \
  "[--format F] [-o FILE]'"

static const char *prog = "wpool";
static const char *cmd_name = "fetch"; /* or "work" */

static void usage_error(const char *fmt, ...)
    __attribute__((noreturn, format(printf, 1, 2)));
static void usage_error(const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "%s %s: ", prog, cmd_name);
  va_start(ap, fmt);
  /* ap is started right above: clang-analyzer's valist check misreads the
   * noreturn declaration. */
  vfprintf(stderr, fmt, ap); /* NOLINT(clang-analyzer-valist.Uninitialized) */
  va_end(ap);
  fprintf(stderr, "\nTry '%s %s --help'.\n", prog, cmd_name);
  exit(EXIT_USAGE);
}

/* "wpool X.Y.Z", then what the numbers depend on: libcurl's version and
 * the allocator. The tool is linked with mimalloc where the build found it
 * (CMakeLists.txt: WPOOL_MIMALLOC); whether malloc() really is mimalloc's
 * (the link order makes it replace glibc's in the whole process, libcurl
 * included) is checked, not assumed. */
static void print_version(void) {
  const char *alloc = "system malloc";
#ifdef WPOOL_MIMALLOC
  char ab[64];
  void *p = malloc(16);
  int v = mi_version();
  snprintf(ab, sizeof ab, "mimalloc %d.%d.%d%s", v / 100, v % 100 / 10, v % 10,
           p && mi_is_in_heap_region(p) ? "" : " linked but not in use");
  free(p);
  alloc = ab;
#endif
  printf("wpool %s (libcurl %s, %s)\n", WPOOL_VERSION,
         curl_version_info(CURLVERSION_NOW)->version, alloc);
}

static void print_fetch_help(FILE *f) {
  fprintf(
      f,
      "Usage: %s fetch [OPTIONS] [FILE...]\n"
      "\n"
      "Fetch every URL listed in the FILEs (one per line; '-' or no FILE: "
      "standard\n"
      "input) over HTTP(S), at most N at a time, and write one result per "
      "URL.\n"
      "\n"
      "Input: read as a stream, in order, across all FILEs. Surrounding "
      "whitespace\n"
      "and a CR before the newline are trimmed; blank lines and lines starting "
      "with\n"
      "'#' are skipped. Every other line is a job; IDs count from 1 in input "
      "order.\n"
      "A line that is not an http(s) URL, is longer than 8192 bytes or holds "
      "control\n"
      "bytes is a job whose result is an error saying why; the run goes on.\n"
      "\n"
      "Options:\n"
      "  -w, --workers N          transfers in flight at most, 1-10000 "
      "(default 16);\n"
      "                           each holds a socket: if the soft limit of "
      "open\n"
      "                           files (ulimit -n) is below about N + "
      "N/64 +\n"
      "                           4 per loop + one per FILE + 32 (+68 with\n"
      "                           --metrics), wpool raises it to the hard "
      "limit,\n"
      "                           saying so, or, if that is below too, exits "
      "2\n"
      "                           before starting\n"
      "  -q, --queue N            jobs read ahead of the transfers (default "
      "2*workers)\n"
      "  -t, --timeout DUR        time limit of one attempt (default 30s; 0: "
      "none)\n"
      "      --connect-timeout DUR  time limit to connect (default 10s)\n"
      "      --deadline DUR       time limit of the whole run; then every "
      "transfer is\n"
      "                           aborted and every job left ends 'canceled'\n"
      "      --max-redirects N    redirects to follow, 0 = none (default 10); "
      "only\n"
      "                           to http and https\n"
      "      --max-body BYTES     a longer body is an error (default 10MiB)\n"
      "  -X, --method M           GET (default) or HEAD\n"
      "  -H, --header 'Name: v'   add a request header (repeatable)\n"
      "  -A, --user-agent S       the User-Agent header (default wpool/%s)\n"
      "  -o, --output FILE        write results to FILE (default standard "
      "output)\n"
      "  -f, --format F           text (default), jsonl or csv\n"
      "      --ordered            write results in input order (memory stays "
      "bounded:\n"
      "                           reading waits while the oldest job is "
      "unfinished)\n"
      "      --progress, --no-progress\n"
      "                           progress bar on standard error (default: on "
      "when\n"
      "                           standard error is a terminal)\n"
      "      --loops N            event-loop threads (default: one per core)\n"
      "\n"
      "Retries and limits:\n"
      "  -r, --retries N          retry a transient failure up to N times "
      "(default 2):\n"
      "                           connection refused or reset, name "
      "resolution,\n"
      "                           timeouts, HTTP 408 425 429 500 502 503 504; "
      "nothing\n"
      "                           else (never 404)\n"
      "      --backoff BASE,CAP   wait random(0, min(CAP, BASE*2^n)) before "
      "retry n+1\n"
      "                           (full jitter; default 100ms,10s)\n"
      "      --retry-after-max DUR  a Retry-After header (seconds or "
      "HTTP-date)\n"
      "                           replaces that wait, up to DUR (default 60s; "
      "0:\n"
      "                           ignore the header)\n"
      "      --job-timeout DUR    budget of one job over all its attempts "
      "and waits,\n"
      "                           from its first attempt; a retry that would "
      "start\n"
      "                           after it is not made: the job ends with "
      "its last\n"
      "                           error\n"
      "      --rate R[/s|/m]      start at most R attempts per second (or "
      "minute),\n"
      "                           retries included, evenly spaced; at most "
      "max(2,\n"
      "                           R/s * 20ms) at once\n"
      "      --per-host N         at most N transfers in flight to one "
      "host:port; the\n"
      "                           other hosts' jobs go on meanwhile\n"
      "      --max-failures N|N%%  after N jobs ended not ok (or N%% of the "
      "jobs done,\n"
      "                           once 20 are done), read no more input, "
      "finish what\n"
      "                           was read, exit 1\n"
      "      --state FILE         record every result in the SQLite file FILE "
      "and\n"
      "                           resume from it: the same command after a "
      "kill\n"
      "                           skips the jobs whose result FILE holds (see\n"
      "                           'wpool results --state FILE')\n"
      "  -h, --help               this help\n"
      "  -V, --version            the version\n"
      "\n"
      "DUR: a number and a unit: 250ms, 30s, 2m, 1h (also 1m30s, 1.5s).\n"
      "BYTES: 1048576, 512k, 10MiB, 1G (k, M, G = 1024-based; kB, MB, GB = "
      "1000).\n"
      "\n"
      "Formats (one line per job):\n"
      "  text   job 3 done: 200 OK https://example.com/\n"
      "         job 2 failed: not an http(s) URL: no scheme bobobo\n"
      "  jsonl  "
      "{\"id\":3,\"url\":\"https://example.com/\",\"ok\":true,\"status\":200,\n"
      "          "
      "\"error\":null,\"attempts\":1,\"elapsed_ms\":12.345,\"bytes\":1256}\n"
      "         url is the line as read (invalid UTF-8 replaced by U+FFFD;\n"
      "         of a line over 8192 bytes, its first 8192); ok is\n"
      "         true when a response with status < 400 arrived; status and "
      "error\n"
      "         may be null; bytes counts body bytes received.\n"
      "  csv    the same fields, header "
      "id,url,ok,status,error,attempts,elapsed_ms,\n"
      "         bytes; RFC 4180 quoting.\n"
      "Results come in completion order unless --ordered. A summary goes to "
      "standard\n"
      "error at the end.\n"
      "\n"
      "Exit status: 0 every job ok; 1 some job not ok (or the run was cut\n"
      "short by --deadline or a closed output); 2 usage error, an input file\n"
      "that cannot be read (also mid-run) or an output file that cannot be\n"
      "opened; 130 ended by a signal.\n"
      "\n"
      "Signals: the first SIGINT or SIGTERM stops reading input and lets what "
      "is\n"
      "queued and in flight finish, writing every result; a second one aborts "
      "the\n"
      "transfers in flight, and every job not finished ends 'canceled'. Either "
      "way\n"
      "the jobs read so far are exactly the jobs with a result.\n",
      prog, WPOOL_VERSION);
  fprintf(f, "\n%s", wp__obs_help);
}

static void print_main_help(FILE *f) {
  fprintf(f,
          "Usage: %s COMMAND [OPTIONS]\n\n"
          "Commands:\n"
          "  fetch    fetch a list of URLs with bounded concurrency\n"
          "  results  print the results held by a state file or a queue\n"
          "  migrate  create or upgrade the schema of a PostgreSQL queue\n"
          "  enqueue  add URLs to a PostgreSQL queue\n"
          "  work     run the jobs of a PostgreSQL queue (on any number of "
          "machines)\n"
          "  status   jobs by state, workers alive, rate of a queue\n\n"
          "'%s COMMAND --help' describes a command. '%s --version' prints "
          "the version.\n",
          prog, prog, prog);
}

static uint64_t opt_uint(const char *flag, const char *v, uint64_t min,
                         uint64_t max) {
  uint64_t n;
  if (wp__parse_uint(v, min, max, &n) != 0)
    usage_error("%s: expected an integer from %" PRIu64 " to %" PRIu64
                ", got '%s'",
                flag, min, max, v);
  return n;
}

static int64_t opt_duration(const char *flag, const char *v) {
  int64_t ns;
  if (wp__parse_duration(v, &ns) != 0)
    usage_error("%s: expected a duration like 250ms, 30s, 2m or 1h, got '%s'",
                flag, v);
  return ns;
}

enum {
  OPT_CONNECT_TIMEOUT = 256,
  OPT_DEADLINE,
  OPT_MAX_REDIRECTS,
  OPT_MAX_BODY,
  OPT_ORDERED,
  OPT_PROGRESS,
  OPT_NO_PROGRESS,
  OPT_LOOPS,
  OPT_BACKOFF,
  OPT_RETRY_AFTER_MAX,
  OPT_JOB_TIMEOUT,
  OPT_RATE,
  OPT_PER_HOST,
  OPT_MAX_FAILURES,
  OPT_STATE,
};

static void parse_fetch_args(int argc, char **argv, options *o) {
  static const struct option longs[] = {
      {"workers", required_argument, NULL, 'w'},
      {"queue", required_argument, NULL, 'q'},
      {"timeout", required_argument, NULL, 't'},
      {"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},
      {"deadline", required_argument, NULL, OPT_DEADLINE},
      {"max-redirects", required_argument, NULL, OPT_MAX_REDIRECTS},
      {"max-body", required_argument, NULL, OPT_MAX_BODY},
      {"method", required_argument, NULL, 'X'},
      {"header", required_argument, NULL, 'H'},
      {"user-agent", required_argument, NULL, 'A'},
      {"output", required_argument, NULL, 'o'},
      {"format", required_argument, NULL, 'f'},
      {"ordered", no_argument, NULL, OPT_ORDERED},
      {"progress", no_argument, NULL, OPT_PROGRESS},
      {"no-progress", no_argument, NULL, OPT_NO_PROGRESS},
      {"loops", required_argument, NULL, OPT_LOOPS},
      {"retries", required_argument, NULL, 'r'},
      {"backoff", required_argument, NULL, OPT_BACKOFF},
      {"retry-after-max", required_argument, NULL, OPT_RETRY_AFTER_MAX},
      {"job-timeout", required_argument, NULL, OPT_JOB_TIMEOUT},
      {"rate", required_argument, NULL, OPT_RATE},
      {"per-host", required_argument, NULL, OPT_PER_HOST},
      {"max-failures", required_argument, NULL, OPT_MAX_FAILURES},
      {"state", required_argument, NULL, OPT_STATE},
      {"help", no_argument, NULL, 'h'},
      {"version", no_argument, NULL, 'V'},
      WP__OBS_LONG_OPTIONS,
      {NULL, 0, NULL, 0},
  };
  memset(o, 0, sizeof *o);
  o->workers = 16;
  o->timeout_ns = 30LL * 1000000000;
  o->connect_timeout_ns = 10LL * 1000000000;
  o->max_redirects = 10;
  o->max_body = 10ULL << 20;
  o->format = WP__FMT_TEXT;
  o->progress = -1;
  wp__obs_options_init(&o->obs);
  o->retries = 2;
  o->backoff_base_ns = 100LL * 1000000;
  o->backoff_cap_ns = 10LL * 1000000000;
  o->retry_after_max_ns = 60LL * 1000000000;
  o->headers = calloc((size_t)argc, sizeof *o->headers);
  if (!o->headers) usage_error("out of memory");
  opterr = 0;
  optind = 1;
  int c;
  while ((c = getopt_long(argc, argv, ":w:q:t:X:H:A:o:f:r:hV", longs, NULL)) !=
         -1) {
    char obs_err[512];
    int taken = wp__obs_option(&o->obs, c, optarg, obs_err, sizeof obs_err);
    if (taken < 0) usage_error("%s", obs_err);
    if (taken > 0) continue;
    switch (c) {
      case 'w':
        o->workers = (unsigned)opt_uint("--workers", optarg, 1, 10000);
        break;
      case 'q':
        o->queue = opt_uint("--queue", optarg, 1, 1000000);
        fetch_only(o, "-q",
                   "it sets fetch's read-ahead; work claims --batch jobs at a "
                   "time (--queue NAME names the queue)");
        break;
      case 't':
        o->timeout_ns = opt_duration("--timeout", optarg);
        break;
      case OPT_CONNECT_TIMEOUT:
        o->connect_timeout_ns = opt_duration("--connect-timeout", optarg);
        break;
      case OPT_DEADLINE:
        o->deadline_ns = opt_duration("--deadline", optarg);
        if (o->deadline_ns == 0) usage_error("--deadline: must be above 0");
        break;
      case OPT_MAX_REDIRECTS:
        o->max_redirects = (long)opt_uint("--max-redirects", optarg, 0, 1000);
        break;
      case OPT_MAX_BODY:
        if (wp__parse_size(optarg, &o->max_body) != 0)
          usage_error(
              "--max-body: expected a size like 1048576, 512k or "
              "10MiB, got '%s'",
              optarg);
        break;
      case 'X':
        if (strcmp(optarg, "GET") == 0)
          o->head = false;
        else if (strcmp(optarg, "HEAD") == 0)
          o->head = true;
        else
          usage_error("--method: expected GET or HEAD, got '%s'", optarg);
        break;
      case 'H': {
        const char *colon = strchr(optarg, ':');
        if (!colon || colon == optarg || strpbrk(optarg, "\r\n"))
          usage_error("--header: expected 'Name: value', got '%s'", optarg);
        o->headers[o->nheaders++] = optarg;
        break;
      }
      case 'A':
        if (strpbrk(optarg, "\r\n"))
          usage_error("--user-agent: must not hold a line break");
        o->user_agent = optarg;
        break;
      case 'o':
        o->output = optarg;
        fetch_only(o, "--output", WHY_RESULTS);
        break;
      case 'f':
        if (wp__parse_format(optarg, &o->format) != 0)
          usage_error("--format: expected text, jsonl or csv, got '%s'",
                      optarg);
        fetch_only(o, "--format", WHY_RESULTS);
        break;
      case OPT_ORDERED:
        o->ordered = true;
        fetch_only(o, "--ordered", WHY_RESULTS);
        break;
      case OPT_PROGRESS:
        o->progress = 1;
        fetch_only(o, "--progress", "see 'wpool status --db URL'");
        break;
      case OPT_NO_PROGRESS:
        o->progress = 0;
        fetch_only(o, "--no-progress", "work has no progress bar");
        break;
      case OPT_LOOPS:
        o->loops = (unsigned)opt_uint("--loops", optarg, 1, 64);
        break;
      case 'r':
        o->retries = (unsigned)opt_uint("--retries", optarg, 0, 1000);
        break;
      case OPT_BACKOFF:
        if (wp__parse_backoff(optarg, &o->backoff_base_ns,
                              &o->backoff_cap_ns) != 0)
          usage_error(
              "--backoff: expected BASE,CAP, two durations with 0 < BASE <= "
              "CAP, like 100ms,10s, got '%s'",
              optarg);
        break;
      case OPT_RETRY_AFTER_MAX:
        o->retry_after_max_ns = opt_duration("--retry-after-max", optarg);
        break;
      case OPT_JOB_TIMEOUT:
        o->job_timeout_ns = opt_duration("--job-timeout", optarg);
        if (o->job_timeout_ns == 0) usage_error("--job-timeout: must be above 0");
        fetch_only(o, "--job-timeout",
                   "a claim runs one attempt, bounded by --timeout; the "
                   "queue's attempts span workers");
        break;
      case OPT_RATE:
        if (wp__parse_rate(optarg, &o->rate) != 0)
          usage_error(
              "--rate: expected R, R/s or R/m with R a positive number, at "
              "most 1000000/s and at least 1/h, like 50/s or 600/m, got '%s'",
              optarg);
        break;
      case OPT_PER_HOST:
        o->per_host = (unsigned)opt_uint("--per-host", optarg, 1, 10000);
        break;
      case OPT_MAX_FAILURES:
        if (wp__parse_fail_limit(optarg, &o->max_failures) != 0)
          usage_error(
              "--max-failures: expected N (1 or more) or N%% (1%% to 100%%), "
              "got '%s'",
              optarg);
        fetch_only(o, "--max-failures",
                   "a worker has no run to cut short; stop it with SIGINT");
        break;
      case OPT_STATE:
        if (!optarg[0]) usage_error("--state: needs a file name");
        o->state = optarg;
        break;
      case 'h':
        print_fetch_help(stdout);
        exit(EXIT_OK);
      case 'V':
        print_version();
        exit(EXIT_OK);
      case ':':
        usage_error("%s: needs a value", argv[optind - 1]);
        break;
      default:
        if (optopt)
          usage_error("unknown option '-%c'", optopt);
        else
          usage_error("unknown option '%s'", argv[optind - 1]);
    }
  }
  o->files = argv + optind;
  o->nfiles = (size_t)(argc - optind);
  if (o->queue == 0) o->queue = 2 * (uint64_t)o->workers;
}

/* ---- the run --------------------------------------------------------------
 */

/* A job's record: the request the engine fills, and the URL as read. */
typedef struct job {
  wp__fetch_req req;
  wp_result res;      /* --state: the result, between the push and the commit */
  unsigned qattempts; /* wpool work: the claim's attempt number */
  size_t url_len;
  char url[]; /* NUL-terminated; may hold NULs (url_len) */
} job;

/* A job and its error message (see wp__fetch_req). */
static void job_free(job *j) {
  free(j->req.error);
  free(j);
}

typedef struct run {
  options *o;
  wp__fetch *engine;
  wp_pool *pool;
  FILE *out;
  bool out_is_tty;
  int64_t start_ns;

  pthread_mutex_t out_mu; /* the output, the counters, the window */
  pthread_cond_t window_cv;
  wp__buf buf;
  bool write_failed; /* EPIPE or another write error: stop */
  int write_errno;
  uint64_t n_ok, n_failed, n_canceled;
  uint64_t by_class[6]; /* 0: no response, 1..5: 1xx..5xx */
  atomic_uint_fast64_t done, read_jobs;
  atomic_bool input_done;

  /* --ordered: results wait in a ring until all earlier ones are written. */
  uint64_t window;
  uint64_t next_out; /* the next ID to write */
  wp_result *held;   /* held[(id - 1) % window], present if .id == id */

  /* The controller. */
  pthread_t controller;
  atomic_bool stop;     /* read no more input */
  atomic_bool canceled; /* ShutdownNow happened */
  atomic_bool signaled; /* a SIGINT/SIGTERM ended the run */
  atomic_bool deadline_hit;
  atomic_bool failures_hit; /* --max-failures reached: stopped reading */
  wp_ctx *done_ctx; /* ends when the run ends: stops the progress thread */

  /* The producer and main. */
  pthread_mutex_t prod_mu;
  pthread_cond_t prod_cv;
  bool prod_in_read, prod_done, prod_abandoned;
  /* The input. An abandoned producer may still be using it when we exit:
   * it is never freed then, and stays reachable from here (no leak report
   * for memory still in use). */
  wp__reader *rd;
  int input_error; /* a read error mid-run */
  char input_errmsg[1024];

  wp__obs *obs; /* metrics, logs, traces; NULL when none is asked for */

  /* --state: results go to the state first, to the output after commit. */
  wp__state *state;
  bool state_failed; /* a commit failed: the run stops */
  uint64_t n_unrecorded; /* results lost with a failed commit: run again */
  char state_errmsg[512];
  uint64_t n_skipped; /* jobs whose result the state already held */

  wp__qrunner *qr; /* wpool work: the PostgreSQL queue */
  /* wpool work --metrics: wpool_queue_ends_total by outcome (retry,
   * released, ok, failed); NULL without metrics. */
  wp_counter *q_ends[4];
} run;

static run R;

static void count_locked(const wp_result *res, const job *j) {
  if (res->err == 0)
    R.n_ok++;
  else if (res->err == WP_ECANCELED)
    R.n_canceled++;
  else
    R.n_failed++;
  int st = j->req.status;
  R.by_class[st >= 100 && st < 600 ? st / 100 : 0]++;
}

static void make_outrec(const wp_result *res, const job *j, wp__outrec *rec);

/* Formats and writes one result (out_mu held); frees its job. A NULL arg is
 * a job the state already held (--ordered only): nothing to write. */
static void emit_locked(const wp_result *res) {
  job *j = res->arg;
  if (!j) return;
  if (!R.write_failed) {
    wp__outrec rec;
    make_outrec(res, j, &rec);
    wp__buf_reset(&R.buf);
    wp__format_result(&R.buf, R.o->format, &rec);
    /* R.buf has room for the longest record (see cmd_fetch), so oom is not
     * expected; should it happen, the result is not silently dropped: the
     * run stops as on a write error, saying so. */
    if (R.buf.oom || fwrite(R.buf.data, 1, R.buf.len, R.out) != R.buf.len ||
        (R.out_is_tty && fflush(R.out) != 0)) {
      R.write_failed = true;
      R.write_errno = R.buf.oom ? ENOMEM : errno;
      /* Stop the run from the controller (not from here: a result
       * callback must not wait for its own pool). */
      pthread_kill(R.controller, SIGUSR2);
    }
  }
  job_free(j);
}

static void stop_reading(void);

static void make_outrec(const wp_result *res, const job *j, wp__outrec *rec_) {
  {
    wp__outrec rec;
    rec.id = res->id;
    rec.url = j->url;
    rec.url_len = j->url_len;
    rec.ok = res->err == 0;
    rec.status = j->req.status > 0 ? j->req.status : -1;
    rec.error = NULL;
    if (res->err != 0)
      rec.error = j->req.error ? j->req.error : wp_strerror(res->err);
    if (res->err == WP_ECANCELED) rec.error = "canceled";
    rec.attempts = res->attempts;
    rec.elapsed_ms = (double)res->elapsed_ns / 1e6;
    rec.bytes = j->req.bytes;
    *rec_ = rec;
  }
}

/* Counts and writes (or, --ordered, holds) one result. */
static void output_result(const wp_result *res) {
  job *j = res->arg;
  if (j) wp__obs_result(R.obs, res, &j->req, j->url_len);
  pthread_mutex_lock(&R.out_mu);
  bool stop = false;
  if (j) {
    count_locked(res, j);
    uint64_t done = atomic_fetch_add(&R.done, 1) + 1;
    /* --max-failures: stop reading (the producer sees it before its next
     * line), drain the rest. Not after a cancel: those failures are ours. */
    stop = !atomic_load(&R.failures_hit) && !atomic_load(&R.canceled) &&
           wp__fail_limit_hit(&R.o->max_failures, R.n_failed + R.n_canceled,
                              done);
    if (stop) atomic_store(&R.failures_hit, true);
  }
  if (!R.o->ordered) {
    emit_locked(res);
  } else {
    R.held[(res->id - 1) % R.window] = *res;
    while (R.held[(R.next_out - 1) % R.window].id == R.next_out) {
      wp_result *h = &R.held[(R.next_out - 1) % R.window];
      emit_locked(h);
      h->id = 0;
      R.next_out++;
    }
    pthread_cond_broadcast(&R.window_cv);
  }
  pthread_mutex_unlock(&R.out_mu);
  if (stop) stop_reading();
}

static int64_t realtime_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* --state: the state is the authority. A result goes to the state writer;
 * it reaches the output only once its transaction committed (state_commit).
 * A canceled job is not final: nothing is stored, so a resume runs it. */
static void work_result(const wp_result *res);

static void on_result(const wp_result *res, void *userdata) {
  (void)userdata;
  job *j = res->arg;
  if (R.qr) {
    work_result(res);
    return;
  }
  if (!R.state) {
    output_result(res);
    return;
  }
  j->res = *res;
  if (res->err == WP_ECANCELED) {
    wp__state_push(R.state, NULL, j);
    return;
  }
  wp__state_rec rec;
  memset(&rec, 0, sizeof rec);
  rec.done = true;
  make_outrec(res, j, &rec.r);
  wp__state_push(R.state, &rec, j);
}

/* A failed attempt will be retried: record its attempts and when the next
 * may start, so that a resume continues the count and the backoff. */
static void on_retry(uint64_t id, void *arg, unsigned attempts,
                     int64_t delay_ns, void *userdata) {
  (void)userdata;
  job *j = arg;
  if (!R.state) return;
  wp__state_rec rec;
  memset(&rec, 0, sizeof rec);
  rec.done = false;
  rec.run_at_unix_ns = realtime_ns() + delay_ns;
  rec.r.id = id;
  rec.r.url = j->url;
  rec.r.url_len = j->url_len;
  rec.r.attempts = attempts;
  wp__state_push(R.state, &rec, NULL);
}

/* The writer thread, after each commit, in push order. */
static void state_commit(void *token, bool committed, const char *err,
                         void *userdata) {
  (void)userdata;
  job *j = token;
  if (!j) return; /* a retry record */
  if (committed) {
    output_result(&j->res);
    return;
  }
  pthread_mutex_lock(&R.out_mu);
  bool first = !R.state_failed;
  if (first) {
    R.state_failed = true;
    snprintf(R.state_errmsg, sizeof R.state_errmsg, "%s", err ? err : "?");
  }
  /* Not counted as ok or failed: the summary and the exit status speak of
   * the results the state holds (and the output shows); this job runs
   * again on resume. */
  R.n_unrecorded++;
  atomic_fetch_add(&R.done, 1);
  pthread_mutex_unlock(&R.out_mu);
  /* Not written: the output never shows what the state does not hold.
   * --ordered: hold an empty place so later results still come out. */
  if (R.o->ordered) {
    wp_result skip = j->res;
    skip.arg = NULL;
    job_free(j);
    output_result(&skip);
  } else {
    job_free(j);
  }
  if (first) pthread_kill(R.controller, SIGUSR2); /* stop the run */
}

/* A job that never reaches the engine still gets its result: a bad line
 * (err WP__FETCH_EBADLINE, no attempt), or a line whose submit was refused
 * because the run is being cancelled (WP_ECANCELED). */
static void emit_direct(uint64_t id, job *j, int err, const char *why) {
  wp__fetch_req_error(&j->req, "%s", why);
  j->req.status = -1;
  wp_result res;
  memset(&res, 0, sizeof res);
  res.id = id;
  res.arg = j;
  res.err = err;
  on_result(&res, NULL);
}

static void *producer(void *arg) {
  wp__reader *rd = arg;
  uint64_t id = 0;
  char err[512];
  for (;;) {
    pthread_mutex_lock(&R.prod_mu);
    if (atomic_load(&R.stop) || R.prod_abandoned) {
      pthread_mutex_unlock(&R.prod_mu);
      break;
    }
    R.prod_in_read = true;
    pthread_mutex_unlock(&R.prod_mu);

    wp__line line;
    int rc = wp__reader_next(rd, &line, err, sizeof err);

    pthread_mutex_lock(&R.prod_mu);
    R.prod_in_read = false;
    bool abandoned = R.prod_abandoned;
    pthread_mutex_unlock(&R.prod_mu);
    if (abandoned) return NULL; /* main went on without us: not "read" */
    if (rc == 0) {
      if (R.state && wp__state_max_id(R.state) > id) {
        snprintf(R.input_errmsg, sizeof R.input_errmsg,
                 "the input changed since the state %s was written: it ends "
                 "after job %" PRIu64
                 ", but the state holds jobs up to %" PRIu64
                 ". Use a new state file, or the input this one was made from",
                 R.o->state, id, wp__state_max_id(R.state));
        R.input_error = 1;
      }
      break;
    }
    if (rc < 0) {
      snprintf(R.input_errmsg, sizeof R.input_errmsg, "%s", err);
      R.input_error = 1;
      break;
    }
    id++;
    job *j = malloc(sizeof *j + line.len + 1);
    if (!j) {
      snprintf(R.input_errmsg, sizeof R.input_errmsg, "out of memory");
      R.input_error = 1;
      break;
    }
    memcpy(j->url, line.text, line.len);
    j->url[line.len] = '\0';
    j->url_len = line.len;
    memset(&j->req, 0, sizeof j->req);
    j->req.url = j->url;
    j->req.bad = line.bad;
    j->req.status = -1;
    wp__obs_new_job(R.obs, &j->req);
    atomic_store(&R.read_jobs, id);

    if (R.o->ordered) {
      /* Bounded memory: never more than window results held back. */
      pthread_mutex_lock(&R.out_mu);
      /* Also after a cancel: in-flight jobs then end at once and free it. */
      while (id >= R.next_out + R.window)
        pthread_cond_wait(&R.window_cv, &R.out_mu);
      pthread_mutex_unlock(&R.out_mu);
    }
    unsigned attempts = 0;
    int64_t due = 0;
    if (R.state) {
      int64_t run_at = 0;
      int st = wp__state_lookup(R.state, id, j->url, j->url_len, &attempts,
                                &run_at, err, sizeof err);
      if (st < 0) {
        char q[300];
        wp__store_quote(q, sizeof q, j->url, j->url_len);
        if (st == -2)
          snprintf(R.input_errmsg, sizeof R.input_errmsg,
                   "the input changed since the state %s was written: %s "
                   "line %" PRIu64 " (job %" PRIu64
                   ") is '%s'; %s. Use a new "
                   "state file, or the input this one was made from",
                   R.o->state, line.file, line.lineno, id, q, err);
        else
          snprintf(R.input_errmsg, sizeof R.input_errmsg, "%s", err);
        R.input_error = 1;
        job_free(j);
        break;
      }
      if (st == WP__STATE_DONE) {
        R.n_skipped++;
        if (R.o->ordered) {
          wp_result skip;
          memset(&skip, 0, sizeof skip);
          skip.id = id;
          output_result(&skip);
        }
        job_free(j);
        continue;
      }
      if (st == WP__STATE_RETRY) {
        int64_t left = run_at - realtime_ns();
        due = wp_now_ns() + (left > 0 ? left : 0);
      }
    }
    if (line.bad) {
      emit_direct(id, j, WP__FETCH_EBADLINE, line.bad);
      continue;
    }
    rc = attempts > 0
             ? wp_pool_submit_resumed(R.pool, id, j, attempts, due, NULL)
             : wp_pool_submit(R.pool, id, j, NULL);
    if (rc != 0) {
      emit_direct(id, j, WP_ECANCELED, "canceled");
      break;
    }
  }
  pthread_mutex_lock(&R.prod_mu);
  R.prod_done = true;
  pthread_cond_broadcast(&R.prod_cv);
  pthread_mutex_unlock(&R.prod_mu);
  return NULL;
}

/* Read no more input; main stops waiting for a producer blocked in read. */
static void stop_reading(void) {
  atomic_store(&R.stop, true);
  if (R.qr) wp__qrunner_stop(R.qr); /* wpool work: claim no more */
  pthread_mutex_lock(&R.prod_mu);
  pthread_cond_broadcast(&R.prod_cv);
  pthread_mutex_unlock(&R.prod_mu);
}

static void cancel_run(void) {
  atomic_store(&R.canceled, true);
  stop_reading();
  pthread_mutex_lock(&R.out_mu);
  pthread_cond_broadcast(&R.window_cv);
  pthread_mutex_unlock(&R.out_mu);
  wp_pool_shutdown_now(R.pool, NULL);
}

static void *controller(void *arg) {
  (void)arg;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGUSR1);
  sigaddset(&set, SIGUSR2);
  int64_t deadline =
      R.o->deadline_ns ? R.start_ns + R.o->deadline_ns : INT64_MAX;
  int interrupts = 0;
  for (;;) {
    int sig;
    if (deadline != INT64_MAX) {
      int64_t left = deadline - wp_now_ns();
      if (left <= 0) {
        if (!atomic_load(&R.canceled)) {
          atomic_store(&R.deadline_hit, true);
          cancel_run();
        }
        deadline = INT64_MAX;
        continue;
      }
      struct timespec ts = {.tv_sec = (time_t)(left / 1000000000),
                            .tv_nsec = (long)(left % 1000000000)};
      sig = sigtimedwait(&set, NULL, &ts);
      if (sig < 0) continue; /* timeout or EINTR: recheck */
    } else {
      sig = sigwaitinfo(&set, NULL);
      if (sig < 0) continue;
    }
    if (sig == SIGUSR1) break; /* the run is over */
    if (sig == SIGUSR2) {      /* the output is gone */
      cancel_run();
      continue;
    }
    /* SIGINT or SIGTERM */
    atomic_store(&R.signaled, true);
    if (++interrupts == 1) {
      stop_reading(); /* and drain */
    } else {
      cancel_run();
    }
  }
  return NULL;
}

static void format_rate(char *b, size_t n, double r) {
  if (r >= 1e6)
    snprintf(b, n, "%.1fM/s", r / 1e6);
  else if (r >= 1e3)
    snprintf(b, n, "%.1fk/s", r / 1e3);
  else
    snprintf(b, n, "%.0f/s", r);
}

static void draw_progress(bool final) {
  /* In this order, so that the line is honest: once the input is known to
   * be done, total is final; and done <= total (a result follows its read). */
  bool known = atomic_load(&R.input_done);
  uint64_t done = atomic_load(&R.done);
  uint64_t total = atomic_load(&R.read_jobs);
  double secs = (double)(wp_now_ns() - R.start_ns) / 1e9;
  double rate = secs > 0 ? (double)done / secs : 0;
  pthread_mutex_lock(&R.out_mu);
  uint64_t failed = R.n_failed + R.n_canceled;
  pthread_mutex_unlock(&R.out_mu);
  char rb[32], line[256];
  format_rate(rb, sizeof rb, rate);
  if (known && total > 0) {
    int width = 30;
    int fill = (int)((double)done / (double)total * width);
    if (fill > width) fill = width;
    char bar[64];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '-';
    bar[width] = '\0';
    char eta[32] = "";
    if (rate > 0 && done < total)
      snprintf(eta, sizeof eta, " ETA %.0fs", (double)(total - done) / rate);
    snprintf(line, sizeof line,
             "[%s] %" PRIu64 "/%" PRIu64 " %s%s, %" PRIu64 " failed", bar, done,
             total, rb, eta, failed);
  } else {
    snprintf(line, sizeof line,
             "%" PRIu64 " done, %" PRIu64 " read, %s, %" PRIu64 " failed", done,
             total, rb, failed);
  }
  fprintf(stderr, "\r\033[K%s", final ? "" : line);
  fflush(stderr);
}

static void *progress(void *arg) {
  (void)arg;
  for (;;) {
    draw_progress(false);
    if (wp_ctx_wait(R.done_ctx, wp_now_ns() + 200000000) != WP_EAGAIN) break;
  }
  draw_progress(true); /* clears the line */
  return NULL;
}

static void summary(void) {
  double secs = (double)(wp_now_ns() - R.start_ns) / 1e9;
  uint64_t total = R.n_ok + R.n_failed + R.n_canceled;
  char rb[32];
  format_rate(rb, sizeof rb, secs > 0 ? (double)total / secs : 0);
  fprintf(stderr,
          "wpool: %" PRIu64 " jobs in %.2fs (%s): %" PRIu64 " ok, %" PRIu64
          " failed, %" PRIu64 " canceled; responses 1xx %" PRIu64
          ", 2xx %" PRIu64 ", 3xx %" PRIu64 ", 4xx %" PRIu64 ", 5xx %" PRIu64
          ", none %" PRIu64 "\n",
          total, secs, rb, R.n_ok, R.n_failed, R.n_canceled, R.by_class[1],
          R.by_class[2], R.by_class[3], R.by_class[4], R.by_class[5],
          R.by_class[0]);
}

/* File descriptors (cli/limits.h counts them): if the soft RLIMIT_NOFILE
 * is below what the run needs, raise it to the hard limit and say so; if
 * the hard limit is below too, say so and refuse to start (the caller
 * exits 2), so that a run never meets EMFILE halfway, where libcurl would
 * report it as "Couldn't connect" job after job. */
static int ensure_nofile(const options *o, bool queue) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0; /* cannot tell */
  wp__nofile_use u;
  memset(&u, 0, sizeof u);
  u.workers = o->workers;
  u.loop_fds = wp__fetch_fds(o->workers, o->loops);
  u.files = o->nfiles > 0 ? o->nfiles : 1;
  u.metrics = o->obs.metrics_addr != NULL;
  u.queue = queue;
  uint64_t need = wp__nofile_need(&u);
  uint64_t soft = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : rl.rlim_cur;
  uint64_t hard = rl.rlim_max == RLIM_INFINITY ? UINT64_MAX : rl.rlim_max;
  uint64_t to = 0;
  int plan = wp__nofile_plan(need, soft, hard, &to);
  if (plan == 0) return 0;
  char eb[128] = "";
  if (plan > 0) {
    rl.rlim_cur = (rlim_t)to;
    if (setrlimit(RLIMIT_NOFILE, &rl) == 0) {
      fprintf(stderr,
              "%s %s: --workers %u needs about %" PRIu64
              " file descriptors: raised the soft limit from %" PRIu64
              " to %" PRIu64 "\n",
              prog, cmd_name, o->workers, need, soft, to);
      return 0;
    }
    int e = errno;
    char why[96];
    snprintf(eb, sizeof eb, " (raising it failed: %s)",
             strerror_r(e, why, sizeof why));
  }
  char hb[32] = "unlimited";
  if (hard != UINT64_MAX) snprintf(hb, sizeof hb, "%" PRIu64, hard);
  fprintf(stderr,
          "%s %s: --workers %u needs about %" PRIu64
          " file descriptors, but the limit is %" PRIu64
          " (hard limit %s)%s: raise it (ulimit -n) or lower --workers\n",
          prog, cmd_name, o->workers, need, soft, hb, eb);
  return -1;
}

/* The run could not start: nothing was read, so no job is owed a result.
 * Says why ("what: why", or why alone), stops what runs, frees everything
 * made so far. */
static int setup_failed(const char *what, const char *why,
                        bool controller_running) {
  if (what)
    fprintf(stderr, "%s fetch: %s: %s\n", prog, what, why);
  else
    fprintf(stderr, "%s fetch: %s\n", prog, why);
  if (controller_running) {
    pthread_kill(R.controller, SIGUSR1);
    pthread_join(R.controller, NULL);
  }
  wp__fetch_destroy(R.engine);
  R.engine = NULL;
  wp__obs_stop(R.obs); /* after the engine, as at the end of a run */
  R.obs = NULL;
  wp_ctx_release(R.done_ctx);
  R.done_ctx = NULL;
  wp__reader_close(R.rd);
  R.rd = NULL;
  if (R.out && R.out != stdout) fclose(R.out);
  R.out = NULL;
  wp__buf_free(&R.buf);
  free(R.held);
  R.held = NULL;
  free(R.o->headers);
  R.o->headers = NULL;
  wp__state_close(R.state); /* after the engine: nothing pushes any more */
  R.state = NULL;
  return EXIT_SOME_FAILED;
}

/* SIGPIPE is a write error, and so is SIGXFSZ (a file size limit, ulimit
 * -f, reached by the output or the state: EFBIG, reported, instead of a
 * kill); the others go to the controller (every thread created afterwards
 * inherits the mask). */
static void block_signals(void) {
  signal(SIGPIPE, SIG_IGN);
  signal(SIGXFSZ, SIG_IGN);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGUSR1);
  sigaddset(&set, SIGUSR2);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
}

/* The engine's configuration from the transfer options (fetch and work). */
static void fetch_config_init(wp__fetch_config *fc, const options *o) {
  memset(fc, 0, sizeof *fc);
  fc->concurrency = o->workers;
  fc->loops = o->loops;
  fc->timeout_ns = o->timeout_ns;
  fc->connect_timeout_ns = o->connect_timeout_ns;
  fc->max_redirects = o->max_redirects;
  fc->max_body = o->max_body;
  fc->head = o->head;
  fc->headers = o->headers;
  fc->nheaders = o->nheaders;
  fc->user_agent = o->user_agent;
  fc->rate = o->rate;
  fc->per_host = o->per_host;
  fc->retry_after_max_ns = o->retry_after_max_ns;
  fc->on_result = on_result;
}

static int cmd_fetch(int argc, char **argv) {
  options o;
  parse_fetch_args(argc, argv, &o);
  memset(&R, 0, sizeof R);
  R.o = &o;

  if (ensure_nofile(&o, false) != 0) {
    free(o.headers);
    return EXIT_USAGE;
  }
  char err[512];
  if (wp__reader_open(&R.rd, o.files, o.nfiles, err, sizeof err) != 0) {
    fprintf(stderr, "%s fetch: %s\n", prog, err);
    free(o.headers);
    return EXIT_USAGE;
  }
  wp__reader *rd = R.rd;
  if (o.state && wp__state_open(o.state, &R.state, err, sizeof err) != 0) {
    fprintf(stderr, "%s fetch: %s\n", prog, err);
    wp__reader_close(rd);
    free(o.headers);
    return EXIT_USAGE;
  }
  R.out = stdout;
  if (o.output && strcmp(o.output, "-") != 0) {
    R.out = fopen(o.output, "w");
    if (!R.out) {
      int e = errno;
      char eb[128];
      fprintf(stderr, "%s fetch: %s: %s\n", prog, o.output,
              strerror_r(e, eb, sizeof eb));
      wp__state_close(R.state);
      wp__reader_close(rd);
      free(o.headers);
      return EXIT_USAGE;
    }
  }
  if (wp__obs_start(&R.obs, &o.obs, err, sizeof err) != 0) {
    fprintf(stderr, "%s fetch: %s\n", prog, err);
    if (R.out != stdout) fclose(R.out);
    wp__state_close(R.state);
    wp__reader_close(rd);
    free(o.headers);
    return EXIT_USAGE;
  }
  R.out_is_tty = isatty(fileno(R.out));
  static char outbuf[1 << 16];
  if (!R.out_is_tty) setvbuf(R.out, outbuf, _IOFBF, sizeof outbuf);
  bool show_progress = o.progress == 1 || (o.progress == -1 && isatty(2));

  /* Signals: SIGPIPE is a write error; the others go to the controller. */
  block_signals();

  pthread_mutex_init(&R.out_mu, NULL);
  pthread_cond_init(&R.window_cv, NULL);
  pthread_mutex_init(&R.prod_mu, NULL);
  pthread_cond_init(&R.prod_cv, NULL);
  wp__buf_init(&R.buf);
  /* Room for the longest record up front, so that writing a result never
   * allocates: a URL is at most WP__LINE_MAX bytes, 6 bytes each at worst
   * in JSON (\u00XX), an error at most WP__FETCH_ERRLEN, 6 each too. */
  {
    static const char room[6 * (WP__LINE_MAX + WP__FETCH_ERRLEN) + 1024];
    wp__buf_append(&R.buf, room, sizeof room);
    if (R.buf.oom) return setup_failed("cannot start", "out of memory", false);
    wp__buf_reset(&R.buf);
  }
  R.next_out = 1;
  R.window = (uint64_t)o.workers + o.queue;
  if (o.ordered) {
    R.held = calloc(R.window, sizeof *R.held);
    if (!R.held) return setup_failed("cannot start", "out of memory", false);
  }

  wp__fetch_config fc;
  fetch_config_init(&fc, &o);
  fc.queue = o.queue;
  wp__obs_fetch_config(R.obs, &fc);
  fc.retry.max_attempts = o.retries + 1;
  fc.retry.base_ns = o.backoff_base_ns;
  fc.retry.cap_ns = o.backoff_cap_ns;
  fc.job_timeout_ns = o.job_timeout_ns;
  fc.on_retry = on_retry;
  if (R.state &&
      wp__state_start_writer(R.state, (size_t)o.workers + o.queue, state_commit,
                             NULL, err, sizeof err) != 0)
    return setup_failed(NULL, err, false);
  int rc = wp__fetch_create(&fc, &R.engine, err, sizeof err);
  if (rc != 0) return setup_failed(NULL, err, false);
  R.pool = wp__fetch_pool(R.engine);
  rc = wp_ctx_with_cancel(NULL, &R.done_ctx);
  if (rc != 0) return setup_failed("cannot start", wp_strerror(rc), false);

  if (o.format == WP__FMT_CSV) {
    wp__buf_reset(&R.buf);
    wp__format_header(&R.buf, o.format);
    fwrite(R.buf.data, 1, R.buf.len, R.out);
  }
  R.start_ns = wp_now_ns();
  {
    wp__log_field f[] = {
        WP__FUINT("workers", o.workers),
        WP__FUINT("queue", o.queue),
        WP__FDBL("timeout_ms", (double)o.timeout_ns / 1e6),
        o.deadline_ns ? WP__FDBL("deadline_ms", (double)o.deadline_ns / 1e6)
                      : WP__FNULL("deadline_ms"),
        WP__FUINT("inputs", o.nfiles),
        WP__FSTR("output", o.output ? o.output : "-"),
        WP__FSTR("version", WPOOL_VERSION)};
    wp__obs_log(R.obs, WP__LOG_INFO, "run start", f, sizeof f / sizeof f[0]);
  }
  char eb[128];
  int trc = pthread_create(&R.controller, NULL, controller, NULL);
  if (trc != 0)
    return setup_failed("cannot start a thread", strerror_r(trc, eb, sizeof eb),
                        false);
  pthread_t prog_thread, prod_thread;
  if (show_progress &&
      (trc = pthread_create(&prog_thread, NULL, progress, NULL)) != 0) {
    fprintf(stderr, "%s fetch: no progress bar: cannot start its thread: %s\n",
            prog, strerror_r(trc, eb, sizeof eb));
    show_progress = false;
  }
  trc = pthread_create(&prod_thread, NULL, producer, rd);
  if (trc != 0) {
    /* Nothing was read: no job is owed a result. */
    wp_ctx_cancel(R.done_ctx);
    if (show_progress) pthread_join(prog_thread, NULL);
    return setup_failed("cannot start a thread", strerror_r(trc, eb, sizeof eb),
                        true);
  }

  /* Wait for the producer; after a stop, not for a producer blocked in a
   * read (a terminal, a FIFO): what it has not returned is not read. */
  pthread_mutex_lock(&R.prod_mu);
  while (!R.prod_done && !(atomic_load(&R.stop) && R.prod_in_read))
    pthread_cond_wait(&R.prod_cv, &R.prod_mu);
  bool joined = R.prod_done;
  if (!joined) R.prod_abandoned = true;
  pthread_mutex_unlock(&R.prod_mu);
  if (joined)
    pthread_join(prod_thread, NULL);
  else
    pthread_detach(prod_thread);
  atomic_store(&R.input_done, true);

  wp_pool_shutdown(R.pool, NULL); /* drain (or wait for ShutdownNow) */
  /* Every result is pushed: commit the last ones, which writes them. */
  if (R.state) (void)wp__state_stop_writer(R.state, err, sizeof err);
  pthread_kill(R.controller, SIGUSR1);
  pthread_join(R.controller, NULL);
  wp_ctx_cancel(R.done_ctx);
  if (show_progress) pthread_join(prog_thread, NULL);

  if (fflush(R.out) != 0 && !R.write_failed) {
    R.write_failed = true;
    R.write_errno = errno;
  }
  if (R.write_failed && R.write_errno != EPIPE) {
    const char *why = strerror_r(R.write_errno, eb, sizeof eb);
    fprintf(stderr, "%s fetch: writing results: %s\n", prog, why);
    wp__log_field f[] = {WP__FSTR("error", why)};
    wp__obs_log(R.obs, WP__LOG_ERROR, "writing results failed", f, 1);
  }
  if (R.input_error) {
    fprintf(stderr, "%s fetch: reading input: %s\n", prog, R.input_errmsg);
    wp__log_field f[] = {WP__FSTR("error", R.input_errmsg)};
    wp__obs_log(R.obs, WP__LOG_ERROR, "reading input failed", f, 1);
  }
  if (atomic_load(&R.failures_hit)) {
    fprintf(stderr,
            "%s fetch: --max-failures reached: stopped reading input\n",
            prog);
    wp__obs_log(R.obs, WP__LOG_WARN,
                "--max-failures reached: stopped reading input", NULL, 0);
  }
  if (R.state_failed)
    fprintf(stderr,
            "%s fetch: %s; the run stopped (%" PRIu64
            " results not recorded, so not written). The state holds every "
            "result written; run the same command again to resume (once "
            "there is space, if the disk is full): the jobs without a result "
            "there run again\n",
            prog, R.state_errmsg, R.n_unrecorded);
  if (R.state && R.n_skipped > 0)
    fprintf(stderr,
            "%s fetch: resumed from %s: %" PRIu64
            " jobs already done there were skipped\n",
            prog, o.state, R.n_skipped);
  if (atomic_load(&R.deadline_hit)) {
    fprintf(stderr, "%s fetch: --deadline passed: the run was cut short\n",
            prog);
    wp__obs_log(R.obs, WP__LOG_WARN, "--deadline passed: the run was cut short",
                NULL, 0);
  }
  /* Structured logs on stderr carry the summary as a record instead. */
  if (!wp__obs_owns_stderr(R.obs)) summary();
  {
    wp__log_field f[] = {
        WP__FUINT("jobs", R.n_ok + R.n_failed + R.n_canceled),
        WP__FUINT("ok", R.n_ok), WP__FUINT("failed", R.n_failed),
        WP__FUINT("canceled", R.n_canceled),
        WP__FDBL("elapsed_ms", (double)(wp_now_ns() - R.start_ns) / 1e6)};
    wp__obs_finish(R.obs, f, sizeof f / sizeof f[0]);
  }

  int status = EXIT_OK;
  if (R.n_failed + R.n_canceled > 0 || R.write_failed)
    status = EXIT_SOME_FAILED;
  if (R.input_error || R.state_failed)
    status = EXIT_USAGE; /* an input file or the state failed mid-run */
  if (atomic_load(&R.signaled)) status = EXIT_SIGNAL;

  wp__fetch_destroy(R.engine);
  wp__obs_stop(R.obs); /* after the engine: its pool updates the metrics */
  wp__state_close(R.state);
  if (R.out != stdout) fclose(R.out);
  if (joined) wp__reader_close(rd);
  wp_ctx_release(R.done_ctx);
  wp__buf_free(&R.buf);
  free(R.held);
  free(o.headers);
  return status;
}

/* ---- wpool work -----------------------------------------------------------
 */

typedef struct work_opts {
  const char *db, *queue;
  int64_t lease_ns, renew_ns;
  unsigned batch;
  bool exit_when_empty;
} work_opts;

static void print_work_help(void) {
  printf(
      "Usage: %s work [--db URL] [--queue NAME] [OPTIONS]\n"
      "\n"
      "Runs the jobs of a PostgreSQL queue (see 'wpool enqueue'), at most N "
      "at a time,\n"
      "until interrupted (or, with --exit-when-empty, until the queue holds "
      "nothing to\n"
      "run). Start any number of these, on any number of machines.\n"
      "\n"
      "  --db URL             the database (default $WPOOL_DATABASE_URL; "
      "libpq's PG*\n"
      "                       variables work too)\n"
      "  --queue NAME         the queue (default 'default')\n"
      "  --batch N            jobs per claim, 1-10000 (default 64)\n"
      "  --lease DUR          a claim's lease (default 30s): a job whose "
      "worker stops\n"
      "                       renewing it for that long runs again "
      "elsewhere\n"
      "  --renew DUR          lease renewal interval (default and at most "
      "lease/3)\n"
      "  --exit-when-empty    exit once nothing is available, waiting for a "
      "retry or\n"
      "                       running anywhere\n"
      "  -r, --retries N      retries of a transient failure (default 2), "
      "stored as a\n"
      "                       run-at time in the queue\n"
      "      --backoff B,C    full-jitter backoff base and cap (default "
      "100ms,10s)\n"
      "      --retry-after-max DUR  a failed response's Retry-After replaces "
      "the\n"
      "                       backoff, up to this (default 60s; 0: ignore "
      "it)\n"
      "  and the options of 'wpool fetch' that shape a transfer: -w, -t,\n"
      "  --connect-timeout, --max-redirects, --max-body, -X, -H, -A, --loops,\n"
      "  --deadline, --rate, --per-host. -w N needs about N + N/64 + 4 per "
      "loop + 37 open\n"
      "  files: a lower soft limit is raised to the hard one, or the run is "
      "refused\n"
      "  (exit 2) before any connection, as in 'wpool fetch --help'.\n"
      "\n"
      "Observability, as in 'wpool fetch': --metrics ADDR, --metrics-linger "
      "DUR,\n"
      "--log-format text|json|logfmt, --log-level, --log-file PATH,\n"
      "--otlp-endpoint URL, --traceparent. /metrics has the pool's wpool_* "
      "series\n"
      "(each claim is one job there) and "
      "wpool_queue_ends_total{outcome=\"ok|failed|\n"
      "retry|released\"}, what the queue recorded; each claim is a trace of "
      "its own.\n"
      "Options of fetch that mean nothing here (-o, -f, --ordered, "
      "--max-failures,\n"
      "-q, --progress, --no-progress, --job-timeout, --state) are usage "
      "errors:\n"
      "results stay in the database ('wpool results --db URL').\n"
      "\n"
      "Signals: the first SIGINT or SIGTERM stops claiming, releases the "
      "claimed jobs\n"
      "not started and lets running ones finish; a second one cancels the "
      "running jobs\n"
      "and releases them too. Results stay in the database: 'wpool results "
      "--db URL'.\n"
      "A job runs twice only if its lease expires while it still runs (a "
      "worker\n"
      "killed, stopped or cut off for longer than the lease).\n"
      "Exit status: 0; 1 a thread could not start; 2 usage or database "
      "error (also\n"
      "one mid-run, such as the server stopping: the worker stops, and the "
      "jobs it\n"
      "held run again once their lease ends); 130 ended by a signal.\n",
      prog);
}

/* Takes the options of `wpool work` itself out of argv (into *w); the rest
 * (the fetch options) stay in argv, whose new length is returned. */
static int take_work_opts(int argc, char **argv, work_opts *w) {
  static const struct {
    const char *name;
    bool has_arg;
  } own[] = {
      {"--db", true},    {"--queue", true}, {"--lease", true},
      {"--renew", true}, {"--batch", true}, {"--exit-when-empty", false}};
  int out = 1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0) {
      while (i < argc) argv[out++] = argv[i++];
      break;
    }
    int k = -1;
    const char *val = NULL;
    for (size_t n = 0; n < sizeof own / sizeof own[0] && k < 0; n++) {
      size_t l = strlen(own[n].name);
      if (strncmp(a, own[n].name, l) != 0) continue;
      if (a[l] == '\0') {
        k = (int)n;
      } else if (a[l] == '=' && own[n].has_arg && a[1] == '-') {
        k = (int)n;
        val = a + l + 1;
      }
    }
    if (k < 0) {
      argv[out++] = argv[i];
      continue;
    }
    if (own[k].has_arg && !val) {
      if (i + 1 >= argc) usage_error("%s: needs a value", own[k].name);
      val = argv[++i];
    }
    const char *n = own[k].name;
    if (strcmp(n, "--db") == 0) {
      w->db = val;
    } else if (strcmp(n, "--queue") == 0) {
      if (!val[0] || strlen(val) > 100)
        usage_error("--queue: a name of 1 to 100 bytes");
      w->queue = val;
    } else if (strcmp(n, "--lease") == 0) {
      w->lease_ns = opt_duration("--lease", val);
      if (w->lease_ns < 1000000000) usage_error("--lease: at least 1s");
    } else if (strcmp(n, "--renew") == 0) {
      w->renew_ns = opt_duration("--renew", val);
      if (w->renew_ns < 10000000) usage_error("--renew: at least 10ms");
    } else if (strcmp(n, "--batch") == 0) {
      w->batch = (unsigned)opt_uint("--batch", val, 1, 10000);
    } else { /* --exit-when-empty */
      w->exit_when_empty = true;
    }
  }
  argv[out] = NULL;
  return out;
}

/* A claimed row becomes a job of the engine. */
static void *work_make_arg(const wp__qjob *qj, void *userdata) {
  (void)userdata;
  job *j = malloc(sizeof *j + qj->url_len + 1 + qj->bad_len + 1);
  if (!j) return NULL;
  memset(j, 0, sizeof *j);
  memcpy(j->url, qj->url, qj->url_len);
  j->url[qj->url_len] = '\0';
  j->url_len = qj->url_len;
  j->req.url = j->url;
  j->req.status = -1;
  j->req.retry_after_ns = -1;
  if (qj->bad) {
    char *bad = j->url + qj->url_len + 1;
    memcpy(bad, qj->bad, qj->bad_len);
    bad[qj->bad_len] = '\0';
    j->req.bad = bad;
  }
  j->qattempts = qj->attempts;
  wp__obs_new_job(R.obs, &j->req); /* the feeder's thread only */
  return j;
}

static void work_free_arg(void *arg, void *userdata) {
  (void)userdata;
  job_free(arg);
}

static void work_result(const wp_result *res) {
  job *j = res->arg;
  wp__qresult q;
  memset(&q, 0, sizeof q);
  q.id = (int64_t)res->id;
  q.attempts = j->qattempts;
  q.err = res->err;
  q.status = j->req.status > 0 ? j->req.status : -1;
  q.error = j->req.error ? j->req.error
            : res->err   ? wp_strerror(res->err)
                         : NULL;
  q.elapsed_ms = (double)res->elapsed_ns / 1e6;
  q.bytes = j->req.bytes;
  /* The engine read the response's Retry-After (capped by
   * --retry-after-max): the queue's run-at honours it, as fetch does. */
  q.has_retry_after = j->req.retry_after_ns >= 0;
  q.retry_after_ns = j->req.retry_after_ns;
  wp__obs_result(R.obs, res, &j->req, j->url_len);
  int kind = wp__qrunner_complete(R.qr, &q);
  wp_counter_add(kind == WP__Q_RETRY     ? R.q_ends[0]
                 : kind == WP__Q_RELEASE ? R.q_ends[1]
                 : res->err == 0         ? R.q_ends[2]
                                         : R.q_ends[3],
                 1);
  pthread_mutex_lock(&R.out_mu);
  count_locked(res, j);
  pthread_mutex_unlock(&R.out_mu);
  atomic_fetch_add(&R.done, 1);
  job_free(j);
}

static int cmd_work(int argc, char **argv) {
  work_opts w = {0};
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      print_work_help();
      return EXIT_OK;
    }
  argc = take_work_opts(argc, argv, &w);
  options o;
  parse_fetch_args(argc, argv, &o);
  if (o.nfiles > 0)
    usage_error(
        "work takes no FILE: the jobs come from the queue (see "
        "'wpool enqueue')");
  if (o.state) usage_error("--state: not with work (the queue is the state)");
  if (o.fetch_only)
    usage_error("%s: not with work: %s", o.fetch_only, o.fetch_only_why);
  if (ensure_nofile(&o, true) != 0) {
    free(o.headers);
    return EXIT_USAGE;
  }
  memset(&R, 0, sizeof R);
  R.o = &o;
  pthread_mutex_init(&R.out_mu, NULL);
  pthread_cond_init(&R.window_cv, NULL);
  pthread_mutex_init(&R.prod_mu, NULL);
  pthread_cond_init(&R.prod_cv, NULL);

  block_signals();

  char err[1024];
  if (wp__obs_start(&R.obs, &o.obs, err, sizeof err) != 0) {
    fprintf(stderr, "%s work: %s\n", prog, err);
    free(o.headers);
    return EXIT_USAGE;
  }
  {
    /* The queue's view of each claim's end, next to the pool's (for which
     * each claim is one job: a failure sent back for a retry counts as
     * failed there). */
    static const char *const outcome[4] = {"retry", "released", "ok", "failed"};
    for (int i = 0; i < 4 && wp__obs_metrics(R.obs); i++)
      (void)wp_metrics_counter(
          wp__obs_metrics(R.obs), "wpool_queue_ends_total",
          "Claimed jobs this worker ran to an end, by what the queue "
          "recorded: ok or failed (final), retry (back with a run-at), "
          "released (canceled, back at once).",
          (const char *const[]){"outcome", outcome[i], NULL}, &R.q_ends[i]);
  }

  wp__fetch_config fc;
  fetch_config_init(&fc, &o);
  fc.queue = 0; /* claimed jobs wait in the runner, where a stop releases
                   them, not in the pool */
  wp__obs_fetch_config(R.obs, &fc);
  if (wp__fetch_create(&fc, &R.engine, err, sizeof err) != 0) {
    fprintf(stderr, "%s work: %s\n", prog, err);
    wp__obs_stop(R.obs);
    free(o.headers);
    return EXIT_USAGE;
  }
  R.pool = wp__fetch_pool(R.engine);

  wp__qrunner_config qc;
  memset(&qc, 0, sizeof qc);
  qc.conninfo = w.db;
  qc.queue = w.queue;
  qc.lease_ns = w.lease_ns;
  qc.renew_ns = w.renew_ns;
  qc.batch = w.batch;
  qc.exit_when_empty = w.exit_when_empty;
  qc.pool = R.pool;
  qc.make_arg = work_make_arg;
  qc.free_arg = work_free_arg;
  /* Retries go back to the queue with a run-at time, not into the pool: the
   * same -r and --backoff as fetch, parsed by parse_fetch_args. */
  qc.retry.max_attempts = o.retries + 1;
  qc.retry.base_ns = o.backoff_base_ns;
  qc.retry.cap_ns = o.backoff_cap_ns;
  qc.retry.retryable = wp__fetch_retryable;
  if (wp__qrunner_create(&qc, &R.qr, err, sizeof err) != 0) {
    fprintf(stderr, "%s work: %s\n", prog, err);
    wp__log_field f[] = {WP__FSTR("error", err)};
    wp__obs_log(R.obs, WP__LOG_ERROR, "cannot start", f, 1);
    wp__fetch_destroy(R.engine);
    wp__obs_stop(R.obs);
    free(o.headers);
    return EXIT_USAGE;
  }
  R.start_ns = wp_now_ns();
  const char *qname = w.queue ? w.queue : "default";
  /* Structured logs on stderr: the records replace the text lines. */
  bool text = !wp__obs_owns_stderr(R.obs);
  int trc = pthread_create(&R.controller, NULL, controller, NULL);
  if (trc != 0) {
    /* Nothing claimed yet. (Unchecked, a later pthread_kill of a thread
     * that never started would crash.) */
    char eb[128];
    snprintf(err, sizeof err, "cannot start a thread: %s",
             strerror_r(trc, eb, sizeof eb));
    fprintf(stderr, "%s work: %s\n", prog, err);
    wp__log_field f[] = {WP__FSTR("error", err)};
    wp__obs_log(R.obs, WP__LOG_ERROR, "cannot start", f, 1);
    wp__fetch_destroy(R.engine);
    wp__qrunner_destroy(R.qr);
    R.qr = NULL;
    wp__obs_stop(R.obs);
    free(o.headers);
    return EXIT_SOME_FAILED;
  }
  if (text)
    fprintf(stderr, "%s work: worker %s on queue '%s'\n", prog,
            wp__qrunner_worker_id(R.qr), qname);
  {
    wp__log_field f[] = {WP__FSTR("worker", wp__qrunner_worker_id(R.qr)),
                         WP__FSTR("queue", qname),
                         WP__FUINT("workers", o.workers),
                         WP__FUINT("batch", w.batch ? w.batch : 64),
                         WP__FDBL("timeout_ms", (double)o.timeout_ns / 1e6),
                         WP__FSTR("version", WPOOL_VERSION)};
    wp__obs_log(R.obs, WP__LOG_INFO, "worker start", f, sizeof f / sizeof f[0]);
  }

  int rc = wp__qrunner_run(R.qr, err, sizeof err);
  if (rc != 0) {
    if (text) fprintf(stderr, "%s work: %s\n", prog, err);
    wp__log_field f[] = {WP__FSTR("error", err)};
    wp__obs_log(R.obs, WP__LOG_ERROR, "queue failed", f, 1);
  }
  wp_pool_shutdown(R.pool, NULL); /* drain (or wait for ShutdownNow) */
  char ferr[1024];
  int frc = wp__qrunner_finish(R.qr, ferr, sizeof ferr);
  if (frc != 0 && rc == 0) {
    if (text) fprintf(stderr, "%s work: %s\n", prog, ferr);
    wp__log_field f[] = {WP__FSTR("error", ferr)};
    wp__obs_log(R.obs, WP__LOG_ERROR, "queue failed", f, 1);
  }
  pthread_kill(R.controller, SIGUSR1);
  pthread_join(R.controller, NULL);

  wp__qrunner_stats st;
  wp__qrunner_stats_get(R.qr, &st);
  double secs = (double)(wp_now_ns() - R.start_ns) / 1e9;
  if (text)
    fprintf(stderr,
            "%s work: %" PRIu64 " jobs claimed in %.2fs: %" PRIu64
            " ok, %" PRIu64 " failed, %" PRIu64 " to retry, %" PRIu64
            " released\n",
            prog, st.claimed, secs, st.ok, st.failed, st.retried, st.released);
  if (rc != 0 || frc != 0) {
    if (text)
      fprintf(stderr,
              "%s work: stopped on that error; %" PRIu64
              " of those ends could not be recorded: the jobs this worker "
              "still held go back to the queue when their lease ends, and "
              "run again\n",
              prog, st.unrecorded);
    wp__log_field f[] = {WP__FUINT("unrecorded", st.unrecorded)};
    wp__obs_log(R.obs, WP__LOG_ERROR, "ends not recorded", f, 1);
  }
  {
    wp__log_field f[] = {WP__FSTR("worker", wp__qrunner_worker_id(R.qr)),
                         WP__FUINT("claimed", st.claimed),
                         WP__FUINT("ok", st.ok),
                         WP__FUINT("failed", st.failed),
                         WP__FUINT("retry", st.retried),
                         WP__FUINT("released", st.released),
                         WP__FDBL("elapsed_ms", secs * 1e3)};
    /* Then --metrics-linger: a last scrape of the final values. */
    wp__obs_finish(R.obs, f, sizeof f / sizeof f[0]);
  }
  int status = EXIT_OK;
  if (rc != 0 || frc != 0) status = EXIT_USAGE;
  if (atomic_load(&R.signaled)) status = EXIT_SIGNAL;
  wp__fetch_destroy(R.engine);
  wp__obs_stop(R.obs); /* after the engine: its pool updates the metrics */
  R.obs = NULL;
  wp__qrunner_destroy(R.qr);
  R.qr = NULL;
  free(o.headers);
  return status;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    print_main_help(stderr);
    return EXIT_USAGE;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "fetch") == 0) return cmd_fetch(argc - 1, argv + 1);
  if (strcmp(cmd, "results") == 0) return wp__cmd_results(argc - 1, argv + 1);
  if (strcmp(cmd, "work") == 0) {
    cmd_name = "work";
    return cmd_work(argc - 1, argv + 1);
  }
  if (strcmp(cmd, "migrate") == 0) return wp__cmd_migrate(argc - 1, argv + 1);
  if (strcmp(cmd, "enqueue") == 0) return wp__cmd_enqueue(argc - 1, argv + 1);
  if (strcmp(cmd, "status") == 0) return wp__cmd_status(argc - 1, argv + 1);
  if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 ||
      strcmp(cmd, "help") == 0) {
    print_main_help(stdout);
    return EXIT_OK;
  }
  if (strcmp(cmd, "-V") == 0 || strcmp(cmd, "--version") == 0) {
    print_version();
    return EXIT_OK;
  }
  fprintf(stderr, "%s: unknown command '%s'\n", prog, cmd);
  print_main_help(stderr);
  return EXIT_USAGE;
}
