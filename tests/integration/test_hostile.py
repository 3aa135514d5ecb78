#!/usr/bin/env python3
"""Hostile servers and hostile input against the real `wpool fetch`.

Servers: the test server's raw listener (tests/support/hostile.c, ports at
GET /hostile) plays what libmicrohttpd will not: an endless body, a body
dripping one byte a second, a gzip bomb, 100 MB of headers, invalid status
lines, an HTTP/1.0 body ended by close, a reset in the middle of the body,
a server that accepts and never reads; the redirect loop is the normal
server's. For each: a clear per-job error (or success where the response is
legal), within the job's timeout; wpool's peak memory (its ru_maxrss, from
wait4) bounded, compared with a run of as many plain jobs in the same build;
and the /ok jobs in the same run all fine.

Input: a 1 MB line, NUL bytes, invalid UTF-8 (JSON stays valid, with
U+FFFD), CRLF, no final newline, empty input, a FILE that is a directory or
a FIFO; and a long stream of lines with flat memory and an honest progress
line (test_input_many_lines_flat_memory_honest_progress).

Each `def test_*` is one CTest test (tests/CMakeLists.txt). Helpers:
harness.py.
"""
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import Server, check, eq, fail, note, run_wpool  # noqa: E402

MB = 1 << 20
# How far above a plain run of as many /ok jobs wpool's peak RSS may go in a
# hostile run. 100 MB of headers, an endless body or an inflated bomb held
# in memory would pass it many times over.
RSS_SLACK_KB = 48 * 1024


class Measured:
    def __init__(self, rc, out, err, maxrss_kb, secs, cpu=0.0):
        self.rc, self.out, self.err, self.maxrss_kb, self.secs = rc, out, err, maxrss_kb, secs
        self.cpu = cpu  # user + system seconds

    def __repr__(self):
        return "rc %r, %.2fs, maxrss %d KB, stderr %s" % (
            self.rc, self.secs, self.maxrss_kb, self.err[-1500:].decode("utf-8", "replace"))


def run_measured(args, stdin=b"", timeout=60, env=None):
    """Runs `wpool fetch ARGS` and returns its exit status, output and peak
    RSS (ru_maxrss of wait4: this process's child only)."""
    p = subprocess.Popen([h.WPOOL, "fetch"] + [str(a) for a in args],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, start_new_session=True, env=env)
    out, err = [], []
    readers = [threading.Thread(target=lambda: out.append(p.stdout.read()), daemon=True),
               threading.Thread(target=lambda: err.append(p.stderr.read()), daemon=True)]

    def feed():
        try:
            p.stdin.write(stdin)
            p.stdin.close()
        except BrokenPipeError:
            pass
    readers.append(threading.Thread(target=feed, daemon=True))
    for t in readers:
        t.start()
    t0 = time.monotonic()
    end = t0 + timeout * h.SLOW
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > end:
            h._kill_group(p)
            os.wait4(p.pid, 0)
            p.returncode = -9
            fail("wpool hung: killed after %d s: %r" % (timeout * h.SLOW, args))
        time.sleep(0.02)
    secs = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    for t in readers:
        t.join(30 * h.SLOW)
    e = b"".join(err)
    h.check_no_sanitizer_report(e)
    return Measured(p.returncode, b"".join(out), e, ru.ru_maxrss, secs,
                    ru.ru_utime + ru.ru_stime)


def hostile_ports(s):
    body = s._get("/hostile").decode()
    m = re.match(r"^port=(\d+) silent_port=(\d+)\n$", body)
    check(m, "GET /hostile: %r" % body)
    return int(m.group(1)), int(m.group(2))


def results(run, n):
    res = h.parse_jsonl(run.out)
    for r in res:
        h.check_jsonl_record(r)
    return h.check_ids(res, n, repr(run))


# ---- hostile servers ---------------------------------------------------------

