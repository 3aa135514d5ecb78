/* The PostgreSQL queue (store.h), on libpq.
 *
 * Schema (migration 1):
 *   wpool_schema_version(version, applied_at)
 *   wpool_jobs(id bigserial, queue, url bytea, bad, state, attempts, run_at,
 *              lease_until, worker, ok, status, error, elapsed_ms, bytes,
 *              created_at, finished_at)
 *     state: 0 available, 1 running (leased), 2 completed, 3 failed
 *   wpool_workers(id, queue, host, pid, lease_s, started_at, seen_at)
 * The ready index (queue, run_at, id) WHERE state = 0 serves the claim.
 *
 * Claim: one UPDATE over a SELECT ... ORDER BY run_at, id LIMIT n FOR
 * UPDATE SKIP LOCKED: concurrent claimers never wait for each other and
 * never get the same row. attempts counts claims (a release gives the
 * claim back). A lease is renewed by the worker's heartbeat; a lease that
 * expired (the worker was killed, its machine is gone, or it stalled) is
 * taken back by any worker's heartbeat and the job runs again: the one way a
 * job runs twice. The end of a job is recorded only while the claim that ran
 * it still holds it (worker = me AND state = 1 AND attempts = the claim's
 * attempt number, a fencing token), so a worker whose lease expired cannot
 * overwrite the result of a later claim, even one of its own.
 *
 * Passwords: our messages never quote the connection string; libpq's error
 * messages go through wp__pg_redact() anyway.
 *
 * Threads: a wp__pg is one connection: one thread at a time.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/parse.h"
#include "store/store.h"

#define COPY_BUF 65536

struct wp__pg {
  PGconn *c;
  char *conninfo; /* for redaction */
  /* enqueue */
  char *copybuf;
  size_t copylen;
  char queue[128];
  uint64_t batch_n;
  wp__buf line; /* one COPY row, reused */
};

const char *wp__pg_conninfo(const char *conninfo) {
  if (conninfo) return conninfo;
  const char *env = getenv("WPOOL_DATABASE_URL");
  return env ? env : "";
}

void wp__pg_redact(char *msg, const char *conninfo) {
  if (!msg || !conninfo) return;
  char *perr = NULL;
  PQconninfoOption *opts = PQconninfoParse(conninfo, &perr);
  PQfreemem(perr);
  const char *pw = NULL;
  for (PQconninfoOption *o = opts; o && o->keyword; o++)
    if (strcmp(o->keyword, "password") == 0 && o->val && o->val[0]) pw = o->val;
  /* An unparsable string: any "user:password@" part of a URL. */
  char fallback[256] = "";
  if (!pw) {
    const char *s = strstr(conninfo, "://");
    const char *at = s ? strchr(s + 3, '@') : NULL;
    const char *colon =
        s ? memchr(s + 3, ':', at ? (size_t)(at - s - 3) : 0) : NULL;
    if (colon && at && (size_t)(at - colon - 1) < sizeof fallback &&
        at > colon + 1) {
      memcpy(fallback, colon + 1, (size_t)(at - colon - 1));
      fallback[at - colon - 1] = '\0';
      pw = fallback;
    }
  }
  size_t pl = pw ? strlen(pw) : 0;
  if (pl > 0) {
    /* Searched from past each replacement: a password that is itself
     * made of '*' must not be found again in its own mask. */
    char *from = msg, *hit;
    while ((hit = strstr(from, pw)) != NULL) {
      size_t tail = strlen(hit + pl);
      size_t masked = pl >= 3 ? 3 : pl;
      memset(hit, '*', masked);
      memmove(hit + masked, hit + pl, tail + 1);
      from = hit + masked;
    }
  }
  PQconninfoFree(opts);
}

static void pg_err(wp__pg *pg, char *err, size_t errlen, const char *what,
                   const PGresult *res) {
  const char *m = res ? PQresultErrorMessage(res) : "";
  if (!m || !m[0]) m = PQerrorMessage(pg->c);
  snprintf(err, errlen, "PostgreSQL: %s: %s", what, m);
  size_t n = strlen(err);
  while (n > 0 && (err[n - 1] == '\n' || err[n - 1] == ' ')) err[--n] = '\0';
  wp__pg_redact(err, pg->conninfo);
}

static void drop_notice(void *arg, const char *message) {
  (void)arg;
  (void)message;
}

