#!/usr/bin/env python3
"""Running out of resources, against the real binary (issue 7):

  - file descriptors: `--workers 10000` under a low RLIMIT_NOFILE raises the
    soft limit to the hard one (saying so) or is refused before anything
    starts, for `wpool fetch` and `wpool work`; and no descriptor is kept
    per job (a long run of every kind of outcome under a limit a leak of one
    descriptor per job would exhaust in a few dozen jobs);
  - the state file's disk filling up mid-run (`wpool fetch --state` on a
    small tmpfs): a clear error naming the file, nothing committed lost,
    and a rerun after space is freed resumes (each job once);
  - the PostgreSQL server stopped mid-run (`wpool work`): each worker ends
    within a bound with a clear error, the other commands too; after a
    restart every job completes exactly once.

Each top-level `def test_<name>(` is one CTest test. Helpers: harness.py;
the PostgreSQL server of test_store.py (PgServer).
"""
import errno
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import Server, check, eq, fail, note, write_file  # noqa: E402
import test_store as ts  # noqa: E402  (PgServer, Worker: the PostgreSQL fixture)


def _limit(soft, hard):
    return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _run(cmd, stdin=b"", limit=None, timeout=60, env=None):
    """Runs `wpool CMD...` with an optional (soft, hard) RLIMIT_NOFILE."""
    p = subprocess.run([h.WPOOL] + [str(a) for a in cmd], input=stdin,
                       capture_output=True, timeout=timeout * h.SLOW, env=env,
                       preexec_fn=_limit(*limit) if limit else None)
    h.check_no_sanitizer_report(p.stderr)
    return p


# ---- file descriptors -------------------------------------------------------

def test_nofile_workers_10000_with_a_low_limit():
    """--workers 10000 needs about 10,050 descriptors. Soft 256, hard 1024:
    a clear message before anything starts, exit 2, nothing fetched (fetch)
    and no connection tried (work). Soft 256 and a hard limit above the
    need: the soft limit is raised to the hard one, wpool says so, and the
    run is fine."""
    hard_now = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    # Root may raise the hard limit (up to fs.nr_open); others keep theirs.
    big = 20000 if os.geteuid() == 0 else hard_now
    with Server() as s:
        urls = h.lines_bytes([s.url("/ok?i=%d" % i) for i in range(20)])
        p = _run(["fetch", "-w", 10000, "-f", "jsonl"], urls, (256, 1024))
        eq((p.returncode, p.stdout), (2, b""), "hard limit too low (%r)" % p.stderr)
        check(b"wpool fetch: --workers 10000 needs about" in p.stderr
              and b"but the limit is 256 (hard limit 1024)" in p.stderr
              and b"ulimit -n" in p.stderr, "message: %r" % p.stderr)
        eq(s.stats()["total_requests"], 0, "nothing fetched")
        # work: refused before it connects (this port has no server: a
        # connection attempt would say 'PostgreSQL').
        p = _run(["work", "--db", "postgresql://u:pw@127.0.0.1:9/x", "-w", 10000],
                 b"", (256, 1024))
        eq(p.returncode, 2, "work, hard limit too low (%r)" % p.stderr)
        check(b"wpool work: --workers 10000 needs about" in p.stderr
              and b"PostgreSQL" not in p.stderr, "work message: %r" % p.stderr)
        if big < 10100:
            note("hard RLIMIT_NOFILE %d and not root: the raising half is skipped" % big)
            return
        p = _run(["fetch", "-w", 10000, "-f", "jsonl"], urls, (256, big), timeout=120)
        eq(p.returncode, 0, "raised (%r)" % p.stderr)
        check(b"raised the soft limit from 256 to %d" % big in p.stderr,
              "message: %r" % p.stderr)
        res = h.parse_jsonl(p.stdout)
        h.check_ids(res, 20)
        check(all(r["ok"] for r in res), "every job ok: %r" % res)
        # work raises it too, then goes on to connect (and fails: no server).
        p = _run(["work", "--db", "postgresql://u:pw@127.0.0.1:9/x", "-w", 10000],
                 b"", (256, big))
        eq(p.returncode, 2, "work, raised (%r)" % p.stderr)
        check(b"wpool work: --workers 10000 needs about" in p.stderr
              and b"raised the soft limit from 256 to %d" % big in p.stderr
              and b"PostgreSQL" in p.stderr, "work message: %r" % p.stderr)
        # Enough already: not a word about it.
        p = _run(["fetch", "-w", 16, "-f", "jsonl"], urls, (256, 256))
        eq(p.returncode, 0, "-w 16 under 256 (%r)" % p.stderr)
        check(b"file descriptors" not in p.stderr, "no message: %r" % p.stderr)


