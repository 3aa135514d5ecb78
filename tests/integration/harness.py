"""Shared helpers of the integration tests: they drive the real wpool binary
against the project's HTTP test server (wpool-testserver), on 127.0.0.1
only. Python 3 standard library only.

Binaries: $WPOOL_BIN (wpool) and $WPOOL_TESTSERVER (the server), as CTest
sets them; by default those of build/plain.

Rules the helpers enforce, so that each test does not have to:
  - nothing ever hangs: every wait has a bound, after which the process
    group is killed and the test fails, saying what it was waiting for;
  - coordination waits for a condition (the server's /stats, lines of
    wpool's output, a signal consumed), never for a fixed time;
  - a sanitizer report on wpool's stderr fails the test, whatever the
    exit status;
  - results are parsed with the json and csv modules, strictly.

The bounds are generous and are multiplied by SLOW under a sanitizer
(ASan, TSan), which detects the flavour from the binary itself.
"""
import csv
import http.client
import io
import json
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
WPOOL = os.path.abspath(os.environ.get("WPOOL_BIN")
                        or os.path.join(ROOT, "build", "plain", "wpool"))
SERVER = os.path.abspath(os.environ.get("WPOOL_TESTSERVER")
                         or os.path.join(ROOT, "build", "plain", "tests", "wpool-testserver"))

JSONL_KEYS = ("id", "url", "ok", "status", "error", "attempts", "elapsed_ms", "bytes")
CSV_HEADER = "id,url,ok,status,error,attempts,elapsed_ms,bytes"

SANITIZER_MARKS = (
    b"ERROR: AddressSanitizer",
    b"ERROR: LeakSanitizer",
    b"WARNING: ThreadSanitizer",
    b"ThreadSanitizer: ",
    b"runtime error:",
    b"UndefinedBehaviorSanitizer",
)