int wp__pg_connect(const char *conninfo, wp__pg **out, char *err,
                   size_t errlen) {
  *out = NULL;
  wp__pg *pg = calloc(1, sizeof *pg);
  if (!pg || !(pg->conninfo = strdup(wp__pg_conninfo(conninfo)))) {
    free(pg);
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  pg->c = PQconnectdb(pg->conninfo);
  if (!pg->c || PQstatus(pg->c) != CONNECTION_OK) {
    if (pg->c) {
      pg_err(pg, err, errlen, "cannot connect", NULL);
    } else {
      snprintf(err, errlen, "PostgreSQL: out of memory");
    }
    PQfinish(pg->c);
    free(pg->conninfo);
    free(pg);
    return -1;
  }
  /* Our messages say what failed; the server's NOTICEs are noise here,
   * and so are its WARNINGs, which libpq would print raw on stderr
   * ("terminating connection due to ... shutdown command" as the server
   * stops, before the error that we do report). */
  PQsetNoticeProcessor(pg->c, drop_notice, NULL);
  PGresult *r = PQexec(pg->c, "SET client_min_messages = warning");
  PQclear(r);
  *out = pg;
  return 0;
}

void wp__pg_close(wp__pg *pg) {
  if (!pg) return;
  PQfinish(pg->c);
  free(pg->copybuf);
  wp__buf_free(&pg->line);
  free(pg->conninfo);
  free(pg);
}

/* Runs sql (with PQexec when nparams is 0, so a string of several
 * statements works; else with text parameters) and returns its result if
 * its status is want (the caller PQclears it); else NULL with the message
 * "PostgreSQL: what: ..." in err. */
static PGresult *pg_q(wp__pg *pg, const char *sql, int nparams,
                      const char *const *params, ExecStatusType want,
                      const char *what, char *err, size_t errlen) {
  PGresult *r = nparams == 0 ? PQexec(pg->c, sql)
                             : PQexecParams(pg->c, sql, nparams, NULL, params,
                                            NULL, NULL, 0);
  if (PQresultStatus(r) != want) {
    pg_err(pg, err, errlen, what, r);
    PQclear(r);
    return NULL;
  }
  return r;
}

/* Runs a command (or several) without results; 0 or -1. */
static int exec_cmd(wp__pg *pg, const char *sql, const char *what, char *err,
                    size_t errlen) {
  PGresult *r = pg_q(pg, sql, 0, NULL, PGRES_COMMAND_OK, what, err, errlen);
  PQclear(r);
  return r ? 0 : -1;
}

/* ---- schema ---------------------------------------------------------------
 */

/* Versioned migrations, in order; migration i brings the schema to i + 1.
 * Append only: a released migration never changes. */
static const char *const migrations[] = {
    /* 1 */
    "CREATE TABLE wpool_jobs ("
    " id bigserial PRIMARY KEY,"
    " queue text NOT NULL,"
    " url bytea NOT NULL,"
    " bad text,"
    " state smallint NOT NULL DEFAULT 0,"
    " attempts integer NOT NULL DEFAULT 0,"
    " run_at timestamptz NOT NULL DEFAULT now(),"
    " lease_until timestamptz,"
    " worker text,"
    " ok boolean, status integer, error text, elapsed_ms double precision,"
    " bytes bigint,"
    " created_at timestamptz NOT NULL DEFAULT now(),"
    " finished_at timestamptz);"
    "CREATE INDEX wpool_jobs_ready ON wpool_jobs (queue, run_at, id)"
    " WHERE state = 0;"
    "CREATE INDEX wpool_jobs_leased ON wpool_jobs (worker) WHERE state = 1;"
    "CREATE INDEX wpool_jobs_lease_until ON wpool_jobs (lease_until)"
    " WHERE state = 1;"
    "CREATE INDEX wpool_jobs_finished ON wpool_jobs (finished_at)"
    " WHERE state >= 2;"
    "CREATE TABLE wpool_workers ("
    " id text PRIMARY KEY, queue text NOT NULL, host text, pid integer,"
    " lease_s double precision NOT NULL,"
    " started_at timestamptz NOT NULL DEFAULT now(),"
    " seen_at timestamptz NOT NULL DEFAULT now());",
};
#define NMIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

/* The version now (0: no schema), or -1 on error. */
static int schema_version(wp__pg *pg, char *err, size_t errlen) {
  static const char what[] = "reading the schema version";
  PGresult *r =
      pg_q(pg, "SELECT to_regclass('wpool_schema_version') IS NOT NULL", 0,
           NULL, PGRES_TUPLES_OK, what, err, errlen);
  if (!r) return -1;
  bool exists = PQgetvalue(r, 0, 0)[0] == 't';
  PQclear(r);
  if (!exists) return 0;
  r = pg_q(pg, "SELECT coalesce(max(version), 0) FROM wpool_schema_version",
           0, NULL, PGRES_TUPLES_OK, what, err, errlen);
  if (!r) return -1;
  int v = (int)strtol(PQgetvalue(r, 0, 0), NULL, 10); /* an int4 */
  PQclear(r);
  return v;
}

int wp__pg_migrate(wp__pg *pg, int *from, int *to, char *err, size_t errlen) {
  if (exec_cmd(pg,
               "BEGIN; SELECT pg_advisory_xact_lock(7744012917);"
               "CREATE TABLE IF NOT EXISTS wpool_schema_version ("
               " version integer PRIMARY KEY,"
               " applied_at timestamptz NOT NULL DEFAULT now())",
               "migrate", err, errlen) != 0) {
    PQclear(PQexec(pg->c, "ROLLBACK"));
    return -1;
  }
  int v = schema_version(pg, err, errlen);
  if (v < 0) goto fail;
  *from = v;
  if (v > NMIGRATIONS) {
    snprintf(err, errlen,
             "the database has wpool schema version %d, newer than this "
             "wpool knows (%d): use a newer wpool",
             v, NMIGRATIONS);
    goto fail;
  }
  for (int i = v; i < NMIGRATIONS; i++) {
    char what[64];
    snprintf(what, sizeof what, "migration %d", i + 1);
    if (exec_cmd(pg, migrations[i], what, err, errlen) != 0) goto fail;
    char ins[96];
    snprintf(ins, sizeof ins,
             "INSERT INTO wpool_schema_version(version) VALUES (%d)", i + 1);
    if (exec_cmd(pg, ins, what, err, errlen) != 0) goto fail;
  }
  if (exec_cmd(pg, "COMMIT", "migrate", err, errlen) != 0) return -1;
  *to = NMIGRATIONS;
  return 0;
fail:
  PQclear(PQexec(pg->c, "ROLLBACK"));
  return -1;
}

int wp__pg_check_schema(wp__pg *pg, char *err, size_t errlen) {
  int v = schema_version(pg, err, errlen);
  if (v < 0) return -1;
  if (v == WP__PG_SCHEMA) return 0;
  if (v == 0)
    snprintf(err, errlen,
             "the database has no wpool schema: run 'wpool migrate --db URL' "
             "first");
  else if (v < WP__PG_SCHEMA)
    snprintf(err, errlen,
             "the database has wpool schema version %d, this wpool needs %d: "
             "run 'wpool migrate --db URL'",
             v, WP__PG_SCHEMA);
  else
    snprintf(err, errlen,
             "the database has wpool schema version %d, newer than this wpool "
             "knows (%d): use a newer wpool",
             v, WP__PG_SCHEMA);
  return -1;
}

/* ---- enqueue ---------------------------------------------------------------
 */

/* COPY text format: escapes backslash, tab, newline, CR. */
static void copy_text(wp__buf *b, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    switch (c) {
      case '\\':
        wp__buf_append(b, "\\\\", 2);
        break;
      case '\t':
        wp__buf_append(b, "\\t", 2);
        break;
      case '\n':
        wp__buf_append(b, "\\n", 2);
        break;
      case '\r':
        wp__buf_append(b, "\\r", 2);
        break;
      default:
        wp__buf_append(b, &c, 1);
    }
  }
}

