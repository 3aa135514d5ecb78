#!/bin/sh
# Soak: wpool fetching without a break for SOAK_SECONDS (default 120) from
# the test server on 127.0.0.1, with random faults mixed in: 5xx, 404,
# resets, delays, flaky routes, the hostile listener's drip, endless body,
# reset mid-body, bad status line, a server that never reads, a redirect
# loop and bad input lines. Every SOAK_SAMPLE seconds (default 5) it samples
# wpool's RSS, open file descriptors and threads from /proc. Memory, fds
# and threads must stay flat: the report gives the first sample after a
# warm-up of WARMUP seconds (default 15) and the last, the maximum, and
# says FLAT or GROWING (last above first-after-warm-up by more than 8 MB of
# RSS, 16 fds or 2 threads).
#
#   sh bench/soak.sh                    # 2 minutes, -w 64
#   SOAK_SECONDS=600 WORKERS=256 sh bench/soak.sh
#
# Writes bench/out/soak.raw (t rss_kb fds threads done), bench/out/soak.md,
# and the section between <!-- soak:begin --> and <!-- soak:end --> of
# docs/benchmarks.md (bench/report.py keeps that section). Bounded: the run
# ends at its --deadline, the URL generator with it. Not part of make test.
set -eu
cd "$(dirname "$0")/.."
SECS=${SOAK_SECONDS:-120}
SAMPLE=${SOAK_SAMPLE:-5}
WARMUP=${WARMUP:-15}
WORKERS=${WORKERS:-64}
OUT=bench/out
mkdir -p "$OUT"

cmake -S . -B build/plain -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/plain -j 2 --target wpool_cli wpool-testserver >/dev/null

exec python3 - "$SECS" "$SAMPLE" "$WARMUP" "$WORKERS" "$OUT" <<'EOF'
import os, random, re, subprocess, sys, threading, time, urllib.request

