/* The SQLite state of one run (store.h).
 *
 * Schema (version 1):
 *   wpool_meta(key TEXT PRIMARY KEY, value TEXT)   -- 'schema' = '1'
 *   wpool_jobs(id INTEGER PRIMARY KEY, url BLOB, done INTEGER,
 *              attempts INTEGER, run_at INTEGER,   -- retry: unix ns
 *              ok INTEGER, status INTEGER, error BLOB,
 *              elapsed_ms REAL, bytes INTEGER)
 * A row exists once a job has a final result (done = 1) or waits for a
 * retry (done = 0, attempts and run_at set). A job without a row has not
 * finished anything and simply runs again.
 *
 * Durability: WAL with synchronous = NORMAL: a committed transaction is in
 * the WAL file when COMMIT returns, so it survives the process being killed
 * (also with -9); a power failure may lose the last transactions (never
 * corrupt the file). The CLI writes a result to its output only after the
 * commit callback, so the state never holds less than the output shows.
 *
 * Threads: the writer thread owns the write connection; wp__state_lookup
 * uses a second connection (the producer's); push is thread-safe (mu).
 * The run's exclusivity is an flock() on the database file itself, held on
 * a descriptor of our own until close (SQLite's own locks are POSIX record
 * locks, independent of flock on Linux; we never close that descriptor
 * before SQLite's, which would drop SQLite's locks).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <unistd.h>

#include "store/sqlite_row.h"
#include "store/store.h"

#define SCHEMA_VERSION 1
#define BATCH_MAX 4096 /* records per transaction */

typedef struct item {
  wp__state_rec rec;
  bool has_rec;
  void *token;
} item;

struct wp__state {
  char *path;
  int lockfd;
  sqlite3 *w, *r;
  sqlite3_stmt *ins, *look;
  uint64_t max_id;

  /* The writer. */
  pthread_mutex_t mu;
  pthread_cond_t cv_items, cv_space;
  item *ring, *batch;
  size_t cap, head, len;
  bool stopping, started;
  pthread_t thread;
  wp__state_commit_cb cb;
  void *userdata;
  int failed;
  char errmsg[512];
};

static const char *const schema_sql =
    "CREATE TABLE IF NOT EXISTS wpool_meta(key TEXT PRIMARY KEY, value TEXT);"
    "CREATE TABLE IF NOT EXISTS wpool_jobs("
    " id INTEGER PRIMARY KEY, url BLOB NOT NULL, done INTEGER NOT NULL,"
    " attempts INTEGER NOT NULL, run_at INTEGER, ok INTEGER, status INTEGER,"
    " error BLOB, elapsed_ms REAL, bytes INTEGER);"
    "INSERT OR IGNORE INTO wpool_meta VALUES('schema', '1');";

static void db_err(char *err, size_t errlen, const char *path, const char *what,
                   sqlite3 *db) {
  snprintf(err, errlen, "%s: %s: %s", path, what,
           db ? sqlite3_errmsg(db) : "out of memory");
}

static int open_conn(const char *path, int flags, sqlite3 **db, char *err,
                     size_t errlen) {
  int rc = sqlite3_open_v2(path, db, flags | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK) {
    db_err(err, errlen, path, "cannot open the state", *db);
    sqlite3_close(*db);
    *db = NULL;
    return -1;
  }
  sqlite3_busy_timeout(*db, 10000);
  sqlite3_extended_result_codes(*db, 1);
  return 0;
}