static int copy_flush(wp__pg *pg, char *err, size_t errlen) {
  if (pg->copylen == 0) return 0;
  if (PQputCopyData(pg->c, pg->copybuf, (int)pg->copylen) != 1) {
    pg_err(pg, err, errlen, "enqueue (COPY)", NULL);
    return -1;
  }
  pg->copylen = 0;
  return 0;
}

int wp__pg_enqueue_begin(wp__pg *pg, const char *queue, char *err,
                         size_t errlen) {
  snprintf(pg->queue, sizeof pg->queue, "%s", queue);
  if (!pg->copybuf && !(pg->copybuf = malloc(COPY_BUF))) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  pg->copylen = 0;
  pg->batch_n = 0;
  if (exec_cmd(pg, "BEGIN", "enqueue", err, errlen) != 0) return -1;
  PGresult *r = pg_q(pg, "COPY wpool_jobs (queue, url, bad) FROM STDIN", 0,
                     NULL, PGRES_COPY_IN, "enqueue (COPY)", err, errlen);
  if (!r) {
    PQclear(PQexec(pg->c, "ROLLBACK"));
    return -1;
  }
  PQclear(r);
  return 0;
}

int wp__pg_enqueue_line(wp__pg *pg, const char *url, size_t len,
                        const char *bad, char *err, size_t errlen) {
  static const char hex[] = "0123456789abcdef";
  /* One row: queue \t \\x<hex url> \t bad-or-\N \n. At most 8192 bytes of
   * URL (the reader's bound): 16 KiB of hex plus the rest. */
  wp__buf *b = &pg->line;
  wp__buf_reset(b);
  copy_text(b, pg->queue, strlen(pg->queue));
  wp__buf_append(b, "\t\\\\x", 4);
  for (size_t i = 0; i < len; i++) {
    char h2[2] = {hex[(unsigned char)url[i] >> 4], hex[url[i] & 15]};
    wp__buf_append(b, h2, 2);
  }
  wp__buf_append(b, "\t", 1);
  if (bad)
    copy_text(b, bad, strlen(bad));
  else
    wp__buf_append(b, "\\N", 2);
  wp__buf_append(b, "\n", 1);
  if (b->oom) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  if (pg->copylen + b->len > COPY_BUF && copy_flush(pg, err, errlen) != 0)
    return -1;
  if (b->len > COPY_BUF) {
    if (PQputCopyData(pg->c, b->data, (int)b->len) != 1) {
      pg_err(pg, err, errlen, "enqueue (COPY)", NULL);
      return -1;
    }
  } else {
    memcpy(pg->copybuf + pg->copylen, b->data, b->len);
    pg->copylen += b->len;
  }
  pg->batch_n++;
  return 0;
}

