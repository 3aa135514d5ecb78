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
import os
import resource
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import Server, check, eq, fail, note, write_file  # noqa: E402


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


if __name__ == "__main__":
    sys.exit(h.main(globals(), sys.argv))
