"""Observability of `wpool fetch` end to end, through the real binary:
metrics (promtool on a mid-run scrape, a real Prometheus server scraping
wpool, values against the result file), structured logs (every JSON line
parses, logfmt splits back into the same fields), traces (the test server's
OTLP receiver gets one trace per job and one span per attempt, and the
traceparent each request carried matches its span).

Python 3 standard library, promtool and prometheus (Debian's prometheus
package). Each `def test_*` is its own CTest test.
"""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (SLOW, WPOOL, Background, Server, by_id, check, check_ids,  # noqa: E402
                     check_no_sanitizer_report, eq, fail, main, parse_jsonl,
                     run_wpool, track, wait_until, write_file, _kill_group)

TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


# ---- helpers ----------------------------------------------------------------

class Wpool:
    """wpool fetch in the background, stdout and stderr into files (so that
    a long linger never fills a pipe)."""

    def __init__(self, args, tmp):
        self.args = [str(a) for a in args]
        self.out_path = os.path.join(tmp, "stdout")
        self.err_path = os.path.join(tmp, "stderr")
        self._out = open(self.out_path, "wb")
        self._err = open(self.err_path, "wb")
        self.proc = track(subprocess.Popen([WPOOL, "fetch"] + self.args,
                                           stdin=subprocess.DEVNULL, stdout=self._out,
                                           stderr=self._err, start_new_session=True))

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read()

    def finish(self, timeout=60):
        try:
            self.proc.wait(timeout * SLOW)
        except subprocess.TimeoutExpired:
            _kill_group(self.proc)
            self.proc.wait()
            fail("wpool did not exit within %d s: %s\n%s" % (
                timeout * SLOW, " ".join(self.args),
                self.stderr()[-2000:].decode("utf-8", "replace")))
        self._out.close()
        self._err.close()
        err = self.stderr()
        check_no_sanitizer_report(err)
        return self.proc.returncode, err

    def kill(self):
        _kill_group(self.proc)


def read_json_log(path):
    """Every line of the log file one JSON object with ts, level, msg."""
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        data = f.read()
    recs = []
    for i, line in enumerate(data.split(b"\n")):
        if i == len(data.split(b"\n")) - 1:
            eq(line, b"", "the log ends with a newline")
            break
        try:
            rec = json.loads(line.decode("utf-8"))
        except ValueError as e:
            fail("log line %d is not valid UTF-8 JSON (%s): %r" % (i + 1, e, line[:300]))
        check(isinstance(rec, dict), "log line %d is not an object" % (i + 1))
        check(TS_RE.match(rec.get("ts", "")), "ts of %r" % rec)
        check(rec.get("level") in ("error", "warn", "info", "debug"), "level of %r" % rec)
        check(isinstance(rec.get("msg"), str), "msg of %r" % rec)
        recs.append(rec)
    return recs


def wait_record(path, msg, timeout):
    def found():
        for r in read_json_log(path):
            if r["msg"] == msg:
                return r
        return None
    return wait_until(found, timeout * SLOW, "log record %r in %s" % (msg, path), 0.02)


def http_get(port, path, timeout=10):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout * SLOW)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.getheader("Content-Type"), r.read()
    finally:
        c.close()


LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?')


def parse_exposition(text):
    """Prometheus text format -> {(name, frozenset(labels)): value}; also
    checks that every sample has a # TYPE for its family."""
    samples, types = {}, {}
    for line in text.split("\n"):
        if not line:
            continue
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            types[name] = typ
            continue
        if line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$", line)
        check(m, "exposition line: %r" % line)
        name, labels = m.group(1), {}
        if m.group(3):
            pos, s = 0, m.group(3)
            while pos < len(s):
                lm = LABEL_RE.match(s, pos)
                check(lm, "labels of %r" % line)
                labels[lm.group(1)] = re.sub(r"\\(.)", lambda x: {"n": "\n"}.get(x.group(1), x.group(1)),
                                             lm.group(2))
                pos = lm.end()
        fam = re.sub(r"_(bucket|sum|count)$", "", name)
        check(name in types or fam in types, "no # TYPE for %s" % name)
        samples[(name, frozenset(labels.items()))] = float(m.group(4))
    return samples