int wp__pg_enqueue_commit(wp__pg *pg, char *err, size_t errlen) {
  if (copy_flush(pg, err, errlen) != 0) goto fail;
  if (PQputCopyEnd(pg->c, NULL) != 1) {
    pg_err(pg, err, errlen, "enqueue (COPY end)", NULL);
    goto fail;
  }
  PGresult *r;
  int bad = 0;
  while ((r = PQgetResult(pg->c)) != NULL) {
    if (PQresultStatus(r) != PGRES_COMMAND_OK && !bad) {
      pg_err(pg, err, errlen, "enqueue (COPY)", r);
      bad = 1;
    }
    PQclear(r);
  }
  if (bad) goto fail;
  const char *params[1] = {pg->queue};
  r = PQexecParams(pg->c, "SELECT pg_notify('wpool_jobs', $1)", 1, NULL, params,
                   NULL, NULL, 0);
  PQclear(r);
  return exec_cmd(pg, "COMMIT", "enqueue (commit)", err, errlen);
fail:
  PQclear(PQexec(pg->c, "ROLLBACK"));
  return -1;
}

/* ---- claim, finish, heartbeat ----------------------------------------------
 */

/* Reads a bytea column (hex text) into *buf (NUL-terminated). */
static int unescape_col(PGresult *r, int row, int col, char **buf,
                        size_t *len) {
  if (PQgetisnull(r, row, col)) {
    *buf = NULL;
    *len = 0;
    return 0;
  }
  size_t n = 0;
  unsigned char *u =
      PQunescapeBytea((const unsigned char *)PQgetvalue(r, row, col), &n);
  if (!u) return -1;
  char *c = malloc(n + 1);
  if (!c) {
    PQfreemem(u);
    return -1;
  }
  memcpy(c, u, n);
  c[n] = '\0';
  PQfreemem(u);
  *buf = c;
  *len = n;
  return 0;
}

