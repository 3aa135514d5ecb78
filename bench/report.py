#!/usr/bin/env python3
"""bench/report.py: docs/benchmarks.md, the SVG plots and the README's block
from what the benchmark scripts wrote into bench/out/.

    python3 bench/report.py [--out bench/out] [--docs docs] [--readme README.md]
                            [--cmd "make bench"] [--no-plots] [--note TEXT]

Reads (each optional; a missing one is reported as not run):
  pool.raw      mode peer workers jobs_per_s              (bench/pool.sh)
  fetch.raw     peer workers rep n ok elapsed user sys rss_kb conns rate
                cpu_us status nginx_us p50_ms p99_ms      (bench/fetch.sh)
  rss.raw       peer size rep seconds rss_kb status       (bench/rss.sh)
  shutdown.raw  peer inflight rep ms status               (bench/shutdown.py)
  *.md          each script's own report, included as a section
Writes docs/benchmarks.md, docs/bench-*.svg (gnuplot, svg terminal; not with
--no-plots) and replaces the part of the README between
"<!-- bench:begin -->" and "<!-- bench:end -->" (main plot, short table,
link). Plot data go to OUT/plot-*.dat, the gnuplot script to OUT/plots.gp.
Standard library only.
"""
import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time

FETCH_PEERS = [("wpool", "wpool"), ("go-tuned", "Go tuned"), ("go-written", "Go as written"),
               ("curl", "curl --parallel"), ("xargs", "xargs + curl"), ("wrk", "wrk (ceiling)")]
RSS_PEERS = [("wpool", "wpool"), ("go-tuned", "Go tuned (streams)"),
             ("go-post", "Go, the post's buffers"), ("curl", "curl --parallel")]
POOL_SERIES = [("callback", "wpool", "wpool (result callback)"), ("chan", "wpool", "wpool (results channel)"),
               ("chan", "go", "Go pipeline (the post's)")]
SPREAD = 1.3


def read_rows(path):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return [ln.split() for ln in f if ln.strip()]


def num(s):
    try:
        return float(s)
    except ValueError:
        return None


def mmm(vals):
    """(median, min, max) of the numbers in vals, or None."""
    v = [x for x in vals if x is not None]
    if not v:
        return None
    return statistics.median(v), min(v), max(v)


def fmt_rate(x):
    if x >= 1e6:
        return "%.2fM" % (x / 1e6)
    if x >= 1e3:
        return "%.1fk" % (x / 1e3)
    return "%.0f" % x


def cell(t, f=fmt_rate, spread=True):
    if t is None:
        return "-"
    med, lo, hi = t
    s = f(med)
    if hi != lo:
        s += " (%s-%s)" % (f(lo), f(hi))
    if spread and lo > 0 and hi / lo > SPREAD:
        s += " ⚠"
    return s


def sh(cmd):
    try:
        out = subprocess.run(cmd, shell=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, timeout=20).stdout
        line = out.strip().splitlines()[0] if out.strip() else ""
        return line.strip() or "not found"
    except Exception:
        return "not found"


