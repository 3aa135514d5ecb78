/* Durable stores: the jobs of a run and their results, kept where a crash
 * cannot take them.
 *
 *   SQLite (wp__state_*): one machine. `wpool fetch --state FILE` records
 *     every result (and every retry waiting out its backoff) in FILE, so that
 *     the same command resumes after any kill. One process at a time.
 *   PostgreSQL (wp__pg_*): many worker processes on many machines share a
 *     queue: enqueue, claim with FOR UPDATE SKIP LOCKED under a lease,
 *     complete or retry (run-at), take back expired leases.
 *
 * Both store a result as the same record (wp__store_rec) and read it back
 * through the same decoder (wp__store_decode_result), so `wpool results`
 * prints either store through one path. The decoders are pure functions of
 * a row's text columns: no I/O, no globals, fuzzable (issue 7).
 *
 * Thread safety: a wp__state or wp__pg handle is used by one thread at a
 * time, except where a function says otherwise.
 */
#ifndef WPOOL_STORE_H
#define WPOOL_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cli/parse.h" /* wp__outrec: the record every output format prints */

/* ---- rows and their decoders (pure) ----------------------------------- */

/* One column of a row as the database returned it: text (or bytes), or
 * NULL. Integers and reals come as their decimal text. p[len] must be a
 * NUL (both sqlite3_column_text and PQgetvalue guarantee it; a fuzzer must
 * too): the decoders read it. */
typedef struct wp__col {
  const char *p; /* NULL: SQL NULL */
  size_t len;
} wp__col;

/* The result columns, in this order, in both stores:
 *   id, url, ok, status, error, attempts, elapsed_ms, bytes
 * id: 1..2^63-1; url: any bytes; ok: 0/1 (or f/t); status: NULL or
 * 100..999; error: NULL or non-empty bytes without a NUL (NULL exactly when
 * ok); attempts: 0..2^31-1; elapsed_ms: a finite decimal >= 0 (at most 40
 * bytes); bytes: 0..2^63-1. */
enum { WP__RESULT_COLS = 8 };

/* Decodes a result row into *out (whose url and error point into the row's
 * memory). Returns 0, or -1 with a message in err naming the column: a row
 * that a damaged or hostile database holds is an error, never a crash. */
int wp__store_decode_result(const wp__col *cols, size_t ncols, wp__outrec *out,
                            char *err, size_t errlen);

/* The columns of a claimed queue job, in this order:
 *   id, url, bad, attempts
 * bad: NULL, or why the line is not a job to fetch. */
enum { WP__QJOB_COLS = 4 };

typedef struct wp__qjob {
  int64_t id;
  unsigned attempts; /* including the one just claimed */
  const char *url;   /* into the row */
  size_t url_len;
  const char *bad; /* NULL or into the row */
  size_t bad_len;
} wp__qjob;

int wp__store_decode_qjob(const wp__col *cols, size_t ncols, wp__qjob *out,
                          char *err, size_t errlen);

/* Strict decimal integer in [min, max] (an optional '-'), the whole of c
 * (a NUL inside is not), at most 20 bytes. */
int wp__store_col_int(const wp__col *c, int64_t min, int64_t max, int64_t *out);

/* Bytes as printable text for a message: control and non-ASCII bytes and
 * the backslash as \xNN; always NUL-terminated; cut before the first byte
 * whose form does not fit in dstlen (which must be > 0) with the NUL. */
void wp__store_quote(char *dst, size_t dstlen, const char *p, size_t n);

/* ---- SQLite: the state of one run -------------------------------------- */

typedef struct wp__state wp__state;

/* Opens (creating it if needed) the state file of a run, for one run: it
 * takes an exclusive lock on the file (released at close or when the
 * process dies), so a second process gets a clear error. Returns 0, or -1
 * with a message in err. */
int wp__state_open(const char *path, wp__state **out, char *err, size_t errlen);