int wp__pg_claim(wp__pg *pg, const char *queue, const char *worker,
                 int64_t lease_ns, unsigned max, wp__qjob_cb cb, void *userdata,
                 char *err, size_t errlen) {
  char lease[32], lim[16];
  snprintf(lease, sizeof lease, "%.3f", (double)lease_ns / 1e9);
  snprintf(lim, sizeof lim, "%u", max);
  const char *params[4] = {queue, lim, lease, worker};
  PGresult *r = pg_q(
      pg,
      "UPDATE wpool_jobs j SET state = 1, attempts = j.attempts + 1,"
      " lease_until = now() + $3::float8 * interval '1 second', worker = $4"
      " WHERE j.id IN (SELECT id FROM wpool_jobs WHERE queue = $1"
      "  AND state = 0 AND run_at <= now() ORDER BY run_at, id"
      "  LIMIT $2::int FOR UPDATE SKIP LOCKED)"
      " RETURNING j.id, j.url, j.bad, j.attempts",
      4, params, PGRES_TUPLES_OK, "claiming jobs", err, errlen);
  if (!r) return -1;
  int n = PQntuples(r);
  if ((unsigned)n > max) { /* LIMIT says it cannot be: never overrun cb's */
    snprintf(err, errlen, "claiming jobs: %d rows for a batch of %u", n, max);
    PQclear(r);
    return -1;
  }
  /* RETURNING comes in no particular order: hand them out by ID. Small n
   * (a batch): an insertion order over indexes. */
  int *ord = malloc(sizeof *ord * (size_t)(n > 0 ? n : 1));
  if (!ord) {
    PQclear(r);
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  for (int i = 0; i < n; i++) {
    long long id = strtoll(PQgetvalue(r, i, 0), NULL, 10);
    int k = i;
    while (k > 0 && strtoll(PQgetvalue(r, ord[k - 1], 0), NULL, 10) > id) {
      ord[k] = ord[k - 1];
      k--;
    }
    ord[k] = i;
  }
  int rc = n;
  for (int x = 0; x < n; x++) {
    int i = ord[x];
    char *url = NULL;
    size_t ulen = 0;
    if (unescape_col(r, i, 1, &url, &ulen) != 0 || !url) {
      snprintf(err, errlen, "claiming jobs: a job's url is not readable");
      free(url);
      rc = -1;
      break;
    }
    wp__col cols[WP__QJOB_COLS];
    for (int c = 0; c < WP__QJOB_COLS; c++) {
      cols[c].p = PQgetisnull(r, i, c) ? NULL : PQgetvalue(r, i, c);
      cols[c].len = (size_t)PQgetlength(r, i, c);
    }
    cols[1].p = url;
    cols[1].len = ulen;
    wp__qjob j;
    char derr[128];
    if (wp__store_decode_qjob(cols, WP__QJOB_COLS, &j, derr, sizeof derr) !=
        0) {
      snprintf(err, errlen, "claiming jobs: %s", derr);
      free(url);
      rc = -1;
      break;
    }
    cb(&j, userdata);
    free(url);
  }
  free(ord);
  PQclear(r);
  return rc;
}

/* A text array literal element: quoted, with " and \ escaped. */
static void array_text(wp__buf *b, const char *s) {
  wp__buf_append(b, "\"", 1);
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') wp__buf_append(b, "\\", 1);
    wp__buf_append(b, s, 1);
  }
  wp__buf_append(b, "\"", 1);
}

