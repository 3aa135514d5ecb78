#!/usr/bin/env python3
"""Integration tests of `wpool fetch`: the real binary against the project's
HTTP test server on 127.0.0.1 (tests/support/testserver.c).

Each top-level `def test_<name>(` is one CTest test (tests/CMakeLists.txt),
run as `test_fetch.py test_<name>` with WPOOL_BIN and WPOOL_TESTSERVER set.
With no argument, every test runs and the last line is `N passed, N failed`.

The contract under test is `wpool fetch --help` (src/cli/main.c). Each test
names the promise it checks. Helpers: harness.py.
"""
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import (Background, Server, check, check_ids, check_ids_prefix,  # noqa: E402
                     check_jsonl_record, eq, fail, lines_bytes, note, parse_csv,
                     parse_jsonl, run_wpool, summary, wait_until, write_file)


def _tmpdir():
    return tempfile.TemporaryDirectory(prefix="wpool-it-")


def _jsonl(run, n=None):
    """Parses a jsonl run, checks every record's schema and, when n is given,
    that the IDs are exactly 1..n; returns id -> record."""
    res = parse_jsonl(run.out)
    for r in res:
        check_jsonl_record(r)
    if n is None:
        return h.by_id(res)
    return check_ids(res, n, repr(run))


# ---- input ------------------------------------------------------------------

def test_input_trimming():
    """Surrounding spaces and tabs and a CR before the LF are trimmed; the
    url field is the trimmed line; IDs follow input order."""
    with Server() as s:
        urls = [s.url("/ok?i=%d" % i) for i in range(1, 8)]
        raw = (b"   " + urls[0].encode() + b"\n"
               + b"\t" + urls[1].encode() + b"\t\n"
               + urls[2].encode() + b"\r\n"
               + b" \t " + urls[3].encode() + b" \t\r\n"
               + urls[4].encode() + b"     \n"
               + b"\t\t" + urls[5].encode() + b"\r\n"
               + b"  " + urls[6].encode() + b" \r")  # last line: no LF
        r = run_wpool(["-f", "jsonl"], stdin=raw)
        eq(r.rc, 0, "exit status (%r)" % r)
        d = _jsonl(r, 7)
        for i, u in enumerate(urls, 1):
            eq(d[i]["url"], u, "url of job %d" % i)
            eq((d[i]["ok"], d[i]["status"]), (True, 200), "job %d" % i)
        eq(s.stats()["paths"].get("/ok"), 7, "requests for /ok at the server")


def test_input_blank_and_comment_lines_skipped():
    """Blank lines, whitespace-only lines and '#' lines are not jobs and
    take no ID; every other line is a job."""
    with Server() as s:
        raw = lines_bytes([
            "# a comment", "", "   ", "\t", s.url("/ok?i=1"), "#" + s.url("/status/500"),
            "  # indented comment " + s.url("/status/501"), "\r", s.url("/ok?i=2"),
            "", "### more", s.url("/status/404"), "\t \r",
        ])
        r = run_wpool(["-f", "jsonl"], stdin=raw)
        eq(r.rc, 1, "exit status: one 404 (%r)" % r)
        d = _jsonl(r, 3)
        eq(d[1]["url"], s.url("/ok?i=1"), "job 1")
        eq(d[2]["url"], s.url("/ok?i=2"), "job 2")
        eq((d[3]["url"], d[3]["status"]), (s.url("/status/404"), 404), "job 3")
        st = s.stats()
        eq(st["total_requests"], 3, "requests at the server (comments fetched?)")
        eq(summary(r.err)["jobs"], 3, "summary jobs")


def test_input_ids_across_files_in_order():
    """IDs count from 1 across several FILEs, in argument order; a file
    without a final newline does not glue its last line to the next file."""
    with Server() as s, _tmpdir() as d:
        f1 = write_file([s.url("/ok?f=1&l=1"), "", s.url("/ok?f=1&l=2")], dir=d)
        f2 = write_file(None, dir=d, raw=("# only\n" + s.url("/ok?f=2&l=1")).encode())  # no LF
        f3 = write_file([s.url("/status/404?f=3&l=1"), s.url("/ok?f=3&l=2"),
                         s.url("/ok?f=3&l=3")], dir=d)
        empty = write_file([], dir=d)
        r = run_wpool(["-f", "jsonl", "-w", "4", empty, f1, f2, empty, f3, empty])
        eq(r.rc, 1, "exit status (%r)" % r)
        res = _jsonl(r, 6)
        want = [s.url("/ok?f=1&l=1"), s.url("/ok?f=1&l=2"), s.url("/ok?f=2&l=1"),
                s.url("/status/404?f=3&l=1"), s.url("/ok?f=3&l=2"), s.url("/ok?f=3&l=3")]
        for i, u in enumerate(want, 1):
            eq(res[i]["url"], u, "url of job %d" % i)
        eq(res[4]["status"], 404, "job 4 status")
        # The same file twice is read twice.
        r = run_wpool(["-f", "jsonl", f1, f1])
        res = _jsonl(r, 4)
        eq([res[i]["url"] for i in range(1, 5)], want[:2] * 2, "a file given twice")
        eq(r.rc, 0, "exit status (%r)" % r)


def test_input_dash_is_stdin():
    """'-' among the FILEs reads standard input at that place in the order."""
    with Server() as s, _tmpdir() as d:
        f1 = write_file([s.url("/ok?src=f1")], dir=d)
        f2 = write_file([s.url("/ok?src=f2a"), s.url("/ok?src=f2b")], dir=d)
        stdin = lines_bytes([s.url("/ok?src=in1"), "# c", s.url("/ok?src=in2")])
        r = run_wpool(["-f", "jsonl", f1, "-", f2], stdin=stdin)
        eq(r.rc, 0, "exit status (%r)" % r)
        res = _jsonl(r, 5)
        eq([res[i]["url"].split("src=")[1] for i in range(1, 6)],
           ["f1", "in1", "in2", "f2a", "f2b"], "order of the jobs")


def test_input_no_file_reads_stdin():
    """No FILE: standard input is read."""
    with Server() as s:
        urls = [s.url("/ok?n=%d" % i) for i in range(1, 41)]
        r = run_wpool(["-f", "jsonl", "-w", "8"], stdin=lines_bytes(urls))
        eq(r.rc, 0, "exit status (%r)" % r)
        res = _jsonl(r, 40)
        for i, u in enumerate(urls, 1):
            eq(res[i]["url"], u, "url of job %d" % i)
        eq(s.stats()["paths"].get("/ok"), 40, "requests at the server")


def test_input_bad_lines_are_jobs_with_an_error():
    """A line that is not an http(s) URL, is longer than 8192 bytes or holds
    control bytes is a job whose result is an error saying why; the run
    goes on (good lines before and after are fetched)."""
    with Server() as s:
        pad = s.url("/ok?p=")
        exact = pad + "a" * (8192 - len(pad))          # 8192 bytes: fine
        over = pad + "b" * (8193 - len(pad))           # 8193 bytes: too long
        huge = pad + "c" * (9000 - len(pad))           # 9000 bytes
        lines = [
            (s.url("/ok?i=1").encode(), None),
            (b"bobobo", ("scheme", "url")),
            (b"ftp://127.0.0.1/file", ("scheme",)),
            (huge.encode(), ("8192", "long")),
            (s.url("/ok?i=5").encode(), None),
            (s.url("/ok?nul=").encode() + b"\x00x", ("control",)),
            (s.url("/ok?soh=").encode() + b"\x01x", ("control",)),
            (s.url("/ok?esc=").encode() + b"\x1b[31m", ("control",)),
            (s.url("/ok?del=").encode() + b"\x7f", ("control",)),
            (s.url("/ok?tab=a").encode() + b"\tb", ("control",)),
            (s.url("/ok?sp=a b").encode(), ("space",)),
            (b"http://", ("host", "url")),
            (b"127.0.0.1:8080/ok", ("scheme",)),
            (exact.encode(), None),
            (over.encode(), ("8192", "long")),
            (s.url("/ok?i=16").encode(), None),
        ]
        r = run_wpool(["-f", "jsonl", "-w", "4"], stdin=lines_bytes([l for l, _ in lines]))
        eq(r.rc, 1, "exit status (%r)" % r)
        d = _jsonl(r, len(lines))
        good = 0
        for i, (line, why) in enumerate(lines, 1):
            res = d[i]
            if why is None:
                good += 1
                eq((res["ok"], res["status"], res["error"]), (True, 200, None),
                   "good line %d (%d bytes)" % (i, len(line)))
                eq(res["url"], line.decode(), "url of job %d" % i)
                continue
            eq((res["ok"], res["status"], res["attempts"]), (False, None, 0),
               "bad line %d %r" % (i, line[:60]))
            err = res["error"].lower()
            check(any(w in err for w in why),
                  "bad line %d %r: error %r does not say why (%r)" % (i, line[:60], res["error"], why))
            if len(line) <= 8192:
                eq(res["url"], line.decode("utf-8", "replace"), "url of bad line %d" % i)
            else:
                # The line as read: the reader keeps the first 8192 bytes.
                check(line.decode().startswith(res["url"]) and len(res["url"]) >= 1000,
                      "url of the too-long line %d is not a prefix of it (%d chars)"
                      % (i, len(res["url"])))
        st = s.stats()
        eq(st["total_requests"], good, "requests at the server: only the good lines")
        sm = summary(r.err)
        eq((sm["jobs"], sm["ok"], sm["failed"]), (len(lines), good, len(lines) - good), "summary")