def test_nofile_no_descriptor_kept_per_job():
    """3,000 jobs of every outcome (ok, 404, 503 retried, redirects, a
    refused port, a reset mid-body, a timeout, bad lines) under a limit of
    64 descriptors, soft = hard, with -w 4 --loops 1 (about 41 needed): the
    run uses ~20, so one descriptor kept per job, or per failed job, would
    exhaust the limit within 50 jobs and turn the rest into errors."""
    import socket
    with Server() as s:
        ports = s._get("/hostile").decode()
        hport = int(ports.split()[0].split("=")[1])
        with socket.socket() as so:  # a port nobody listens on
            so.bind(("127.0.0.1", 0))
            dead = so.getsockname()[1]
        kinds = [
            (s.url("/ok?i=%d"), True, None),
            (s.url("/status/404?i=%d"), False, "404"),
            (s.url("/status/503?i=%d"), False, "503"),
            (s.url("/redirect/2?i=%d"), True, None),
            ("http://127.0.0.1:%d/refused?i=%%d" % dead, False, "onnect"),
            ("http://127.0.0.1:%d/reset-mid-body#%%d" % hport, False, None),
            ("not a url %d", False, "^not an http"),
        ]
        lines, want = [], []
        for i in range(3000):
            k = kinds[i % len(kinds)]
            lines.append(k[0] % i)
            want.append(k)
        # One timeout a few times in the run.
        for i in (100, 1500, 2900):
            lines[i] = s.url("/delay/5000/t%d" % i)
            want[i] = (None, False, "imeout|imed out")
        p = _run(["fetch", "-w", 4, "--loops", 1, "-r", 1, "--backoff", "1ms,2ms",
                  "-t", "500ms", "--max-body", "64k", "-f", "jsonl"],
                 h.lines_bytes(lines), (64, 64), timeout=180)
        check(b"file descriptors" not in p.stderr, "64 is enough: %r" % p.stderr[-500:])
        res = h.check_ids(h.parse_jsonl(p.stdout), len(lines), "results")
        import re
        for i, (_, ok, why) in enumerate(want, 1):
            r = res[i]
            eq(r["ok"], ok, "job %d ok (%r)" % (i, r))
            if why:
                check(re.search(why, r["error"] or ""), "job %d error (%r)" % (i, r))
            check("Couldn't connect" not in (r["error"] or "") or ":%d/" % dead in r["url"],
                  "job %d: a descriptor ran out? %r" % (i, r))
        eq(p.returncode, 1, "some jobs failed (%r)" % p.stderr[-500:])


# ---- the state file's disk fills up -----------------------------------------

STATE_JOBS = 600


def _fill(path):
    """Writes `path` until the filesystem has not one byte left."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for chunk in (1 << 20, 1 << 16, 1 << 12, 1 << 9, 1):
            buf = b"\0" * chunk
            while True:
                try:
                    os.write(fd, buf)
                except OSError as e:
                    check(e.errno in (errno.ENOSPC, errno.EFBIG), "filling: %r" % e)
                    break
    finally:
        os.close(fd)


def _state_rows(path):
    """id -> (ok, status) of the final results the state holds, read with
    Python's own sqlite3."""
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=30)
    try:
        return {i: (bool(ok), st) for i, ok, st in
                db.execute("SELECT id, ok, status FROM wpool_jobs WHERE done = 1")}
    finally:
        db.close()