def metric(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def metrics_port(log_path, timeout=30):
    rec = wait_record(log_path, "serving metrics", timeout)
    host, port = rec["addr"].rsplit(":", 1)
    eq(host, "127.0.0.1", "a bare port binds loopback")
    return int(port)


def scrape(port):
    st, ctype, body = http_get(port, "/metrics")
    eq(st, 200, "GET /metrics status")
    check(ctype.startswith("text/plain; version=0.0.4"), "content type %r" % ctype)
    return body.decode("utf-8")


def promtool_check(text):
    p = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    if p.returncode != 0 or p.stdout.strip():
        fail("promtool check metrics: rc %d\n%s\n--- the scrape:\n%s" % (
            p.returncode, p.stdout.decode("utf-8", "replace"), text[:4000]))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def mixed_urls(srv):
    """URLs of known outcomes: ok, slow ok, 404, 503, refused, a bad line."""
    urls = []
    for i in range(40):
        urls.append(srv.url("/ok?i=%d" % i))
    for i in range(16):
        urls.append(srv.url("/delay/%d?i=%d" % (150 + 10 * i, i)))
    for i in range(10):
        urls.append(srv.url("/status/404?i=%d" % i))
    for i in range(5):
        urls.append(srv.url("/status/503?i=%d" % i))
    urls.append("http://127.0.0.1:1/refused")
    urls.append("ftp://not-http")
    return urls


def counts_of(results):
    ok = sum(1 for r in results if r["ok"])
    return ok, len(results) - ok


def lingering_run(srv, tmp, workers, addr):
    """wpool on the mixed URLs, results in res.jsonl, a JSON log, metrics
    at addr that stay served after the run (SIGTERM ends the linger)."""
    urls = mixed_urls(srv)
    inp = write_file(urls, dir=tmp)
    res_path = os.path.join(tmp, "res.jsonl")
    log = os.path.join(tmp, "log.json")
    w = Wpool(["-w", str(workers), "-f", "jsonl", "-o", res_path, "--metrics", addr,
               "--metrics-linger", "300s", "--log-format", "json", "--log-file", log,
               inp], tmp)
    return w, urls, res_path, log


# ---- metrics ------------------------------------------------------------------

def test_metrics_mid_run_promtool_and_final_values_match_results():
    with Server() as srv, tempfile.TemporaryDirectory() as tmp:
        w, urls, res_path, log = lingering_run(srv, tmp, 4, "0")
        try:
            port = metrics_port(log)

            # Mid-run: jobs in flight, not all done. The /delay jobs keep
            # the run going; a scrape may come early or late, so look for
            # one taken while jobs are in flight.
            def mid():
                t = scrape(port)
                s = parse_exposition(t)
                done = sum(metric(s, "wpool_jobs_completed_total", outcome=o) or 0
                           for o in ("ok", "failed", "canceled"))
                if (metric(s, "wpool_in_flight") or 0) > 0 and done < len(urls) - 1:
                    return t
                check(not any(r["msg"] == "run summary" for r in read_json_log(log)),
                      "the run ended before a mid-run scrape")
                return None
            text = wait_until(mid, 60 * SLOW, "a scrape with jobs in flight", 0.005)
            promtool_check(text)
            s = parse_exposition(text)
            check(metric(s, "wpool_workers") >= 1, "wpool_workers in %s" % text[:500])
            for name in ("process_cpu_seconds_total", "process_resident_memory_bytes",
                         "process_open_fds", "process_start_time_seconds",
                         "wpool_queue_depth", "wpool_retry_waiting", "wpool_retries_total"):
                check(metric(s, name) is not None, "%s in the scrape" % name)

            wait_record(log, "run summary", 120)
            final_text = scrape(port)
            promtool_check(final_text)
            f = parse_exposition(final_text)
        finally:
            if w.proc.poll() is None:
                w.proc.send_signal(signal.SIGTERM)  # ends the linger
        rc, err = w.finish()
        eq(rc, 1, "exit status (some jobs failed)")
        with open(res_path, "rb") as fh:
            results = parse_jsonl(fh.read())
        d = check_ids(results, len(urls))
        ok, failed = counts_of(results)
        eq(metric(f, "wpool_jobs_completed_total", outcome="ok"), ok, "completed ok")
        # The bad line never reaches the pool: its result is the CLI's own.
        eq(metric(f, "wpool_jobs_completed_total", outcome="failed"), failed - 1, "completed failed")
        eq(metric(f, "wpool_jobs_completed_total", outcome="canceled"), 0, "completed canceled")
        eq(metric(f, "wpool_jobs_submitted_total"), len(urls) - 1, "submitted")
        eq(metric(f, "wpool_attempts_total"), sum(r["attempts"] for r in results), "attempts")
        eq(metric(f, "wpool_job_duration_seconds_count"),
           sum(1 for r in results if r["attempts"] > 0), "durations observed")
        eq(metric(f, "wpool_job_duration_seconds_bucket", le="+Inf"),
           metric(f, "wpool_job_duration_seconds_count"), "+Inf bucket = count")
        # Every /delay job took at least 150 ms: none is under le=0.1.
        fast = metric(f, "wpool_job_duration_seconds_bucket", le="0.1")
        check(fast <= len(urls) - 16, "jobs under 100 ms: %r" % fast)
        # A response per attempt (each of these URLs answers every attempt
        # the same way): the final status times the attempts, with retries
        # (issue 4's default) or without.
        by_status = {}
        for r in results:
            if r["status"] is not None:
                by_status[r["status"]] = by_status.get(r["status"], 0) + r["attempts"]
        eq(metric(f, "wpool_retries_total"),
           sum(max(r["attempts"] - 1, 0) for r in results), "retries")
        for code, n in by_status.items():
            eq(metric(f, "wpool_http_responses_total", code=str(code)), n, "responses %d" % code)
        eq(metric(f, "wpool_in_flight"), 0, "in flight at the end")
        eq(metric(f, "wpool_queue_depth"), 0, "queued at the end")
        # The log agrees: a warn record per failed job, a summary with the counts.
        recs = read_json_log(log)
        gave_up = [r for r in recs if r["msg"] == "giving up"]
        eq(sorted(r["id"] for r in gave_up),
           sorted(r["id"] for r in results if not r["ok"]),
           "giving-up records")
        for r in gave_up:
            eq(r["url"], d[r["id"]]["url"], "url of the giving-up record")
            eq(r["status"], d[r["id"]]["status"], "status of the giving-up record")
            eq(r["attempts"], d[r["id"]]["attempts"], "attempts of the giving-up record")
            eq(r["error"], d[r["id"]]["error"], "error of the giving-up record")
            check("trace_id" in r and "elapsed_ms" in r and r["level"] == "warn", "fields of %r" % r)
        # A retry record at the start of every attempt after the first.
        eq(sum(1 for r in recs if r["msg"] == "retry"),
           sum(max(r["attempts"] - 1, 0) for r in results), "retry records")
        summ = [r for r in recs if r["msg"] == "run summary"]
        eq(len(summ), 1, "summary records")
        eq((summ[0]["ok"], summ[0]["failed"]), (ok, failed), "summary counts")
        check(b"wpool: serving metrics at http://127.0.0.1:" in err, "the address on stderr: %r" % err)


def test_prometheus_server_scrapes_wpool():
    prom = shutil.which("prometheus")
    check(prom, "prometheus is not installed (make deps installs it)")
    with Server() as srv, tempfile.TemporaryDirectory() as tmp:
        w, urls, res_path, log = lingering_run(srv, tmp, 8, "127.0.0.1:0")
        pp = None
        try:
            port = metrics_port(log)
            wait_record(log, "run summary", 120)
            with open(res_path, "rb") as fh:
                results = parse_jsonl(fh.read())
            ok, failed = counts_of(results)
            want = {"ok": ok, "failed": failed - 1, "canceled": 0}  # the bad line is the CLI's

            web = free_port()
            cfg = os.path.join(tmp, "prometheus.yml")
            with open(cfg, "w") as fh:
                fh.write("global:\n  scrape_interval: 250ms\n  scrape_timeout: 200ms\n"
                         "scrape_configs:\n  - job_name: wpool\n    static_configs:\n"
                         "      - targets: ['127.0.0.1:%d']\n" % port)
            plog = open(os.path.join(tmp, "prometheus.log"), "wb")
            pp = subprocess.Popen([prom, "--config.file=" + cfg,
                                   "--storage.tsdb.path=" + os.path.join(tmp, "data"),
                                   "--web.listen-address=127.0.0.1:%d" % web],
                                  stdout=plog, stderr=subprocess.STDOUT, start_new_session=True)

            def query():
                if pp.poll() is not None:
                    with open(os.path.join(tmp, "prometheus.log"), "rb") as fh:
                        fail("prometheus exited: %s" % fh.read()[-2000:].decode("utf-8", "replace"))
                try:
                    st, _, body = http_get(web, "/api/v1/query?query=" +
                                           urllib.parse.quote("wpool_jobs_completed_total"))
                except OSError:
                    return None  # not listening yet
                if st != 200:
                    return None
                r = json.loads(body)
                if r.get("status") != "success" or len(r["data"]["result"]) < 3:
                    return None
                return r["data"]["result"]
            series = wait_until(query, 60 * SLOW, "Prometheus to have scraped wpool", 0.05)
            got = {s["metric"]["outcome"]: float(s["value"][1]) for s in series}
            eq(got, want, "wpool_jobs_completed_total in Prometheus")
            for s in series:
                eq(s["metric"].get("job"), "wpool", "job label")
                eq(s["metric"].get("instance"), "127.0.0.1:%d" % port, "instance label")
            # The target is healthy as Prometheus sees it.
            st, _, body = http_get(web, "/api/v1/targets")
            t = json.loads(body)["data"]["activeTargets"]
            eq([x["health"] for x in t], ["up"], "target health (%r)" % t)
        finally:
            if pp is not None:
                pp.send_signal(signal.SIGTERM)
                try:
                    pp.wait(30)
                except subprocess.TimeoutExpired:
                    _kill_group(pp)
                    pp.wait()
            if w.proc.poll() is None:
                w.proc.send_signal(signal.SIGTERM)
        rc, _ = w.finish()
        eq(rc, 1, "exit status")


def _threads_taking(pid, sig):
    """Names of the process's threads that do not block sig (a thread in
    sigwaitinfo shows it unblocked while it waits)."""
    names = []
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                st = dict(ln.split(":", 1) for ln in f.read().splitlines() if ":" in ln)
        except OSError:
            continue  # the thread ended
        if not int(st["SigBlk"].strip(), 16) & (1 << (sig - 1)):
            names.append(st["Name"].strip())
    return names


def test_metrics_server_leaves_signals_to_the_controller():
    """With --metrics, no thread but the controller (which waits for them
    in sigwaitinfo) takes SIGINT or SIGTERM: the metrics server's thread
    blocks them too (it was started before wpool blocked its signals, and a
    SIGINT the kernel gave to it killed the process: no drain, no results).
    Then two SIGINTs: exit 130, the three hanging jobs 'canceled'."""
    with Server() as srv, tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "log")
        inp = write_file([srv.url("/hang?i=%d" % i) for i in range(3)], dir=tmp)
        bg = Background(["-f", "jsonl", "--metrics", "0", "--log-format", "json",
                         "--log-file", log, inp])
        metrics_port(log)
        wait_until(lambda: srv.stats()["in_flight"] == 3 or bg.proc.poll() is not None,
                   30 * SLOW, "3 requests in flight")
        check(bg.proc.poll() is None, "wpool ended early: %r" % (bg.proc.returncode,))
        for sig in (signal.SIGINT, signal.SIGTERM):
            takers = _threads_taking(bg.pid, sig)
            check(len(takers) <= 1, "threads that take signal %d: %r (want the controller "
                  "alone)" % (sig, takers))
        for _ in range(2):
            bg.signal(signal.SIGINT)
            bg.wait_signal_taken(signal.SIGINT)
        r = bg.finish(30)
        eq(r.rc, 130, "exit status (%r)" % r)
        res = check_ids(parse_jsonl(r.out), 3)
        for i in range(1, 4):
            eq(res[i]["error"], "canceled", "job %d" % i)