# route -> (ok, status, what the error must say (regex) or None, bytes check)
HOSTILE = {
    "/endless": (False, 200, r"^body exceeds --max-body \(1048576 bytes\)$",
                 lambda b: b > MB),
    "/drip": (False, 200, r"[Tt]imed? ?out", lambda b: b < 1000),
    # 6.5 MB on the wire: past the cap of this run (uninflated: see below)
    "/gzip-bomb": (False, 200, r"^body exceeds --max-body", lambda b: b <= MB),
    "/huge-headers": (False, 200, r"[Tt]oo large response headers", lambda b: b == 0),
    "/bad-status": (False, None, r"HTTP/0\.9", lambda b: b == 0),
    "/bad-code": (False, None, r"[Uu]nsupported HTTP version|[Ww]eird server reply",
                  lambda b: b == 0),
    "/http10-close": (True, 200, None, lambda b: b == 5000),
    "/reset-mid-body": (False, 200, r"[Rr]eset|[Rr]ecv failure|[Pp]artial",
                        lambda b: 0 < b < 100000),
}
TIMEOUT_S = 3
OK_JOBS = 40


def test_hostile_servers_clear_errors_bounded_memory_others_unaffected():
    """Every hostile route in one run with 40 plain jobs: each hostile job
    ends with its own clear error (or succeeds where the response is legal),
    none later than its timeout allows; every plain job is ok; peak memory
    stays within RSS_SLACK_KB of a run of plain jobs only."""
    with Server() as s:
        port, silent = hostile_ports(s)
        hostile = ["http://127.0.0.1:%d%s" % (port, r) for r in HOSTILE]
        hostile.append("http://127.0.0.1:%d/never-read" % silent)
        hostile.append(s.url("/redirect-loop"))
        oks = [s.url("/ok?i=%d" % i) for i in range(OK_JOBS)]
        # The plain jobs before, between and after the hostile ones.
        urls = oks[:10] + hostile[:5] + oks[10:30] + hostile[5:] + oks[30:]
        # One attempt (-r 0): each job's error is the route's own, within
        # its timeout (retries are on by default; they are tested in
        # test_retry_limits.py).
        args = ["-f", "jsonl", "-w", "8", "-r", "0", "-t", "%ds" % TIMEOUT_S,
                "--max-body", "1MiB"]
        base = run_measured(args, h.lines_bytes(oks + oks[:len(hostile)]))
        eq(base.rc, 0, "baseline run (%r)" % base)
        run = run_measured(args, h.lines_bytes(urls))
        eq(run.rc, 1, "exit status: some jobs failed (%r)" % run)
        d = results(run, len(urls))
        by_url = {r["url"]: r for r in d.values()}
        for u in oks:
            r = by_url[u]
            eq((r["ok"], r["status"], r["bytes"]), (True, 200, 100), "plain job %s" % u)
        for route, (ok, status, err, nbytes) in HOSTILE.items():
            r = by_url["http://127.0.0.1:%d%s" % (port, route)]
            eq((r["ok"], r["status"]), (ok, status), "%s: ok, status (%r)" % (route, r))
            if err:
                check(re.search(err, r["error"] or ""), "%s: error %r" % (route, r["error"]))
            if nbytes:
                check(nbytes(r["bytes"]), "%s: bytes %r" % (route, r["bytes"]))
        r = by_url["http://127.0.0.1:%d/never-read" % silent]
        eq((r["ok"], r["status"]), (False, None), "never-read (%r)" % r)
        check(re.search(r"[Tt]imed? ?out", r["error"]), "never-read: error %r" % r["error"])
        r = by_url[s.url("/redirect-loop")]
        check(not r["ok"] and re.search(r"[Rr]edirects", r["error"]), "redirect loop: %r" % r)
        # Within the job's timeout: no attempt outlives it by more than the
        # slack of a loaded machine (the whole run is bounded as well).
        for r in d.values():
            check(r["elapsed_ms"] <= (TIMEOUT_S + 5 * h.SLOW) * 1000,
                  "job %s took %.0f ms with -t %ds" % (r["url"], r["elapsed_ms"], TIMEOUT_S))
        note("peak RSS: plain %d KB, hostile %d KB" % (base.maxrss_kb, run.maxrss_kb))
        check(run.maxrss_kb <= base.maxrss_kb + RSS_SLACK_KB,
              "peak RSS %d KB, plain run %d KB" % (run.maxrss_kb, base.maxrss_kb))


IDLE_WAIT_MS = 2000