secs, sample, warmup, workers, out = (int(sys.argv[1]), int(sys.argv[2]),
                                      int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
srv = subprocess.Popen(["build/plain/tests/wpool-testserver", "--port", "0"],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
line = srv.stdout.readline().decode()
port = int(re.match(r"port=(\d+)", line).group(1))
base = "http://127.0.0.1:%d" % port
hp = urllib.request.urlopen(base + "/hostile", timeout=10).read().decode()
hport, sport = map(int, re.findall(r"\d+", hp))
hbase = "http://127.0.0.1:%d" % hport

# (weight, url maker): mostly fine, a steady share of every fault.
mix = [
    (600, lambda r: base + "/ok?i=%d" % r.randrange(1 << 30)),
    (60, lambda r: base + "/status/%d" % r.choice((500, 502, 503, 404, 429))),
    (60, lambda r: base + "/delay/%d" % r.randrange(1, 200)),
    (30, lambda r: base + "/reset"),
    (40, lambda r: base + "/flaky/k%d/2" % r.randrange(1000000)),
    (30, lambda r: base + "/bytes/%d" % r.randrange(1, 200000)),
    (20, lambda r: base + "/redirect/%d" % r.randrange(1, 4)),
    (5, lambda r: base + "/redirect-loop"),
    (20, lambda r: "not a url %d" % r.randrange(1000)),
    (10, lambda r: hbase + "/reset-mid-body"),
    (10, lambda r: hbase + "/bad-status"),
    (10, lambda r: hbase + "/http10-close"),
    (3, lambda r: hbase + "/endless"),
    (2, lambda r: hbase + "/drip"),
    (2, lambda r: "http://127.0.0.1:%d/never-read" % sport),
    (2, lambda r: hbase + "/huge-headers"),
]
total_w = sum(w for w, _ in mix)

args = ["build/plain/wpool", "fetch", "-w", str(workers), "-t", "2s", "--max-body", "1MiB",
        "--deadline", "%ds" % secs, "-f", "jsonl", "-o", "/dev/null", "--no-progress"]
cmd = " ".join(args)
p = subprocess.Popen(args, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
err = []
threading.Thread(target=lambda: err.append(p.stderr.read()), daemon=True).start()

def feed():
    r = random.Random(7)
    try:
        for _ in range(20_000_000):  # bounded; the deadline ends it first
            x = r.randrange(total_w)
            for w, f in mix:
                if x < w:
                    p.stdin.write((f(r) + "\n").encode())
                    break
                x -= w
        p.stdin.close()
    except (BrokenPipeError, ValueError):
        pass
threading.Thread(target=feed, daemon=True).start()

rows = []
t0 = time.monotonic()
while p.poll() is None:
    t = time.monotonic() - t0
    try:
        with open("/proc/%d/status" % p.pid) as f:
            st = f.read()
        rss = int(re.search(r"VmRSS:\s+(\d+)", st).group(1))
        thr = int(re.search(r"Threads:\s+(\d+)", st).group(1))
        fds = len(os.listdir("/proc/%d/fd" % p.pid))
        rows.append((round(t, 1), rss, fds, thr))
    except (OSError, AttributeError):
        pass
    time.sleep(sample)
p.wait()
srv.terminate()
srv.wait()
e = b"".join(err).decode("utf-8", "replace")
m = re.search(r"wpool: (\d+) jobs in ([0-9.]+)s \(([^)]*)\): (\d+) ok, (\d+) failed, (\d+) canceled", e)

with open(os.path.join(out, "soak.raw"), "w") as f:
    f.write("t rss_kb fds threads\n")
    for r in rows:
        f.write("%s %d %d %d\n" % r)

after = [r for r in rows if r[0] >= warmup]
first, last = (after[0], after[-1]) if after else (rows[0], rows[-1])
grow = (last[1] - first[1], last[2] - first[2], last[3] - first[3])
flat = grow[0] <= 8 * 1024 and grow[1] <= 16 and grow[2] <= 2
load = open("/proc/loadavg").read().split()[:3]
md = ["## bench/soak.sh: two minutes of faults", "",
      "`%s` (`SOAK_SECONDS=%d WORKERS=%d sh bench/soak.sh`), fed an endless random mix from"
      % (cmd, secs, workers),
      "the test server: ~70% /ok, then 5xx/404/429, delays, resets, flaky routes, bodies up to",
      "200 KB, redirects and a redirect loop, bad lines, and from the hostile listener reset",
      "mid-body, bad status lines, HTTP/1.0 close, endless bodies, 1 byte/s drips, 100 MB of",
      "headers and a server that never reads. Load average at the end: %s." % " ".join(load), ""]
if m:
    md += ["Result: %s jobs in %s s (%s): %s ok, %s failed, %s canceled at the deadline; exit %d."
           % (m.group(1), m.group(2), m.group(3), m.group(4), m.group(5), m.group(6), p.returncode), ""]
md += ["| sample | t (s) | RSS (MB) | open fds | threads |", "| --- | ---: | ---: | ---: | ---: |"]
for name, r in (("first after %d s warm-up" % warmup, first), ("last", last)):
    md.append("| %s | %.0f | %.1f | %d | %d |" % (name, r[0], r[1] / 1024, r[2], r[3]))
md.append("| max | | %.1f | %d | %d |" % (max(r[1] for r in rows) / 1024, max(r[2] for r in rows),
                                           max(r[3] for r in rows)))
md += ["", "**%s**: RSS %+.1f MB, fds %+d, threads %+d from the first sample after warm-up to the last"
       % ("FLAT" if flat else "GROWING", grow[0] / 1024, grow[1], grow[2]),
       "(%d samples every %d s; raw: bench/out/soak.raw)." % (len(rows), sample), ""]
text = "\n".join(md)
with open(os.path.join(out, "soak.md"), "w") as f:
    f.write(text)
page = "docs/benchmarks.md"
begin, end = "<!-- soak:begin -->", "<!-- soak:end -->"
doc = open(page).read() if os.path.exists(page) else "# wpool benchmarks\n"
block = begin + "\n" + text + "\n" + end
if begin in doc and end in doc:
    pre, rest = doc.split(begin, 1)
    doc = pre + block + rest.split(end, 1)[1]
else:
    doc = doc.rstrip("\n") + "\n\n" + block + "\n"
open(page, "w").write(doc)
print(text)
sys.exit(0 if flat else 1)
EOF