int wp__pg_finish(wp__pg *pg, const char *worker, const wp__qdone *d, size_t n,
                  char *err, size_t errlen) {
  if (n == 0) return 0;
  enum { NARR = 10 };
  wp__buf a[NARR];
  for (int i = 0; i < NARR; i++) {
    wp__buf_init(&a[i]);
    wp__buf_append(&a[i], "{", 1);
  }
  for (size_t k = 0; k < n; k++) {
    const wp__qdone *x = &d[k];
    const char *sep = k ? "," : "";
    bool done = x->kind == WP__Q_DONE;
    int st = done ? (x->ok ? 2 : 3) : 0;
    wp__buf_printf(&a[0], "%s%" PRId64, sep, x->id);
    wp__buf_printf(&a[1], "%s%d", sep, st);
    wp__buf_printf(&a[2], "%s%s", sep, !done ? "NULL" : x->ok ? "t" : "f");
    if (x->status > 0 && x->kind != WP__Q_RELEASE)
      wp__buf_printf(&a[3], "%s%d", sep, x->status);
    else
      wp__buf_printf(&a[3], "%sNULL", sep);
    wp__buf_puts(&a[4], sep);
    if (x->error[0] && x->kind != WP__Q_RELEASE)
      array_text(&a[4], x->error);
    else
      wp__buf_puts(&a[4], "NULL");
    double ms = x->elapsed_ms >= 0 && x->elapsed_ms < 1e12 ? x->elapsed_ms : 0;
    if (done)
      wp__buf_printf(&a[5], "%s%.3f", sep, ms);
    else
      wp__buf_printf(&a[5], "%sNULL", sep);
    if (done)
      wp__buf_printf(&a[6], "%s%" PRIu64, sep,
                     x->bytes > INT64_MAX ? (uint64_t)INT64_MAX : x->bytes);
    else
      wp__buf_printf(&a[6], "%sNULL", sep);
    wp__buf_printf(&a[7], "%s%.3f", sep,
                   x->kind == WP__Q_RETRY ? (double)x->delay_ns / 1e6 : 0.0);
    wp__buf_printf(&a[8], "%s%d", sep, x->kind == WP__Q_RELEASE ? 1 : 0);
    wp__buf_printf(&a[9], "%s%u", sep, x->attempts);
  }
  int rc = 0;
  for (int i = 0; i < NARR; i++) {
    wp__buf_append(&a[i], "}", 1);
    if (a[i].oom) rc = -1;
  }
  if (rc != 0) {
    snprintf(err, errlen, "out of memory");
  } else {
    const char *params[11] = {worker,    a[0].data, a[1].data, a[2].data,
                              a[3].data, a[4].data, a[5].data, a[6].data,
                              a[7].data, a[8].data, a[9].data};
    PGresult *r = pg_q(
        pg,
        "UPDATE wpool_jobs j SET state = v.st, ok = v.ok, status = v.status,"
        " error = v.error, elapsed_ms = v.ms, bytes = v.bytes,"
        " run_at = CASE WHEN v.st = 0"
        "  THEN now() + v.delay * interval '1 millisecond' ELSE j.run_at END,"
        " attempts = j.attempts - v.unclaim, lease_until = NULL, worker = NULL,"
        " finished_at = CASE WHEN v.st >= 2 THEN now() END"
        " FROM unnest($2::bigint[], $3::smallint[], $4::boolean[],"
        "  $5::integer[], $6::text[], $7::float8[], $8::bigint[],"
        "  $9::float8[], $10::integer[], $11::integer[])"
        "  AS v(id, st, ok, status, error, ms, bytes, delay, unclaim, claim)"
        " WHERE j.id = v.id AND j.worker = $1 AND j.state = 1"
        "  AND j.attempts = v.claim",
        11, params, PGRES_COMMAND_OK, "recording results", err, errlen);
    if (!r) rc = -1;
    PQclear(r);
    /* Tell idle workers: released jobs are available now, and one that
     * waits for the queue to be empty (--exit-when-empty) may be done. One
     * NOTIFY a batch; PostgreSQL folds duplicates within a transaction. */
    if (rc == 0) PQclear(PQexec(pg->c, "NOTIFY wpool_jobs"));
  }
  for (int i = 0; i < NARR; i++) wp__buf_free(&a[i]);
  return rc;
}

int wp__pg_heartbeat(wp__pg *pg, const char *worker, const char *queue,
                     int64_t lease_ns, long *reaped, char *err, size_t errlen) {
  char lease[32], host[256] = "", pid[16];
  snprintf(lease, sizeof lease, "%.3f", (double)lease_ns / 1e9);
  gethostname(host, sizeof host - 1);
  snprintf(pid, sizeof pid, "%ld", (long)getpid());
  const char *p2[2] = {worker, lease};
  /* The renewal and the take-back never wait for a row lock (SKIP LOCKED):
   * a row locked now is being finished, and a statement that waits while
   * holding other rows could deadlock with a finish of another order. */
  PGresult *r = pg_q(
      pg,
      "UPDATE wpool_jobs SET lease_until = now() + $2::float8 * interval '1 "
      "second' WHERE id IN (SELECT id FROM wpool_jobs WHERE worker = $1"
      " AND state = 1 FOR UPDATE SKIP LOCKED)",
      2, p2, PGRES_COMMAND_OK, "heartbeat", err, errlen);
  if (!r) return -1;
  PQclear(r);
  const char *p5[5] = {worker, queue, host, pid, lease};
  r = pg_q(pg,
           "INSERT INTO wpool_workers(id, queue, host, pid, lease_s)"
           " VALUES ($1, $2, $3, $4::int, $5::float8)"
           " ON CONFLICT (id) DO UPDATE SET seen_at = now()",
           5, p5, PGRES_COMMAND_OK, "heartbeat", err, errlen);
  if (!r) return -1;
  PQclear(r);
  /* Expired leases, of any worker: back to available. Workers not seen for
   * ten leases are forgotten. */
  r = pg_q(pg,
           "WITH t AS (UPDATE wpool_jobs SET state = 0, worker = NULL,"
           " lease_until = NULL, run_at = now()"
           " WHERE id IN (SELECT id FROM wpool_jobs WHERE state = 1"
           " AND lease_until < now() FOR UPDATE SKIP LOCKED) RETURNING 1)"
           " SELECT count(*) FROM t",
           0, NULL, PGRES_TUPLES_OK, "heartbeat", err, errlen);
  if (!r) return -1;
  *reaped = strtol(PQgetvalue(r, 0, 0), NULL, 10);
  PQclear(r);
  if (*reaped > 0) PQclear(PQexec(pg->c, "NOTIFY wpool_jobs"));
  PQclear(PQexec(pg->c,
                 "DELETE FROM wpool_workers WHERE seen_at <"
                 " now() - 10 * lease_s * interval '1 second'"));
  return 0;
}

