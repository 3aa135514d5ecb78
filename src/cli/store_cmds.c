/* wpool results / migrate / enqueue / status: see store_cmds.h. */
#define _GNU_SOURCE
#include "cli/store_cmds.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/parse.h"
#include "store/store.h"

#define EXIT_OK 0
#define EXIT_FAIL 1
#define EXIT_USAGE 2

static void usage(const char *cmd, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "wpool %s: ", cmd);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\nTry 'wpool %s --help'.\n", cmd);
}

typedef struct out_ctx {
  FILE *out;
  enum wp__format fmt;
  wp__buf buf;
  int write_errno;
} out_ctx;

static int print_one(const wp__outrec *r, void *userdata) {
  out_ctx *o = userdata;
  wp__buf_reset(&o->buf);
  wp__format_result(&o->buf, o->fmt, r);
  if (fwrite(o->buf.data, 1, o->buf.len, o->out) != o->buf.len) {
    o->write_errno = errno ? errno : EIO;
    return -1;
  }
  return 0;
}

int wp__cmd_results(int argc, char **argv) {
  static const struct option longs[] = {
      {"state", required_argument, NULL, 's'},
      {"db", required_argument, NULL, 'd'},
      {"queue", required_argument, NULL, 'Q'},
      {"format", required_argument, NULL, 'f'},
      {"output", required_argument, NULL, 'o'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  const char *state = NULL, *db = NULL, *output = NULL, *queue = NULL;
  enum wp__format fmt = WP__FMT_TEXT;
  opterr = 0;
  optind = 1;
  int c;
  while ((c = getopt_long(argc, argv, ":f:o:h", longs, NULL)) != -1) {
    switch (c) {
      case 's':
        state = optarg;
        break;
      case 'd':
        db = optarg;
        break;
      case 'Q':
        queue = optarg;
        break;
      case 'f':
        if (wp__parse_format(optarg, &fmt) != 0) {
          usage("results", "--format: expected text, jsonl or csv, got '%s'",
                optarg);
          return EXIT_USAGE;
        }
        break;
      case 'o':
        output = optarg;
        break;
      case 'h':
        printf(
            "Usage: wpool results (--state FILE | --db URL [--queue NAME])\n"
            "                     [-f text|jsonl|csv] [-o FILE]\n\n"
            "Prints every job's final result exactly once, in ID order, in "
            "the\nformats of 'wpool fetch' (see 'wpool fetch --help').\n"
            "  --state FILE   the SQLite state of 'wpool fetch --state FILE'\n"
            "  --db URL       the PostgreSQL queue of 'wpool work' (or\n"
            "                 WPOOL_DATABASE_URL; libpq's PG* variables work "
            "too)\n"
            "  --queue NAME   with --db: that queue only (default: all)\n"
            "Jobs without a final result (not run yet, running, waiting for a\n"
            "retry) are not printed.\n");
        return EXIT_OK;
      case ':':
        usage("results", "%s: needs a value", argv[optind - 1]);
        return EXIT_USAGE;
      default:
        usage("results", "unknown option '%s'", argv[optind - 1]);
        return EXIT_USAGE;
    }
  }
  if (optind < argc) {
    usage("results", "unexpected argument '%s'", argv[optind]);
    return EXIT_USAGE;
  }
  if (!db && !state) db = getenv("WPOOL_DATABASE_URL");
  if ((state != NULL) == (db != NULL)) {
    usage("results", "give exactly one of --state FILE and --db URL");
    return EXIT_USAGE;
  }
  out_ctx o = {.out = stdout, .fmt = fmt};
  if (output && strcmp(output, "-") != 0) {
    o.out = fopen(output, "w");
    if (!o.out) {
      int e = errno;
      char eb[128];
      fprintf(stderr, "wpool results: %s: %s\n", output,
              strerror_r(e, eb, sizeof eb));
      return EXIT_USAGE;
    }
  }
  wp__buf_init(&o.buf);
  wp__format_header(&o.buf, fmt);
  if (o.buf.len) fwrite(o.buf.data, 1, o.buf.len, o.out);
  char err[1024];
  int rc = -1;
  (void)queue;
  if (state)
    rc = wp__state_results(state, print_one, &o, err, sizeof err);
  else
    snprintf(err, sizeof err, "--db: PostgreSQL is not supported yet");
  int status = EXIT_OK;
  if (rc != 0 && !o.write_errno) {
    fprintf(stderr, "wpool results: %s\n", err);
    status = EXIT_USAGE;
  }
  if ((fflush(o.out) != 0 || o.write_errno) && !o.write_errno)
    o.write_errno = errno;
  if (o.write_errno && o.write_errno != EPIPE) {
    char eb[128];
    fprintf(stderr, "wpool results: writing: %s\n",
            strerror_r(o.write_errno, eb, sizeof eb));
    status = EXIT_FAIL;
  }
  if (o.out != stdout) fclose(o.out);
  wp__buf_free(&o.buf);
  return status;
}