def test_input_unreadable_file_exits_2_before_anything():
    """A FILE that cannot be read (missing, a directory) is exit 2 before
    anything starts: no output, no request, even for the good FILEs given
    before it."""
    with Server() as s, _tmpdir() as d:
        good = write_file([s.url("/ok?i=1"), s.url("/ok?i=2")], dir=d)
        missing = os.path.join(d, "no-such-file.txt")
        cases = [
            [missing],
            [d],
            [good, missing],
            [good, d],
            [missing, good],
            [good, "-", missing],
        ]
        for files in cases:
            for fmt in ("jsonl", "csv", "text"):
                r = run_wpool(["-f", fmt] + files, stdin=lines_bytes([s.url("/ok?stdin")]))
                eq(r.rc, 2, "exit status for %r (%r)" % (files, r))
                eq(r.out, b"", "stdout for %r -f %s" % (files, fmt))
                bad = missing if missing in files else d
                check(bad.encode() in r.err, "stderr does not name %r: %r" % (bad, r.err))
                check(h.SUMMARY_RE.search(r.err) is None,
                      "a run summary although nothing started: %r" % r.err)
        eq(s.stats()["total_requests"], 0, "requests at the server")


def test_input_read_error_mid_run():
    """A FILE that opens but fails on read (/proc/self/mem: EIO) after a good
    FILE: the jobs read before have their results, the error is reported
    on stderr naming the file, the exit status is not 0, nothing hangs."""
    with Server() as s, _tmpdir() as d:
        good = write_file([s.url("/ok?i=1"), s.url("/ok?i=2")], dir=d)
        r = run_wpool(["-f", "jsonl", good, "/proc/self/mem"])
        check(r.rc in (1, 2), "exit status after a read error (%r)" % r)
        note("exit status after a read error mid-run: %d" % r.rc)
        check(b"/proc/self/mem" in r.err, "stderr does not name the file: %r" % r.err)
        d2 = _jsonl(r, 2)
        eq((d2[1]["ok"], d2[2]["ok"]), (True, True), "the jobs read before the error")
        eq(summary(r.err)["jobs"], 2, "summary jobs")


def test_input_empty_is_exit_0_with_zero_jobs():
    """Empty input (an empty FILE, empty stdin, only comments and blanks) is
    exit 0 with zero jobs."""
    with Server() as s, _tmpdir() as d:
        empty = write_file([], dir=d)
        comments = write_file(["# nothing", "", "   ", "\t# still nothing", "\r"], dir=d)
        for args, stdin in (([empty], None), ([], b""), ([], None), ([comments], None),
                            ([empty, comments, empty], None), (["-"], b"\n\n#x\n")):
            for fmt in ("jsonl", "text", "csv"):
                r = run_wpool(["-f", fmt] + args, stdin=stdin)
                eq(r.rc, 0, "exit status for %r %s (%r)" % (args, fmt, r))
                sm = summary(r.err)
                eq(sm["jobs"], 0, "summary jobs")
                if fmt == "csv":
                    header, rows = parse_csv(r.out)
                    eq(",".join(header), h.CSV_HEADER, "csv header")
                    eq(rows, [], "csv rows")
                else:
                    eq(r.out, b"", "stdout (%s)" % fmt)
        eq(s.stats()["total_requests"], 0, "requests at the server")


# ---- options ----------------------------------------------------------------

def test_options_bad_values_exit_2_naming_the_flag():
    """Each bad option value is exit 2 with a message naming the flag, before
    anything is fetched."""
    cases = [
        (["--workers", "0"], ("--workers", "-w")),
        (["--workers", "10001"], ("--workers", "-w")),
        (["-w", "0"], ("--workers", "-w")),
        (["-w", "many"], ("--workers", "-w")),
        (["--workers=-3"], ("--workers", "-w")),
        (["--timeout", "5x"], ("--timeout", "-t")),
        (["-t", "5x"], ("--timeout", "-t")),
        (["--timeout", "-1s"], ("--timeout", "-t")),
        (["--connect-timeout", "soon"], ("--connect-timeout",)),
        (["--deadline", "5parsecs"], ("--deadline",)),
        (["--max-body", "abc"], ("--max-body",)),
        (["--max-redirects", "x"], ("--max-redirects",)),
        (["-f", "xml"], ("--format", "-f")),
        (["--format", "json"], ("--format", "-f")),
        (["-X", "POST"], ("--method", "-X")),
        (["--method", "get-ish"], ("--method", "-X")),
        (["-H", "nocolon"], ("--header", "-H")),
        (["--header", ": novalue-name"], ("--header", "-H")),
        (["--bogus"], ("--bogus",)),
        (["--bogus=1"], ("--bogus",)),
        (["-Z"], ("-Z",)),
        (["--workers"], ("--workers",)),  # no value
        (["-q", "0"], ("--queue", "-q")),
    ]
    with Server() as s, _tmpdir() as d:
        f = write_file([s.url("/ok")], dir=d)
        for args, names in cases:
            r = run_wpool(args + [f], stdin=lines_bytes([s.url("/ok")]))
            eq(r.rc, 2, "exit status for %r (%r)" % (args, r))
            eq(r.out, b"", "stdout for %r" % args)
            err = r.err.decode("utf-8", "replace")
            check(any(n in err for n in names),
                  "the message for %r does not name the flag %r: %r" % (args, names, err))
        eq(s.stats()["total_requests"], 0, "requests at the server")


def test_option_head():
    """-X HEAD: the request is HEAD, no body: bytes 0; GET gets the body."""
    with Server() as s:
        urls = [s.url("/bytes/1000"), s.url("/ok"), s.url("/status/404")]
        r = run_wpool(["-f", "jsonl", "-X", "HEAD"], stdin=lines_bytes(urls))
        eq(r.rc, 1, "exit status (%r)" % r)
        d = _jsonl(r, 3)
        eq((d[1]["status"], d[1]["bytes"], d[1]["ok"]), (200, 0, True), "HEAD /bytes/1000")
        eq((d[2]["status"], d[2]["bytes"], d[2]["ok"]), (200, 0, True), "HEAD /ok")
        eq((d[3]["status"], d[3]["bytes"], d[3]["ok"]), (404, 0, False), "HEAD /status/404")
        r = run_wpool(["-f", "jsonl", "--method", "GET"], stdin=lines_bytes(urls[:2]))
        d = _jsonl(r, 2)
        eq((d[1]["bytes"], d[2]["bytes"]), (1000, 100), "GET bytes")


def test_option_header_and_user_agent_reach_the_server():
    """-H (repeatable) and -A reach the server. /echo-headers answers with
    the request headers as JSON, so its body length moves byte for byte
    with a header's value; -H 'Host: ...' shows in the server's per-host
    counts."""
    with Server() as s:
        u = [s.url("/echo-headers")]

        def size(args):
            r = run_wpool(["-f", "jsonl"] + args, stdin=lines_bytes(u))
            eq(r.rc, 0, "exit status for %r (%r)" % (args, r))
            return _jsonl(r, 1)[1]["bytes"]

        base = size(["-H", "X-Wpool-A: 1", "-H", "X-Wpool-B: 22", "-A", "agent-x"])
        eq(size(["-H", "X-Wpool-A: 1", "-H", "X-Wpool-B: 22" + "2" * 10, "-A", "agent-x"]),
           base + 10, "body size with a 10-byte longer X-Wpool-B (the 2nd -H)")
        eq(size(["-H", "X-Wpool-A: 1" + "1" * 7, "-H", "X-Wpool-B: 22", "-A", "agent-x"]),
           base + 7, "body size with a 7-byte longer X-Wpool-A (the 1st -H)")
        eq(size(["-H", "X-Wpool-A: 1", "-H", "X-Wpool-B: 22", "-A", "agent-x" + "y" * 25]),
           base + 25, "body size with a 25-byte longer -A")
        eq(size(["-H", "X-Wpool-A: 1", "-H", "X-Wpool-B: 22",
                 "--user-agent", "agent-x" + "y" * 3]),
           base + 3, "body size with --user-agent 3 bytes longer")
        # Without X-Wpool-B the body is shorter by that whole header.
        check(size(["-H", "X-Wpool-A: 1", "-A", "agent-x"]) < base - len("X-Wpool-B22"),
              "dropping the 2nd -H does not shorten the echoed headers")
        # The Host header, seen by the server's per-host counters.
        s.reset_stats()
        r = run_wpool(["-f", "jsonl", "-H", "Host: wpool-vhost.test"],
                      stdin=lines_bytes([s.url("/ok")]))
        eq(r.rc, 0, "exit status (%r)" % r)
        eq(s.stats()["max_concurrent_by_host"], {"wpool-vhost.test": 1},
           "hosts seen by the server with -H 'Host: wpool-vhost.test'")


_PROXY_VARS = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
               "ALL_PROXY", "no_proxy", "NO_PROXY")


def test_proxy_from_the_environment():
    """The proxy variables libcurl reads are honoured (wpool reads them once
    at the start, and tells libcurl "no proxy" when none is set): with
    http_proxy or all_proxy naming the test server, a URL whose host does
    not resolve reaches the server as a proxy request (its Host header is
    the URL's host); no_proxy exempts the host again, and then the name
    does not resolve; HTTP_PROXY (upper case, which CGI sets from a request
    header) is ignored, as libcurl ignores it."""
    with Server() as s:
        url = "http://wpool-proxied.invalid/ok"
        proxy = "http://127.0.0.1:%d" % s.port
        clean = {k: None for k in _PROXY_VARS}

        def run(**env):
            e = dict(clean)
            e.update(env)
            s.reset_stats()
            r = run_wpool(["-f", "jsonl", "-r", "0"], stdin=lines_bytes([url]), env=e)
            return r, _jsonl(r, 1)[1], s.stats()["max_concurrent_by_host"]

        for var in ("http_proxy", "all_proxy", "ALL_PROXY"):
            r, d, hosts = run(**{var: proxy})
            eq(hosts, {"wpool-proxied.invalid": 1}, "hosts the server saw with %s" % var)
            check(d["status"] is not None, "%s: the server answered: %r" % (var, d))
        for var in ("no_proxy", "NO_PROXY"):
            r, d, hosts = run(http_proxy=proxy, **{var: "wpool-proxied.invalid"})
            eq(hosts, {}, "hosts the server saw with %s" % var)
            eq((d["status"], d["ok"]), (None, False), "%s: fetched directly: %r" % (var, d))
        r, d, hosts = run(HTTP_PROXY=proxy)
        eq(hosts, {}, "hosts the server saw with HTTP_PROXY only")
        eq((d["status"], d["ok"]), (None, False), "HTTP_PROXY only: %r" % d)


