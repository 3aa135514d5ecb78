#!/bin/sh
# The benchmark suite's only test (speed is measured in bench/, never
# asserted): every bench script parses, and bench/report.py turns a small
# fixture of raw results into the page and the README block with the right
# medians and ratios. Seconds; no server, no Go, no gnuplot.
set -eu
SRC=$(cd "$(dirname "$0")/../.." && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/wpool-bench-smoke.XXXXXX")
trap 'rm -rf "$T"' EXIT
fail() {
  echo "bench smoke: FAIL: $*" >&2
  exit 1
}

for f in "$SRC"/bench/*.sh; do
  sh -n "$f" || fail "sh -n $f"
done
for f in "$SRC"/bench/*.py; do
  python3 -c 'import ast, sys; ast.parse(open(sys.argv[1]).read(), sys.argv[1])' "$f" || fail "python syntax: $f"
done

# fetch.raw: peer workers rep n ok elapsed user sys rss_kb conns rate cpu_us
# status nginx_us p50 p99. At 64 workers wpool's median rate is 9000 (the
# FAIL row must not count), Go tuned's 4500: the ratio is 2.00x.
cat >"$T/fetch.raw" <<'R'
wpool 64 1 1000 1000 0.1 0.02 0.02 11000 64 8000 40.00 ok 20 2.0 30.0
wpool 64 2 1000 1000 0.1 0.02 0.02 11200 64 9000 41.00 ok 20 2.1 31.0
wpool 64 3 1000 1000 0.1 0.02 0.02 11100 64 10000 42.00 ok 20 2.2 32.0
wpool 64 4 1000 10 0.1 0.02 0.02 11100 64 99999 42.00 FAIL 20 2.2 32.0
go-tuned 64 1 1000 1000 0.1 0.02 0.02 13000 64 4500 60.00 ok 20 3.0 40.0
go-tuned 64 2 1000 1000 0.1 0.02 0.02 13000 64 4400 61.00 ok 20 3.0 40.0
go-tuned 64 3 1000 1000 0.1 0.02 0.02 13000 64 4600 62.00 ok 20 3.0 40.0
R
printf 'callback wpool 1 6000000\ncallback go 1 4000000\nchan go 1 3000000\nchan wpool 1 2000000\n' >"$T/pool.raw"
printf 'wpool 1000 1 0.5 11000 ok\nwpool 100000 1 7 11500 ok\ngo-post 100000 1 7 35840 ok\n' >"$T/rss.raw"
printf 'wpool 256 1 80.0 ok\nwpool 256 2 60.0 ok\nwpool 256 3 999.0 FAIL\n' >"$T/shutdown.raw"
printf '# title\n\nbefore\n\n<!-- bench:begin -->\nold\n<!-- bench:end -->\n\nafter\n' >"$T/README.md"

python3 "$SRC/bench/report.py" --out "$T" --docs "$T" --readme "$T/README.md" \
  --cmd "smoke" --no-plots 2>"$T/err" || { cat "$T/err" >&2; fail "report.py exited non-zero"; }

page=$T/benchmarks.md
[ -f "$page" ] || fail "no benchmarks.md"
grep -q "Fetch at 64 workers: wpool / Go tuned 2.00x" "$page" || fail "fetch ratio (want 2.00x)"
grep -q "CPU per URL Go tuned / wpool 1.49x" "$page" || fail "CPU ratio (want 61/41 = 1.49x)"
grep -q '| 64 | 9.0k (8.0k-10.0k) | 4.5k (4.4k-4.6k) |' "$page" || fail "short table row"
grep -q "1.50-1.50x with a result callback, 0.67-0.67x with a results channel" "$page" || fail "pool ratios (want 6/4 = 1.50x: each mode against the Go runs that alternated with it)"
grep -q "Go, the post's buffers 35.0 MB" "$page" || fail "RSS line"
grep -q "exit 70 ms after the second SIGINT (median of 2; 60-80)" "$page" || fail "shutdown line (FAIL run must not count)"
grep -q "Not run in this generation" "$page" || fail "missing sections not reported"
grep -q '^before$' "$T/README.md" && grep -q '^after$' "$T/README.md" || fail "README text outside the block changed"
grep -q '^old$' "$T/README.md" && fail "README block not replaced"
grep -q '| 64 | 9.0k (8.0k-10.0k)' "$T/README.md" || fail "README table"
echo "bench smoke: ok"