def _done_count(path):
    """Final results in the state so far (0 before it exists)."""
    try:
        db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=30)
        try:
            return db.execute("SELECT count(*) FROM wpool_jobs WHERE done = 1").fetchone()[0]
        finally:
            db.close()
    except sqlite3.OperationalError:
        return 0  # not created yet


def _stop_then_resume(s, d, what, make_it_fail, expect):
    """A --state run in d; once 40 results are committed,
    make_it_fail(pid, state) makes every further write of the state fail
    (and returns what undoes it, or None). wpool must stop, exit 2,
    say which file and `expect` (a regex); nothing it wrote may be missing
    from the state; the same command run again (without the fault) resumes:
    each job once in `wpool results`, and no job whose result the first
    run wrote is fetched again."""
    import re
    s.reset_stats()
    paths = ["/delay/15/%s%d" % (what, i) for i in range(1, STATE_JOBS + 1)]
    inp = write_file([s.url(p) for p in paths])
    state = os.path.join(d, "run.db")
    args = ["-w", 4, "-f", "jsonl", "--state", state, inp]
    try:
        b = h.Background(args)
        # The state, not the output (buffered: 64 KB at a time), tells
        # when 40 results are committed.
        h.wait_until(lambda: _done_count(state) >= 40 or b.proc.poll() is not None,
                     60 * h.SLOW, "%s: 40 results in the state" % what)
        heal = make_it_fail(b.pid, state)
        r1 = b.finish(60)
        eq(r1.rc, 2, "%s: exit status (%r)" % (what, r1))
        msg = r1.err.decode("utf-8", "replace")
        check(("%s: writing the state: " % state) in msg and re.search(expect, msg)
              and "run the same command again to resume" in msg,
              "%s: the error names the file and says why: %r" % (what, msg[-800:]))
        out1 = h.by_id(h.parse_jsonl(r1.out))
        check(40 <= len(out1) < STATE_JOBS, "%s: stopped mid-run (%d results)" % (what, len(out1)))
        summ = h.summary(r1.err)
        eq(summ["ok"] + summ["failed"], len(out1), "%s: the summary counts what was written" % what)
        rows = _state_rows(state)
        for i, r in out1.items():
            check(i in rows, "%s: job %d was written but is not in the state" % (what, i))
            eq(rows[i], (r["ok"], r["status"]), "%s: job %d in the state" % (what, i))
        # The same command again, without the fault: it resumes.
        if heal:
            heal()
        r2 = h.run_wpool(args, timeout=120)
        eq(r2.rc, 0, "%s: the rerun (%r)" % (what, r2))
        check(b"resumed from %s: %d jobs already done there were skipped"
              % (state.encode(), len(rows)) in r2.err, "%s: resumed (%r)" % (what, r2.err[-500:]))
        out2 = h.by_id(h.parse_jsonl(r2.out))
        eq(sorted(out2), sorted(set(range(1, STATE_JOBS + 1)) - set(rows)),
           "%s: the rerun ran exactly the jobs the state did not hold" % what)
        res = h.parse_jsonl(wpool_results(state))
        h.check_ids(res, STATE_JOBS, "%s: wpool results --state" % what)
        eq([x["id"] for x in res], list(range(1, STATE_JOBS + 1)), "%s: ID order" % what)
        check(all(x["ok"] for x in res), "%s: every job ok" % what)
        counts = s.stats()["paths"]
        for i in rows:
            eq(counts.get(paths[i - 1]), 1, "%s: requests for job %d, recorded by the first run"
               % (what, i))
        note("%s: the first run wrote %d results (state: %d), the rerun %d"
             % (what, len(out1), len(rows), len(out2)))
    finally:
        os.unlink(inp)