def test_option_output_file():
    """-o FILE: the results go to FILE, stdout stays empty, the summary stays
    on stderr."""
    with Server() as s, _tmpdir() as d:
        out = os.path.join(d, "results.jsonl")
        urls = [s.url("/ok?i=%d" % i) for i in range(10)] + [s.url("/status/500")]
        r = run_wpool(["-f", "jsonl", "-o", out], stdin=lines_bytes(urls))
        eq(r.rc, 1, "exit status (%r)" % r)
        eq(r.out, b"", "stdout with -o")
        with open(out, "rb") as f:
            res = parse_jsonl(f.read())
        for x in res:
            check_jsonl_record(x)
        d2 = check_ids(res, 11)
        eq(d2[11]["status"], 500, "job 11 status")
        eq(summary(r.err)["jobs"], 11, "summary jobs")
        # --output=FILE, csv; an existing file is replaced.
        r = run_wpool(["-f", "csv", "--output=" + out], stdin=lines_bytes(urls[:3]))
        eq(r.rc, 0, "exit status (%r)" % r)
        eq(r.out, b"", "stdout with --output")
        with open(out, "rb") as f:
            header, rows = parse_csv(f.read())
        eq(",".join(header), h.CSV_HEADER, "csv header in the file")
        eq(sorted(int(x[0]) for x in rows), [1, 2, 3], "csv ids in the file")


def test_option_output_file_unwritable():
    """-o into a directory that does not exist: a usage error (exit 2) that
    names the file, and nothing is fetched."""
    with Server() as s, _tmpdir() as d:
        out = os.path.join(d, "no", "such", "dir", "results.txt")
        r = run_wpool(["-o", out], stdin=lines_bytes([s.url("/ok")]))
        eq(r.rc, 2, "exit status (%r)" % r)
        check(out.encode() in r.err, "stderr does not name %r: %r" % (out, r.err))
        eq(r.out, b"", "stdout")
        eq(s.stats()["total_requests"], 0, "requests at the server")


def test_output_write_error():
    """An output that fails (-o /dev/full, stdout on /dev/full) ends the run
    promptly: exit 1, a message on stderr, no hang."""
    with Server() as s, _tmpdir() as d:
        f = write_file([s.url("/ok?i=%d" % i) for i in range(5000)], dir=d)
        for how in ("-o", "stdout"):
            if how == "-o":
                r = run_wpool(["-f", "jsonl", "-o", "/dev/full", f])
            else:
                with open("/dev/full", "wb") as full:
                    p = subprocess.run([h.WPOOL, "fetch", "-f", "jsonl", f], stdout=full,
                                       stderr=subprocess.PIPE, timeout=60 * h.SLOW)
                h.check_no_sanitizer_report(p.stderr)
                r = h.Run([f], p.returncode, b"", p.stderr, 0)
            eq(r.rc, 1, "exit status writing to /dev/full (%s) (%r)" % (how, r))
            check(b"No space" in r.err or b"writing" in r.err,
                  "no message about the failed output (%s): %r" % (how, r.err))
            summary(r.err)


def test_option_max_redirects_zero():
    """--max-redirects 0: redirects are not followed; the 3xx is the final
    status and the job is ok."""
    with Server() as s:
        urls = [s.url("/redirect/1"), s.url("/redirect-loop"),
                s.url("/redirect-to?url=%2Fok&status=307")]
        r = run_wpool(["-f", "jsonl", "--max-redirects", "0"], stdin=lines_bytes(urls))
        eq(r.rc, 0, "exit status (%r)" % r)
        d = _jsonl(r, 3)
        eq((d[1]["ok"], d[1]["status"], d[1]["error"]), (True, 302, None), "/redirect/1")
        eq((d[2]["ok"], d[2]["status"]), (True, 302), "/redirect-loop")
        eq((d[3]["ok"], d[3]["status"]), (True, 307), "/redirect-to status=307")
        st = s.stats()
        eq(st["total_requests"], 3, "requests at the server (a redirect was followed)")
        check("/ok" not in st["paths"] and "/redirect/0" not in st["paths"],
              "a redirect was followed: %r" % st["paths"])


def test_option_max_redirects_n():
    """--max-redirects N: N redirects are followed, N+1 fail; default 10."""
    with Server() as s:
        for n in (1, 3):
            urls = [s.url("/redirect/%d" % n), s.url("/redirect/%d" % (n + 1))]
            r = run_wpool(["-f", "jsonl", "--max-redirects", str(n)], stdin=lines_bytes(urls))
            eq(r.rc, 1, "exit status for N=%d (%r)" % (n, r))
            d = _jsonl(r, 2)
            eq((d[1]["ok"], d[1]["status"]), (True, 200), "/redirect/%d with N=%d" % (n, n))
            eq(d[2]["ok"], False, "/redirect/%d with N=%d" % (n + 1, n))
            check("redirect" in d[2]["error"].lower(),
                  "the error does not say redirects: %r" % d[2]["error"])
        urls = [s.url("/redirect/10"), s.url("/redirect/11"), s.url("/redirect-loop")]
        r = run_wpool(["-f", "jsonl"], stdin=lines_bytes(urls))
        eq(r.rc, 1, "exit status with the default (%r)" % r)
        d = _jsonl(r, 3)
        eq((d[1]["ok"], d[1]["status"]), (True, 200), "/redirect/10 by default")
        eq(d[2]["ok"], False, "/redirect/11 by default")
        eq(d[3]["ok"], False, "/redirect-loop by default")


def test_option_max_body():
    """--max-body: a body over the cap is an error, one at or under it is ok;
    the default cap is 10MiB."""
    with Server() as s:
        urls = [s.url("/bytes/0"), s.url("/bytes/1000"), s.url("/bytes/1024"),
                s.url("/bytes/1025"), s.url("/bytes/5000000")]
        r = run_wpool(["-f", "jsonl", "--max-body", "1k"], stdin=lines_bytes(urls))
        eq(r.rc, 1, "exit status (%r)" % r)
        d = _jsonl(r, 5)
        for i, n in ((1, 0), (2, 1000), (3, 1024)):
            eq((d[i]["ok"], d[i]["bytes"]), (True, n), "/bytes/%d under --max-body 1k" % n)
        for i in (4, 5):
            eq(d[i]["ok"], False, "%s over --max-body 1k" % urls[i - 1])
            check("max-body" in d[i]["error"] or "body" in d[i]["error"].lower(),
                  "the error does not say the body is too big: %r" % d[i]["error"])
            check(d[i]["bytes"] <= 1024 + 65536, "bytes received past the cap: %r" % d[i])
        r = run_wpool(["-f", "jsonl", "--max-body", "100"],
                      stdin=lines_bytes([s.url("/bytes/100"), s.url("/bytes/101")]))
        d = _jsonl(r, 2)
        eq((d[1]["ok"], d[2]["ok"]), (True, False), "--max-body 100: 100 and 101 bytes")
        cap = 10 * 1024 * 1024
        r = run_wpool(["-f", "jsonl"], stdin=lines_bytes(
            [s.url("/bytes/%d" % cap), s.url("/bytes/%d" % (cap + 1))]), timeout=120)
        d = _jsonl(r, 2)
        eq((d[1]["ok"], d[1]["bytes"]), (True, cap), "10MiB body with the default cap")
        eq(d[2]["ok"], False, "10MiB + 1 byte with the default cap")


def test_option_timeout():
    """-t: an attempt that takes longer ends with an error, within the bound;
    -t 0 is no limit."""
    with Server() as s:
        urls = [s.url("/hang"), s.url("/delay/20000"), s.url("/ok"), s.url("/delay/100")]
        r = run_wpool(["-f", "jsonl", "-t", "1s"], stdin=lines_bytes(urls))
        eq(r.rc, 1, "exit status (%r)" % r)
        check(r.secs < 10, "the run took %.1f s with -t 1s (bound 10 s)" % r.secs)
        d = _jsonl(r, 4)
        for i in (1, 2):
            x = d[i]
            eq((x["ok"], x["status"]), (False, None), urls[i - 1])
            check("time" in x["error"].lower(), "the error does not say timeout: %r" % x)
            check(700 <= x["elapsed_ms"] < 10000, "elapsed_ms of a 1 s timeout: %r" % x)
        eq((d[3]["ok"], d[4]["ok"]), (True, True), "the fast jobs")
        # The same slow URL: over the limit fails, with no limit (0) it is ok.
        slow = [s.url("/delay/1200")]
        r = run_wpool(["-f", "jsonl", "--timeout", "300ms"], stdin=lines_bytes(slow))
        eq(_jsonl(r, 1)[1]["ok"], False, "/delay/1200 with -t 300ms")
        r = run_wpool(["-f", "jsonl", "-t", "0"], stdin=lines_bytes(slow))
        x = _jsonl(r, 1)[1]
        eq((x["ok"], x["status"]), (True, 200), "/delay/1200 with -t 0")
        check(x["elapsed_ms"] >= 1100, "elapsed_ms of /delay/1200: %r" % x)


def _unanswered_listener():
    """A listening socket whose accept queue is full: a further connect()
    gets no answer (its SYN is dropped). Returns (listener, clients)."""
    lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lst.bind(("127.0.0.1", 0))
    lst.listen(0)
    port = lst.getsockname()[1]
    clients = []
    for _ in range(64):
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.settimeout(0.3)
        try:
            c.connect(("127.0.0.1", port))
        except socket.timeout:
            c.close()
            return lst, clients  # the queue is full: this connect was unanswered
        clients.append(c)
    fail("could not fill the accept queue of a listening socket")