def machine(wpool):
    """Called before anything is written: the tree is dirty if a source
    changed, not the generated page."""
    rev = sh("git rev-parse --short HEAD")
    if sh("git status --porcelain -- . ':!docs' ':!README.md' | head -n 1") not in ("", "not found"):
        rev += " with uncommitted changes"
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for ln in f:
                if ln.startswith("model name"):
                    cpu = ln.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        with open("/proc/loadavg") as f:
            load = " ".join(f.read().split()[:3])
    except OSError:
        load = "?"
    mem = sh("awk '/MemTotal/ { printf \"%.1f GB\", $2 / 1048576 }' /proc/meminfo")
    pg = ""
    pgs = sorted(d for d in os.listdir("/usr/lib/postgresql") if d[0].isdigit()) \
        if os.path.isdir("/usr/lib/postgresql") else []
    if pgs:
        pg = sh("/usr/lib/postgresql/%s/bin/postgres --version" % pgs[-1])
    rows = [
        ("CPU", "%s; %d cores (nproc), %s RAM" % (cpu, os.cpu_count() or 0, mem)),
        ("kernel", "%s %s" % (platform.system(), platform.release())),
        ("OS", sh(". /etc/os-release && echo \"$PRETTY_NAME\"")),
        ("load average at the end (1, 5, 15 min)", load),
        ("wpool", "%s, git %s" % (sh("%s --version" % wpool) if wpool else "not built", rev)),
        ("gcc", sh("gcc --version")),
        ("cmake", sh("cmake --version")),
        ("libcurl (wpool's)", sh("curl-config --version")),
        ("go", sh("go version")),
        ("nginx", sh("nginx -v || /usr/sbin/nginx -v")),
        ("wrk", sh("wrk -v")),
        ("curl", sh("curl --version")),
        ("xargs", sh("xargs --version")),
        ("gnuplot", sh("gnuplot --version")),
        ("python3", sh("python3 --version")),
        ("PostgreSQL", pg or "not installed"),
        ("SQLite", sh("sqlite3 --version")),
    ]
    return rows


def demote(md):
    """A script's report as a section: its headings one level down."""
    out = []
    for ln in md.splitlines():
        if ln.startswith("#"):
            ln = "#" + ln
        out.append(ln)
    return "\n".join(out).strip() + "\n"


# ---------------------------------------------------------------------------
def fetch_stats(rows):
    """{(peer, workers): {col: (med, lo, hi)}}, ok runs only."""
    by = {}
    for r in rows or []:
        if len(r) < 16 or r[12] != "ok":
            continue
        by.setdefault((r[0], int(r[1])), []).append(r)
    res = {}
    for k, rs in by.items():
        res[k] = {
            "rate": mmm([num(r[10]) for r in rs]),
            "cpu": mmm([num(r[11]) for r in rs]),
            "rss": mmm([num(r[8]) / 1024 if num(r[8]) is not None else None for r in rs]),
            "p50": mmm([num(r[14]) for r in rs]),
            "p99": mmm([num(r[15]) for r in rs]),
        }
    return res


def pool_stats(rows):
    by = {}
    for r in rows or []:
        if len(r) == 4:
            by.setdefault((r[0], r[1], int(r[2])), []).append(num(r[3]))
    return {k: mmm(v) for k, v in by.items()}


def rss_stats(rows):
    by = {}
    for r in rows or []:
        if len(r) == 6 and r[5] == "ok":
            by.setdefault((r[0], int(r[1])), []).append(num(r[4]) / 1024)
    return {k: mmm(v) for k, v in by.items()}


def write_dat(path, xs, series):
    """series: list of (title, {x: (med, lo, hi)}); one block per series."""
    with open(path, "w") as f:
        for title, d in series:
            f.write("# %s\n" % title)
            for x in xs:
                if x in d and d[x] is not None:
                    f.write("%s %g %g %g\n" % (x, d[x][0], d[x][1], d[x][2]))
            f.write("\n\n")