def wpool_results(state):
    p = _run(["results", "--state", state, "-f", "jsonl"])
    eq(p.returncode, 0, "wpool results (%r)" % p.stderr)
    return p.stdout


def test_state_disk_full_mid_run_then_resume():
    """Two ways the state's writes fail mid-run, each then resumed:
    (1) the disk is full: the state on a 4 MB tmpfs that the test fills to
    the last byte (root only: mount; skipped with a note otherwise, or where
    mount is not permitted); also a new state on the full disk is refused
    clearly; (2) a file size limit (RLIMIT_FSIZE set on the running wpool
    with prlimit, at the state's current size: writes past it fail with
    EFBIG; wpool ignores SIGXFSZ), which needs no privilege."""
    with Server() as s:
        # (2) the file size limit.
        with tempfile.TemporaryDirectory(prefix="wpool-fsize-") as d:
            def fsize(pid, state):
                size = max(os.path.getsize(p) for p in (state, state + "-wal")
                           if os.path.exists(p))
                resource.prlimit(pid, resource.RLIMIT_FSIZE, (size, size))
                return None  # the rerun is another process: no limit
            _stop_then_resume(s, d, "fsize", fsize, r"the file size limit, ulimit -f, is \d+ bytes")
        # (1) the disk full.
        d = tempfile.mkdtemp(prefix="wpool-full-")
        try:
            if os.geteuid() != 0:
                note("disk full: skipped (not root: cannot mount a small tmpfs)")
                return
            m = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", d],
                               capture_output=True)
            if m.returncode != 0:
                note("disk full: skipped (mount refused: %s)" % m.stderr.decode().strip())
                return
            try:
                filler = os.path.join(d, "filler")
                def full(pid, state):
                    _fill(filler)
                    return lambda: os.unlink(filler)
                _stop_then_resume(s, d, "full", full, r"database or disk is full")
                # A new state on a full disk: refused, clearly.
                _fill(filler)
                p = _run(["fetch", "--state", os.path.join(d, "new.db")],
                         h.lines_bytes([s.url("/ok")]))
                eq(p.returncode, 2, "a new state on a full disk (%r)" % p.stderr)
                note("a new state on a full disk: %s" % p.stderr.decode().strip())
                check(b"new.db" in p.stderr and b"full" in p.stderr,
                      "says which file and why: %r" % p.stderr)
                eq(p.stdout, b"", "nothing written")
            finally:
                u = subprocess.run(["umount", d], capture_output=True)
                if u.returncode != 0:
                    subprocess.run(["umount", "-l", d])
        finally:
            os.rmdir(d)


# ---- the PostgreSQL server stops mid-run -------------------------------------

def _pg_start_again(pg):
    """Starts PostgreSQL again on the same data folder and port (after a
    stop that left the folder), as PgServer did."""
    pg.proc = subprocess.Popen([
        os.path.join(ts.PG_BIN, "postgres"), "-D", pg.data, "-p", str(pg.port),
        "-k", pg.dir, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
        "-c", "max_connections=200", "-c", "shared_buffers=64MB"],
        stdin=subprocess.DEVNULL, stdout=pg._log, stderr=pg._log,
        start_new_session=True, **pg.user)
    h.wait_until(pg._ready, 60 * h.SLOW, "PostgreSQL to accept connections again")