/* What the state says about job `id` whose input line is url. */
enum {
  WP__STATE_NEW = 0, /* not in the state: run it */
  WP__STATE_DONE,    /* has its result: skip it */
  WP__STATE_RETRY    /* was waiting for a retry: resume its attempts */
};

/* Looks job id up (the producer's own connection). Returns a WP__STATE_*
 * value (attempts and run_at_unix_ns filled for RETRY); -2 when the state
 * holds another URL for this job (the input changed; err quotes the stored
 * URL); -1 on a database error (message in err). */
int wp__state_lookup(wp__state *s, uint64_t id, const char *url, size_t len,
                     unsigned *attempts, int64_t *run_at_unix_ns, char *err,
                     size_t errlen);

/* The highest job ID in the state when it was opened (0: a new state). */
uint64_t wp__state_max_id(const wp__state *s);

/* A record for the writer: a final result (done) or a retry. url and error
 * stay valid until the writer's commit callback for this record. */
typedef struct wp__state_rec {
  bool done;              /* a final result; otherwise a retry */
  int64_t run_at_unix_ns; /* retry: when the next attempt may start */
  wp__outrec r;
} wp__state_rec;

/* Called on the writer thread, in push order, after each record's
 * transaction committed (committed = true) or failed (false: the record is
 * not in the state; err says why). */
typedef void (*wp__state_commit_cb)(void *token, bool committed,
                                    const char *err, void *userdata);

/* Starts the writer thread: it commits what was pushed in batches (one
 * transaction per batch, WAL), then calls cb for each record. cap bounds
 * the records waiting (push blocks beyond it). */
int wp__state_start_writer(wp__state *s, size_t cap, wp__state_commit_cb cb,
                           void *userdata, char *err, size_t errlen);

/* Queues a record (thread-safe, from any thread; blocks while cap records
 * wait). token is handed back to the callback. Skips the database (the
 * callback still runs, committed = true) for a NULL rec. */
void wp__state_push(wp__state *s, const wp__state_rec *rec, void *token);

/* Commits what is queued, stops and joins the writer. Returns 0, or -1 if
 * any commit failed (the first error in err). */
int wp__state_stop_writer(wp__state *s, char *err, size_t errlen);

void wp__state_close(wp__state *s);

/* Every final result of a state file, in ID order, each once (read-only;
 * works while a run holds the file). cb returns 0 to go on. Returns 0, or
 * -1 with a message in err. */
typedef int (*wp__result_cb)(const wp__outrec *r, void *userdata);
int wp__state_results(const char *path, wp__result_cb cb, void *userdata,
                      char *err, size_t errlen);

/* ---- PostgreSQL: a queue shared by many workers ------------------------ */

typedef struct wp__pg wp__pg;

/* The connection string: conninfo if not NULL, else $WPOOL_DATABASE_URL,
 * else "" (libpq's PG* variables). */
const char *wp__pg_conninfo(const char *conninfo);

/* Replaces every occurrence of conninfo's password in msg (in place) with
 * "***": for any message that may quote a connection string. */
void wp__pg_redact(char *msg, const char *conninfo);

/* Connects. Returns 0, or -1 with a message (never holding the password). */
int wp__pg_connect(const char *conninfo, wp__pg **out, char *err,
                   size_t errlen);
void wp__pg_close(wp__pg *pg);

/* The schema version this wpool needs. */
#define WP__PG_SCHEMA 1

/* Applies every migration missing (in one transaction each, under an
 * advisory lock: concurrent runs are safe and idempotent). *from and *to:
 * the versions before and after. */
int wp__pg_migrate(wp__pg *pg, int *from, int *to, char *err, size_t errlen);

/* 0 if the schema is the one this wpool needs; else -1 with a message that
 * says what to run. */
int wp__pg_check_schema(wp__pg *pg, char *err, size_t errlen);

/* Enqueue in batches: begin, lines, commit (each batch its own transaction,
 * with COPY; memory stays bounded by a batch's send buffer). commit NOTIFYs
 * idle workers. */