def test_metrics_and_log_options_refuse_bad_values():
    cases = [
        (["--metrics", ":9464"], "--metrics"),
        (["--metrics", "9464x"], "--metrics"),
        (["--metrics", "127.0.0.1:70000"], "--metrics"),
        (["--metrics", "[::1]"], "--metrics"),
        (["--metrics-linger", "soon"], "--metrics-linger"),
        (["--log-format", "xml"], "--log-format"),
        (["--log-level", "loud"], "--log-level"),
        (["--otlp-endpoint", "ftp://x/v1/traces"], "--otlp-endpoint"),
    ]
    for args, flag in cases:
        r = run_wpool(args + ["-"], stdin=b"")
        eq(r.rc, 2, "exit status of %r" % args)
        check(flag.encode() in r.err, "%r: the message names %s: %r" % (args, flag, r.err))
        eq(r.out, b"", "nothing on stdout for %r" % args)
    # A log file that cannot be opened is a usage error too, before any job.
    r = run_wpool(["--log-file", "/nonexistent-dir/x.log", "-"], stdin=b"http://127.0.0.1:1/\n")
    eq(r.rc, 2, "unwritable --log-file")
    check(b"/nonexistent-dir/x.log" in r.err, "names the file: %r" % r.err)


# ---- logs -------------------------------------------------------------------