def plots(out, docs, fetch, pool, rss):
    """Writes the .dat files and plots.gp; runs gnuplot. Returns the SVGs made."""
    gp = ["set terminal svg size 900,480 dynamic enhanced font 'sans,12' background rgb 'white'",
          "set key outside right top", "set grid", "set style data yerrorlines",
          "set pointsize 0.8", "set logscale x 2", "set autoscale xfix"]
    made = []

    def block(name, dat, series, title, xl, yl, logy, xlog10=False):
        gp.append("set output '%s'" % os.path.join(docs, name))
        gp.append("set title \"%s\"" % title)
        gp.append("set xlabel \"%s\"" % xl)
        gp.append("set ylabel \"%s\"" % yl)
        gp.append("set logscale y" if logy else "unset logscale y")
        gp.append("set logscale x 10" if xlog10 else "set logscale x 2")
        gp.append("set format y '%.0s%c'" if logy else "set format y '%.1s%c'")
        gp.append("set yrange [*:*]" if logy else "set yrange [0:*]")
        plots_ = ["'%s' index %d using 1:2:3:4 title \"%s\" lw 2" % (dat, i, t)
                  for i, t in enumerate(series)]
        gp.append("plot " + ", \\\n     ".join(plots_))
        made.append(name)

    if fetch:
        ws = sorted({w for (_, w) in fetch})
        peers = [(p, t) for p, t in FETCH_PEERS if any((p, w) in fetch for w in ws)]
        for metric, name, title, yl in [
                ("rate", "bench-fetch-rate.svg", "Fetch throughput (nginx on loopback; median, min-max)",
                 "URLs/s (wrk: requests/s)"),
                ("cpu", "bench-fetch-cpu.svg", "Client CPU per URL (user + sys; median, min-max)",
                 "CPU µs per URL")]:
            dat = os.path.join(out, "plot-fetch-%s.dat" % metric)
            ser = [(t, {w: fetch[(p, w)][metric] for w in ws if (p, w) in fetch}) for p, t in peers]
            write_dat(dat, ws, ser)
            block(name, dat, [t for t, _ in ser], title, "workers (transfers in flight)", yl, True)
    if pool:
        ws = sorted({w for (_, _, w) in pool})
        ser = [(t, {w: pool[(m, p, w)] for w in ws if (m, p, w) in pool}) for m, p, t in POOL_SERIES]
        ser = [s for s in ser if s[1]]
        dat = os.path.join(out, "plot-pool.dat")
        write_dat(dat, ws, ser)
        block("bench-pool.svg", dat, [t for t, _ in ser], "Pool, no-op jobs (median, min-max)",
              "workers", "jobs/s", False)
    if rss:
        sizes = sorted({s for (_, s) in rss})
        ser = [(t, {s: rss[(p, s)] for s in sizes if (p, s) in rss}) for p, t in RSS_PEERS]
        ser = [s for s in ser if s[1]]
        dat = os.path.join(out, "plot-rss.dat")
        write_dat(dat, sizes, ser)
        block("bench-rss.svg", dat, [t for t, _ in ser], "Max RSS against input size (64 workers)",
              "URLs in the input", "max RSS, MB", True, xlog10=True)
    if not made:
        return []
    script = os.path.join(out, "plots.gp")
    with open(script, "w") as f:
        f.write("\n".join(gp) + "\n")
    if not shutil.which("gnuplot"):
        raise SystemExit("bench/report.py: gnuplot not found (Debian: gnuplot-nox)")
    subprocess.run(["gnuplot", script], check=True)
    return made


# ---------------------------------------------------------------------------
def ratio(a, b):
    if not a or not b or b[0] == 0:
        return None
    return a[0] / b[0]


def rs(x):
    return "%.2fx" % x if x is not None else "-"