def test_option_connect_timeout():
    """--connect-timeout: a connect that gets no answer fails after that
    time, even though -t is much longer."""
    lst, clients = _unanswered_listener()
    try:
        port = lst.getsockname()[1]
        url = "http://127.0.0.1:%d/x" % port
        r = run_wpool(["-f", "jsonl", "--connect-timeout", "700ms", "-t", "60s"],
                      stdin=lines_bytes([url]))
        eq(r.rc, 1, "exit status (%r)" % r)
        check(r.secs < 10, "the run took %.1f s with --connect-timeout 700ms" % r.secs)
        x = _jsonl(r, 1)[1]
        eq((x["ok"], x["status"]), (False, None), "result")
        check(500 <= x["elapsed_ms"] < 10000, "elapsed_ms with --connect-timeout 700ms: %r" % x)
        check("time" in x["error"].lower() or "connect" in x["error"].lower(),
              "the error does not say why: %r" % x)
    finally:
        for c in clients:
            c.close()
        lst.close()


# ---- formats ----------------------------------------------------------------

def _mixed_urls(s):
    return [s.url("/ok"), s.url("/status/404"), s.url("/status/500"), s.url("/bytes/123"),
            s.url("/redirect/1"), "bobobo", "http://127.0.0.1:1/", s.url("/status/204"),
            s.url("/delay/200"), s.url("/status/201")]


def test_format_jsonl_schema_and_values():
    """jsonl: one object a line with exactly the keys id, url, ok, status,
    error, attempts, elapsed_ms, bytes, of the documented types; status and
    error null when there are none; the values are right."""
    with Server() as s:
        urls = _mixed_urls(s)
        r = run_wpool(["-f", "jsonl", "-w", "4"], stdin=lines_bytes(urls))
        eq(r.rc, 1, "exit status (%r)" % r)
        eq(len(r.out.splitlines()), len(urls), "one line per job")
        d = _jsonl(r, len(urls))
        for i, u in enumerate(urls, 1):
            eq(d[i]["url"], u, "url of job %d" % i)
        want = {  # id: ok, status, error is None, bytes
            1: (True, 200, True, 100), 2: (False, 404, False, None), 3: (False, 500, False, None),
            4: (True, 200, True, 123), 5: (True, 200, True, None), 6: (False, None, False, 0),
            7: (False, None, False, 0), 8: (True, 204, True, 0), 9: (True, 200, True, None),
            10: (True, 201, True, None),
        }
        for i, (ok, status, noerr, nbytes) in want.items():
            x = d[i]
            eq((x["ok"], x["status"], x["error"] is None), (ok, status, noerr), "job %d %r" % (i, x))
            if nbytes is not None:
                eq(x["bytes"], nbytes, "bytes of job %d" % i)
        check("404" in d[2]["error"], "the 404's error: %r" % d[2])
        eq(d[6]["attempts"], 0, "attempts of a bad line")
        for i in (1, 2, 9):
            eq(d[i]["attempts"], 1, "attempts of job %d (not retried)" % i)
        for i in (3, 7):  # a 500 and a refused connection: 2 retries by default
            eq(d[i]["attempts"], 3, "attempts of job %d (retried twice)" % i)
        check(d[9]["elapsed_ms"] >= 150, "elapsed_ms of /delay/200: %r" % d[9])
        # The raw line: JSON numbers and literals, not strings.
        line9 = [l for l in r.out.splitlines() if l.startswith(b'{"id":9,')]
        eq(len(line9), 1, "the line of job 9")
        check(re.search(rb'"ok":true', line9[0]) and re.search(rb'"error":null', line9[0]),
              "literals in %r" % line9[0])


def test_format_csv_header_and_rfc4180():
    """csv: the header is exactly id,url,ok,status,error,attempts,elapsed_ms,
    bytes; each row reads back with the csv module into 8 fields equal to
    the jsonl values."""
    with Server() as s:
        urls = _mixed_urls(s) + ['"quoted",with,commas', s.url('/ok?a="b",c')]
        rj = run_wpool(["-f", "jsonl", "-w", "4"], stdin=lines_bytes(urls))
        rc_ = run_wpool(["-f", "csv", "-w", "4"], stdin=lines_bytes(urls))
        eq(rc_.rc, 1, "exit status (%r)" % rc_)
        first = rc_.out.split(b"\n", 1)[0].rstrip(b"\r")
        eq(first, h.CSV_HEADER.encode(), "the first line of the csv output")
        header, rows = parse_csv(rc_.out)
        eq(len(rows), len(urls), "csv rows")
        dj = _jsonl(rj, len(urls))
        seen = set()
        for row in rows:
            eq(len(row), 8, "fields in csv row %r" % row)
            rec = dict(zip(header, row))
            i = int(rec["id"])
            check(i not in seen, "id %d twice in csv" % i)
            seen.add(i)
            j = dj[i]
            eq(rec["url"], j["url"], "csv url of job %d" % i)
            eq(rec["ok"], "true" if j["ok"] else "false", "csv ok of job %d" % i)
            eq(rec["status"], "" if j["status"] is None else str(j["status"]), "csv status of %d" % i)
            eq(rec["error"] == "", j["error"] is None, "csv error empty iff none, job %d" % i)
            eq(int(rec["attempts"]), j["attempts"], "csv attempts of job %d" % i)
            check(float(rec["elapsed_ms"]) >= 0, "csv elapsed_ms of job %d: %r" % (i, rec))
            eq(int(rec["bytes"]), j["bytes"], "csv bytes of job %d" % i)
        eq(seen, set(range(1, len(urls) + 1)), "csv ids")


def test_format_text_lines():
    """text: one line per job, starting `job <id> `, holding "done:" (ok) or
    "failed:" (not ok), and the URL."""
    with Server() as s:
        urls = _mixed_urls(s)
        rj = run_wpool(["-f", "jsonl", "-w", "4"], stdin=lines_bytes(urls))
        dj = _jsonl(rj, len(urls))
        for args in ([], ["-f", "text"], ["--format=text"]):
            r = run_wpool(args + ["-w", "4"], stdin=lines_bytes(urls))
            eq(r.rc, 1, "exit status (%r)" % r)
            lines = r.out.decode().split("\n")
            eq(lines[-1], "", "the output ends with a newline")
            lines = lines[:-1]
            eq(len(lines), len(urls), "text lines")
            seen = set()
            for ln in lines:
                m = re.match(r"^job (\d+) (done|failed):", ln)
                check(m, "text line %r" % ln)
                i = int(m.group(1))
                check(i not in seen, "id %d twice" % i)
                seen.add(i)
                eq(m.group(2), "done" if dj[i]["ok"] else "failed", "text of job %d: %r" % (i, ln))
                check(urls[i - 1] in ln, "text line %r does not hold its URL %r" % (ln, urls[i - 1]))
                if dj[i]["status"] is not None and dj[i]["ok"]:
                    check(str(dj[i]["status"]) in ln, "status missing in %r" % ln)
            eq(seen, set(range(1, len(urls) + 1)), "text ids")


def test_format_tricky_urls_stay_valid():
    """Invalid UTF-8, quotes, commas, backslashes, braces and control bytes
    in a line: jsonl stays valid UTF-8 JSON (url: the line with invalid
    UTF-8 replaced by U+FFFD), csv stays RFC 4180 with 8 fields, text stays
    one line per job."""
    with Server() as s:
        b = s.base.encode()
        raw = [
            b + b'/ok?q="quoted",comma,x',
            b + b"/ok?a=\\back\\slash\\",
            b + b"/ok?u=\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80",   # valid UTF-8
            b + b"/ok?bad=\xff\xfe",
            b + b"/ok?bad=\xc3\x28",                              # cut sequence
            b + b"/ok?bad=\xe2\x82",                              # truncated at end
            b + b"/ok?bad=\xed\xa0\x80x",                         # surrogate
            b + b"/ok?bad=\xf4\x90\x80\x80",                      # > U+10FFFF
            b + b"/ok?bad=\xc0\xaf",                              # overlong
            b + b"/ok?bad=\x80\xbf",                              # stray continuations
            b + b"/ok?x='single'&y=a,b",
            b + b'/ok?j={"a":[1,2],"b":"\\u0000"}',
            b + b"/ok?crlfish=%0D%0A,%22",
            b'"quoted",not,a,url',
            b"bad\xffline,\"x\"",
            b'http://x/\x01"q",',
            b"http://x/\x00nul",
            b"http://x/\x1b[2J\\",
            b'"',
            b",",
        ]
        stdin = b"\n".join(raw) + b"\n"
        rj = run_wpool(["-f", "jsonl", "-w", "4"], stdin=stdin)
        dj = _jsonl(rj, len(raw))
        for i, line in enumerate(raw, 1):
            eq(dj[i]["url"], line.decode("utf-8", "replace"), "jsonl url of job %d" % i)
        for i in range(1, 14):
            eq(dj[i]["ok"], True, "job %d (%r) %r" % (i, raw[i - 1], dj[i]))
        rc_ = run_wpool(["-f", "csv", "-w", "4"], stdin=stdin)
        header, rows = parse_csv(rc_.out)
        eq(",".join(header), h.CSV_HEADER, "csv header")
        eq(len(rows), len(raw), "csv rows")
        for row in rows:
            eq(len(row), 8, "fields in csv row %r" % row)
            i = int(row[0])
            line = raw[i - 1]
            check(row[1] in (line.decode("utf-8", "surrogateescape"), line.decode("utf-8", "replace")),
                  "csv url of job %d: %r, want %r" % (i, row[1], line))
            eq(row[2], "true" if dj[i]["ok"] else "false", "csv ok of job %d" % i)
        eq(sorted(int(r[0]) for r in rows), list(range(1, len(raw) + 1)), "csv ids")
        rt = run_wpool(["-f", "text", "-w", "4"], stdin=stdin)
        tl = rt.out.split(b"\n")
        eq(tl[-1], b"", "text ends with a newline")
        eq(len(tl) - 1, len(raw), "text: one line per job")
        ids = sorted(int(re.match(rb"^job (\d+) (done|failed):", l).group(1)) for l in tl[:-1])
        eq(ids, list(range(1, len(raw) + 1)), "text ids")