def parse_logfmt(line):
    """key=value pairs: value bare (no space, '=', '"') or a JSON string."""
    out, i, n = {}, 0, len(line)
    dec = json.JSONDecoder()
    while i < n:
        m = re.compile(r"([a-z_]+)=").match(line, i)
        check(m, "logfmt key at %d of %r" % (i, line))
        key = m.group(1)
        i = m.end()
        if i < n and line[i] == '"':
            val, i = dec.raw_decode(line, i)
        else:
            j = line.find(" ", i)
            j = n if j < 0 else j
            val = line[i:j]
            check(val and "=" not in val and '"' not in val, "bare value %r in %r" % (val, line))
            i = j
        check(key not in out, "key %s twice in %r" % (key, line))
        out[key] = val
        if i < n:
            eq(line[i], " ", "separator in %r" % line)
            i += 1
    return out


TRICKY_PATHS = [
    '/status/404?q="quoted"',
    "/status/404?back\\slash",
    "/status/404?eq=a=b&sp",
    "/status/404?utf8=\u00e9\u4e2d",
    "/status/500?tab\there",  # a control byte: a bad line, a job all the same
]


def tricky_input(srv):
    lines = [srv.url(p).encode() for p in TRICKY_PATHS]
    lines.append(srv.url("/status/404?bad=").encode() + b"\xff\xfe")  # not UTF-8
    lines.append(srv.url("/ok").encode())
    return lines