def _flavour(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return "plain"
    if b"__tsan_init" in data:
        return "tsan"
    if b"__asan_init" in data:
        return "asan"
    return "plain"


FLAVOUR = _flavour(WPOOL)
# Timeouts (never contract bounds) are multiplied by this.
SLOW = {"plain": 1, "asan": 2, "tsan": 4}[FLAVOUR]


class Failure(AssertionError):
    pass


def fail(msg):
    raise Failure(msg)


def check(cond, msg):
    if not cond:
        fail(msg)


def eq(got, want, what):
    if got != want:
        fail("%s: got %r, want %r" % (what, got, want))


def note(msg):
    """Information for whoever reads the test log (not a failure)."""
    sys.stderr.write("note: %s\n" % msg)
    sys.stderr.flush()


def wait_until(pred, timeout, what, interval=0.01):
    """Polls pred() until it returns a true value, which it returns; fails
    after timeout seconds, naming what was awaited."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            fail("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(interval)


def _kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def check_no_sanitizer_report(err, who="wpool"):
    for m in SANITIZER_MARKS:
        if m in err:
            i = err.find(m)
            fail("%s: sanitizer report on stderr:\n%s" % (
                who, err[max(0, i - 200):i + 4000].decode("utf-8", "replace")))


# ---- the test server --------------------------------------------------------

class Server:
    """wpool-testserver on 127.0.0.1, on a port the kernel picks."""

    def __init__(self):
        self._err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [SERVER, "--port", "0"], stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=self._err, start_new_session=True)
        self.port = None
        end = time.monotonic() + 30 * SLOW
        line = b""
        while not line.endswith(b"\n"):
            left = end - time.monotonic()
            r, _, _ = select.select([self.proc.stdout], [], [], max(0, left))
            if not r:
                self.kill()
                fail("the test server did not print its port within %d s" % (30 * SLOW))
            b = os.read(self.proc.stdout.fileno(), 1)
            if not b:
                self.kill()
                fail("the test server exited before printing its port: %s"
                     % self.stderr_text())
            line += b
        m = re.match(rb"^port=(\d+)\n$", line)
        check(m, "the test server's first line: %r" % line)
        self.port = int(m.group(1))
        self.base = "http://127.0.0.1:%d" % self.port

    def url(self, path):
        return self.base + path

    def _get(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10 * SLOW)
        try:
            c.request("GET", path)
            r = c.getresponse()
            body = r.read()
            eq(r.status, 200, "GET %s status" % path)
            return body
        finally:
            c.close()

    def stats(self):
        return json.loads(self._get("/stats"))

    def reset_stats(self):
        self._get("/stats/reset")

    def stderr_text(self):
        self._err.seek(0)
        return self._err.read().decode("utf-8", "replace")

    def kill(self):
        _kill_group(self.proc)
        self.proc.wait()

    def stop(self):
        """SIGTERM, then a bounded wait. A server that misbehaves is noted,
        not failed: it is not the program under test."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10 * SLOW)
            except subprocess.TimeoutExpired:
                note("the test server did not exit on SIGTERM; killed")
                self.kill()
        rc = self.proc.returncode
        if rc != 0:
            note("the test server exited with %r: %s" % (rc, self.stderr_text()[-2000:]))
        self.proc.stdout.close()
        self._err.close()
        return rc

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


# ---- running wpool ----------------------------------------------------------

class Run:
    def __init__(self, args, rc, out, err, secs):
        self.args, self.rc, self.out, self.err, self.secs = args, rc, out, err, secs

    def __repr__(self):
        return "wpool %s -> rc %r in %.2fs\nstderr: %s" % (
            " ".join(self.args), self.rc, self.secs,
            self.err[-1500:].decode("utf-8", "replace"))


def write_file(lines, dir=None, raw=None):
    """A temporary file holding lines (str or bytes), one per line, or raw
    bytes as they are. The caller removes it (or it lives in a temp dir)."""
    fd, path = tempfile.mkstemp(prefix="wpool-it-", suffix=".txt", dir=dir)
    with os.fdopen(fd, "wb") as f:
        if raw is not None:
            f.write(raw)
        else:
            for ln in lines:
                f.write(ln if isinstance(ln, bytes) else ln.encode())
                f.write(b"\n")
    return path


def lines_bytes(lines):
    return b"".join((l if isinstance(l, bytes) else l.encode()) + b"\n" for l in lines)


def run_wpool(args, stdin=None, timeout=60, sanitizer_check=True, env=None):
    """Runs `wpool fetch ARGS` to completion. stdin: bytes to feed, a file
    object, or None (empty). env: variables to set (a value None unsets).
    Kills it and fails after timeout*SLOW s."""
    args = [str(a) for a in args]
    penv = None
    if env:
        penv = dict(os.environ)
        for k, v in env.items():
            if v is None:
                penv.pop(k, None)
            else:
                penv[k] = v
    if isinstance(stdin, (bytes, bytearray)):
        sin, data = subprocess.PIPE, bytes(stdin)
    elif stdin is None:
        sin, data = subprocess.DEVNULL, None
    else:
        sin, data = stdin, None
    t0 = time.monotonic()
    p = subprocess.Popen([WPOOL, "fetch"] + args, stdin=sin, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, start_new_session=True, env=penv)
    try:
        out, err = p.communicate(data, timeout=timeout * SLOW)
    except subprocess.TimeoutExpired:
        _kill_group(p)
        out, err = p.communicate()
        fail("wpool hung: killed after %d s: wpool fetch %s\nstderr: %s" % (
            timeout * SLOW, " ".join(args)[:500], err[-2000:].decode("utf-8", "replace")))
    secs = time.monotonic() - t0
    if sanitizer_check:
        check_no_sanitizer_report(err)
    return Run(args, p.returncode, out, err, secs)


# Processes a test started in the background: whatever is still running
# when the test ends (a failure mid-way, before its kill or finish) is
# killed, with its group, so that a failed test leaves nothing behind (a
# wpool waiting out a 10-hour backoff, say).
_started = []


def track(proc):
    """Registers a Popen started with start_new_session=True; returns it."""
    _started.append(proc)
    return proc


def _reap_started():
    while _started:
        p = _started.pop()
        if p.poll() is None:
            _kill_group(p)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                pass


class Background:
    """wpool fetch running in the background; its stdout is read line by
    line as it comes (wait_lines), its stderr collected."""

    def __init__(self, args, stdin=None, stdout=None):
        self.args = [str(a) for a in args]
        self.t0 = time.monotonic()
        self.proc = track(subprocess.Popen(
            [WPOOL, "fetch"] + self.args,
            stdin=subprocess.DEVNULL if stdin is None else stdin,
            stdout=subprocess.PIPE if stdout is None else stdout,
            stderr=subprocess.PIPE, start_new_session=True))
        self.lines = []
        self.eof = False
        self._cv = threading.Condition()
        self._err = []
        self._threads = []
        if stdout is None:
            self._threads.append(threading.Thread(target=self._read_out, daemon=True))
        self._threads.append(threading.Thread(target=self._read_err, daemon=True))
        for t in self._threads:
            t.start()

    def _read_out(self):
        for line in self.proc.stdout:
            with self._cv:
                self.lines.append(line)
                self._cv.notify_all()
        with self._cv:
            self.eof = True
            self._cv.notify_all()

    def _read_err(self):
        self._err.append(self.proc.stderr.read())

    @property
    def pid(self):
        return self.proc.pid

    def wait_lines(self, n, timeout):
        """Waits until n lines were read (True) or the output ended (False)."""
        end = time.monotonic() + timeout * SLOW
        with self._cv:
            while len(self.lines) < n and not self.eof:
                left = end - time.monotonic()
                if left <= 0:
                    self.kill()
                    fail("timed out waiting for %d output lines (got %d)" % (n, len(self.lines)))
                self._cv.wait(left)
            return len(self.lines) >= n

    def signal(self, sig):
        """Sends sig unless the process was already reaped."""
        if self.proc.returncode is None:
            self.proc.send_signal(sig)

    def wait_signal_taken(self, sig, timeout=10):
        """Waits until sig is no longer pending for the process (it was
        consumed, by sigwaitinfo in wpool's controller), or it exited.
        Two SIGINTs sent while the first is pending would be one."""
        bit = 1 << (sig - 1)
        path = "/proc/%d/status" % self.proc.pid

        def taken():
            if self.proc.poll() is not None:
                return True
            try:
                with open(path) as f:
                    st = f.read()
            except OSError:
                return True
            pend = 0
            for ln in st.splitlines():
                if ln.startswith(("ShdPnd:", "SigPnd:")):
                    pend |= int(ln.split()[1], 16)
            if "State:\tZ" in st:
                return True
            return not pend & bit

        wait_until(taken, timeout * SLOW, "signal %d to be taken by wpool" % sig,
                   interval=0.002)

    def kill(self):
        _kill_group(self.proc)

    def finish(self, timeout):
        """Waits for the exit (killing and failing after timeout*SLOW s);
        returns a Run whose out is every stdout line."""
        try:
            self.proc.wait(timeout * SLOW)
        except subprocess.TimeoutExpired:
            self.kill()
            self.proc.wait()
            for t in self._threads:
                t.join(10)
            fail("wpool did not exit within %d s: wpool fetch %s\nstderr: %s" % (
                timeout * SLOW, " ".join(self.args)[:300],
                b"".join(self._err)[-2000:].decode("utf-8", "replace")))
        end_t = time.monotonic()
        for t in self._threads:
            t.join(30 * SLOW)
            check(not t.is_alive(), "a reader of wpool's output did not finish")
        err = b"".join(self._err)
        check_no_sanitizer_report(err)
        return Run(self.args, self.proc.returncode, b"".join(self.lines), err,
                   end_t - self.t0)


# ---- parsing the results ----------------------------------------------------

def parse_jsonl(out):
    """Every line one JSON object; returns them in output order."""
    if not out:
        return []
    check(out.endswith(b"\n"), "jsonl output does not end with a newline: %r" % out[-100:])
    res = []
    for i, line in enumerate(out[:-1].split(b"\n")):
        try:
            text = line.decode("utf-8")  # strict: the output must be UTF-8
            obj = json.loads(text)
        except ValueError as e:
            fail("jsonl line %d is not valid UTF-8 JSON (%s): %r" % (i + 1, e, line[:300]))
        check(isinstance(obj, dict), "jsonl line %d is not an object: %r" % (i + 1, line[:300]))
        res.append(obj)
    return res


def check_jsonl_record(r):
    """Exactly the documented keys, with the documented types."""
    eq(sorted(r), sorted(JSONL_KEYS), "jsonl keys of %r" % r)
    check(type(r["id"]) is int and r["id"] >= 1, "id: %r" % r)
    check(type(r["url"]) is str, "url: %r" % r)
    check(type(r["ok"]) is bool, "ok: %r" % r)
    check(r["status"] is None or (type(r["status"]) is int and 100 <= r["status"] <= 999),
          "status: %r" % r)
    check(r["error"] is None or (type(r["error"]) is str and r["error"] != ""), "error: %r" % r)
    check(type(r["attempts"]) is int and r["attempts"] >= 0, "attempts: %r" % r)
    check(type(r["elapsed_ms"]) in (int, float) and r["elapsed_ms"] >= 0, "elapsed_ms: %r" % r)
    check(type(r["bytes"]) is int and r["bytes"] >= 0, "bytes: %r" % r)
    check(r["ok"] == (r["error"] is None), "ok is true exactly when error is null: %r" % r)
    if r["ok"]:
        check(r["status"] is not None and r["status"] < 400, "ok needs a status < 400: %r" % r)


def parse_csv(out):
    """Returns (header, rows): RFC 4180, read back strictly with csv."""
    text = out.decode("utf-8", "surrogateescape")
    rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    check(rows, "csv output is empty (no header)")
    return rows[0], rows[1:]


def by_id(results):
    """id -> result; fails on a duplicate."""
    d = {}
    for r in results:
        check(r["id"] not in d, "id %r has two results: %r and %r" % (r["id"], d.get(r["id"]), r))
        d[r["id"]] = r
    return d


def check_ids(results, n, what="results"):
    """The IDs are exactly 1..n, each once."""
    d = by_id(results)
    if set(d) != set(range(1, n + 1)):
        missing = sorted(set(range(1, n + 1)) - set(d))[:20]
        extra = sorted(set(d) - set(range(1, n + 1)))[:20]
        fail("%s: IDs are not exactly 1..%d: %d results, missing %r, extra %r"
             % (what, n, len(d), missing, extra))
    return d


def check_ids_prefix(results, what="results"):
    """The IDs are exactly 1..K for some K, each once; returns K."""
    d = by_id(results)
    k = len(d)
    if set(d) != set(range(1, k + 1)):
        missing = sorted(set(range(1, max(d) + 1)) - set(d))[:20]
        fail("%s: IDs are not 1..K without gaps: %d results, max %d, missing %r"
             % (what, k, max(d), missing))
    return k


SUMMARY_RE = re.compile(
    rb"^wpool: (\d+) jobs in [0-9.]+s \([^)]*\): (\d+) ok, (\d+) failed, (\d+) canceled;",
    re.M)


def summary(err):
    """The summary counts on stderr: dict jobs, ok, failed, canceled."""
    m = SUMMARY_RE.findall(err)
    eq(len(m), 1, "summary lines on stderr (%r)" % err[-500:])
    jobs, ok, failed, canceled = (int(x) for x in m[0])
    eq(jobs, ok + failed + canceled, "summary: jobs = ok + failed + canceled")
    return {"jobs": jobs, "ok": ok, "failed": failed, "canceled": canceled}


# ---- the runner -------------------------------------------------------------

def main(module_globals, argv):
    """Runs the test named argv[1], or all test_* functions in definition
    order; prints `N passed, N failed`."""
    tests = [(n, f) for n, f in module_globals.items()
             if n.startswith("test_") and callable(f)]
    if len(argv) > 1:
        names = argv[1:]
        known = dict(tests)
        for n in names:
            if n not in known:
                sys.stderr.write("unknown test %s\n" % n)
                return 2
        tests = [(n, known[n]) for n in names]
    sys.stdout.write("wpool: %s (%s)\nserver: %s\n" % (WPOOL, FLAVOUR, SERVER))
    passed = failed = 0
    for name, fn in tests:
        t0 = time.monotonic()
        sys.stdout.write("--- %s\n" % name)
        sys.stdout.flush()
        try:
            fn()
        except Exception as e:  # a Failure, or a bug in the test itself
            failed += 1
            traceback.print_exc(file=sys.stdout)
            sys.stdout.write("FAIL %s (%.2fs): %s\n" % (name, time.monotonic() - t0, e))
        else:
            passed += 1
            sys.stdout.write("ok   %s (%.2fs)\n" % (name, time.monotonic() - t0))
        finally:
            _reap_started()
        sys.stdout.flush()
    sys.stdout.write("%d passed, %d failed\n" % (passed, failed))
    return 0 if failed == 0 else 1