# ---- --ordered --------------------------------------------------------------

def test_ordered_output():
    """--ordered: the IDs come strictly increasing although completion order
    differs (a slow first job, fast ones after)."""
    with Server() as s:
        urls = [s.url("/delay/300")] + [s.url("/ok?i=%d" % i) for i in range(2, 32)]
        r = run_wpool(["-f", "jsonl", "-w", "8"], stdin=lines_bytes(urls))
        res = parse_jsonl(r.out)
        check(res[0]["id"] != 1, "without --ordered job 1 (/delay/300) came first: the "
              "test's premise (completion order differs) does not hold")
        check_ids(res, len(urls))
        for fmt in ("jsonl", "csv", "text"):
            r = run_wpool(["-f", fmt, "-w", "8", "--ordered"], stdin=lines_bytes(urls))
            eq(r.rc, 0, "exit status (%r)" % r)
            if fmt == "jsonl":
                ids = [x["id"] for x in parse_jsonl(r.out)]
            elif fmt == "csv":
                ids = [int(x[0]) for x in parse_csv(r.out)[1]]
            else:
                ids = [int(l.split()[1]) for l in r.out.decode().splitlines()]
            eq(ids, list(range(1, len(urls) + 1)), "--ordered ids (%s)" % fmt)
        # Many jobs, random delays, bad lines and errors mixed in, a small
        # window (-w 16 -q 4): still 1..N in order, each once.
        rng = random.Random(7)
        urls = []
        for i in range(400):
            k = rng.random()
            if k < 0.05:
                urls.append("bad line %d" % i)
            elif k < 0.15:
                urls.append(s.url("/status/%d" % rng.choice([404, 500, 503])))
            else:
                urls.append(s.url("/delay/%d" % rng.randint(0, 40)))
        r = run_wpool(["-f", "jsonl", "-w", "16", "-q", "4", "--ordered"],
                      stdin=lines_bytes(urls), timeout=120)
        eq(r.rc, 1, "exit status (%r)" % r)
        res = parse_jsonl(r.out)
        eq([x["id"] for x in res], list(range(1, len(urls) + 1)), "--ordered ids, 400 jobs")
        for x in res:
            check_jsonl_record(x)
            eq(x["url"], urls[x["id"] - 1], "url of job %d" % x["id"])


# ---- exit status and summary ------------------------------------------------

def test_exit_status():
    """0: every job ok; 1: some job not ok; 2: usage (see the option and
    input tests); 130: a signal (see the signal tests)."""
    with Server() as s:
        cases = [
            ([s.url("/ok"), s.url("/status/204")], [], 0),
            ([s.url("/ok"), s.url("/redirect/2")], [], 0),
            ([s.url("/redirect/1")], ["--max-redirects", "0"], 0),
            ([s.url("/status/399")], [], 0),
            ([s.url("/ok"), s.url("/status/400")], [], 1),
            ([s.url("/status/404")], [], 1),
            ([s.url("/status/599")], [], 1),
            ([s.url("/ok"), "bobobo"], [], 1),
            (["http://127.0.0.1:1/", s.url("/ok")], [], 1),
            ([s.url("/reset")], [], 1),
            ([s.url("/bytes/2000")], ["--max-body", "1000"], 1),
            ([], [], 0),
        ]
        for urls, args, want in cases:
            r = run_wpool(args, stdin=lines_bytes(urls))
            eq(r.rc, want, "exit status for %r %r (%r)" % (urls, args, r))
        r = run_wpool(["fetch-me-not"], stdin=b"")  # a missing FILE
        eq(r.rc, 2, "exit status for a missing FILE (%r)" % r)
        p = subprocess.run([h.WPOOL, "nosuchcommand"], capture_output=True, timeout=30 * h.SLOW)
        eq(p.returncode, 2, "exit status of an unknown command")


def test_summary_on_stderr_results_on_stdout():
    """The summary (counts) goes to stderr at the end, only there; results go
    to stdout, only there."""
    with Server() as s:
        urls = [s.url("/ok?i=1"), s.url("/status/404"), s.url("/ok?i=2"), "bobobo",
                s.url("/ok?i=3"), s.url("/status/500")]
        for fmt in ("text", "jsonl", "csv"):
            r = run_wpool(["-f", fmt], stdin=lines_bytes(urls))
            eq(r.rc, 1, "exit status (%r)" % r)
            sm = summary(r.err)
            eq(sm, {"jobs": 6, "ok": 3, "failed": 3, "canceled": 0}, "summary counts (%s)" % fmt)
            check(re.search(rb"2xx 3\b", r.err) and re.search(rb"4xx 1\b", r.err)
                  and re.search(rb"5xx 1\b", r.err) and re.search(rb"none 1\b", r.err),
                  "response classes in the summary: %r" % r.err)
            for ln in r.err.splitlines():
                check(not re.match(rb"^(job \d+ |\{|\d+,)", ln),
                      "a result line on stderr: %r" % ln)
            check(b"wpool:" not in r.out and b" jobs in " not in r.out,
                  "the summary on stdout (%s): %r" % (fmt, r.out))
            if fmt == "jsonl":
                eq(len(parse_jsonl(r.out)), 6, "results on stdout")
            elif fmt == "csv":
                eq(len(parse_csv(r.out)[1]), 6, "results on stdout")
            else:
                eq(len(r.out.splitlines()), 6, "results on stdout")
        # The summary is the last thing on stderr, after every result.
        r = run_wpool(["-f", "jsonl"], stdin=lines_bytes(urls[:1]))
        check(h.SUMMARY_RE.search(r.err.splitlines()[-1]), "the last stderr line: %r" % r.err)


# ---- errors, redirects, protocols -------------------------------------------

def test_errors_refused_unresolvable_reset_timeout():
    """Connection refused (port 1), a name that cannot resolve, a reset, a
    timeout: each is an error result (ok false, no status, a message)."""
    with Server() as s:
        urls = ["http://127.0.0.1:1/", "http://nothing.invalid/", s.url("/reset"),
                s.url("/hang"), s.url("/ok")]
        r = run_wpool(["-f", "jsonl", "-t", "2s"], stdin=lines_bytes(urls), timeout=120)
        eq(r.rc, 1, "exit status (%r)" % r)
        d = _jsonl(r, 5)
        for i in range(1, 5):
            eq((d[i]["ok"], d[i]["status"]), (False, None), "%s: %r" % (urls[i - 1], d[i]))
            check(len(d[i]["error"]) > 3, "a message for %s: %r" % (urls[i - 1], d[i]))
        check("connect" in d[1]["error"].lower() or "refused" in d[1]["error"].lower(),
              "refused: %r" % d[1]["error"])
        check("resolve" in d[2]["error"].lower() or "nothing.invalid" in d[2]["error"],
              "unresolvable: %r" % d[2]["error"])
        check("time" in d[4]["error"].lower(), "timeout: %r" % d[4]["error"])
        eq((d[5]["ok"], d[5]["status"]), (True, 200), "/ok after the errors")
        eq(summary(r.err), {"jobs": 5, "ok": 1, "failed": 4, "canceled": 0}, "summary")


def test_redirects_followed():
    """Redirects are followed by default; the final response decides."""
    with Server() as s:
        urls = [s.url("/redirect/3"), s.url("/redirect-to?url=%2Fstatus%2F404"),
                s.url("/redirect-to?url=" + s.url("/bytes/77").replace(":", "%3A").replace("/", "%2F")),
                s.url("/redirect-to?url=%2Fok&status=301"), s.url("/redirect-to?url=%2Fok&status=308")]
        r = run_wpool(["-f", "jsonl"], stdin=lines_bytes(urls))
        eq(r.rc, 1, "exit status (%r)" % r)
        d = _jsonl(r, 5)
        eq((d[1]["ok"], d[1]["status"]), (True, 200), "/redirect/3")
        eq((d[2]["ok"], d[2]["status"]), (False, 404), "redirect to a 404")
        eq((d[3]["ok"], d[3]["status"], d[3]["bytes"]), (True, 200, 77), "redirect to an absolute URL")
        eq((d[4]["ok"], d[4]["status"]), (True, 200), "301")
        eq((d[5]["ok"], d[5]["status"]), (True, 200), "308")
        st = s.stats()["paths"]
        eq((st.get("/redirect/0"), st.get("/status/404"), st.get("/bytes/77"), st.get("/ok")),
           (1, 1, 1, 2), "redirect targets fetched")