def test_idle_connection_closed_by_server_no_spin_then_reconnects():
    """A kept-alive connection that the server closes while it sits idle in
    the engine's connection cache (the hostile /keepalive-close answers 200
    with a length, no Connection: close, then closes, as a server's idle
    timeout does). The engine keeps an idle connection's socket in its
    epoll set; when it fires while idle it must leave the set, not wake the
    loop again and again: over a 2 s job that follows on another server,
    wpool's CPU time stays far below those 2 s (a loop spinning on the
    closed socket burns all of them). And the next job to that server finds
    the connection dead and gets a new one: 200."""
    with Server() as s:
        port, _ = hostile_ports(s)
        ka = "http://127.0.0.1:%d/keepalive-close" % port
        urls = [ka, s.url("/delay/%d" % IDLE_WAIT_MS), ka + "?again"]
        # One transfer at a time, in input order, one loop.
        run = run_measured(["-f", "jsonl", "-w", "1", "-r", "0"], h.lines_bytes(urls))
        eq(run.rc, 0, "exit status (%r)" % run)
        d = results(run, len(urls))
        for i in (1, 3):
            eq((d[i]["ok"], d[i]["status"], d[i]["bytes"]), (True, 200, 2),
               "job %d, /keepalive-close (%r)" % (i, d[i]))
        eq((d[2]["ok"], d[2]["status"]), (True, 200), "the delayed job (%r)" % d[2])
        check(d[2]["elapsed_ms"] >= IDLE_WAIT_MS, "the delay was served: %r" % d[2])
        note("CPU %.2f s over a run of %.2f s" % (run.cpu, run.secs))
        check(run.cpu < IDLE_WAIT_MS / 1000 / 2,
              "wpool used %.2f s of CPU while a job waited %d ms: spinning on "
              "the closed idle connection?" % (run.cpu, IDLE_WAIT_MS))


def test_hostile_gzip_bomb_is_never_inflated():
    """wpool asks for no compression and decodes none: a server that sends a
    gzip body anyway (1 GiB of zeros in ~6.5 MB) is counted as the bytes
    on the wire, the Content-Length; inflated it would be 1 GiB, far past
    --max-body, and --max-body applies to the wire bytes."""
    with Server() as s:
        port, _ = hostile_ports(s)
        import http.client
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30 * h.SLOW)
        c.request("GET", "/gzip-bomb")
        resp = c.getresponse()
        wire = resp.read()
        c.close()
        eq(resp.getheader("Content-Encoding"), "gzip", "the route compresses")
        eq(len(wire), int(resp.getheader("Content-Length")), "wire length")
        z = zlib.decompressobj(31)
        head = z.decompress(wire, 64 * MB)
        eq(len(head), 64 * MB, "it is a bomb: the first 6.5 MB inflate past 64 MB")
        url = "http://127.0.0.1:%d/gzip-bomb" % port
        r = run_wpool(["-f", "jsonl", "-t", "30s"], stdin=h.lines_bytes([url]))
        eq(r.rc, 0, "exit (%r)" % r)
        rec = results(r, 1)[1]
        eq((rec["ok"], rec["bytes"]), (True, len(wire)), "bytes counted on the wire")
        # A cap below the wire size applies to the wire size.
        r = run_wpool(["-f", "jsonl", "--max-body", "1MiB"], stdin=h.lines_bytes([url]))
        rec = results(r, 1)[1]
        check(not rec["ok"] and "max-body" in rec["error"], "capped: %r" % rec)


