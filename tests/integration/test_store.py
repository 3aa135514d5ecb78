#!/usr/bin/env python3
"""Integration tests of the durable stores: `wpool fetch --state` and
`wpool results --state` on SQLite. The real binary against the project's
test server on 127.0.0.1; the state is read back with Python's own sqlite3
module (a real SQLite, not our decoder).

Each top-level `def test_<name>(` is one CTest test. Helpers: harness.py.
"""
import os
import random
import signal
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


if __name__ == "__main__":
    sys.exit(h.main(globals(), sys.argv))
