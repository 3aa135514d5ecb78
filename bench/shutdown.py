#!/usr/bin/env python3
"""bench/shutdown.py: time from ShutdownNow (the second SIGINT) to exit.

Run by bench/shutdown.sh, which builds the binaries:

    python3 bench/shutdown.py --wpool BIN --server BIN [--inflight 256]
        [--reps 5] [--queued 1000] [--md OUT.md] [--raw OUT.raw]

For each rep: starts wpool-testserver on 127.0.0.1 (a free port), starts
`wpool fetch -w INFLIGHT -f csv` on INFLIGHT + QUEUED URLs of /hang (the
server never answers them), waits until the server counts INFLIGHT requests
in flight, sends SIGINT (stop reading, drain: nothing drains, since every
transfer hangs), waits 0.3 s so that the first signal is taken on its own
(two pending SIGINTs would merge into one), sends the second SIGINT
(ShutdownNow: cancel every transfer and every queued job) and measures the
time until the process has exited. Checks: exit status 130, one result per
job read (each canceled), and the server sees no request in flight after.
"""
import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request


def wait_for(cond, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.02)
    raise RuntimeError("timed out waiting for " + what)


def stats(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/stats" % port, timeout=5) as r:
        return json.loads(r.read().decode())


def one_run(args, tmp, rep):
    srv = subprocess.Popen([args.server, "--port", "0"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
    try:
        line = srv.stdout.readline().strip()
        if not line.startswith("port="):
            raise RuntimeError("test server said: %r" % line)
        port = int(line[5:])
        n = args.inflight + args.queued
        urls = os.path.join(tmp, "urls.txt")
        with open(urls, "w") as f:
            for i in range(1, n + 1):
                f.write("http://127.0.0.1:%d/hang?i=%d\n" % (port, i))
        out = os.path.join(tmp, "out.csv")
        with open(out, "w") as fo, open(os.path.join(tmp, "err.txt"), "w") as fe:
            p = subprocess.Popen([args.wpool, "fetch", "-w", str(args.inflight),
                                  "--no-progress", "-f", "csv", urls], stdout=fo, stderr=fe)
        try:
            wait_for(lambda: stats(port)["in_flight"] >= args.inflight, 60,
                     "%d requests in flight" % args.inflight)
            inflight = stats(port)["in_flight"]
            p.send_signal(signal.SIGINT)
            time.sleep(0.3)
            if p.poll() is not None:
                raise RuntimeError("wpool exited after the first SIGINT (%d)" % p.returncode)
            t0 = time.monotonic()
            p.send_signal(signal.SIGINT)
            rc = p.wait(timeout=60)
            secs = time.monotonic() - t0
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        with open(out) as f:
            rows = f.read().splitlines()[1:]
        canceled = sum(1 for r in rows if r.split(",")[2] == "false")
        # every connection closed: the server's count drops (it notices a
        # client gone within 0.1 s); raises if it does not
        wait_for(lambda: stats(port)["in_flight"] == 0, 10,
                 "the server's in-flight count to drop")
        left = 0
        ok = rc == 130 and len(rows) >= args.inflight and canceled == len(rows)
        return {"rep": rep, "ms": secs * 1000, "rc": rc, "results": len(rows),
                "canceled": canceled, "inflight": inflight, "left": left, "ok": ok}
    finally:
        srv.send_signal(signal.SIGTERM)
        try:
            srv.wait(timeout=10)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wpool", required=True)
    ap.add_argument("--server", required=True)
    ap.add_argument("--inflight", type=int, default=256)
    ap.add_argument("--queued", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--md")
    ap.add_argument("--raw")
    ap.add_argument("--cmd", default="sh bench/shutdown.sh")
    args = ap.parse_args()

    runs = []
    with tempfile.TemporaryDirectory(prefix="wpool-bench-shutdown.") as tmp:
        for rep in range(1, args.reps + 1):
            try:
                r = one_run(args, tmp, rep)
            except Exception as e:  # a failed run is reported, not hidden
                r = {"rep": rep, "ms": float("nan"), "ok": False, "error": str(e)}
            runs.append(r)
            print("shutdown rep=%d %s" % (rep, json.dumps(r)), file=sys.stderr)

    good = [r["ms"] for r in runs if r["ok"]]
    if args.raw:
        with open(args.raw, "w") as f:
            for r in runs:
                f.write("wpool %d %d %.3f %s\n" % (args.inflight, r["rep"], r["ms"],
                                                   "ok" if r["ok"] else "FAIL"))
    lines = ["# Time from ShutdownNow to exit", "",
             "%s. Command: `%s`" % (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), args.cmd),
             "",
             "`wpool fetch -w %d -f csv` on %d URLs of the test server's `/hang` (it"
             % (args.inflight, args.inflight + args.queued),
             "never answers): once the server counts %d requests in flight, SIGINT"
             % args.inflight,
             "(stop reading, drain), 0.3 s later a second SIGINT (ShutdownNow:",
             "cancel every transfer and queued job); measured from the second",
             "signal to the process's exit. Checked: exit status 130, a `canceled`",
             "result for every job read, no request left in flight at the server.", ""]
    if good:
        med = statistics.median(good)
        lo, hi = min(good), max(good)
        flag = " ⚠" if lo > 0 and hi / lo > 1.3 else ""
        lines.append("| transfers in flight | runs | median ms | min-max ms |")
        lines.append("|---:|---:|---:|---:|")
        lines.append("| %d | %d of %d ok | %.1f | %.1f-%.1f%s |"
                     % (args.inflight, len(good), len(runs), med, lo, hi, flag))
    else:
        lines.append("No run succeeded.")
    bad = [r for r in runs if not r["ok"]]
    if bad:
        lines += ["", "Failed runs:", ""]
        for r in bad:
            lines.append("- rep %d: %s" % (r["rep"], json.dumps(r)))
    text = "\n".join(lines) + "\n"
    if args.md:
        with open(args.md, "w") as f:
            f.write(text)
    sys.stdout.write(text)
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