int wp__pg_unregister(wp__pg *pg, const char *worker, char *err,
                      size_t errlen) {
  const char *p1[1] = {worker};
  PGresult *r = pg_q(
      pg,
      "UPDATE wpool_jobs SET state = 0, worker = NULL, lease_until = NULL,"
      " attempts = attempts - 1 WHERE worker = $1 AND state = 1",
      1, p1, PGRES_COMMAND_OK, "releasing jobs", err, errlen);
  int rc = r ? 0 : -1;
  bool released = r && strcmp(PQcmdTuples(r), "0") != 0;
  PQclear(r);
  if (released) PQclear(PQexec(pg->c, "NOTIFY wpool_jobs"));
  r = PQexecParams(pg->c, "DELETE FROM wpool_workers WHERE id = $1", 1, NULL,
                   p1, NULL, NULL, 0);
  PQclear(r);
  return rc;
}

int wp__pg_listen(wp__pg *pg, char *err, size_t errlen) {
  return exec_cmd(pg, "LISTEN wpool_jobs", "LISTEN", err, errlen);
}

int wp__pg_wait(wp__pg *pg, int wakefd, int64_t timeout_ns) {
  /* Notifications that came with earlier results count too. */
  PGnotify *nf;
  int got = 0;
  PQconsumeInput(pg->c);
  while ((nf = PQnotifies(pg->c)) != NULL) {
    PQfreemem(nf);
    got = 1;
  }
  if (got) return 1;
  struct pollfd fds[2] = {{.fd = PQsocket(pg->c), .events = POLLIN},
                          {.fd = wakefd, .events = POLLIN}};
  int ms = timeout_ns <= 0 ? 0
           : timeout_ns > 60000000000LL
               ? 60000
               : (int)((timeout_ns + 999999) / 1000000);
  int n = poll(fds, wakefd >= 0 ? 2 : 1, ms);
  if (n < 0) return errno == EINTR ? 0 : -1;
  if (n == 0) return 0;
  if (fds[0].revents) {
    if (PQconsumeInput(pg->c) != 1) return -1;
    while ((nf = PQnotifies(pg->c)) != NULL) {
      PQfreemem(nf);
      got = 1;
    }
  }
  return got;
}

int wp__pg_queue_counts(wp__pg *pg, const char *queue, int64_t *ready,
                        int64_t *waiting, int64_t *running,
                        int64_t *next_due_ns, char *err, size_t errlen) {
  const char *p1[1] = {queue};
  PGresult *r = pg_q(
      pg,
      /* Each on a partial index: never a scan of the finished jobs. */
      "SELECT (SELECT count(*) FROM wpool_jobs WHERE queue = $1"
      "  AND state = 0 AND run_at <= now()),"
      " (SELECT count(*) FROM wpool_jobs WHERE queue = $1 AND state = 0"
      "  AND run_at > now()),"
      " (SELECT count(*) FROM wpool_jobs WHERE queue = $1 AND state = 1),"
      " coalesce((SELECT extract(epoch FROM min(run_at) - now())"
      "  FROM wpool_jobs WHERE queue = $1 AND state = 0"
      "  AND run_at > now()), -1)",
      1, p1, PGRES_TUPLES_OK, "reading the queue", err, errlen);
  if (!r) return -1;
  *ready = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
  *waiting = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
  *running = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
  double due = strtod(PQgetvalue(r, 0, 3), NULL);
  *next_due_ns = due < 0 ? INT64_MAX : (int64_t)(due * 1e9) + 1000000;
  PQclear(r);
  return 0;
}

/* ---- results and status ----------------------------------------------------
 */