def test_json_and_logfmt_logs_stay_valid_whatever_the_bytes():
    with Server() as srv, tempfile.TemporaryDirectory() as tmp:
        lines = tricky_input(srv)
        inp = write_file(lines, dir=tmp)
        results = {}
        records = {}
        for fmt in ("json", "logfmt"):
            res = os.path.join(tmp, "res-%s.jsonl" % fmt)
            # Logs on stderr: then stderr holds the log only (no summary line).
            r = run_wpool(["-w", "2", "-f", "jsonl", "-o", res, "--log-format", fmt,
                           "--log-level", "debug", "--traceparent", inp])
            eq(r.rc, 1, "exit status (%s)" % fmt)
            with open(res, "rb") as fh:
                results[fmt] = by_id(parse_jsonl(fh.read()))
            eq(len(results[fmt]), len(lines), "results (%s)" % fmt)
            check(r.err.endswith(b"\n"), "the log ends with a newline")
            recs = []
            for ln in r.err[:-1].split(b"\n"):
                text = ln.decode("utf-8")  # strict: valid UTF-8 whatever came in
                if fmt == "json":
                    rec = json.loads(text)
                else:
                    rec = parse_logfmt(text)
                check(TS_RE.match(rec["ts"]), "ts in %r" % text)
                check(rec["level"] in ("error", "warn", "info", "debug"), "level in %r" % text)
                recs.append(rec)
            records[fmt] = recs
            msgs = [x["msg"] for x in recs]
            eq(msgs[0], "run start", "first record (%s)" % fmt)
            eq(msgs[-1], "run summary", "last record (%s)" % fmt)
            # One record per attempt (debug) and one per finished job.
            attempts = [x for x in recs if x["msg"] == "attempt"]
            eq(len(attempts), sum(x["attempts"] for x in results[fmt].values()),
               "attempt records (%s)" % fmt)
            for a in attempts:
                res_rec = results[fmt][int(a["id"])]
                eq(a["url"], res_rec["url"], "url of an attempt record (%s)" % fmt)
                eq(len(a["trace_id"]), 32, "trace_id (%s)" % fmt)
                int(a["trace_id"], 16)
            ends = [x for x in recs if x["msg"] in ("job done", "giving up")]
            eq(sorted(int(x["id"]) for x in ends), sorted(results[fmt]), "a record per job (%s)" % fmt)
            for x in ends:
                res_rec = results[fmt][int(x["id"])]
                eq(x["url"], res_rec["url"], "url (%s, id %s)" % (fmt, x["id"]))
                if res_rec["error"] is None:
                    check("error" not in x or x["error"] is None, "no error in %r" % x)
                else:
                    eq(x["error"], res_rec["error"], "error (%s)" % fmt)
                if fmt == "json":
                    eq(x["status"], res_rec["status"], "status")
                    eq(x["attempts"], res_rec["attempts"], "attempts")
                else:  # logfmt: numbers bare, null fields left out
                    eq(x.get("status"), None if res_rec["status"] is None else str(res_rec["status"]),
                       "status")
                    eq(x["attempts"], str(res_rec["attempts"]), "attempts")
        # The two formats carry the same fields for the same jobs.
        j = {int(x["id"]): x for x in records["json"] if x["msg"] in ("job done", "giving up")}
        lf = {int(x["id"]): x for x in records["logfmt"] if x["msg"] in ("job done", "giving up")}
        for k in j:
            eq(lf[k]["url"], j[k]["url"], "url across formats")
            eq(lf[k]["outcome"], j[k]["outcome"], "outcome across formats")


