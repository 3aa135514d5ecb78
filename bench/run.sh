#!/bin/sh
# bench/run.sh: the whole benchmark suite, then the page. `make bench` runs
# it after installing what it needs (scripts/deps.sh); QUICK=1 for a short
# run (under 3 minutes on an idle 2-core machine).
#
#   bench/pool.sh      pool no-op throughput across worker counts, wpool vs Go
#   bench/fetch.sh     fetch throughput, CPU, latency, RSS across 1..1024
#                      workers: wpool, Go as written and tuned, curl
#                      --parallel, xargs + curl, wrk
#   bench/rss.sh       memory against input size (1k..10M URLs)
#   bench/shutdown.sh  ShutdownNow to exit with 256 transfers in flight
#   bench/durable.sh   SQLite --state and PostgreSQL 1-4 processes, when the
#                      binary has them
#   bench/obs.sh       what metrics, traces and logs cost: pool hot path and
#                      fetch at 64 workers, on and off alternating
#   bench/report.py    docs/benchmarks.md, docs/bench-*.svg, the README block
#
# Each script also runs alone (its header says how). A script that fails is
# reported and the others still run; the exit status is then 1.
# Environment: QUICK, BENCH_CMD (the command line for the page, default
# "sh bench/run.sh"), BENCH_NOTE (a note printed at the top of the page),
# BENCH_ONLY="pool fetch ..." (run only those; the page then says which
# sections were not run).
set -u
cd "$(dirname "$0")/.."
QUICK=${QUICK:-0}
export QUICK
[ "$QUICK" = 1 ] || unset QUICK
BENCH_CMD=${BENCH_CMD:-"sh bench/run.sh"}
# The settings given in the environment belong to the command on the page.
# (WORKERS and NJOBS/MODES/QUEUE go to pool.sh, WORKERS and the *NURLS to
# fetch.sh, SIZES/RSS_* to rss.sh, INFLIGHT/QUEUED to shutdown.sh,
# DURABLE_WORKERS/PG_* to durable.sh; REPS, NURLS, TIMEOUT to all that
# take them; each section of the page repeats its own.)
envs=""
for v in REPS NJOBS MODES QUEUE GO_BUF WORKERS NURLS SLOW_NURLS XARGS_NURLS PEERS WRK_SECS \
  SIZES RSS_WORKERS CURL_MAX_SIZE RSS_EXTRA INFLIGHT QUEUED DURABLE_WORKERS PG_PROCS PG_BIN \
  TIMEOUT WPOOL BENCH_ONLY; do
  eval "isset=\${$v+x}"
  if [ -n "$isset" ]; then
    eval "val=\$$v"
    envs="$envs$v='$val' "
  fi
done
BENCH_CMD="$envs$BENCH_CMD"
ONLY=${BENCH_ONLY:-"pool fetch rss shutdown durable obs"}
mkdir -p bench/out docs
for s in $ONLY; do rm -f "bench/out/$s.md" "bench/out/$s.raw"; done
start=$(date +%s)
failed=""
for s in $ONLY; do
  echo "=== bench/$s.sh ($(date -u '+%H:%M:%S UTC'))" >&2
  if ! sh "bench/$s.sh" >"bench/out/$s.log"; then
    echo "bench/run.sh: bench/$s.sh FAILED (stdout: bench/out/$s.log)" >&2
    failed="$failed $s"
  fi
done
python3 bench/report.py --cmd "$BENCH_CMD" --wpool build/bench/wpool --note "${BENCH_NOTE:-}" \
  --only "$ONLY" || failed="$failed report"
echo "bench/run.sh: $(($(date +%s) - start)) s; wrote docs/benchmarks.md and docs/bench-*.svg (raw: bench/out/)" >&2
if [ -n "$failed" ]; then
  echo "bench/run.sh: failed:$failed" >&2
  exit 1
fi