int wp__pg_enqueue_begin(wp__pg *pg, const char *queue, char *err,
                         size_t errlen);
int wp__pg_enqueue_line(wp__pg *pg, const char *url, size_t len,
                        const char *bad, char *err, size_t errlen);
int wp__pg_enqueue_commit(wp__pg *pg, char *err, size_t errlen);

/* Claims up to max available jobs of queue whose run-at has come
 * (FOR UPDATE SKIP LOCKED), leased to worker for lease_ns; cb gets each, in
 * ID order, at most max calls (the row's memory is valid during the call).
 * Returns how many, or -1 with a message: cb may have had some of them
 * already (the caller gives those back); the rest stay leased to worker
 * (wp__pg_unregister gives them back). */
typedef void (*wp__qjob_cb)(const wp__qjob *j, void *userdata);
int wp__pg_claim(wp__pg *pg, const char *queue, const char *worker,
                 int64_t lease_ns, unsigned max, wp__qjob_cb cb, void *userdata,
                 char *err, size_t errlen);

/* How a claimed job ends. */
enum {
  WP__Q_RELEASE = 0, /* not run (or canceled): available again, the claim
                        not counted as an attempt */
  WP__Q_RETRY,       /* failed, retryable: available again at now + delay */
  WP__Q_DONE,        /* final: ok or failed */
};

typedef struct wp__qdone {
  int64_t id;
  int kind;
  int64_t delay_ns;  /* WP__Q_RETRY */
  bool delay_set;    /* delay_ns is the server's (Retry-After), else the
                        runner's backoff */
  unsigned attempts; /* the claim's attempt number (wp__qjob.attempts):
                        fences the finish; for WP__Q_RETRY the backoff */
  bool ok;
  int status;      /* -1: none */
  char error[256]; /* "" for none; printable ASCII (see wp__pg_finish) */
  double elapsed_ms;
  uint64_t bytes;
} wp__qdone;

/* Records a batch of ends in one statement, for jobs still held by the
 * claim that ran them: leased to worker with the same attempt number. A job
 * whose lease expired and that was claimed again (by another worker, or by
 * this one) is left alone: that is the at-least-once case. Returns 0 or
 * -1. */
int wp__pg_finish(wp__pg *pg, const char *worker, const wp__qdone *d, size_t n,
                  char *err, size_t errlen);

/* The heartbeat: renews the leases of worker's running jobs, marks the
 * worker alive, and takes back every job whose lease expired (any worker);
 * *reaped gets how many (they are NOTIFYed). */
int wp__pg_heartbeat(wp__pg *pg, const char *worker, const char *queue,
                     int64_t lease_ns, long *reaped, char *err, size_t errlen);

/* The worker is gone: releases whatever it still holds, deletes its row. */
int wp__pg_unregister(wp__pg *pg, const char *worker, char *err, size_t errlen);

/* LISTEN for new jobs, then wait: returns 1 when notified, 0 when
 * timeout_ns passed or wakefd became readable, -1 on a connection error. */
int wp__pg_listen(wp__pg *pg, char *err, size_t errlen);
int wp__pg_wait(wp__pg *pg, int wakefd, int64_t timeout_ns);

/* The queue now: jobs available now, waiting for a later run-at, running;
 * *next_due_ns: time until the earliest waiting one (INT64_MAX: none). */
int wp__pg_queue_counts(wp__pg *pg, const char *queue, int64_t *ready,
                        int64_t *waiting, int64_t *running,
                        int64_t *next_due_ns, char *err, size_t errlen);

/* Every final result (of queue, or of all queues when NULL), in ID order,
 * each once; streamed. */
int wp__pg_results(const char *conninfo, const char *queue, wp__result_cb cb,
                   void *userdata, char *err, size_t errlen);

/* Prints jobs by state, workers alive, the rate over the last minute. */
int wp__pg_status(const char *conninfo, const char *queue, FILE *out, char *err,
                  size_t errlen);

#endif
