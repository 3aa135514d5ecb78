#!/usr/bin/env python3
"""Integration tests of the durable stores: `wpool fetch --state` and
`wpool results --state` on SQLite. The real binary against the project's
test server on 127.0.0.1; the state is read back with Python's own sqlite3
module (a real SQLite, not our decoder).

Each top-level `def test_<name>(` is one CTest test. Helpers: harness.py.
"""
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import (Background, Server, check, check_ids,  # noqa: E402
                     check_jsonl_record, eq, fail, note, parse_csv, parse_jsonl,
                     run_wpool, wait_until, write_file)


PG_BIN = os.environ.get("WPOOL_PG_BIN", "/usr/lib/postgresql/15/bin")


def _free_port():
    with socket.socket() as so:
        so.bind(("127.0.0.1", 0))
        return so.getsockname()[1]


class PgServer:
    """A PostgreSQL server of our own: a data folder copied from a template
    that initdb made once per build (initdb is slow on a busy machine), its
    own loopback port and socket folder, run as the postgres user when we
    are root; stopped (and the folder removed) on exit, also on failure."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="wpool-pg-")
        self.data = os.path.join(self.dir, "data")
        self.port = _free_port()
        self.proc = None
        self._log = open(os.path.join(self.dir, "log"), "wb")
        self.user = {}
        if os.geteuid() == 0:
            import pwd
            pw = pwd.getpwnam("postgres")
            self.user = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
        try:
            self._copy_template()
            self.proc = subprocess.Popen([
                os.path.join(PG_BIN, "postgres"), "-D", self.data, "-p", str(self.port),
                "-k", self.dir, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
                "-c", "max_connections=200", "-c", "shared_buffers=64MB"],
                stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
                start_new_session=True, **self.user)
            self.url = "postgresql://postgres@127.0.0.1:%d/postgres" % self.port
            wait_until(self._ready, 60 * h.SLOW, "PostgreSQL to accept connections")
        except BaseException:
            self.stop()
            raise

    def _chown(self, path):
        if self.user:
            os.chown(path, self.user["user"], self.user["group"])

    def _copy_template(self):
        import fcntl
        tpl = os.path.join(os.path.dirname(h.WPOOL), "pg-template")
        with open(tpl + ".lock", "w") as lk:
            fcntl.flock(lk, fcntl.LOCK_EX)
            if not os.path.exists(os.path.join(tpl, "PG_VERSION")):
                shutil.rmtree(tpl, ignore_errors=True)
                work = tempfile.mkdtemp(prefix="wpool-pg-initdb-")
                self._chown(work)
                try:
                    r = subprocess.run([
                        os.path.join(PG_BIN, "initdb"), "-D", os.path.join(work, "data"),
                        "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync",
                        "--locale=C"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                        timeout=300 * h.SLOW, **self.user)
                    check(r.returncode == 0, "initdb failed: %s"
                          % r.stdout[-2000:].decode("utf-8", "replace"))
                    shutil.copytree(os.path.join(work, "data"), tpl, symlinks=True)
                finally:
                    shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(tpl, self.data, symlinks=True)
        os.chmod(self.data, 0o700)
        for root, dirs, files in os.walk(self.dir):
            self._chown(root)
            for f in files:
                self._chown(os.path.join(root, f))

    def _ready(self):
        check(self.proc.poll() is None, "postgres exited: %s" % self.log_text()[-2000:])
        try:
            socket.create_connection(("127.0.0.1", self.port), 1).close()
        except OSError:
            return False
        r = subprocess.run([os.path.join(PG_BIN, "pg_isready"), "-h", "127.0.0.1",
                            "-p", str(self.port), "-U", "postgres"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return r.returncode == 0

    def log_text(self):
        try:
            with open(os.path.join(self.dir, "log"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def sql(self, q):
        """Runs q with psql; returns the rows as lists of strings."""
        r = subprocess.run([os.path.join(PG_BIN, "psql"), "-X", "-q", "-A", "-t", "-F", "\t",
                            "-v", "ON_ERROR_STOP=1", "-d", self.url, "-c", q],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60 * h.SLOW)
        check(r.returncode == 0, "psql %r: %s" % (q, r.stderr.decode("utf-8", "replace")))
        out = r.stdout.decode()
        return [ln.split("\t") for ln in out.splitlines() if ln]

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(60 * h.SLOW)
            except subprocess.TimeoutExpired:
                h._kill_group(self.proc)
                self.proc.wait()
        self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


def _tmpdir():
    return tempfile.TemporaryDirectory(prefix="wpool-st-")


def wpool(args, timeout=60, env=None):
    """Runs `wpool ARGS` (any command) to completion; returns a harness.Run."""
    args = [str(a) for a in args]
    t0 = time.monotonic()
    p = subprocess.Popen([h.WPOOL] + args, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         start_new_session=True, env=env)
    try:
        out, err = p.communicate(timeout=timeout * h.SLOW)
    except subprocess.TimeoutExpired:
        h._kill_group(p)
        out, err = p.communicate()
        fail("wpool hung: killed after %d s: wpool %s\nstderr: %s" % (
            timeout * h.SLOW, " ".join(args)[:300], err[-2000:].decode("utf-8", "replace")))
    h.check_no_sanitizer_report(err)
    return h.Run(args, p.returncode, out, err, time.monotonic() - t0)


def state_done(path):
    """id -> url of the jobs whose final result the state holds (a read-only
    look, as any other process could take while a run goes on)."""
    if not os.path.exists(path):
        return {}
    try:
        db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=30)
        try:
            return {i: bytes(u).decode("utf-8", "replace") for i, u in
                    db.execute("SELECT id, url FROM wpool_jobs WHERE done = 1")}
        finally:
            db.close()
    except sqlite3.OperationalError:
        return {}  # not created yet


def results(state, fmt="jsonl"):
    r = wpool(["results", "--state", state, "--format", fmt])
    eq(r.rc, 0, "wpool results exit status (%r)" % r)
    return r


def test_state_kill9_resume_every_job_once():
    """kill -9 at random moments, then the same command again, repeated:
    every job ends with exactly one result in the state, and a job whose
    result the state held at a kill is never requested again."""
    rng = random.Random(int(os.environ.get("WPOOL_TEST_SEED", "0")) or None)
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    note("seed %d" % seed)
    n, workers, rounds = 400, 16, 4
    with Server() as srv, _tmpdir() as d:
        urls = [srv.url("/delay/%d/j%d" % (rng.randrange(0, 40), i)) for i in range(1, n + 1)]
        inp = write_file(["# a comment line, not a job"] + urls, dir=d)
        state = os.path.join(d, "run.db")
        args = ["--state", state, "-w", workers, "-f", "jsonl", inp]
        frozen = {}  # path -> request count when the state held its result
        kills = 0
        for rnd in range(rounds):
            before = len(state_done(state))
            if before >= n:
                break
            target = before + rng.randrange(1, max(2, (n - before) // 2))
            bg = Background(args)
            wait_until(lambda: len(state_done(state)) >= target or bg.proc.poll() is not None,
                       60 * h.SLOW, "the state to hold %d results" % target)
            bg.kill()  # SIGKILL to the group: no cleanup at all
            run = bg.finish(30)
            if run.rc == -signal.SIGKILL:
                kills += 1
            done = state_done(state)
            paths = srv.stats()["paths"]
            for i, u in done.items():
                check(u == urls[i - 1], "state row %d holds %r, input has %r" % (i, u, urls[i - 1]))
                p = u[len(srv.base):]
                frozen.setdefault(p, paths.get(p, 0))
                check(frozen[p] >= 1, "job %d is in the state but never reached the server" % i)
            # The output of a killed run holds only committed results.
            for r in parse_jsonl(run.out):
                check(r["id"] in done, "output shows job %d that the state lacks" % r["id"])
            note("round %d: killed with %d/%d results in the state" % (rnd, len(done), n))
        check(kills >= 1, "no run was killed mid-way: the test did not test a resume")
        final = run_wpool(args, timeout=120)
        check(final.rc in (0, 1), "the resumed run: %r" % final)
        check(b"already done there were skipped" in final.err or len(frozen) == 0,
              "the resume says what it skipped: %r" % final.err[-300:])
        res = parse_jsonl(results(state).out)
        for r in res:
            check_jsonl_record(r)
            eq(r["ok"], True, "job %d ok" % r["id"])
        d_ = check_ids(res, n, "wpool results")
        eq([r["id"] for r in res], sorted(d_), "results in ID order")
        for i, r in d_.items():
            eq(r["url"], urls[i - 1], "url of job %d" % i)
        paths = srv.stats()["paths"]
        for p, c in frozen.items():
            eq(paths.get(p), c, "requests for %s, whose result was in the state at a kill" % p)
        total = sum(paths.get(u[len(srv.base):], 0) for u in urls)
        # Only jobs in flight or not yet committed at a kill run twice: at
        # most the transfers plus the writer's queue and its batch in flight
        # (each at most workers + queue, queue = 2 x workers by default).
        per_kill = workers + 2 * (workers + 2 * workers)
        check(total <= n + kills * per_kill,
              "%d requests for %d jobs and %d kills of %d workers" % (total, n, kills, workers))
        check(all(paths.get(u[len(srv.base):], 0) >= 1 for u in urls), "every job fetched")


def test_state_changed_input_is_refused_naming_the_line():
    with Server() as srv, _tmpdir() as d:
        urls = [srv.url("/delay/0/k%d" % i) for i in range(1, 21)]
        lines = ["# header", ""] + urls
        inp = write_file(lines, dir=d)
        state = os.path.join(d, "s.db")
        r = run_wpool(["--state", state, inp])
        eq(r.rc, 0, "first run (%r)" % r)
        # Line 9 of the file is job 7.
        changed = list(lines)
        changed[8] = srv.url("/delay/0/other")
        inp2 = write_file(changed, dir=d)
        r = run_wpool(["--state", state, inp2])
        eq(r.rc, 2, "a changed input: exit 2 (%r)" % r)
        err = r.err.decode()
        check("line 9 (job 7)" in err and "/delay/0/other" in err and "/delay/0/k7" in err,
              "the error names the line, the job and both URLs: %r" % err)
        eq(r.out, b"", "nothing written for a changed input")
        # A shorter input is a changed input too.
        inp3 = write_file(lines[:10], dir=d)
        r = run_wpool(["--state", state, inp3])
        eq(r.rc, 2, "a truncated input: exit 2 (%r)" % r)
        check(b"ends after job 8" in r.err and b"up to 20" in r.err, "says where: %r" % r.err)
        # The state is untouched: still the 20 results of the first input.
        rows = parse_csv(results(state, "csv").out)[1]
        eq([row[1] for row in rows], urls, "the state's URLs, in ID order (csv)")
        # Lines added at the end are new jobs: only they run.
        srv.reset_stats()
        extra = [srv.url("/delay/0/new%d" % i) for i in range(3)]
        r = run_wpool(["--state", state, "-f", "jsonl", write_file(lines + extra, dir=d)])
        eq(r.rc, 0, "an input that grew (%r)" % r)
        eq(sorted(x["id"] for x in parse_jsonl(r.out)), [21, 22, 23], "only the new jobs ran")
        eq(srv.stats()["total_requests"], 3, "requests for the grown input")


def test_state_second_process_is_refused():
    with Server() as srv, _tmpdir() as d:
        inp = write_file([srv.url("/delay/60000/a%d" % i) for i in range(4)], dir=d)
        state = os.path.join(d, "s.db")
        bg = Background(["--state", state, "-w", 4, inp])
        try:
            wait_until(lambda: srv.stats()["in_flight"] >= 4, 30 * h.SLOW,
                       "the first run to fetch")
            r = run_wpool(["--state", state, inp])
            eq(r.rc, 2, "second process on the state (%r)" % r)
            check(b"in use by another wpool process" in r.err, "clear error: %r" % r.err)
            eq(r.out, b"", "the second process wrote nothing")
            eq(srv.stats()["total_requests"], 4, "the second process fetched nothing")
        finally:
            bg.kill()
            bg.finish(30)


def test_state_file_that_is_not_a_state():
    with _tmpdir() as d:
        junk = os.path.join(d, "junk.db")
        with open(junk, "wb") as f:
            f.write(b"this is not a database at all\n" * 100)
        inp = write_file(["http://127.0.0.1:1/"], dir=d)
        for cmd in (["fetch", "--state", junk, inp], ["results", "--state", junk]):
            r = wpool(cmd)
            eq(r.rc, 2, "%s on a non-state file (%r)" % (cmd[0], r))
            check(b"not a wpool state file" in r.err, "clear error: %r" % r.err)
        other = os.path.join(d, "other.db")
        db = sqlite3.connect(other)
        db.execute("CREATE TABLE t(x)")
        db.commit()
        db.close()
        r = wpool(["fetch", "--state", other, inp])
        eq(r.rc, 2, "someone else's SQLite database (%r)" % r)
        check(b"not a wpool state file" in r.err, "clear error: %r" % r.err)
        r = wpool(["results", "--state", os.path.join(d, "missing.db")])
        eq(r.rc, 2, "a missing state (%r)" % r)


def _state_row(path, i):
    """(done, attempts, run_at unix ns) of job i in the state, or None."""
    if not os.path.exists(path):
        return None
    try:
        db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=30)
        try:
            return db.execute("SELECT done, attempts, run_at FROM wpool_jobs WHERE id = ?",
                              (i,)).fetchone()
        finally:
            db.close()
    except sqlite3.OperationalError:
        return None


def _set_run_at(path, i, unix_ns):
    db = sqlite3.connect(path, timeout=30)
    try:
        db.execute("UPDATE wpool_jobs SET run_at = ? WHERE id = ?", (unix_ns, i))
        db.commit()
    finally:
        db.close()


def test_state_retry_waiting_at_the_kill_resumes_with_its_attempts():
    """A job that fails twice, then succeeds (/flaky/KEY/2), under a backoff
    of 10 hours: killed with -9 while each retry waits, it resumes with its
    attempt count. A run-at already past starts at once (no fresh backoff);
    one still ahead is waited for, then the attempt runs. The job ends once,
    at attempt 3 in all, and the server saw exactly 3 requests for it."""
    hour10 = 10 * 3600 * 10**9
    with Server() as srv, _tmpdir() as d:
        inp = write_file([srv.url("/flaky/w/2"), srv.url("/delay/0/x")], dir=d)
        state = os.path.join(d, "run.db")
        args = ["--state", state, "-r", 2, "--backoff", "10h,10h", "-f", "jsonl", inp]

        def flaky():
            return srv.stats()["flaky"].get("w", 0)

        def killed_while_waiting(attempts):
            """Runs args until the state holds job 1 waiting for its retry
            after `attempts` attempts; kill -9; returns its run-at."""
            t0 = time.time_ns()
            bg = Background(args)
            # Job 2 (ok at once) is in the state as well before the first
            # kill: a result not yet committed there is fetched again.
            wait_until(lambda: ((_state_row(state, 1) or (0, 0, 0))[1] >= attempts
                                and (_state_row(state, 2) or (0, 0, 0))[0] == 1)
                       or bg.proc.poll() is not None,
                       60 * h.SLOW, "job 1 waiting for retry %d in the state" % attempts)
            if bg.proc.poll() is not None:
                fail("the run ended while a 10h backoff was due: %r" % bg.finish(30))
            bg.kill()
            run = bg.finish(30)
            eq(run.rc, -signal.SIGKILL, "killed (%r)" % run)
            done, a, run_at = _state_row(state, 1)
            eq((done, a), (0, attempts), "job 1 in the state after the kill: not done, attempts")
            eq(flaky(), attempts, "requests for job 1 when killed")
            check(t0 < run_at <= time.time_ns() + hour10,
                  "run-at %d is within the backoff after the failure" % run_at)
            for r in parse_jsonl(run.out):
                check(r["id"] != 1, "the killed run wrote job 1: %r" % r)
            return run_at

        killed_while_waiting(1)
        # The backoff has passed meanwhile: the resumed run tries at once
        # (a fresh backoff of up to 10 hours would outlast the timeout).
        _set_run_at(state, 1, time.time_ns() - 10**9)
        killed_while_waiting(2)
        # Its run-at still ahead: the attempt waits for it, not longer.
        run_at = time.time_ns() + 2 * 10**9
        _set_run_at(state, 1, run_at)
        bg = Background(args)
        wait_until(lambda: flaky() >= 3 or bg.proc.poll() is not None, 60 * h.SLOW,
                   "the third attempt of job 1")
        check(time.time_ns() >= run_at, "the third attempt came before its run-at")
        run = bg.finish(60)
        eq(run.rc, 0, "the last resume (%r)" % run)
        out = parse_jsonl(run.out)
        eq([(r["id"], r["ok"], r["attempts"]) for r in out], [(1, True, 3)],
           "the resumed run's output: job 1 at its third attempt")
        eq(flaky(), 3, "requests for job 1 over the three runs")
        res = parse_jsonl(results(state).out)
        byid = check_ids(res, 2, "wpool results --state")
        eq((byid[1]["ok"], byid[1]["status"], byid[1]["attempts"]), (True, 200, 3),
           "job 1 in wpool results")
        eq((byid[2]["ok"], byid[2]["attempts"]), (True, 1), "job 2 in wpool results")
        eq(srv.stats()["paths"].get("/delay/0/x"), 1, "requests for job 2, done in the first run")


# ---- PostgreSQL -------------------------------------------------------------

class Worker:
    """`wpool work` in the background; stderr to a file."""

    def __init__(self, args):
        self.args = ["work"] + [str(a) for a in args]
        self._err = tempfile.TemporaryFile()
        self.proc = h.track(subprocess.Popen([h.WPOOL] + self.args, stdin=subprocess.DEVNULL,
                                             stdout=subprocess.DEVNULL, stderr=self._err,
                                             start_new_session=True))
        self.pid = self.proc.pid

    def err(self):
        self._err.seek(0)
        return self._err.read()

    def kill(self):
        h._kill_group(self.proc)

    def finish(self, timeout):
        try:
            self.proc.wait(timeout * h.SLOW)
        except subprocess.TimeoutExpired:
            self.kill()
            self.proc.wait()
            fail("wpool %s did not exit within %d s: %s" % (
                " ".join(self.args), timeout * h.SLOW, self.err()[-2000:].decode("utf-8", "replace")))
        e = self.err()
        h.check_no_sanitizer_report(e)
        self._err.close()
        return self.proc.returncode, e


def _pg_queue(pg, srv, paths, d, queue="default"):
    """migrate + enqueue the URLs of paths; returns the URLs (ID order)."""
    r = wpool(["migrate", "--db", pg.url])
    eq(r.rc, 0, "migrate (%r)" % r)
    urls = [srv.url(p) for p in paths]
    r = wpool(["enqueue", "--db", pg.url, "--queue", queue, write_file(urls, dir=d)])
    eq(r.rc, 0, "enqueue (%r)" % r)
    eq(r.out, ("enqueued %d jobs into queue '%s'\n" % (len(urls), queue)).encode(), "enqueue says how many")
    return urls


def _states(pg):
    return {int(i): (int(st), int(a)) for i, st, a in pg.sql("SELECT id, state, attempts FROM wpool_jobs")}


def test_pg_migrate_enqueue_work_results_status():
    with PgServer() as pg, Server() as srv, _tmpdir() as d:
        inp = write_file([srv.url("/delay/0/x")], dir=d)
        for cmd in (["enqueue", "--db", pg.url, inp], ["status", "--db", pg.url],
                    ["results", "--db", pg.url], ["work", "--db", pg.url]):
            r = wpool(cmd)
            eq(r.rc, 2, "%s before migrate (%r)" % (cmd[0], r))
            check(b"run 'wpool migrate" in r.err, "%s says what to run: %r" % (cmd[0], r.err))
        r = wpool(["migrate", "--db", pg.url])
        eq((r.rc, r.out), (0, b"schema version 0 -> 1\n"), "first migrate (%r)" % r)
        r = wpool(["migrate", "--db", pg.url])
        eq((r.rc, r.out), (0, b"schema version 1: up to date\n"), "migrate again: idempotent")
        paths = ["/delay/%d/m%d" % (i % 7, i) for i in range(1, 151)]
        urls = [srv.url(p) for p in paths] + ["not a url"]
        r = wpool(["enqueue", "--db", pg.url, "--batch", "40", write_file(urls, dir=d)])
        eq(r.out, b"enqueued 151 jobs into queue 'default'\n", "enqueue (%r)" % r)
        env = dict(os.environ, WPOOL_DATABASE_URL=pg.url)  # the URL from the environment
        r = wpool(["work", "-w", 8, "--exit-when-empty"], env=env, timeout=120)
        eq(r.rc, 0, "work (%r)" % r)
        res = parse_jsonl(results_db(pg.url, "jsonl").out)
        for x in res:
            check_jsonl_record(x)
        byid = check_ids(res, 151, "wpool results --db")
        eq([x["id"] for x in res], sorted(byid), "results in ID order")
        for i, u in enumerate(urls, 1):
            eq(byid[i]["url"], u, "url of job %d" % i)
            eq(byid[i]["ok"], i <= 150, "ok of job %d" % i)
        check("not an http(s) URL" in byid[151]["error"], "the bad line's error: %r" % byid[151])
        counts = srv.stats()["paths"]
        for p in paths:
            eq(counts.get(p), 1, "requests for %s" % p)
        rows = parse_csv(results_db(pg.url, "csv").out)[1]
        eq(len(rows), 151, "csv rows")
        # Neither --db nor --state: libpq's PG* variables, as the other commands.
        env = {k: v for k, v in os.environ.items() if k != "WPOOL_DATABASE_URL"}
        env.update(PGHOST="127.0.0.1", PGPORT=str(pg.port), PGUSER="postgres", PGDATABASE="postgres")
        r = wpool(["results", "--format", "csv"], env=env)
        eq((r.rc, r.out), (0, results_db(pg.url, "csv").out), "results from PG* (%r)" % r)
        r = wpool(["results", "--state", os.path.join(d, "s.db"), "--db", pg.url])
        eq(r.rc, 2, "results with --state and --db (%r)" % r)
        check(b"not both" in r.err, "results says why: %r" % r.err)
        # status: by state, and never the password.
        pw_url = "postgresql://postgres:Sekr1t-pw@127.0.0.1:%d/postgres" % pg.port
        r = wpool(["status", "--db", pw_url])
        eq(r.rc, 0, "status (%r)" % r)
        out = r.out.decode()
        check("queue default: 0 available, 0 waiting for a retry, 0 running, 150 completed, 1 failed" in out,
              "status counts: %r" % out)
        check("workers alive:" in out and "jobs/s over the last minute" in out, "status: %r" % out)
        bad = "postgresql://postgres:Sekr1t-pw@127.0.0.1:%d/postgres" % _free_port()
        for cmd in (["status", "--db", bad], ["results", "--db", bad], ["migrate", "--db", bad],
                    ["work", "--db", bad], ["enqueue", "--db", bad, inp]):
            r = wpool(cmd)
            eq(r.rc, 2, "%s on a dead port (%r)" % (cmd[0], r))
            check(b"Sekr1t" not in r.err + r.out, "%s prints the password: %r" % (cmd[0], r.err))
            check(b"PostgreSQL" in r.err, "%s says what failed: %r" % (cmd[0], r.err))


def results_db(url, fmt):
    r = wpool(["results", "--db", url, "--format", fmt])
    eq(r.rc, 0, "wpool results --db (%r)" % r)
    return r


PGQUEUE = os.path.abspath(os.environ.get("WPOOL_PGQUEUE")
                          or os.path.join(os.path.dirname(h.WPOOL), "tests", "wpool-pgqueue"))


def pgqueue(args):
    """Runs wpool-pgqueue (the queue's calls one at a time); returns stdout."""
    args = [str(a) for a in args]
    r = subprocess.run([PGQUEUE] + args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60 * h.SLOW)
    h.check_no_sanitizer_report(r.stderr)
    eq(r.returncode, 0, "wpool-pgqueue %s: %s" % (" ".join(args[1:]), r.stderr.decode("utf-8", "replace")))
    return r.stdout.decode()


def test_pg_a_stale_result_cannot_overwrite_a_newer_claim_of_the_same_worker():
    """The claim's attempt number fences the finish: worker W claims job 1,
    its lease expires and is taken back, W claims it again; the result of
    W's first claim arrives late and must not be recorded, the second's is."""
    with PgServer() as pg, _tmpdir() as d:
        eq(wpool(["migrate", "--db", pg.url]).rc, 0, "migrate")
        r = wpool(["enqueue", "--db", pg.url, write_file(["http://127.0.0.1:9/stale"], dir=d)])
        eq(r.rc, 0, "enqueue (%r)" % r)
        eq(pgqueue([pg.url, "claim", "default", "W", 10]), "1 1\n", "first claim")
        pg.sql("UPDATE wpool_jobs SET lease_until = now() - interval '1 second'")
        eq(pgqueue([pg.url, "heartbeat", "default", "other"]), "1\n", "the expired lease taken back")
        eq(_states(pg), {1: (0, 1)}, "available again, the lost claim counted")
        eq(pgqueue([pg.url, "claim", "default", "W", 10]), "1 2\n", "the same worker claims it again")

        def row():
            return pg.sql("SELECT state, attempts, coalesce(ok::text, 'null'), worker FROM wpool_jobs")

        pgqueue([pg.url, "finish", "W", 1, 1])
        eq(row(), [["1", "2", "null", "W"]], "the stale result (claim 1) is not recorded")
        pgqueue([pg.url, "finish", "W", 1, 2])
        eq(row(), [["2", "2", "true", ""]], "the result of the claim that holds the job is recorded")


def test_pg_three_workers_one_killed_minus_9():
    """One of three workers is killed with -9 mid-run: every job ends
    completed, and only jobs the killed worker held ran twice."""
    n = 120
    lease = 2 * h.SLOW
    with PgServer() as pg, Server() as srv, _tmpdir() as d:
        rng = random.Random()
        paths = ["/delay/%d/k%d" % (rng.randrange(100, 300), i) for i in range(1, n + 1)]
        _pg_queue(pg, srv, paths, d)
        args = ["--db", pg.url, "-w", 4, "--batch", 4, "--lease", "%ds" % lease,
                "--renew", "300ms", "--exit-when-empty"]
        ws = [Worker(args) for _ in range(3)]
        victim = ws[0]

        def victim_busy():
            check(victim.proc.poll() is None, "the victim exited before the kill: %r" % victim.err())
            done, held = pg.sql("SELECT count(*) FILTER (WHERE state = 2), count(*) FILTER"
                                " (WHERE state = 1 AND worker LIKE '%%:%d:%%') FROM wpool_jobs"
                                % victim.pid)[0]
            return int(done) >= 10 and int(held) > 0

        wait_until(victim_busy, 60 * h.SLOW, "jobs done, the victim holding jobs")
        victim.kill()
        victim.proc.wait()
        # What it held when it died (its lease cannot have run out yet).
        held = {int(r[0]) for r in pg.sql(
            "SELECT id FROM wpool_jobs WHERE state = 1 AND worker LIKE '%%:%d:%%'" % victim.pid)}
        check(held, "the killed worker held jobs")
        for w in ws[1:]:
            rc, err = w.finish(180)
            eq(rc, 0, "a surviving worker's exit (%r)" % err[-500:])
        st = _states(pg)
        eq(len(st), n, "jobs in the queue")
        bad = {i: s for i, s in st.items() if s[0] != 2}
        eq(bad, {}, "jobs not completed")
        counts = srv.stats()["paths"]
        twice = {i for i, p in enumerate(paths, 1) if counts.get(p, 0) > 1}
        check(twice <= held, "jobs run twice %r are not all among those the killed worker held %r"
              % (sorted(twice - held), sorted(held)))
        check(all(counts.get(p, 0) >= 1 for p in paths), "every job ran")
        note("killed worker held %d jobs; %d ran twice" % (len(held), len(twice)))
        check(not any(st[i][1] > 2 for i in st), "attempts: at most a claim lost and one more")


def test_pg_eight_workers_no_job_runs_in_two_places():
    n = 240
    with PgServer() as pg, Server() as srv, _tmpdir() as d:
        paths = ["/delay/%d/c%d" % (5 + i % 20, i) for i in range(1, n + 1)]
        _pg_queue(pg, srv, paths, d)
        ws = [Worker(["--db", pg.url, "-w", 4, "--batch", 4, "--exit-when-empty"]) for _ in range(8)]
        for w in ws:
            rc, err = w.finish(180)
            eq(rc, 0, "worker exit (%r)" % err[-500:])
        stats = srv.stats()
        eq(stats["path_max_concurrent"], {}, "paths requested concurrently")
        for p in paths:
            eq(stats["paths"].get(p), 1, "requests for %s" % p)
        eq(set(s for s, _ in _states(pg).values()), {2}, "every job completed")


def test_pg_graceful_stop_releases_unstarted_claims():
    n = 20
    with PgServer() as pg, Server() as srv, _tmpdir() as d:
        paths = ["/delay/1500/g%d" % i for i in range(1, n + 1)]
        _pg_queue(pg, srv, paths, d)
        # First SIGINT: the 2 running finish, the 18 claimed are released.
        w = Worker(["--db", pg.url, "-w", 2, "--batch", 20])
        wait_until(lambda: int(pg.sql("SELECT count(*) FROM wpool_jobs WHERE state = 1")[0][0]) == n
                   and srv.stats()["in_flight"] == 2, 30 * h.SLOW, "20 claimed, 2 running")
        w.proc.send_signal(signal.SIGINT)
        rc, err = w.finish(60)
        eq(rc, 130, "exit after SIGINT (%r)" % err[-500:])
        st = _states(pg)
        done = [i for i, s in st.items() if s[0] == 2]
        # The 2 seen running, and on a loaded machine perhaps the next 2:
        # the signal may arrive after the first 1.5 s jobs ended and the
        # workers started the next. Every job that started completed.
        started = srv.stats()["total_requests"]
        check(2 <= started <= 4, "requests: %d" % started)
        eq(len(done), started, "the running jobs completed")
        eq(sorted(s for i, s in st.items() if s[0] != 2), [(0, 0)] * (n - started),
           "the unstarted claims are available again, their claim not counted")
        eq(pg.sql("SELECT count(*) FROM wpool_workers")[0][0], "0", "the worker unregistered")
        # Second SIGINT: running jobs are canceled and released too.
        w = Worker(["--db", pg.url, "-w", 2, "--batch", 20])
        wait_until(lambda: srv.stats()["in_flight"] == 2, 30 * h.SLOW, "2 running again")
        w.proc.send_signal(signal.SIGINT)
        wait_until(lambda: int(pg.sql("SELECT count(*) FROM wpool_jobs WHERE state = 1")[0][0]) == 2,
                   30 * h.SLOW, "the unstarted ones released after the first SIGINT")
        w.proc.send_signal(signal.SIGINT)
        rc, err = w.finish(30)
        eq(rc, 130, "exit after two SIGINTs (%r)" % err[-500:])
        st = _states(pg)
        # (Here too a job may have ended before the first signal.)
        done2 = len([i for i, s in st.items() if s[0] == 2])
        check(started <= done2 <= started + 2, "completed: %d, then %d" % (started, done2))
        eq(sorted(s for i, s in st.items() if s[0] != 2), [(0, 0)] * (n - done2),
           "canceled and unstarted jobs all available again")


def test_pg_retries_survive_a_restart_of_every_worker():
    n = 12
    with PgServer() as pg, Server() as srv, _tmpdir() as d:
        paths = ["/flaky/r%d/2" % i for i in range(1, n + 1)]  # 503, 503, then 200
        _pg_queue(pg, srv, paths, d)
        args = ["--db", pg.url, "-w", 4, "-r", 3, "--backoff", "3s,3s"]
        w = Worker(args)
        # Every job failed at least once; most wait for a retry in the queue.
        wait_until(lambda: pg.sql("SELECT count(*) FILTER (WHERE attempts = 0) = 0 AND count(*)"
                                  " FILTER (WHERE state = 0 AND attempts >= 1) >= %d"
                                  " FROM wpool_jobs" % (n // 2))[0] == ["t"]
                   or w.proc.poll() is not None, 30 * h.SLOW, "every job tried, most waiting for a retry")
        w.proc.send_signal(signal.SIGINT)
        rc, err = w.finish(30)
        eq(rc, 130, "first worker stopped (%r)" % err[-500:])
        st = _states(pg)
        # Waiting for a retry in the queue (a job whose jittered backoff
        # was short may have made its second attempt before the stop).
        waiting = [s for s in st.values() if s[0] == 0]
        check(len(waiting) >= n // 2 and all(a in (1, 2) for _, a in waiting)
              and all(s in ((0, 1), (0, 2), (2, 3)) for s in st.values()),
              "after the stop: jobs waiting for a retry with their attempts: %r" % sorted(st.values()))
        w = Worker(args + ["--exit-when-empty"])
        rc, err = w.finish(120)
        eq(rc, 0, "the second worker (%r)" % err[-500:])
        eq(sorted(st for st in _states(pg).values()), [(2, 3)] * n,
           "completed at the third attempt: the attempt count survived the restart")
        eq(srv.stats()["flaky"], {"r%d" % i: 3 for i in range(1, n + 1)}, "requests per job")
        res = check_ids(parse_jsonl(results_db(pg.url, "jsonl").out), n)
        eq({r["attempts"] for r in res.values()}, {3}, "attempts in the results")


def test_pg_work_honours_retry_after():
    """A 503 with Retry-After: the retry's run-at in the queue is the
    server's delay (capped by --retry-after-max), not the backoff, as in
    wpool fetch. The backoff is 10 hours, so a worker that ignored the
    header would not finish; the server's gap between the two requests of
    each job is at least the delay asked for."""
    with PgServer() as pg, Server() as srv, _tmpdir() as d:
        paths = ["/retry-after/2?key=a%d" % i for i in range(1, 5)] + ["/retry-after/3600?key=big"]
        _pg_queue(pg, srv, paths, d)
        r = wpool(["work", "--db", pg.url, "-w", 4, "-r", 2, "--backoff", "10h,10h",
                   "--retry-after-max", "3s", "--exit-when-empty"], timeout=120)
        eq(r.rc, 0, "work (%r)" % r)
        ra = srv.stats()["retry_after"]
        for i in range(1, 5):
            eq(ra["a%d" % i]["requests"], 2, "requests of a%d" % i)
            check(ra["a%d" % i]["gaps_ms"][0] >= 1990,
                  "a%d came back before its Retry-After of 2 s: %r" % (i, ra["a%d" % i]))
        eq(ra["big"]["requests"], 2, "requests of big")
        check(ra["big"]["gaps_ms"][0] >= 2990,
              "big came back before --retry-after-max (3 s): %r" % ra["big"])
        res = check_ids(parse_jsonl(results_db(pg.url, "jsonl").out), len(paths))
        eq({(x["ok"], x["attempts"]) for x in res.values()}, {(True, 2)},
           "every job ok at its second attempt")


def test_pg_work_metrics_and_json_logs():
    """wpool work --metrics --log-format json --otlp-endpoint: a scrape
    passes promtool, the pool's and the queue's counters hold this worker's
    numbers (a 404 is final, a 503 goes back for a retry, the rest are ok),
    every log line is JSON with the worker's start, its give-ups and its
    summary, and the collector got one trace per claim (a job span and its
    attempt's span)."""
    import test_obs as tobs
    with PgServer() as pg, Server() as srv, _tmpdir() as d:
        paths = ["/delay/50/o%d" % i for i in range(1, 11)] + ["/status/404", "/flaky/f/1"]
        _pg_queue(pg, srv, paths, d)
        log = os.path.join(d, "log.jsonl")
        w = Worker(["--db", pg.url, "-w", 4, "-r", 1, "--backoff", "100ms,200ms",
                    "--metrics", "0", "--metrics-linger", "120s", "--log-format", "json",
                    "--log-file", log, "--otlp-endpoint", srv.url("/v1/traces"),
                    "--exit-when-empty"])
        try:
            port = tobs.metrics_port(log, 30 * h.SLOW)
            # The queue is done once the summary is logged; the worker then
            # lingers, serving the final values.
            summary = tobs.wait_record(log, "run summary", 60 * h.SLOW)
            text = tobs.scrape(port)
        finally:
            w.proc.send_signal(signal.SIGINT)
            rc, err = w.finish(30)
        eq(rc, 0, "work after its linger (%r)" % err[-500:])
        tobs.promtool_check(text)
        m = tobs.parse_exposition(text)

        def val(name, **labels):
            v = tobs.metric(m, name, **labels)
            check(v is not None, "%s%r missing from the scrape:\n%s" % (name, labels, text[:3000]))
            return v
        # The pool runs each claim as one job: 13 claims (the flaky job twice).
        eq(val("wpool_jobs_completed_total", outcome="ok"), 11.0, "pool: ok")
        eq(val("wpool_jobs_completed_total", outcome="failed"), 2.0, "pool: failed (404, first 503)")
        eq(val("wpool_http_responses_total", code="503"), 1.0, "503 responses")
        eq(val("wpool_queue_ends_total", outcome="ok"), 11.0, "queue: ok")
        eq(val("wpool_queue_ends_total", outcome="failed"), 1.0, "queue: failed (the 404)")
        eq(val("wpool_queue_ends_total", outcome="retry"), 1.0, "queue: retry (the 503)")
        eq(val("wpool_queue_ends_total", outcome="released"), 0.0, "queue: released")
        check(val("process_start_time_seconds") > 0, "process metrics")
        eq((summary["claimed"], summary["ok"], summary["failed"], summary["retry"]), (13, 11, 1, 1),
           "the summary record: %r" % summary)
        recs = tobs.read_json_log(log)
        start = [r for r in recs if r["msg"] == "worker start"]
        eq(len(start), 1, "one worker start record")
        eq(start[0]["queue"], "default", "worker start: queue")
        gave_up = [r for r in recs if r["msg"] == "giving up"]
        # (In any order: the two jobs run at once.)
        eq(sorted((r["url"], r["status"]) for r in gave_up),
           sorted([(srv.url("/status/404"), 404), (srv.url("/flaky/f/1"), 503)]),
           "give-up records, one per failed claim")
        eq(sorted(_states(pg).values()), [(2, 1)] * 10 + [(2, 2), (3, 1)],
           "the queue: 10 ok at once, the 503 ok at its second claim, the 404 failed")
        spans, _ = tobs.otlp_spans(srv)
        traces = {}
        for sp in spans:
            traces.setdefault(sp["traceId"], []).append(sp)
        eq(len(traces), 13, "one trace per claim")
        jobs = []
        for sps in traces.values():
            root = [x for x in sps if "parentSpanId" not in x]
            eq(len(root), 1, "one job span a trace: %r" % sps)
            eq([x["parentSpanId"] for x in sps if x is not root[0]], [root[0]["spanId"]],
               "one attempt span under the job span")
            jobs.append(int(root[0]["attrs"]["wpool.job.id"]))
        eq(sorted(jobs), sorted(list(range(1, 13)) + [12]), "job IDs of the traces (the 503 twice)")
        eq(val("wpool_trace_spans_exported_total"), 26.0, "spans exported")


def test_work_refuses_options_that_mean_nothing_there():
    """Options of fetch that have no use in work are usage errors (exit 2)
    that say why, before any connection (the port is dead)."""
    dead = "postgresql://postgres@127.0.0.1:%d/postgres" % _free_port()
    for opt, why in ((["-o", "x.txt"], b"wpool results --db"), (["-f", "jsonl"], b"wpool results --db"),
                     (["--ordered"], b"wpool results --db"), (["--max-failures", "3"], b"SIGINT"),
                     (["-q", "10"], b"--batch"), (["--progress"], b"wpool status"),
                     (["--no-progress"], b"progress bar"), (["--job-timeout", "5s"], b"--timeout")):
        r = wpool(["work", "--db", dead] + opt)
        eq(r.rc, 2, "work %s (%r)" % (" ".join(opt), r))
        check(b"not with work" in r.err and why in r.err and b"PostgreSQL" not in r.err,
              "work %s says why, before connecting: %r" % (" ".join(opt), r.err))
    # Bad observability values are usage errors too; good ones get as far
    # as the database.
    r = wpool(["work", "--db", dead, "--log-format", "yaml"])
    eq(r.rc, 2, "--log-format yaml (%r)" % r)
    check(b"--log-format" in r.err, "says which: %r" % r.err)
    r = wpool(["work", "--db", dead, "--metrics", "0", "--log-level", "debug"])
    eq(r.rc, 2, "a dead database (%r)" % r)
    check(b"PostgreSQL" in r.err, "the database's error: %r" % r.err)


def test_pg_enqueue_a_million_urls_with_flat_memory():
    """Plain build only: under ASan/TSan the resident size measures the
    sanitizer's shadow memory and allocator, not ours, and a million rows
    take minutes there; the code path is the same one the other PostgreSQL
    tests run in every build."""
    if h.FLAVOUR != "plain":
        note("skipped under %s (see the docstring)" % h.FLAVOUR)
        return
    with PgServer() as pg, _tmpdir() as d:
        eq(wpool(["migrate", "--db", pg.url]).rc, 0, "migrate")

        def maxrss_kb(n):
            path = os.path.join(d, "u%d.txt" % n)
            with open(path, "w") as f:
                for i in range(n):
                    f.write("http://127.0.0.1:9/some/longer/path/to/make/lines/realistic/%d\n" % i)
            pid = os.fork()
            if pid == 0:
                try:
                    fd = os.open(os.devnull, os.O_WRONLY)
                    os.dup2(fd, 1)
                    os.execv(h.WPOOL, [h.WPOOL, "enqueue", "--db", pg.url, "--queue", "q%d" % n, path])
                finally:
                    os._exit(127)
            _, status, ru = os.wait4(pid, 0)
            eq(os.waitstatus_to_exitcode(status), 0, "enqueue of %d URLs" % n)
            eq(pg.sql("SELECT count(*) FROM wpool_jobs WHERE queue = 'q%d'" % n)[0][0], str(n),
               "rows enqueued")
            os.unlink(path)
            return ru.ru_maxrss

        small = maxrss_kb(10000)
        big = maxrss_kb(1000000)
        note("enqueue max RSS: %d KiB for 10,000 URLs, %d KiB for 1,000,000" % (small, big))
        check(big <= small + 2048, "memory grew with the input: %d KiB vs %d KiB" % (big, small))


def test_work_renew_above_a_third_of_the_lease_is_a_usage_error():
    """Checked before connecting: no database needed (the port is dead)."""
    dead = "postgresql://postgres@127.0.0.1:%d/postgres" % _free_port()
    for lease, renew in (("3s", "1001ms"), ("30s", "11s"), (None, "10001ms")):
        args = ["work", "--db", dead, "--renew", renew] + (["--lease", lease] if lease else [])
        r = wpool(args)
        eq(r.rc, 2, "%s (%r)" % (" ".join(args[3:]), r))
        check(b"--renew must be at most a third of --lease" in r.err, "says why: %r" % r.err)
    # A third exactly (and the defaults) pass the check: the next error is the database's.
    for extra in (["--lease", "3s", "--renew", "1s"], ["--lease", "3s"], []):
        r = wpool(["work", "--db", dead] + extra)
        eq(r.rc, 2, "%r on a dead port (%r)" % (extra, r))
        check(b"third" not in r.err and b"PostgreSQL" in r.err, "%r: the database's error: %r" % (extra, r.err))


if __name__ == "__main__":
    sys.exit(h.main(globals(), sys.argv))