/* Is this a state of ours, of a version we know? (An empty file is new.) */
static int check_schema(wp__state *s, sqlite3 *db, char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(
      db, "SELECT value FROM wpool_meta WHERE key = 'schema'", -1, &st, NULL);
  if (rc != SQLITE_OK) {
    if (rc == SQLITE_NOTADB || sqlite3_errcode(db) == SQLITE_NOTADB)
      snprintf(err, errlen, "%s: not a wpool state file (not SQLite)", s->path);
    else
      snprintf(err, errlen, "%s: not a wpool state file (%s)", s->path,
               sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return -1;
  }
  rc = sqlite3_step(st);
  int ok = 0;
  if (rc != SQLITE_ROW) {
    snprintf(err, errlen, "%s: not a wpool state file (no schema version)",
             s->path);
    ok = -1;
  } else {
    const char *v = (const char *)sqlite3_column_text(st, 0);
    if (!v || strcmp(v, "1") != 0) {
      snprintf(err, errlen,
               "%s: state schema version %s; this wpool knows version %d "
               "(use the wpool that wrote it)",
               s->path, v ? v : "NULL", SCHEMA_VERSION);
      ok = -1;
    }
  }
  sqlite3_finalize(st);
  return ok;
}

int wp__state_open(const char *path, wp__state **out, char *err,
                   size_t errlen) {
  *out = NULL;
  wp__state *s = calloc(1, sizeof *s);
  if (!s || !(s->path = strdup(path))) {
    free(s);
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  s->lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (s->lockfd < 0) {
    int e = errno;
    char eb[128];
    snprintf(err, errlen, "%s: %s", path, strerror_r(e, eb, sizeof eb));
    goto fail;
  }
  if (flock(s->lockfd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    char eb[128];
    if (e == EWOULDBLOCK)
      snprintf(err, errlen,
               "%s: the state is in use by another wpool process (one run "
               "at a time per state file)",
               path);
    else
      snprintf(err, errlen, "%s: cannot lock: %s", path,
               strerror_r(e, eb, sizeof eb));
    goto fail;
  }
  if (open_conn(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &s->w, err,
                errlen) != 0)
    goto fail;
  char *msg = NULL;
  if (sqlite3_exec(s->w, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                   NULL, NULL, &msg) != SQLITE_OK) {
    if (sqlite3_errcode(s->w) == SQLITE_NOTADB)
      snprintf(err, errlen, "%s: not a wpool state file (not SQLite)", path);
    else
      snprintf(err, errlen, "%s: %s", path, msg ? msg : "cannot set up WAL");
    sqlite3_free(msg);
    goto fail;
  }
  /* A file with tables but none of ours is someone else's database. */
  sqlite3_stmt *st = NULL;
  int ntables = 0, ours = 0;
  if (sqlite3_prepare_v2(s->w,
                         "SELECT name FROM sqlite_master WHERE type='table'",
                         -1, &st, NULL) == SQLITE_OK) {
    while (sqlite3_step(st) == SQLITE_ROW) {
      const char *n = (const char *)sqlite3_column_text(st, 0);
      ntables++;
      if (n && (strcmp(n, "wpool_meta") == 0 || strcmp(n, "wpool_jobs") == 0))
        ours++;
    }
  }
  sqlite3_finalize(st);
  if (ntables > 0 && ours < 2) {
    snprintf(err, errlen, "%s: not a wpool state file (other tables)", path);
    goto fail;
  }
  if (ntables == 0 &&
      sqlite3_exec(s->w, schema_sql, NULL, NULL, &msg) != SQLITE_OK) {
    snprintf(err, errlen, "%s: cannot create the state: %s", path,
             msg ? msg : "?");
    sqlite3_free(msg);
    goto fail;
  }
  if (check_schema(s, s->w, err, errlen) != 0) goto fail;
  if (sqlite3_prepare_v2(s->w, "SELECT max(id) FROM wpool_jobs", -1, &st,
                         NULL) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW)
    s->max_id = (uint64_t)sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  if (sqlite3_prepare_v3(
          s->w,
          "INSERT OR REPLACE INTO wpool_jobs(id, url, done, attempts, run_at,"
          " ok, status, error, elapsed_ms, bytes)"
          " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
          -1, SQLITE_PREPARE_PERSISTENT, &s->ins, NULL) != SQLITE_OK) {
    db_err(err, errlen, path, "prepare", s->w);
    goto fail;
  }
  if (open_conn(path, SQLITE_OPEN_READWRITE, &s->r, err, errlen) != 0)
    goto fail;
  if (sqlite3_prepare_v3(s->r,
                         "SELECT url, done, attempts, run_at FROM wpool_jobs "
                         "WHERE id = ?1",
                         -1, SQLITE_PREPARE_PERSISTENT, &s->look,
                         NULL) != SQLITE_OK) {
    db_err(err, errlen, path, "prepare", s->r);
    goto fail;
  }
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv_items, NULL);
  pthread_cond_init(&s->cv_space, NULL);
  *out = s;
  return 0;
fail:
  sqlite3_finalize(s->look);
  sqlite3_finalize(s->ins);
  sqlite3_close(s->r);
  sqlite3_close(s->w);
  if (s->lockfd >= 0) close(s->lockfd);
  free(s->path);
  free(s);
  return -1;
}

uint64_t wp__state_max_id(const wp__state *s) { return s->max_id; }

int wp__state_lookup(wp__state *s, uint64_t id, const char *url, size_t len,
                     unsigned *attempts, int64_t *run_at_unix_ns, char *err,
                     size_t errlen) {
  if (id > s->max_id) return WP__STATE_NEW; /* past everything stored */
  sqlite3_stmt *st = s->look;
  sqlite3_reset(st);
  sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_DONE) return WP__STATE_NEW;
  if (rc != SQLITE_ROW) {
    db_err(err, errlen, s->path, "reading the state", s->r);
    return -1;
  }
  const char *su = sqlite3_column_blob(st, 0);
  size_t sl = (size_t)sqlite3_column_bytes(st, 0);
  if (sl != len || (len && memcmp(su, url, len) != 0)) {
    char q[256];
    wp__store_quote(q, sizeof q, su ? su : "", sl);
    snprintf(err, errlen, "the state has '%s'", q);
    sqlite3_reset(st);
    return -2;
  }
  int done = sqlite3_column_int(st, 1);
  sqlite3_int64 a = sqlite3_column_int64(st, 2);
  *attempts = a < 0 ? 0 : a > 1000000 ? 1000000 : (unsigned)a;
  *run_at_unix_ns = sqlite3_column_int64(st, 3);
  sqlite3_reset(st);
  return done ? WP__STATE_DONE : WP__STATE_RETRY;
}

/* ---- the writer ---------------------------------------------------------- */

static int bind_rec(sqlite3_stmt *st, const wp__state_rec *rec) {
  const wp__outrec *r = &rec->r;
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  sqlite3_bind_int64(st, 1, (sqlite3_int64)r->id);
  sqlite3_bind_blob64(st, 2, r->url_len ? r->url : "", r->url_len,
                      SQLITE_STATIC);
  sqlite3_bind_int(st, 3, rec->done ? 1 : 0);
  sqlite3_bind_int64(st, 4, (sqlite3_int64)r->attempts);
  if (rec->done) {
    sqlite3_bind_int(st, 6, r->ok ? 1 : 0);
    if (r->status > 0) sqlite3_bind_int(st, 7, r->status);
    if (r->error && r->error[0])
      sqlite3_bind_blob64(st, 8, r->error, strlen(r->error), SQLITE_STATIC);
    double ms = r->elapsed_ms >= 0 && r->elapsed_ms < 1e12 ? r->elapsed_ms : 0;
    sqlite3_bind_double(st, 9, ms);
    sqlite3_bind_int64(
        st, 10, r->bytes > INT64_MAX ? INT64_MAX : (sqlite3_int64)r->bytes);
  } else {
    sqlite3_bind_int64(st, 5, rec->run_at_unix_ns);
  }
  return sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
}

/* One transaction for the batch. Returns 0 or -1 (message in s->errmsg:
 * the file and SQLite's words, e.g. "database or disk is full", taken
 * before the ROLLBACK, which would replace them). A failed transaction
 * leaves the state as it was: every earlier commit stays. */
static int commit_batch(wp__state *s, item *batch, size_t n) {
  if (sqlite3_exec(s->w, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) goto fail;
  for (size_t i = 0; i < n; i++) {
    if (!batch[i].has_rec) continue;
    if (bind_rec(s->ins, &batch[i].rec) != 0) goto fail;
  }
  sqlite3_reset(s->ins);
  if (sqlite3_exec(s->w, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) goto fail;
  return 0;
fail:;
  /* SQLite says "disk I/O error" for most failed writes, and the system's
   * error is often gone by then: name a file size limit (ulimit -f: EFBIG)
   * when there is one, else the system's error when SQLite kept it. */
  int code = sqlite3_extended_errcode(s->w) & 0xff;
  int sys = sqlite3_system_errno(s->w);
  char eb[160] = "", why[100];
  struct rlimit fl;
  if ((code == SQLITE_IOERR || code == SQLITE_FULL) &&
      getrlimit(RLIMIT_FSIZE, &fl) == 0 && fl.rlim_cur != RLIM_INFINITY)
    snprintf(eb, sizeof eb, " (the file size limit, ulimit -f, is %llu bytes)",
             (unsigned long long)fl.rlim_cur);
  else if (sys != 0)
    snprintf(eb, sizeof eb, " (%s)", strerror_r(sys, why, sizeof why));
  snprintf(s->errmsg, sizeof s->errmsg, "%s: writing the state: %s%s", s->path,
           sqlite3_errmsg(s->w), eb);
  sqlite3_reset(s->ins);
  if (!sqlite3_get_autocommit(s->w))
    sqlite3_exec(s->w, "ROLLBACK", NULL, NULL, NULL);
  return -1;
}

static void *writer_main(void *arg) {
  wp__state *s = arg;
  item *batch = s->batch;
  size_t bmax = s->cap < BATCH_MAX ? s->cap : BATCH_MAX;
  for (;;) {
    pthread_mutex_lock(&s->mu);
    while (s->len == 0 && !s->stopping) pthread_cond_wait(&s->cv_items, &s->mu);
    if (s->len == 0 && s->stopping) {
      pthread_mutex_unlock(&s->mu);
      break;
    }
    size_t n = 0;
    while (s->len > 0 && n < bmax) {
      batch[n++] = s->ring[s->head];
      s->head = (s->head + 1) % s->cap;
      s->len--;
    }
    pthread_cond_broadcast(&s->cv_space);
    pthread_mutex_unlock(&s->mu);
    /* After a failure nothing more is written: the state stays what it was
     * (a prefix of the run), and the CLI ends the run. */
    int ok = s->failed ? -1 : commit_batch(s, batch, n);
    if (ok != 0) s->failed = 1;
    for (size_t i = 0; i < n; i++)
      s->cb(batch[i].token, ok == 0, ok == 0 ? NULL : s->errmsg, s->userdata);
  }
  return NULL;
}

int wp__state_start_writer(wp__state *s, size_t cap, wp__state_commit_cb cb,
                           void *userdata, char *err, size_t errlen) {
  if (cap < 1) cap = 1;
  s->ring = calloc(cap, sizeof *s->ring);
  s->batch = calloc(cap < BATCH_MAX ? cap : BATCH_MAX, sizeof *s->batch);
  if (!s->ring || !s->batch) {
    free(s->ring);
    free(s->batch);
    s->ring = s->batch = NULL;
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  s->cap = cap;
  s->cb = cb;
  s->userdata = userdata;
  if (pthread_create(&s->thread, NULL, writer_main, s) != 0) {
    free(s->ring);
    free(s->batch);
    s->ring = s->batch = NULL;
    snprintf(err, errlen, "cannot start the state writer");
    return -1;
  }
  s->started = true;
  return 0;
}

void wp__state_push(wp__state *s, const wp__state_rec *rec, void *token) {
  pthread_mutex_lock(&s->mu);
  while (s->len == s->cap) pthread_cond_wait(&s->cv_space, &s->mu);
  item *it = &s->ring[(s->head + s->len) % s->cap];
  it->has_rec = rec != NULL;
  if (rec) it->rec = *rec;
  it->token = token;
  s->len++;
  if (s->len == 1) pthread_cond_signal(&s->cv_items);
  pthread_mutex_unlock(&s->mu);
}

int wp__state_stop_writer(wp__state *s, char *err, size_t errlen) {
  if (!s->started) return 0;
  pthread_mutex_lock(&s->mu);
  s->stopping = true;
  pthread_cond_signal(&s->cv_items);
  pthread_mutex_unlock(&s->mu);
  pthread_join(s->thread, NULL);
  s->started = false;
  if (s->failed) {
    snprintf(err, errlen, "%s", s->errmsg);
    return -1;
  }
  return 0;
}

void wp__state_close(wp__state *s) {
  if (!s) return;
  char err[16];
  wp__state_stop_writer(s, err, sizeof err);
  sqlite3_finalize(s->look);
  sqlite3_finalize(s->ins);
  sqlite3_close(s->r);
  sqlite3_close(s->w);
  close(s->lockfd); /* after SQLite's descriptors: see the top */
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv_items);
  pthread_cond_destroy(&s->cv_space);
  free(s->ring);
  free(s->batch);
  free(s->path);
  free(s);
}

/* ---- reading the results --------------------------------------------------
 */

int wp__state_results(const char *path, wp__result_cb cb, void *userdata,
                      char *err, size_t errlen) {
  if (access(path, F_OK) != 0) {
    int e = errno;
    char eb[128];
    snprintf(err, errlen, "%s: %s", path, strerror_r(e, eb, sizeof eb));
    return -1;
  }
  sqlite3 *db = NULL;
  /* Read-write open (WAL readers need the -shm file), but only reads. */
  if (open_conn(path, SQLITE_OPEN_READWRITE, &db, err, errlen) != 0) return -1;
  wp__state probe = {.path = (char *)path};
  int rc = -1;
  sqlite3_stmt *st = NULL;
  if (check_schema(&probe, db, err, errlen) != 0) goto out;
  if (sqlite3_prepare_v2(db,
                         "SELECT id, url, ok, status, error, attempts,"
                         " elapsed_ms, bytes FROM wpool_jobs WHERE done = 1"
                         " ORDER BY id",
                         -1, &st, NULL) != SQLITE_OK) {
    db_err(err, errlen, path, "reading the state", db);
    goto out;
  }
  int step;
  while ((step = sqlite3_step(st)) == SQLITE_ROW) {
    wp__outrec r;
    char derr[128];
    if (wp__sqlite_decode_result(st, &r, derr, sizeof derr) != 0) {
      const char *id = (const char *)sqlite3_column_text(st, 0);
      snprintf(err, errlen, "%s: %s (id %s)", path, derr, id ? id : "NULL");
      goto out;
    }
    if (cb(&r, userdata) != 0) {
      rc = 0;
      goto out;
    }
  }
  if (step != SQLITE_DONE) {
    db_err(err, errlen, path, "reading the state", db);
    goto out;
  }
  rc = 0;
out:
  sqlite3_finalize(st);
  sqlite3_close(db);
  return rc;
}

int wp__sqlite_decode_result(sqlite3_stmt *st, wp__outrec *out, char *err,
                             size_t errlen) {
  wp__col cols[WP__RESULT_COLS];
  for (int i = 0; i < WP__RESULT_COLS; i++) {
    /* Text first, then its length (sqlite3_column_bytes after the
     * conversion to text). */
    cols[i].p = (const char *)sqlite3_column_text(st, i);
    cols[i].len = (size_t)sqlite3_column_bytes(st, i);
  }
  return wp__store_decode_result(cols, WP__RESULT_COLS, out, err, errlen);
}