def test_pg_server_stopped_mid_run_then_restarted():
    """Two workers run a queue; the server is stopped (immediate shutdown,
    as `pg_ctl stop -m immediate`) while they hold claims: each worker ends
    within a bound with a clear error (exit 2, 'PostgreSQL', the password
    never printed), no crash, no hang; enqueue, status, migrate and results
    against the stopped server too. After a restart, a new worker takes
    back the jobs claimed at the stop once their lease ran out, and every
    job ends completed exactly once; a job recorded before the stop was
    never fetched again."""
    n = 100
    lease = 2 * h.SLOW
    with ts.PgServer() as pg, Server() as srv, tempfile.TemporaryDirectory(prefix="wpool-pg-") as d:
        paths = ["/delay/200/p%d" % i for i in range(1, n + 1)]
        ts._pg_queue(pg, srv, paths, d)
        url = "postgresql://postgres:Sekr1t-pw@127.0.0.1:%d/postgres" % pg.port
        args = ["--db", url, "-w", 4, "--batch", 4, "--lease", "%ds" % lease,
                "--renew", "300ms", "--exit-when-empty"]
        ws = [ts.Worker(args) for _ in range(2)]

        def busy():
            for w in ws:
                check(w.proc.poll() is None, "a worker exited before the stop: %r" % w.err())
            done, held = pg.sql("SELECT count(*) FILTER (WHERE state = 2),"
                                " count(*) FILTER (WHERE state = 1) FROM wpool_jobs")[0]
            return int(done) >= 10 and int(held) > 0

        h.wait_until(busy, 60 * h.SLOW, "jobs done and jobs held")
        pg.proc.send_signal(signal.SIGQUIT)  # immediate shutdown
        pg.proc.wait(60 * h.SLOW)
        for w in ws:
            # The transfers in flight end in ~200 ms; the bound is generous.
            rc, err = w.finish(60)
            eq(rc, 2, "a worker's exit after the stop (%r)" % err[-800:])
            check(b"PostgreSQL" in err and b"go back to the queue when their lease ends" in err,
                  "the worker says what failed and what becomes of its jobs: %r" % err[-800:])
            check(b"WARNING:" not in err, "libpq's raw notices on stderr: %r" % err[-800:])
            check(b"Sekr1t" not in err, "the worker prints the password: %r" % err)
            note("worker: %s" % err.decode("utf-8", "replace").strip())
        inp = write_file([srv.url("/ok")], dir=d)
        for cmd in (["enqueue", "--db", url, inp], ["status", "--db", url],
                    ["migrate", "--db", url], ["results", "--db", url]):
            p = _run(cmd, timeout=60)
            eq(p.returncode, 2, "%s against the stopped server (%r)" % (cmd[0], p.stderr))
            check(b"PostgreSQL" in p.stderr and b"Sekr1t" not in p.stderr + p.stdout,
                  "%s: a clear error, no password: %r" % (cmd[0], p.stderr))
            note("%s: %s" % (cmd[0], p.stderr.decode("utf-8", "replace").strip()))
        _pg_start_again(pg)
        st = ts._states(pg)
        done_before = {i for i, (state, _) in st.items() if state == 2}
        held = {i for i, (state, _) in st.items() if state == 1}
        check(held, "jobs were claimed at the stop")
        counts_before = srv.stats()["paths"]
        w = ts.Worker(args)
        rc, err = w.finish(180)
        eq(rc, 0, "the worker after the restart (%r)" % err[-800:])
        st = ts._states(pg)
        eq({i: s for i, s in st.items() if s[0] != 2}, {}, "jobs not completed")
        for i in held:
            check(st[i][1] >= 2, "job %d, held at the stop, was taken back (attempts %r)"
                  % (i, st[i]))
        res = h.parse_jsonl(ts.results_db(url, "jsonl").out)
        byid = h.check_ids(res, n, "wpool results --db")
        check(all(r["ok"] for r in res), "every job ok")
        counts = srv.stats()["paths"]
        for i in done_before:
            eq(counts.get(paths[i - 1]), 1, "requests for job %d, recorded before the stop" % i)
        for i in range(1, n + 1):
            check(counts.get(paths[i - 1], 0) >= 1, "job %d ran" % i)
        note("at the stop: %d done, %d held; %d requests before the restart, %d after"
             % (len(done_before), len(held), sum(counts_before.get(p, 0) for p in paths),
                sum(counts.get(p, 0) for p in paths)))
        del byid


if __name__ == "__main__":
    sys.exit(h.main(globals(), sys.argv))