def test_protocol_restriction():
    """Only http and https: file://, ftp://, gopher:// lines are error jobs
    that fetch nothing, and redirects to them are refused (error)."""
    with Server() as s:
        enc = lambda u: u.replace(":", "%3A").replace("/", "%2F")  # noqa: E731
        lines = ["file:///etc/passwd", "ftp://127.0.0.1:%d/x" % s.port,
                 "gopher://127.0.0.1:%d/x" % s.port, "FILE:///etc/hostname",
                 "dict://127.0.0.1:%d/x" % s.port]
        redirs = [s.url("/redirect-to?url=" + enc(t)) for t in
                  ("file:///etc/passwd", "ftp://127.0.0.1:%d/x" % s.port,
                   "gopher://127.0.0.1:%d/x" % s.port)]
        control = s.url("/redirect-to?url=" + enc(s.url("/ok")))
        urls = lines + redirs + [control]
        r = run_wpool(["-f", "jsonl"], stdin=lines_bytes(urls))
        eq(r.rc, 1, "exit status (%r)" % r)
        d = _jsonl(r, len(urls))
        for i in range(1, len(lines) + 1):
            x = d[i]
            eq((x["ok"], x["status"], x["attempts"]), (False, None, 0), "line %r" % x["url"])
            check("scheme" in x["error"].lower() or "http" in x["error"].lower(),
                  "the error does not say why: %r" % x)
        for i in range(len(lines) + 1, len(lines) + len(redirs) + 1):
            x = d[i]
            eq(x["ok"], False, "redirect %r: %r" % (x["url"], x))
            check(x["error"], "redirect %r: no error" % x["url"])
            check(x["status"] in (None, 301, 302, 303, 307, 308), "status of %r" % x)
        eq((d[len(urls)]["ok"], d[len(urls)]["status"]), (True, 200), "redirect to http (control)")
        st = s.stats()
        eq(st["total_requests"], len(redirs) + 2, "requests at the server: %r" % st["paths"])


# ---- --deadline ---------------------------------------------------------------

def test_deadline_cancels_what_is_left():
    """--deadline 1s with /hang URLs: the run ends within a generous bound
    (< 10 s), every job read has exactly one result, the hanging ones
    'canceled'; exit 1."""
    with Server() as s:
        urls = []
        for i in range(6):
            urls += [s.url("/hang"), s.url("/ok?i=%d" % i)]
        urls += ["bobobo"]
        r = run_wpool(["-f", "jsonl", "-w", "16", "--deadline", "1s"],
                      stdin=lines_bytes(urls), timeout=60)
        check(r.secs < 10, "--deadline 1s run took %.1f s" % r.secs)
        eq(r.rc, 1, "exit status (%r)" % r)
        d = _jsonl(r, len(urls))
        for i, u in enumerate(urls, 1):
            x = d[i]
            if u.endswith("/hang"):
                eq((x["ok"], x["error"]), (False, "canceled"), "hanging job %d" % i)
                check(x["elapsed_ms"] >= 500, "a canceled /hang ran %r ms" % x["elapsed_ms"])
            elif u == "bobobo":
                check(x["error"] != "canceled", "a bad line canceled: %r" % x)
            else:
                eq((x["ok"], x["status"]), (True, 200), "fast job %d" % i)
        sm = summary(r.err)
        eq((sm["jobs"], sm["ok"], sm["canceled"]), (len(urls), 6, 6), "summary")
        wait_until(lambda: s.stats()["in_flight"] == 0, 10 * h.SLOW,
                   "the server to see the /hang connections closed")


def test_deadline_more_jobs_than_workers():
    """--deadline with more hanging jobs than workers: the jobs read (in
    flight, queued, or refused at submit) are IDs 1..K, each one result,
    all 'canceled'; reading ahead is bounded by -q: K <= workers + queue + 1
    (the +1: a line read while the queue was full). With --ordered, a
    hanging first job holds the later results back until the deadline,
    then all are written, in order, and reading waited for it too."""
    with Server() as s:
        for w, q, extra in ((4, None, []), (4, None, ["--ordered"]), (3, 2, []),
                            (2, 5, ["--ordered"])):
            queue = 2 * w if q is None else q
            urls = [s.url("/hang")] * 60
            args = (["-f", "jsonl", "-w", str(w), "--deadline", "1s"] + extra
                    + ([] if q is None else ["-q", str(q)]))
            r = run_wpool(args, stdin=lines_bytes(urls), timeout=60)
            check(r.secs < 10, "--deadline 1s run took %.1f s" % r.secs)
            eq(r.rc, 1, "exit status (%r)" % r)
            res = parse_jsonl(r.out)
            k = check_ids_prefix(res, "results %r" % args)
            check(w <= k <= w + queue + 1, "%r: %d results (jobs read), want %d..%d"
                  % (args, k, w, w + queue + 1))
            for x in res:
                check_jsonl_record(x)
                eq(x["error"], "canceled", "job %d %r" % (x["id"], args))
            if extra:
                eq([x["id"] for x in res], list(range(1, k + 1)), "--ordered ids")
            eq(summary(r.err)["canceled"], k, "summary canceled")
        urls = [s.url("/hang")] + [s.url("/ok?i=%d" % i) for i in range(60)]
        r = run_wpool(["-f", "jsonl", "-w", "8", "--ordered", "--deadline", "1s"],
                      stdin=lines_bytes(urls), timeout=60)
        check(r.secs < 10, "--deadline 1s run took %.1f s" % r.secs)
        eq(r.rc, 1, "exit status (%r)" % r)
        res = parse_jsonl(r.out)
        k = check_ids_prefix(res)
        eq([x["id"] for x in res], list(range(1, k + 1)), "--ordered ids")
        eq(res[0]["error"], "canceled", "the hanging job 1")
        for x in res[1:]:
            if x["id"] == k and x["error"] == "canceled":
                continue  # read while the window was full, refused at the deadline
            eq((x["ok"], x["status"]), (True, 200), "job %d" % x["id"])
        # The window of held results is workers + queue (8 + 16).
        check(8 <= k <= 8 + 16 + 1, "--ordered with a hanging first job read %d lines, "
              "want 8..25" % k)


def test_deadline_still_applies_after_a_first_sigint():
    """A first SIGINT drains; when the drain cannot end (/hang), --deadline
    still ends the run: every job one result ('canceled'), exit 130."""
    with Server() as s, _tmpdir() as d:
        f = write_file([s.url("/hang?i=%d" % i) for i in range(10)], dir=d)
        bg = Background(["-f", "jsonl", "-w", "16", "--deadline", "3s", f])
        wait_until(lambda: s.stats()["in_flight"] == 10 or bg.proc.poll() is not None,
                   30 * h.SLOW, "10 requests in flight")
        bg.signal(signal.SIGINT)
        r = bg.finish(30)
        check(r.secs < 10, "the run took %.1f s with --deadline 3s" % r.secs)
        eq(r.rc, 130, "exit status (%r)" % r)
        dd = check_ids(parse_jsonl(r.out), 10)
        for i in range(1, 11):
            eq(dd[i]["error"], "canceled", "job %d" % i)


def test_deadline_with_an_open_input():
    """--deadline is a limit on the whole run even while wpool waits for more
    input on a pipe that stays open: the run ends within a generous bound
    (< 10 s for --deadline 1s), the jobs read each have one result (the
    /hang one 'canceled'), exit 1."""
    with Server() as s:
        r_fd, w_fd = os.pipe()
        try:
            bg = Background(["-f", "jsonl", "--deadline", "1s"], stdin=r_fd)
            os.close(r_fd)
            r_fd = None
            os.write(w_fd, lines_bytes([s.url("/ok"), s.url("/hang")]))
            try:
                bg.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
            secs = time.monotonic() - bg.t0
            # Closing the input now would let a stuck wpool end too: a
            # missed deadline still fails on the time measured above.
            os.close(w_fd)
            w_fd = None
            r = bg.finish(30)
        finally:
            for fd in (r_fd, w_fd):
                if fd is not None:
                    os.close(fd)
        check(secs < 10, "--deadline 1s with the input still open: wpool still ran after "
              "%.1f s (it ended only when the input was closed: %r)" % (secs, r))
        eq(r.rc, 1, "exit status (%r)" % r)
        d = _jsonl(r, 2)
        eq((d[1]["ok"], d[1]["status"]), (True, 200), "job 1 (/ok)")
        eq(d[2]["error"], "canceled", "job 2 (/hang)")