int wp__pg_results(const char *conninfo, const char *queue, wp__result_cb cb,
                   void *userdata, char *err, size_t errlen) {
  wp__pg *pg;
  if (wp__pg_connect(conninfo, &pg, err, errlen) != 0) return -1;
  int rc = -1;
  if (wp__pg_check_schema(pg, err, errlen) != 0) goto out;
  const char *p1[1] = {queue};
  /* Streamed a row at a time: memory stays flat however many results. */
  if (!PQsendQueryParams(pg->c,
                         queue ? "SELECT id, url, ok, status, error, attempts,"
                                 " elapsed_ms, bytes FROM wpool_jobs"
                                 " WHERE state >= 2 AND queue = $1 ORDER BY id"
                               : "SELECT id, url, ok, status, error, attempts,"
                                 " elapsed_ms, bytes FROM wpool_jobs"
                                 " WHERE state >= 2 ORDER BY id",
                         queue ? 1 : 0, NULL, queue ? p1 : NULL, NULL, NULL,
                         0) ||
      !PQsetSingleRowMode(pg->c)) {
    pg_err(pg, err, errlen, "reading results", NULL);
    goto out;
  }
  PGresult *r;
  bool failed = false, stopped = false;
  while ((r = PQgetResult(pg->c)) != NULL) {
    int st = PQresultStatus(r);
    if (st == PGRES_SINGLE_TUPLE && !failed && !stopped) {
      char *url = NULL;
      size_t ulen = 0;
      wp__col cols[WP__RESULT_COLS];
      for (int c = 0; c < WP__RESULT_COLS; c++) {
        cols[c].p = PQgetisnull(r, 0, c) ? NULL : PQgetvalue(r, 0, c);
        cols[c].len = (size_t)PQgetlength(r, 0, c);
      }
      if (unescape_col(r, 0, 1, &url, &ulen) != 0) {
        snprintf(err, errlen, "reading results: out of memory");
        failed = true;
      } else {
        cols[1].p = url;
        cols[1].len = ulen;
        wp__outrec rec;
        char derr[128];
        if (wp__store_decode_result(cols, WP__RESULT_COLS, &rec, derr,
                                    sizeof derr) != 0) {
          snprintf(err, errlen, "reading results: %s (id %s)", derr,
                   cols[0].p ? cols[0].p : "NULL");
          failed = true;
        } else if (cb(&rec, userdata) != 0) {
          stopped = true;
        }
      }
      free(url);
    } else if (st != PGRES_SINGLE_TUPLE && st != PGRES_TUPLES_OK && !failed) {
      pg_err(pg, err, errlen, "reading results", r);
      failed = true;
    }
    PQclear(r);
  }
  rc = failed ? -1 : 0;
out:
  wp__pg_close(pg);
  return rc;
}

int wp__pg_status(const char *conninfo, const char *queue, FILE *out, char *err,
                  size_t errlen) {
  wp__pg *pg;
  if (wp__pg_connect(conninfo, &pg, err, errlen) != 0) return -1;
  int rc = -1;
  PGresult *r = NULL;
  if (wp__pg_check_schema(pg, err, errlen) != 0) goto out;
  /* Where, never with the password. */
  fprintf(out, "database: %s@%s:%s/%s, schema version %d\n", PQuser(pg->c),
          PQhost(pg->c), PQport(pg->c), PQdb(pg->c), WP__PG_SCHEMA);
  const char *p1[1] = {queue};
  r = pg_q(
      pg,
      "SELECT queue,"
      " count(*) FILTER (WHERE state = 0 AND run_at <= now()),"
      " count(*) FILTER (WHERE state = 0 AND run_at > now()),"
      " count(*) FILTER (WHERE state = 1),"
      " count(*) FILTER (WHERE state = 2),"
      " count(*) FILTER (WHERE state = 3),"
      " count(*) FILTER (WHERE finished_at > now() - interval '1 minute')"
      " FROM wpool_jobs WHERE $1::text IS NULL OR queue = $1"
      " GROUP BY queue ORDER BY queue",
      1, p1, PGRES_TUPLES_OK, "status", err, errlen);
  if (!r) goto out;
  if (PQntuples(r) == 0) fprintf(out, "no jobs\n");
  for (int i = 0; i < PQntuples(r); i++) {
    double per_min = strtod(PQgetvalue(r, i, 6), NULL);
    fprintf(out,
            "queue %s: %s available, %s waiting for a retry, %s running, %s "
            "completed, %s failed; %.1f jobs/s over the last minute\n",
            PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
            PQgetvalue(r, i, 3), PQgetvalue(r, i, 4), PQgetvalue(r, i, 5),
            per_min / 60.0);
  }
  PQclear(r);
  r = pg_q(pg,
           "SELECT count(*) FROM wpool_workers WHERE"
           " seen_at > now() - lease_s * interval '1 second'"
           " AND ($1::text IS NULL OR queue = $1)",
           1, p1, PGRES_TUPLES_OK, "status", err, errlen);
  if (!r) goto out;
  fprintf(out, "workers alive: %s\n", PQgetvalue(r, 0, 0));
  rc = 0;
out:
  PQclear(r);
  wp__pg_close(pg);
  return rc;
}