def headline(fetch, pool, rss, shut):
    """The short table (README and the page's top) and the headline lines."""
    lines = []
    tab = []
    if fetch:
        ws = sorted({w for (_, w) in fetch})
        show = [w for w in (64, 256, 1024) if w in ws] or ws[-2:]
        tab.append("| workers | wpool URLs/s | Go tuned | Go as written | curl --parallel | wpool CPU µs/URL | Go tuned CPU | wpool RSS MB | Go tuned RSS |")
        tab.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for w in show:
            g = lambda p, m: fetch.get((p, w), {}).get(m)
            tab.append("| %d | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                w, cell(g("wpool", "rate"), spread=False), cell(g("go-tuned", "rate"), spread=False),
                cell(g("go-written", "rate"), spread=False), cell(g("curl", "rate"), spread=False),
                cell(g("wpool", "cpu"), lambda x: "%.0f" % x, False),
                cell(g("go-tuned", "cpu"), lambda x: "%.0f" % x, False),
                cell(g("wpool", "rss"), lambda x: "%.1f" % x, False),
                cell(g("go-tuned", "rss"), lambda x: "%.1f" % x, False)))
        for w in show:
            g = lambda p, m: fetch.get((p, w), {}).get(m)
            lines.append(
                "- Fetch at %d workers: wpool / Go tuned %s, / Go as written %s, / curl --parallel %s "
                "(URLs/s, medians); CPU per URL Go tuned / wpool %s, curl / wpool %s."
                % (w, rs(ratio(g("wpool", "rate"), g("go-tuned", "rate"))),
                   rs(ratio(g("wpool", "rate"), g("go-written", "rate"))),
                   rs(ratio(g("wpool", "rate"), g("curl", "rate"))),
                   rs(ratio(g("go-tuned", "cpu"), g("wpool", "cpu"))),
                   rs(ratio(g("curl", "cpu"), g("wpool", "cpu")))))
        wmax = ws[-1]
        a, b = fetch.get(("wpool", wmax), {}).get("rss"), fetch.get(("go-tuned", wmax), {}).get("rss")
        if a and b:
            lines.append("- Max RSS at %d workers: wpool %.1f MB, Go tuned %.1f MB." % (wmax, a[0], b[0]))
    if pool:
        ws = sorted({w for (_, _, w) in pool})
        rc = [ratio(pool.get(("callback", "wpool", w)), pool.get(("callback", "go", w))) for w in ws]
        rch = [ratio(pool.get(("chan", "wpool", w)), pool.get(("chan", "go", w))) for w in ws]
        rc = [x for x in rc if x is not None]
        rch = [x for x in rch if x is not None]
        if rc and rch:
            lines.append("- Pool, no-op jobs, %s-%s workers: wpool / the post's Go pipeline "
                         "%.2f-%.2fx with a result callback, %.2f-%.2fx with a results channel."
                         % (ws[0], ws[-1], min(rc), max(rc), min(rch), max(rch)))
    if rss:
        sizes = sorted({s for (_, s) in rss})
        # the largest size, and the largest where several peers ran, if not the same
        several = [z for z in sizes if sum((p, z) in rss for p, _ in RSS_PEERS) > 1]
        show = sorted({sizes[-1]} | ({several[-1]} if several else set()))
        small = rss.get(("wpool", sizes[0]))
        for big in show:
            parts = ["%s %.1f MB" % (t, rss[(p, big)][0]) for p, t in RSS_PEERS if (p, big) in rss]
            lines.append("- Memory at %s URLs of input: %s%s." % (
                "{:,}".format(big), ", ".join(parts),
                " (wpool at %s URLs: %.1f MB)" % ("{:,}".format(sizes[0]), small[0]) if small else ""))
    if shut:
        ok = [num(r[3]) for r in shut if len(r) == 5 and r[4] == "ok"]
        if ok:
            lines.append("- ShutdownNow with %s transfers in flight: exit %.0f ms after the second "
                         "SIGINT (median of %d; %.0f-%.0f)." % (shut[0][1], statistics.median(ok), len(ok),
                                                                 min(ok), max(ok)))
    return tab, lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/out")
    ap.add_argument("--docs", default="docs")
    ap.add_argument("--readme", default="README.md")
    ap.add_argument("--cmd", default="make bench")
    ap.add_argument("--wpool", default="")
    ap.add_argument("--note", default="")
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--only", default="pool fetch rss shutdown durable obs",
                    help="the parts this generation ran; the others' files in OUT are stale, not read")
    a = ap.parse_args()
    only = set(a.only.split())

    out = a.out
    def rows(name):
        return read_rows(os.path.join(out, name + ".raw")) if name in only else None
    fetch = fetch_stats(rows("fetch"))
    pool = pool_stats(rows("pool"))
    rss = rss_stats(rows("rss"))
    shut = rows("shutdown")
    mach = machine(a.wpool)
    made = [] if a.no_plots else plots(out, a.docs, fetch, pool, rss)
    tab, lines = headline(fetch, pool, rss, shut)

    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    doc = ["# wpool benchmarks", "",
           "Generated by `%s` on %s: every table and plot below comes from that one" % (a.cmd, when),
           "run (bench/run.sh, then bench/report.py). Peers run side by side on the same",
           "machine, alternating, several repetitions; each cell is the median (min-max);",
           "⚠ marks a spread (max/min) above %.1f, ✗ a run that failed its check." % SPREAD, ""]
    if a.note:
        doc += ["**Note on this run.** " + a.note, ""]
    if lines:
        doc += ["## Headline", ""] + lines + [""]
    if tab:
        doc += tab + [""]
    if made:
        doc += ["## Plots", ""]
        for m in made:
            doc.append("![%s](%s)" % (m[:-4], m))
            doc.append("")
    sections = [("pool.md", "bench/pool.sh"), ("fetch.md", "bench/fetch.sh"), ("rss.md", "bench/rss.sh"),
                ("shutdown.md", "bench/shutdown.sh"), ("durable.md", "bench/durable.sh"),
                ("obs.md", "bench/obs.sh")]
    for f, script in sections:
        p = os.path.join(out, f)
        if f[:-3] in only and os.path.exists(p):
            with open(p) as fh:
                doc.append(demote(fh.read()))
        else:
            doc += ["## %s" % script, "", "Not run in this generation.", ""]
    doc += ["## Machine and versions", ""]
    for k, v in mach:
        doc.append("- %s: %s" % (k, v.replace("|", "/")))
    doc.append("")
    doc += ["## How to reproduce", "",
            "    make bench            # installs nginx-light, wrk, golang-go, gnuplot-nox (Debian),",
            "                          # builds, runs the whole suite, writes this page and the plots",
            "    make bench QUICK=1    # the same in under 3 minutes, fewer URLs and repetitions", "",
            "Each section above gives its script's exact command and settings;",
            "bench/README.md says what each benchmark measures and what it does not.", ""]
    # bench/soak.sh keeps its own section (a 2-minute run apart from this
    # suite): carry it over from the page as it was.
    page = os.path.join(a.docs, "benchmarks.md")
    sb, se = "<!-- soak:begin -->", "<!-- soak:end -->"
    if os.path.exists(page):
        with open(page) as f:
            old = f.read()
        if sb in old and se in old:
            doc += [sb + old.split(sb, 1)[1].split(se, 1)[0] + se, ""]
    with open(page, "w") as f:
        f.write("\n".join(doc))

    if a.readme and os.path.exists(a.readme):
        with open(a.readme) as f:
            text = f.read()
        begin, end = "<!-- bench:begin -->", "<!-- bench:end -->"
        if begin in text and end in text:
            block = [begin, ""]
            if "bench-fetch-rate.svg" in made or os.path.exists(os.path.join(a.docs, "bench-fetch-rate.svg")):
                block.append("![fetch throughput against workers](docs/bench-fetch-rate.svg)")
                block.append("")
            block += tab
            block += ["", "Median of the run of %s (`%s`; 100-byte file from nginx on the same" % (when[:10], a.cmd),
                      "machine). Everything, with CPU, latency, memory against input size,",
                      "shutdown and the pool's own overhead: [docs/benchmarks.md](docs/benchmarks.md).",
                      "", end]
            pre, rest = text.split(begin, 1)
            _, post = rest.split(end, 1)
            with open(a.readme, "w") as f:
                f.write(pre + "\n".join(block) + post)
    print("bench/report.py: wrote %s/benchmarks.md%s" % (
        a.docs, "".join(", %s/%s" % (a.docs, m) for m in made)), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