def test_closed_output_with_an_open_input():
    """A closed output ends the run even while wpool waits for more input on
    a pipe that stays open (`producer | wpool fetch | head -n 5`): results
    of ~8 KB each (long URLs) make the output buffer fill after a few jobs;
    a first batch gets head its 5 lines (head exits); once that batch is
    done (wpool now waits for input), a second batch makes wpool write into
    the closed pipe. Then it must end, without the input ending."""
    with Server() as s:
        r_fd, w_fd = os.pipe()
        head = subprocess.Popen(["head", "-n", "5"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        big = lambda i: s.url("/ok?i=%d&pad=%s" % (i, "x" * 7900))  # noqa: E731
        try:
            bg = Background(["-f", "jsonl", "-w", "4"], stdin=r_fd, stdout=head.stdin)
            os.close(r_fd)
            r_fd = None
            head.stdin.close()
            head.stdin = None
            os.write(w_fd, lines_bytes([big(i) for i in range(12)]))
            try:
                out, _ = head.communicate(timeout=60 * h.SLOW)
            except subprocess.TimeoutExpired:
                fail("head -n 5 did not get 5 lines")
            eq(len(out.splitlines()), 5, "lines through head")
            wait_until(lambda: (s.stats()["total_requests"] == 12 and s.stats()["in_flight"] == 0)
                       or bg.proc.poll() is not None, 30 * h.SLOW, "the first batch done")
            check(bg.proc.poll() is None, "wpool ended with its input open before writing "
                  "to the closed output: %r" % (bg.proc.returncode,))
            os.write(w_fd, lines_bytes([big(i) for i in range(12, 24)]))
            wait_until(lambda: s.stats()["total_requests"] >= 13 or bg.proc.poll() is not None,
                       30 * h.SLOW, "the second batch to start")
            t = time.monotonic()
            try:
                bg.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
            took = time.monotonic() - t
            os.close(w_fd)
            w_fd = None
            r = bg.finish(30)
        finally:
            for fd in (r_fd, w_fd):
                if fd is not None:
                    os.close(fd)
            if head.poll() is None:
                head.kill()
                head.wait()
        check(took < 10, "the output closed, the input still open: wpool still ran %.1f s "
              "after the second batch (it ended only when the input was closed: %r)" % (took, r))
        check(r.rc >= 0, "wpool died of signal %d" % -r.rc)
        eq(r.rc, 1, "exit status with a closed output (%r)" % r)


# ---- signals ----------------------------------------------------------------

def _start_in_flight(s, args, n):
    """Starts `wpool fetch ARGS` in the background and waits until the
    server s has n requests in flight; fails if wpool ends before."""
    bg = Background(args)
    wait_until(lambda: s.stats()["in_flight"] == n or bg.proc.poll() is not None,
               60 * h.SLOW, "the server to see %d requests in flight" % n)
    if bg.proc.poll() is not None:
        fail("wpool exited before the signals: %r" % bg.finish(10))
    return bg


def _second_sigint(bg):
    """Sends the second SIGINT to bg (the first taken): how long until it
    exited (waiting up to 30 s, scaled), and its finished Run."""
    t2 = time.monotonic()
    bg.signal(signal.SIGINT)
    try:
        bg.proc.wait(30 * h.SLOW)
    except subprocess.TimeoutExpired:
        pass
    took = time.monotonic() - t2
    return took, bg.finish(10)


def test_shutdown_now_bound_on_second_sigint():
    """50 /hang URLs and one /delay/3000, -w 64: the first SIGINT drains
    (the /delay job finishes ok, the /hang ones go on); the second aborts
    them: wpool exits within 2 s of it (the contract is 100 ms for the
    abort), exit 130, each of the 51 jobs exactly one result, the /hang ones
    'canceled'."""
    with Server() as s:
        urls = [s.url("/delay/3000")] + [s.url("/hang?i=%d" % i) for i in range(50)]
        with _tmpdir() as d:
            f = write_file(urls, dir=d)
            bg = _start_in_flight(s, ["-f", "jsonl", "-w", "64", f], 51)
            bg.signal(signal.SIGINT)
            bg.wait_signal_taken(signal.SIGINT)
            eq(s.stats()["in_flight"], 51, "in flight just after the first SIGINT was taken "
               "(the /delay/3000 should not have ended yet)")
            # The drain: /delay/3000 ends normally, the /hang stay.
            wait_until(lambda: s.stats()["in_flight"] <= 50 or bg.proc.poll() is not None,
                       30 * h.SLOW, "the /delay/3000 job to end")
            if bg.proc.poll() is not None:
                fail("wpool exited on the first SIGINT with /hang in flight: %r" % bg.finish(10))
            eq(s.stats()["in_flight"], 50, "/hang in flight after the first SIGINT")
            took, r = _second_sigint(bg)
        check(took < 2.0, "wpool exited %.2f s after the second SIGINT (bound 2 s)" % took)
        eq(r.rc, 130, "exit status (%r)" % r)
        res = parse_jsonl(r.out)
        dd = check_ids(res, 51)
        eq((dd[1]["ok"], dd[1]["status"], dd[1]["error"]), (True, 200, None),
           "the /delay/3000 job, drained after the first SIGINT")
        for i in range(2, 52):
            eq(dd[i]["error"], "canceled", "job %d" % i)
        eq(summary(r.err)["canceled"], 50, "summary canceled")
        wait_until(lambda: s.stats()["in_flight"] == 0, 10 * h.SLOW,
                   "the server to see the aborted connections closed")


def test_sigterm_first_drains():
    """SIGTERM, like a first SIGINT: reading stops, what was read finishes
    (nothing 'canceled'), exit 130, IDs 1..K each once."""
    with Server() as s:
        urls = [s.url("/delay/%d" % (20 + i % 30)) for i in range(3000)]
        with _tmpdir() as d:
            f = write_file(urls, dir=d)
            bg = Background(["-f", "jsonl", "-w", "8", f])
            wait_until(lambda: s.stats()["total_requests"] >= 30 or bg.proc.poll() is not None,
                       30 * h.SLOW, "30 requests at the server")
            bg.signal(signal.SIGTERM)
            r = bg.finish(60)
        eq(r.rc, 130, "exit status (%r)" % r)
        res = parse_jsonl(r.out)
        k = check_ids_prefix(res)
        check(30 <= k < len(urls), "%d results" % k)
        for x in res:
            check_jsonl_record(x)
            eq((x["ok"], x["status"]), (True, 200), "job %r" % x)
        eq(summary(r.err)["jobs"], k, "summary jobs")
        eq(s.stats()["total_requests"], k, "requests at the server = results")


def test_sigint_stops_reading_an_open_stdin():
    """A first SIGINT while wpool waits for more input on a pipe that stays
    open: wpool stops reading and exits (130) with the results of what it
    read, without waiting for the input to end."""
    with Server() as s:
        r_fd, w_fd = os.pipe()
        try:
            bg = Background(["-f", "jsonl"], stdin=r_fd)
            os.close(r_fd)
            r_fd = None
            os.write(w_fd, lines_bytes([s.url("/ok?i=%d" % i) for i in range(5)] + ["bobobo"]))
            wait_until(lambda: (s.stats()["total_requests"] == 5 and s.stats()["in_flight"] == 0)
                       or bg.proc.poll() is not None, 30 * h.SLOW, "5 requests done at the server")
            check(bg.proc.poll() is None, "wpool exited with its input still open")
            bg.signal(signal.SIGINT)
            r = bg.finish(10)
        finally:
            if r_fd is not None:
                os.close(r_fd)
            os.close(w_fd)
        eq(r.rc, 130, "exit status (%r)" % r)
        d = _jsonl(r, 6)
        for i in range(1, 6):
            eq(d[i]["ok"], True, "job %d" % i)
        eq(d[6]["ok"], False, "the bad line")


def _expect(url):
    """What a result for url must say (ok, status), unless canceled."""
    if url.startswith("bad"):
        return (False, None)
    m = re.search(r"/status/(\d+)", url)
    if m:
        st = int(m.group(1))
        return (st < 400, st)
    return (True, 200)


def test_exactly_once_under_signals():
    """Repeated, seeded: a few thousand URLs (/delay/0..50, /status codes,
    bad lines); a SIGINT at a random moment, sometimes a second one later.
    Then the IDs are exactly 1..K (no gap, no duplicate), each result is
    the right one for its URL, a single SIGINT leaves nothing 'canceled'
    (what was read drained), the server saw exactly one request per
    attempt of the fetched jobs (-r 0 or 1: a job waiting for its retry
    when the signal comes is drained too), exit 130. WPOOL_TEST_SEED=N
    replays a run."""
    seed = int(os.environ.get("WPOOL_TEST_SEED") or random.SystemRandom().randrange(1 << 30))
    rounds = int(os.environ.get("WPOOL_TEST_ROUNDS") or 20)
    print("seed %d (WPOOL_TEST_SEED=%d replays it), %d rounds" % (seed, seed, rounds))
    rng = random.Random(seed)
    with Server() as s, _tmpdir() as d:
        for rnd in range(rounds):
            n = rng.randint(2000, 4000)
            urls = []
            for _ in range(n):
                k = rng.random()
                if k < 0.04:
                    urls.append("bad-line-%d" % rng.randint(0, 999))
                elif k < 0.30:
                    urls.append(s.url("/status/%d" % rng.choice([200, 201, 204, 404, 410, 500, 503])))
                else:
                    urls.append(s.url("/delay/%d" % rng.randint(0, 50)))
            f = write_file(urls, dir=d)
            workers = rng.choice([8, 16, 32, 64])
            fmt = rng.choice(["jsonl", "csv"])
            ordered = rng.random() < 0.3
            loops = rng.choice([None, None, 1, 2, 3])
            retries = rng.choice([0, 1])
            args = (["-f", fmt, "-w", str(workers), "-r", str(retries), "--backoff", "1ms,5ms"]
                    + (["--ordered"] if ordered else [])
                    + (["--loops", str(loops)] if loops else []) + [f])
            mode = rng.choice(["lines", "requests"])
            # Bounded so that a round stays short with few workers.
            cap = 60 * workers
            trigger = (rng.randint(1, min(n // 2, cap)) if mode == "lines"
                       else rng.randint(1, min(int(n * 0.8), cap)))
            double = rng.random() < 0.4
            second_after = rng.randint(0, 3 * workers)
            desc = "round %d (seed %d): %d urls, %s, trigger %s>=%d, double %s(+%d requests)" % (
                rnd, seed, n, " ".join(args[:-1]), mode, trigger, double, second_after)
            print(desc)
            s.reset_stats()
            bg = Background(args)
            if mode == "lines":
                more = bg.wait_lines(trigger + (1 if fmt == "csv" else 0), 120)
                check(more, "%s: the output ended before %d lines" % (desc, trigger))
            else:
                wait_until(lambda: s.stats()["total_requests"] >= trigger or bg.proc.poll() is not None,
                           120 * h.SLOW, "%d requests at the server" % trigger)
                check(bg.proc.poll() is None, "%s: wpool ended before the signal" % desc)
            bg.signal(signal.SIGINT)
            sent_second = False
            if double:
                bg.wait_signal_taken(signal.SIGINT)
                base = s.stats()["total_requests"]
                wait_until(lambda: bg.proc.poll() is not None
                           or s.stats()["total_requests"] >= base + second_after,
                           60 * h.SLOW, "more requests before the second SIGINT")
                if bg.proc.poll() is None:
                    bg.signal(signal.SIGINT)
                    sent_second = True
            r = bg.finish(120)
            eq(r.rc, 130, "%s: exit status (%r)" % (desc, r))
            if fmt == "jsonl":
                res = parse_jsonl(r.out)
                for x in res:
                    check_jsonl_record(x)
            else:
                header, rows = parse_csv(r.out)
                eq(",".join(header), h.CSV_HEADER, "csv header")
                res = []
                for row in rows:
                    eq(len(row), 8, "%s: csv fields %r" % (desc, row))
                    res.append({"id": int(row[0]), "url": row[1], "ok": row[2] == "true",
                                "status": int(row[3]) if row[3] else None,
                                "error": row[4] or None, "attempts": int(row[5])})
            k = check_ids_prefix(res, desc)
            if ordered:
                eq([x["id"] for x in res], list(range(1, k + 1)), "%s: --ordered ids" % desc)
            canceled = 0
            for x in res:
                eq(x["url"], urls[x["id"] - 1], "%s: url of job %d" % (desc, x["id"]))
                if x["error"] == "canceled":
                    canceled += 1
                    check(sent_second, "%s: job %d canceled after a single SIGINT" % (desc, x["id"]))
                    continue
                eq((x["ok"], x["status"]), _expect(x["url"]), "%s: job %d %r" % (desc, x["id"], x))
            sm = summary(r.err)
            eq((sm["jobs"], sm["canceled"]), (k, canceled), "%s: summary" % desc)
            fetched = sum(x["attempts"] for x in res if not x["url"].startswith("bad"))
            answered = sum(1 for x in res if x["status"] is not None)
            total = s.stats()["total_requests"]
            for x in res:
                check(x["attempts"] <= retries + 1, "%s: attempts of %r" % (desc, x))
            if not sent_second:
                eq(total, fetched, "%s: requests at the server = attempts of fetched jobs" % desc)
            else:
                check(answered <= total <= fetched,
                      "%s: requests at the server %d, want %d..%d" % (desc, total, answered, fetched))
            print("  -> %d results, %d canceled, exit %d" % (k, canceled, r.rc))
            os.unlink(f)
            wait_until(lambda: s.stats()["in_flight"] == 0, 10 * h.SLOW, "the server idle")


# ---- output pipe, scale, concurrency -----------------------------------------

def test_closed_output_pipe_ends_the_run():
    """`wpool fetch BIG | head -n 5`: wpool ends promptly when head has gone,
    without dying of SIGPIPE (or another signal); exit 1 (cut short by a
    closed output)."""
    with Server() as s, _tmpdir() as d:
        n = 200000
        f = write_file([s.url("/delay/%d" % (i % 10)) for i in range(n)], dir=d)
        head = subprocess.Popen(["head", "-n", "5"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        bg = Background(["-w", "16", f], stdout=head.stdin)
        head.stdin.close()  # only wpool holds the write end now
        head.stdin = None
        try:
            out, _ = head.communicate(timeout=60 * h.SLOW)
        except subprocess.TimeoutExpired:
            head.kill()
            bg.kill()
            fail("head -n 5 did not get 5 lines within %d s" % (60 * h.SLOW))
        eq(head.returncode, 0, "head's exit status")
        lines = out.decode().splitlines()
        eq(len(lines), 5, "lines through head")
        for ln in lines:
            check(re.match(r"^job \d+ (done|failed): ", ln), "line %r" % ln)
        t = time.monotonic()
        r = bg.finish(30)
        took = time.monotonic() - t
        note("wpool fetch BIG | head -n 5: wpool exit status %r, %.2f s after head ended, "
             "%d of %d requests made" % (r.rc, took, s.stats()["total_requests"], n))
        check(r.rc >= 0, "wpool died of signal %d" % -r.rc)
        eq(r.rc, 1, "exit status with a closed output (%r)" % r)
        check(s.stats()["total_requests"] < n, "wpool fetched the whole list into a closed pipe")
        sm = summary(r.err)
        check(sm["jobs"] < n, "summary: %r" % sm)


def test_100k_urls_exactly_once():
    """100,000 URLs against /ok with -w 64 (fewer under TSan): every ID
    1..100000 exactly once, all ok, and the server saw 100,000 requests."""
    n = 100000
    workers = 64
    with Server() as s, _tmpdir() as d:
        f = write_file([s.url("/ok")] * n, dir=d)
        r = run_wpool(["-f", "csv", "-w", str(workers), f], timeout=280 // h.SLOW)
        eq(r.rc, 0, "exit status (%r)" % r)
        header, rows = parse_csv(r.out)
        eq(",".join(header), h.CSV_HEADER, "csv header")
        eq(len(rows), n, "results")
        seen = bytearray(n + 1)
        for row in rows:
            i = int(row[0])
            check(1 <= i <= n and not seen[i], "id %d out of range or twice" % i)
            seen[i] = 1
            if row[2] != "true" or row[3] != "200" or row[7] != "100":
                fail("job %d: %r" % (i, row))
        eq(summary(r.err), {"jobs": n, "ok": n, "failed": 0, "canceled": 0}, "summary")
        st = s.stats()
        eq((st["total_requests"], st["paths"].get("/ok")), (n, n), "requests at the server")
        check(st["max_concurrent"] <= workers, "max concurrent %d > -w %d" % (st["max_concurrent"], workers))
        note("100k: %.1f s with -w %d (%s)" % (r.secs, workers, h.FLAVOUR))


def test_many_multi_handles_exactly_once_and_shutdown_now():
    """One loop of 300 transfers drives three curl multi handles (128 at
    most each). 6,000 URLs over two host names (127.0.0.1 and localhost,
    each name's transfers meet its connections in one handle): every ID
    exactly once, all ok, at most 300 in flight at the server. Then 300
    /hang URLs (spread over the three handles) and SIGINT twice: every one
    'canceled', at once (within 5 s, generous)."""
    with Server() as s, _tmpdir() as d:
        hosts = ["127.0.0.1:%d" % s.port, "localhost:%d" % s.port]
        n = 6000 // h.SLOW
        urls = ["http://%s/ok?i=%d" % (hosts[i % 2], i) for i in range(n)]
        f = write_file(urls, dir=d)
        r = run_wpool(["-f", "jsonl", "-w", "300", "--loops", "1", f], timeout=120)
        eq(r.rc, 0, "exit status (%r)" % r)
        dd = _jsonl(r, n)
        for i in range(1, n + 1):
            if (dd[i]["ok"], dd[i]["status"]) != (True, 200):
                fail("job %d: %r" % (i, dd[i]))
        st = s.stats()
        eq(st["total_requests"], n, "requests at the server")
        check(st["max_concurrent"] <= 300, "max concurrent %d > 300" % st["max_concurrent"])
        s.reset_stats()
        f = write_file([s.url("/hang?i=%d" % i) for i in range(300)], dir=d)
        bg = _start_in_flight(s, ["-f", "jsonl", "-w", "300", "--loops", "1", f], 300)
        bg.signal(signal.SIGINT)
        bg.wait_signal_taken(signal.SIGINT)
        took, r = _second_sigint(bg)
        check(took < 5.0 * h.SLOW, "exit %.2f s after the second SIGINT" % took)
        eq(r.rc, 130, "exit status (%r)" % r)
        dd = check_ids(parse_jsonl(r.out), 300)
        for i in range(1, 301):
            eq(dd[i]["error"], "canceled", "hanging job %d" % i)


def test_workers_limit_respected():
    """--workers N: the server never sees more than N requests in flight,
    and the pool does use several (/delay/50 URLs)."""
    with Server() as s:
        # The last: the maximum, more than the jobs: all 200 at once.
        for w, count, delay, at_least in ((5, 60, 50, 2), (1, 12, 20, 1), (20, 120, 100, 2),
                                          (10000, 200, 1000, 150)):
            s.reset_stats()
            urls = [s.url("/delay/%d?i=%d" % (delay, i)) for i in range(count)]
            r = run_wpool(["-f", "jsonl", "--workers", str(w)], stdin=lines_bytes(urls), timeout=120)
            eq(r.rc, 0, "exit status (%r)" % r)
            _jsonl(r, count)
            st = s.stats()
            eq(st["total_requests"], count, "requests at the server")
            check(at_least <= st["max_concurrent"] <= w,
                  "-w %d: the server saw at most %d in flight, want %d..%d"
                  % (w, st["max_concurrent"], at_least, w))
            note("-w %d: max concurrent at the server %d" % (w, st["max_concurrent"]))


def test_help_and_version():
    """--help prints the usage on stdout, exit 0; --version prints the
    version."""
    for args in (["fetch", "--help"], ["fetch", "-h"]):
        p = subprocess.run([h.WPOOL] + args, capture_output=True, timeout=30 * h.SLOW)
        eq(p.returncode, 0, "exit status of wpool %s" % " ".join(args))
        check(p.stdout.startswith(b"Usage: ") and b"fetch" in p.stdout and b"--workers" in p.stdout,
              "help text: %r" % p.stdout[:200])
        h.check_no_sanitizer_report(p.stderr)
    for args in (["--version"], ["fetch", "--version"], ["-V"]):
        p = subprocess.run([h.WPOOL] + args, capture_output=True, timeout=30 * h.SLOW)
        eq(p.returncode, 0, "exit status of wpool %s" % " ".join(args))
        check(re.match(rb"^wpool \d+\.\d+\.\d+ \(libcurl [^,]+, ", p.stdout),
              "version: %r" % p.stdout)
        # The allocator: mimalloc where the build linked it, and then really
        # in use (malloc() returns its memory); the sanitizer builds keep
        # their runtime's.
        check(b"not in use" not in p.stdout, "version: %r" % p.stdout)
        eq(b"mimalloc" in p.stdout, _built_with_mimalloc(), "mimalloc in %r" % p.stdout)


def _built_with_mimalloc():
    """Whether the CMake build of the binary under test linked mimalloc (it
    records that as WPOOL_LINKED_MIMALLOC in its cache)."""
    cache = os.path.join(os.path.dirname(h.WPOOL), "CMakeCache.txt")
    try:
        with open(cache) as f:
            text = f.read()
    except OSError:
        fail("no CMakeCache.txt next to %s" % h.WPOOL)
    m = re.search(r"^WPOOL_LINKED_MIMALLOC:INTERNAL=(\w+)$", text, re.M)
    if not m:
        fail("no WPOOL_LINKED_MIMALLOC in %s" % cache)
    return m.group(1) == "ON"


if __name__ == "__main__":
    sys.exit(h.main(globals(), sys.argv))