def test_text_log_is_one_line_per_record():
    with Server() as srv, tempfile.TemporaryDirectory() as tmp:
        inp = write_file(tricky_input(srv), dir=tmp)
        log = os.path.join(tmp, "log.txt")
        r = run_wpool(["--log-level", "warn", "--log-file", log, inp])
        eq(r.rc, 1, "exit status")
        # The log went to the file: stderr has the usual summary line only.
        check(re.search(rb"^wpool: \d+ jobs in ", r.err, re.M), "summary on stderr: %r" % r.err)
        with open(log, "rb") as fh:
            data = fh.read()
        lines = data.decode("utf-8").split("\n")
        eq(lines[-1], "", "ends with a newline")
        check(lines[:-1], "some records")
        for ln in lines[:-1]:
            m = re.match(r"^(\S+) (ERROR|WARN |INFO |DEBUG) (.*)$", ln)
            check(m and TS_RE.match(m.group(1)), "text record %r" % ln)
            eq(m.group(2).strip(), "WARN", "only warn and above at --log-level warn")
            check(m.group(3).startswith("giving up id="), "record %r" % ln)


# ---- traces -----------------------------------------------------------------

def otlp_spans(srv):
    st, _, body = http_get(srv.port, "/v1/traces/received")
    eq(st, 200, "GET /v1/traces/received")
    got = json.loads(body)
    spans = []
    for exp in got["exports"]:
        for rs in exp["resourceSpans"]:
            attrs = {a["key"]: a["value"] for a in rs["resource"]["attributes"]}
            eq(attrs["service.name"], {"stringValue": "wpool"}, "service.name")
            for ss in rs["scopeSpans"]:
                for sp in ss["spans"]:
                    sp["attrs"] = {a["key"]: list(a["value"].values())[0] for a in sp["attributes"]}
                    spans.append(sp)
    return spans, got


