/* wpool results / migrate / enqueue / status: see store_cmds.h. */
#define _GNU_SOURCE
#include "cli/store_cmds.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/input.h"
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
            "Usage: wpool results (--state FILE | [--db URL] [--queue NAME])\n"
            "                     [-f text|jsonl|csv] [-o FILE]\n\n"
            "Prints every job's final result exactly once, in ID order, in "
            "the\nformats of 'wpool fetch' (see 'wpool fetch --help').\n"
            "  --state FILE   the SQLite state of 'wpool fetch --state FILE'\n"
            "  --db URL       the PostgreSQL queue of 'wpool work' (the "
            "default:\n"
            "                 WPOOL_DATABASE_URL, else libpq's PG* "
            "variables)\n"
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
  /* Neither: the queue of $WPOOL_DATABASE_URL or libpq's PG* variables
   * (wp__pg_conninfo), as migrate, enqueue and status. */
  if (state && db) {
    usage("results", "give one of --state FILE and --db URL, not both");
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
  int rc = state ? wp__state_results(state, print_one, &o, err, sizeof err)
                 : wp__pg_results(db, queue, print_one, &o, err, sizeof err);
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

/* ---- migrate, enqueue, status ---------------------------------------------
 */

typedef struct db_opts {
  const char *db, *queue;
  uint64_t batch;
  char **files;
  size_t nfiles;
} db_opts;

/* --db, --queue (if queue_ok), --batch (if batch_ok), FILEs (if files_ok).
 * Returns 0, 1 (help printed) or -1 (usage error printed). */
static int parse_db_opts(const char *cmd, const char *help, int argc,
                         char **argv, bool queue_ok, bool batch_ok,
                         bool files_ok, db_opts *o) {
  static const struct option longs[] = {
      {"db", required_argument, NULL, 'd'},
      {"queue", required_argument, NULL, 'Q'},
      {"batch", required_argument, NULL, 'b'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  memset(o, 0, sizeof *o);
  o->batch = 10000;
  opterr = 0;
  optind = 1;
  int c;
  while ((c = getopt_long(argc, argv, ":h", longs, NULL)) != -1) {
    switch (c) {
      case 'd':
        o->db = optarg;
        break;
      case 'Q':
        if (!queue_ok) goto unknown;
        if (!optarg[0] || strlen(optarg) > 100) {
          usage(cmd, "--queue: a name of 1 to 100 bytes");
          return -1;
        }
        o->queue = optarg;
        break;
      case 'b':
        if (!batch_ok) goto unknown;
        if (wp__parse_uint(optarg, 1, 1000000, &o->batch) != 0) {
          usage(cmd, "--batch: expected an integer from 1 to 1000000");
          return -1;
        }
        break;
      case 'h':
        fputs(help, stdout);
        return 1;
      case ':':
        usage(cmd, "%s: needs a value", argv[optind - 1]);
        return -1;
      default:
      unknown:
        usage(cmd, "unknown option '%s'", argv[optind - 1]);
        return -1;
    }
  }
  o->files = argv + optind;
  o->nfiles = (size_t)(argc - optind);
  if (o->nfiles > 0 && !files_ok) {
    usage(cmd, "unexpected argument '%s'", argv[optind]);
    return -1;
  }
  return 0;
}

int wp__cmd_migrate(int argc, char **argv) {
  db_opts o;
  int p = parse_db_opts(
      "migrate",
      "Usage: wpool migrate [--db URL]\n\n"
      "Creates or upgrades the wpool schema in a PostgreSQL database "
      "(versioned\nmigrations inside wpool; safe to run again, and by "
      "several at once).\nURL: --db, else $WPOOL_DATABASE_URL, else libpq's "
      "PG* variables.\n",
      argc, argv, false, false, false, &o);
  if (p != 0) return p > 0 ? EXIT_OK : EXIT_USAGE;
  char err[1024];
  wp__pg *pg;
  if (wp__pg_connect(o.db, &pg, err, sizeof err) != 0) {
    fprintf(stderr, "wpool migrate: %s\n", err);
    return EXIT_USAGE;
  }
  int from = 0, to = 0;
  int rc = wp__pg_migrate(pg, &from, &to, err, sizeof err);
  wp__pg_close(pg);
  if (rc != 0) {
    fprintf(stderr, "wpool migrate: %s\n", err);
    return EXIT_USAGE;
  }
  if (from == to)
    printf("schema version %d: up to date\n", to);
  else
    printf("schema version %d -> %d\n", from, to);
  return EXIT_OK;
}

int wp__cmd_enqueue(int argc, char **argv) {
  db_opts o;
  int p = parse_db_opts(
      "enqueue",
      "Usage: wpool enqueue [--db URL] [--queue NAME] [--batch N] "
      "[FILE...]\n\n"
      "Adds one job per URL line of the FILEs ('-' or none: standard input; "
      "the\nsame lines as 'wpool fetch') to the queue NAME (default "
      "'default'), in\nbatches of N (default 10000), each batch one "
      "transaction (COPY); prints how\nmany. Memory stays flat however long "
      "the input.\n",
      argc, argv, true, true, true, &o);
  if (p != 0) return p > 0 ? EXIT_OK : EXIT_USAGE;
  const char *queue = o.queue ? o.queue : "default";
  char err[1024];
  wp__reader *rd;
  if (wp__reader_open(&rd, o.files, o.nfiles, err, sizeof err) != 0) {
    fprintf(stderr, "wpool enqueue: %s\n", err);
    return EXIT_USAGE;
  }
  wp__pg *pg = NULL;
  uint64_t total = 0, in_batch = 0;
  int status = EXIT_OK;
  if (wp__pg_connect(o.db, &pg, err, sizeof err) != 0 ||
      wp__pg_check_schema(pg, err, sizeof err) != 0) {
    fprintf(stderr, "wpool enqueue: %s\n", err);
    status = EXIT_USAGE;
    goto out;
  }
  bool open_batch = false;
  for (;;) {
    wp__line line;
    int rc = wp__reader_next(rd, &line, err, sizeof err);
    if (rc < 0) {
      fprintf(stderr, "wpool enqueue: reading input: %s\n", err);
      status = EXIT_USAGE;
      break;
    }
    if (rc == 0) break;
    if (!open_batch) {
      if (wp__pg_enqueue_begin(pg, queue, err, sizeof err) != 0) goto dberr;
      open_batch = true;
    }
    if (wp__pg_enqueue_line(pg, line.text, line.len, line.bad, err,
                            sizeof err) != 0)
      goto dberr;
    if (++in_batch == o.batch) {
      if (wp__pg_enqueue_commit(pg, err, sizeof err) != 0) goto dberr;
      total += in_batch;
      in_batch = 0;
      open_batch = false;
    }
  }
  if (open_batch) {
    if (status != EXIT_OK) {
      /* A read error: the batch read so far is not committed. */
    } else if (wp__pg_enqueue_commit(pg, err, sizeof err) != 0) {
      goto dberr;
    } else {
      total += in_batch;
    }
  }
  goto done;
dberr:
  fprintf(stderr, "wpool enqueue: %s\n", err);
  status = EXIT_USAGE;
done:
  printf("enqueued %" PRIu64 " jobs into queue '%s'\n", total, queue);
out:
  wp__pg_close(pg);
  wp__reader_close(rd);
  return status;
}

int wp__cmd_status(int argc, char **argv) {
  db_opts o;
  int p = parse_db_opts(
      "status",
      "Usage: wpool status [--db URL] [--queue NAME]\n\n"
      "Prints, per queue, the jobs by state (available, waiting for a retry, "
      "running,\ncompleted, failed) and the rate over the last minute, and "
      "the workers alive\n(seen within their lease). Never prints a "
      "password.\n",
      argc, argv, true, false, false, &o);
  if (p != 0) return p > 0 ? EXIT_OK : EXIT_USAGE;
  char err[1024];
  if (wp__pg_status(o.db, o.queue, stdout, err, sizeof err) != 0) {
    fprintf(stderr, "wpool status: %s\n", err);
    return EXIT_USAGE;
  }
  return EXIT_OK;
}