def test_hostile_endless_and_drip_without_a_body_cap_end_at_the_timeout():
    """With --max-body 0 (no cap) an endless body and a 1 byte/s drip both
    end at the attempt's timeout with a timeout error, memory still flat
    (the body is counted, not kept)."""
    with Server() as s:
        port, _ = hostile_ports(s)
        urls = ["http://127.0.0.1:%d/endless" % port, "http://127.0.0.1:%d/drip" % port,
                s.url("/ok"), s.url("/delay/100")]
        args = ["-f", "jsonl", "-t", "2s", "--max-body", "0"]
        base = run_measured(args, h.lines_bytes([s.url("/ok")] * 4))
        run = run_measured(args, h.lines_bytes(urls))
        d = results(run, 4)
        for i in (1, 2):
            check(not d[i]["ok"] and re.search(r"[Tt]imed? ?out", d[i]["error"]),
                  "job %d: %r" % (i, d[i]))
        check(d[1]["bytes"] > MB, "the endless body was read: %r" % d[1])
        eq((d[3]["ok"], d[4]["ok"]), (True, True), "the other jobs")
        note("peak RSS: plain %d KB, endless %d KB (%d MB read)" % (
            base.maxrss_kb, run.maxrss_kb, d[1]["bytes"] // MB))
        check(run.maxrss_kb <= base.maxrss_kb + RSS_SLACK_KB,
              "peak RSS %d KB, plain run %d KB" % (run.maxrss_kb, base.maxrss_kb))


# ---- hostile input -------------------------------------------------------------

def test_input_hostile_bytes():
    """A 1 MB line, NUL bytes, invalid UTF-8, CRLF and no final newline in
    one input: each line is one job; the bad ones fail saying why, the good
    ones are fetched; the JSON stays valid UTF-8 with U+FFFD in place of
    the invalid bytes (as --help says), CSV keeps the bytes."""
    with Server() as s:
        ok = s.url("/ok").encode()
        raw = (ok + b"?a\r\n"
               + b"http://h/" + b"x" * MB + b"\n"
               + ok + b"?b\n"
               + b"http://h/\x00nul\n"
               + ok + b"?\xff\xfe\xc0\xaf\r\n"
               + b"\xed\xa0\x80http://bad/\n"
               + ok + b"?c")  # no final newline
        r = run_wpool(["-f", "jsonl"], stdin=raw)
        eq(r.rc, 1, "exit (%r)" % r)
        d = results(r, 7)
        eq(d[1]["url"], s.url("/ok?a"), "CRLF trimmed")
        check(d[1]["ok"], "job 1: %r" % d[1])
        eq(d[2]["error"], "line longer than 8192 bytes", "1 MB line")
        eq(len(d[2]["url"]), 8192, "the 1 MB line's url is its first 8192 bytes")
        check(d[3]["ok"], "the line after the 1 MB line: %r" % d[3])
        eq(d[4]["error"], "line holds control bytes", "NUL byte")
        eq(d[4]["url"], "http://h/\x00nul", "NUL kept, escaped in JSON")
        eq(d[5]["url"], s.url("/ok?") + "\ufffd\ufffd\ufffd\ufffd", "invalid UTF-8 replaced")
        check(not d[6]["ok"], "job 6: %r" % d[6])
        check(d[6]["url"].startswith("\ufffd"), "job 6 url: %r" % d[6]["url"])
        eq(d[7]["url"], s.url("/ok?c"), "last line without LF")
        check(d[7]["ok"], "job 7: %r" % d[7])
        r = run_wpool(["-f", "csv"], stdin=raw)
        header, rows = h.parse_csv(r.out)
        eq(len(rows), 7, "csv rows")
        urls = {int(row[0]): row[1] for row in rows}
        eq(urls[5].encode("utf-8", "surrogateescape"), ok + b"?\xff\xfe\xc0\xaf",
           "csv keeps the bytes")


def test_input_empty_directory_fifo():
    """Empty input: exit 0, zero jobs. A directory: exit 2 before anything,
    naming it. A FIFO: read as a stream, each line fetched."""
    with Server() as s, tempfile.TemporaryDirectory(prefix="wpool-it-") as d:
        r = run_wpool(["-f", "jsonl"], stdin=b"")
        eq((r.rc, r.out), (0, b""), "empty input (%r)" % r)
        eq(h.summary(r.err)["jobs"], 0, "zero jobs")
        r = run_wpool(["-f", "jsonl", d])
        eq(r.rc, 2, "a directory (%r)" % r)
        check(d.encode() in r.err and b"directory" in r.err.lower(), "message: %r" % r.err)
        eq(r.out, b"", "nothing fetched")
        fifo = os.path.join(d, "fifo")
        os.mkfifo(fifo)
        lines = [s.url("/ok?f=%d" % i) for i in range(5)]

        def writer():
            with open(fifo, "wb") as f:
                f.write(h.lines_bytes(lines))
        t = threading.Thread(target=writer, daemon=True)
        t.start()
        r = run_wpool(["-f", "jsonl", fifo])
        t.join(10 * h.SLOW)
        eq(r.rc, 0, "a FIFO (%r)" % r)
        res = results(r, 5)
        eq(sorted(x["url"] for x in res.values()), sorted(lines), "the FIFO's lines")


# Lines for the long-input test. Bad lines are jobs that need no network,
# so the run measures the reader, the pool and the output, not HTTP.
MANY = {"plain": 10_000_000, "asan": 1_000_000, "tsan": 300_000}[h.FLAVOUR]


def test_input_many_lines_flat_memory_honest_progress():
    """A stream of many lines (10 million in the plain build; 1 million under
    ASan and 300,000 under TSan, which are 5-20x slower and would blow the
    CI budget): every line is one job with one result; wpool's RSS, sampled
    while it runs, stays flat (no growth after the first tenth); the
    progress line on stderr never shows more done than read, never goes
    backwards, and ends at the total."""
    n = MANY
    env = dict(os.environ)
    if h.FLAVOUR == "asan":
        # ASan keeps freed memory in a quarantine (256 MB by default) and
        # grows its allocator caches: RSS then rises for reasons of its own.
        # No quarantine here, and a looser bound below; leaks are LSan's.
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=0"
    p = subprocess.Popen([h.WPOOL, "fetch", "-w", "64", "--progress", "-f", "csv"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, start_new_session=True, env=env)
    counts = {"lines": 0}
    errbuf = []

    def feed():
        chunk = b"not-a-url\n" * 10000
        try:
            for _ in range(n // 10000):
                p.stdin.write(chunk)
            p.stdin.close()
        except BrokenPipeError:
            pass

    def read_out():
        for block in iter(lambda: p.stdout.read(1 << 16), b""):
            counts["lines"] += block.count(b"\n")

    def read_err():
        errbuf.append(p.stderr.read())

    threads = [threading.Thread(target=f, daemon=True) for f in (feed, read_out, read_err)]
    for t in threads:
        t.start()
    samples = []  # (lines of output so far, RSS KB)
    end = time.monotonic() + 600 * h.SLOW
    while p.poll() is None:
        try:
            with open("/proc/%d/status" % p.pid) as f:
                for ln in f:
                    if ln.startswith("VmRSS:"):
                        samples.append((counts["lines"], int(ln.split()[1])))
        except OSError:
            pass
        if time.monotonic() > end:
            h._kill_group(p)
            fail("wpool did not finish %d lines in %d s" % (n, 600 * h.SLOW))
        time.sleep(0.1)
    for t in threads:
        t.join(60 * h.SLOW)
    err = b"".join(errbuf)
    h.check_no_sanitizer_report(err)
    eq(p.returncode, 1, "exit: every job failed (bad lines)")
    eq(counts["lines"], n + 1, "csv lines: header + one per job")
    # The summary follows the last progress redraw on the same line.
    m = re.search(rb"wpool: (\d+) jobs in [0-9.]+s \([^)]*\): 0 ok, (\d+) failed, 0 canceled", err)
    check(m, "summary on stderr: %r" % err[-300:])
    eq((int(m.group(1)), int(m.group(2))), (n, n), "summary: jobs, failed")
    # Flat memory: after the first tenth of the run, RSS grows by less than
    # 16 MB (a leak of even 2 bytes a job would show past that at 10M; 64 MB
    # under the sanitizers, whose allocators grow on their own).
    bound = 16 * 1024 if h.FLAVOUR == "plain" else 64 * 1024
    later = [rss for lines, rss in samples if lines >= n // 10]
    early = [rss for lines, rss in samples if lines < n // 10]
    if later and early:
        note("RSS KB: first tenth max %d, then min %d max %d (%d samples)" % (
            max(early), min(later), max(later), len(samples)))
        check(max(later) - max(early) < bound,
              "RSS grew from %d KB to %d KB" % (max(early), max(later)))
    else:
        note("too few RSS samples to compare (%d)" % len(samples))
    # Honest progress: "D done, R read" or "[bar] D/T ...".
    seen = re.findall(rb"\r\x1b\[K(?:(\d+) done, (\d+) read|\[[#-]+\] (\d+)/(\d+))", err)
    check(seen, "no progress line on stderr: %r" % err[:300])
    last_done = 0
    for a, b, c, d in seen:
        done, total = (int(a), int(b)) if a else (int(c), int(d))
        check(done <= total, "progress shows %d done of %d read" % (done, total))
        check(done >= last_done, "progress went backwards: %d after %d" % (done, last_done))
        check(total <= n, "progress total %d past %d" % (total, n))
        last_done = done


if __name__ == "__main__":
    sys.exit(h.main(globals(), sys.argv))
