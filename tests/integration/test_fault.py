#!/usr/bin/env python3
"""Fault injection through the real tool: wpool-faulty is wpool linked so
that the Nth allocation (or thread creation) of the project's own code
fails (tests/fault/failalloc.h). A small fetch run is repeated with N = 1,
2, 3, ... until a run in which the failure was never reached: every
allocation and every thread creation of that run has failed once.

Each round: no crash, no hang, no sanitizer report (leaks included, under
ASan); the exit status is 0, 1 or 2; every job line has at most one result
and, unless the run stopped early with a message on stderr saying why, each
has exactly one. Jobs that fail because of the injected failure say so in
their error.
"""
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import Server, check, eq, fail, note  # noqa: E402

FAULTY = os.path.join(os.path.dirname(h.WPOOL), "tests", "fault", "wpool-faulty")
MAX_ROUNDS = 5000


def fetch_faulty(args, stdin, env_extra, timeout=60):
    env = dict(os.environ)
    env.update(env_extra)
    p = subprocess.Popen([FAULTY, "fetch"] + args, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         start_new_session=True, env=env)
    try:
        out, err = p.communicate(stdin, timeout=timeout * h.SLOW)
    except subprocess.TimeoutExpired:
        h._kill_group(p)
        out, err = p.communicate()
        fail("wpool-faulty hung with %r: killed\nstderr: %s" % (
            env_extra, err[-2000:].decode("utf-8", "replace")))
    h.check_no_sanitizer_report(err, "wpool-faulty %r" % env_extra)
    return p.returncode, out, err


def sweep(kind, s, urls, args):
    stdin = h.lines_bytes(urls)
    n_jobs = len([u for u in urls if u and not u.startswith("#")])
    rounds = early = 0
    with tempfile.TemporaryDirectory(prefix="wpool-fault-") as d:
        report = os.path.join(d, "report")
        for n in range(1, MAX_ROUNDS):
            env = {kind: str(n), "WP_FAIL_REPORT": report}
            rc, out, err = fetch_faulty(args, stdin, env)
            what = "%s=%d (rc %r, stderr %r)" % (kind, n, rc, err[-600:])
            check(rc in (0, 1, 2), "exit status: " + what)
            with open(report) as f:
                rep = dict(kv.split("=") for kv in f.read().split())
            res = h.parse_jsonl(out)
            d_ids = h.by_id(res)  # at most one result per job
            check(set(d_ids) <= set(range(1, n_jobs + 1)), "IDs: " + what)
            if len(d_ids) < n_jobs:
                early += 1
                # Stopped early: it says why, and fails.
                check(rc != 0 and re.search(rb"wpool fetch: .+", err),
                      "%d of %d results without a message: %s" % (len(d_ids), n_jobs, what))
                if len(d_ids):
                    h.check_ids_prefix(res, what)
            rounds = n
            if rep["failed"] == "0":
                eq(rc, 1, "the round without a failure: rc (%s)" % what)
                eq(len(d_ids), n_jobs, "the round without a failure: results")
                break
        else:
            fail("%s: still failing after %d rounds" % (kind, MAX_ROUNDS))
    note("%s: %d rounds (every call site once), %d ended early with a message"
         % (kind, rounds, early))
    return rounds


def urls_for(s):
    return [s.url("/ok"), s.url("/status/404"), "not a url", s.url("/delay/20"),
            "# comment", s.url("/ok?b"), s.url("/redirect/2")]


def test_fault_every_allocation_of_a_fetch_run():
    """Every allocation of wpool's own code in a small run (7 lines: ok,
    404, a bad line, a delay, a comment, a redirect) fails once, in turn."""
    check(os.path.exists(FAULTY), "wpool-faulty not built: %s" % FAULTY)
    with Server() as s:
        n = sweep("WP_FAIL_ALLOC", s, urls_for(s), ["-f", "jsonl", "-w", "2", "--progress"])
        check(n > 10, "only %d allocations counted" % n)


def test_fault_every_thread_creation_of_a_fetch_run():
    """Every thread creation (event loops, producer, controller, progress,
    the timer thread) fails once, in turn."""
    check(os.path.exists(FAULTY), "wpool-faulty not built: %s" % FAULTY)
    with Server() as s:
        n = sweep("WP_FAIL_THREAD", s, urls_for(s),
                  ["-f", "jsonl", "-w", "4", "--loops", "2", "--progress"])
        check(n >= 4, "only %d thread creations counted" % n)


if __name__ == "__main__":
    sys.exit(h.main(globals(), sys.argv))