def test_traces_one_per_job_one_span_per_attempt_traceparent_matches():
    with Server() as srv, tempfile.TemporaryDirectory() as tmp:
        urls = [srv.url("/ok?i=%d" % i) for i in range(30)]
        urls += [srv.url("/status/404?i=%d" % i) for i in range(5)]
        urls += ["http://127.0.0.1:1/refused", "not a url"]
        inp = write_file(urls, dir=tmp)
        r = run_wpool(["-w", "4", "-f", "jsonl", "--otlp-endpoint", srv.url("/v1/traces"),
                       "--log-format", "json", "--log-file", os.path.join(tmp, "log"), inp])
        eq(r.rc, 1, "exit status")
        results = check_ids(parse_jsonl(r.out), len(urls))
        spans, got = otlp_spans(srv)
        eq(got["dropped"], 0, "bodies the receiver refused")
        for sp in spans:
            check(re.match(r"^[0-9a-f]{32}$", sp["traceId"]) and sp["traceId"] != "0" * 32,
                  "traceId %r" % sp["traceId"])
            check(re.match(r"^[0-9a-f]{16}$", sp["spanId"]) and sp["spanId"] != "0" * 16,
                  "spanId %r" % sp["spanId"])
            check(int(sp["startTimeUnixNano"]) <= int(sp["endTimeUnixNano"]), "times of %r" % sp)
        traces = {}
        for sp in spans:
            traces.setdefault(sp["traceId"], []).append(sp)
        eq(len(traces), len(urls), "one trace per job")
        by_span = {}
        for tid, sps in traces.items():
            roots = [s for s in sps if "parentSpanId" not in s]
            eq(len(roots), 1, "one job span in trace %s" % tid)
            root = roots[0]
            eq(root["name"], "job", "the job span's name")
            job_id = int(root["attrs"]["wpool.job.id"])
            res = results[job_id]
            attempts = [s for s in sps if s is not root]
            eq(len(attempts), res["attempts"], "spans of job %d = its attempts" % job_id)
            eq(int(root["attrs"]["wpool.attempts"]), res["attempts"], "wpool.attempts")
            eq(root["status"]["code"], 1 if res["ok"] else 2, "job span status of %r" % res)
            if not res["ok"]:
                eq(root["status"]["message"], res["error"], "job span message")
            for a in attempts:
                eq(a["parentSpanId"], root["spanId"], "an attempt's parent is its job")
                eq(a["kind"], 3, "attempt spans are CLIENT spans")
                eq(int(a["attrs"]["wpool.job.id"]), job_id, "attempt's job id")
                eq(a["attrs"]["url.full"], res["url"], "attempt's url")
                check(int(root["startTimeUnixNano"]) <= int(a["startTimeUnixNano"]) and
                      int(a["endTimeUnixNano"]) <= int(root["endTimeUnixNano"]),
                      "the attempt lies within its job")
                if res["status"] is not None:
                    eq(int(a["attrs"]["http.response.status_code"]), res["status"], "status attr")
                by_span[a["spanId"]] = a
        # Each request that reached the server carried the traceparent of
        # its attempt's span, in its job's trace.
        st, _, body = http_get(srv.port, "/traces/seen")
        seen = json.loads(body)["seen"]
        reached = [x for x in results.values() if x["status"] is not None]
        eq(len(seen), sum(x["attempts"] for x in reached), "requests with a traceparent")
        for s in seen:
            m = re.match(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-01$", s["traceparent"])
            check(m, "traceparent %r" % s["traceparent"])
            sp = by_span.get(m.group(2))
            check(sp, "no attempt span for traceparent %s" % s["traceparent"])
            eq(sp["traceId"], m.group(1), "trace of the traceparent")
            check(sp["attrs"]["url.full"].endswith(s["path"].split("?")[0]) or
                  s["path"] in sp["attrs"]["url.full"], "path %r vs %r" % (s["path"], sp["attrs"]["url.full"]))
        summ = [x for x in read_json_log(os.path.join(tmp, "log")) if x["msg"] == "run summary"]
        eq(summ[0]["spans_exported"], len(spans), "spans_exported in the summary")
        eq(summ[0]["spans_dropped"], 0, "spans_dropped in the summary")


def test_traces_absent_collector_drops_counted_and_logged_once():
    with Server() as srv, tempfile.TemporaryDirectory() as tmp:
        n = 200
        inp = write_file([srv.url("/ok?i=%d" % i) for i in range(n)], dir=tmp)
        log = os.path.join(tmp, "log")
        res = os.path.join(tmp, "res")
        dead = "http://127.0.0.1:%d/v1/traces" % free_port()  # nobody listens
        w = Wpool(["-w", "8", "-f", "jsonl", "-o", res, "--otlp-endpoint", dead,
                   "--metrics", "0", "--metrics-linger", "120s",
                   "--log-format", "json", "--log-file", log, inp], tmp)
        try:
            port = metrics_port(log)
            summ = wait_record(log, "run summary", 120)
            f = parse_exposition(scrape(port))
        finally:
            if w.proc.poll() is None:
                w.proc.send_signal(signal.SIGTERM)
        rc, _ = w.finish()
        eq(rc, 0, "every job ok although no collector listens")
        with open(res, "rb") as fh:
            results = check_ids(parse_jsonl(fh.read()), n)
        check(all(r["ok"] for r in results.values()), "all ok")
        eq(summ["spans_dropped"], 2 * n, "a job span and an attempt span per job, all dropped")
        eq(summ["spans_exported"], 0, "none exported")
        eq(metric(f, "wpool_trace_spans_dropped_total"), 2 * n, "the drop metric")
        eq(metric(f, "wpool_trace_spans_exported_total"), 0, "the export metric")
        warns = [x for x in read_json_log(log) if x["msg"].startswith("trace spans dropped")]
        eq(len(warns), 1, "the loss is logged once")


def test_traces_hanging_collector_does_not_hold_the_jobs():
    # A collector that never answers: the exporter is stuck in its request,
    # the bounded buffer (8192 spans) fills and spans are dropped, and every
    # job still completes.
    with Server() as srv, tempfile.TemporaryDirectory() as tmp:
        n = 5000
        inp = write_file([srv.url("/ok?i=%d" % i) for i in range(n)], dir=tmp)
        log = os.path.join(tmp, "log")
        r = run_wpool(["-w", "32", "-f", "jsonl", "--otlp-endpoint", srv.url("/hang"),
                       "--log-format", "json", "--log-file", log, inp], timeout=120)
        eq(r.rc, 0, "exit status")
        results = check_ids(parse_jsonl(r.out), n)
        check(all(x["ok"] for x in results.values()), "all ok")
        summ = [x for x in read_json_log(log) if x["msg"] == "run summary"][0]
        eq(summ["spans_exported"], 0, "nothing exported to a hanging collector")
        eq(summ["spans_dropped"], 2 * n, "every span dropped, and counted")


if __name__ == "__main__":
    sys.exit(main(globals(), sys.argv))
