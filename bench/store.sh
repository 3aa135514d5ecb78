#!/bin/sh
# bench/store.sh: burn down pre-enqueued no-op jobs through PostgreSQL with
# 1, 2 and 4 worker processes (bench/store_noop.c: the queue runner of
# `wpool work` on a pool of no-op task threads), jobs/s.
#
#   sh bench/store.sh
#
# Environment (all optional):
#   QUICK=1      20,000 jobs, 1 run each (bench/durable.sh passes it on)
#   NJOBS=n      jobs per run (default 200000)
#   PROCS="..."  worker process counts (default "1 2 4")
#   THREADS=n    task threads per process (default 1)
#   BATCH=n      jobs per claim (default 500)
#   REPS=n       runs per process count (default 3; the median is reported)
#   WPOOL=path   a wpool binary (store_noop beside it) instead of build/bench
#   STORE_NOOP=path  that store_noop instead
#   PG_BIN=dir   the PostgreSQL bin directory (default the newest
#                /usr/lib/postgresql/*/bin)
#
# What it does: the Release build of bench/lib.sh (build/bench); pg_start of
# bench/lib.sh (initdb into a temporary folder, the newest PostgreSQL on a
# free loopback port, as the postgres user when root; default settings:
# fsync on, synchronous_commit on), stopped at exit; `wpool migrate`; then
# for each process count and rep: empties the table, `wpool enqueue`s NJOBS
# URLs (not timed), starts the processes at once and times them until the
# last exits (the queue is empty), checks every job completed exactly once.
# Writes bench/out/store.md and prints it.
set -eu
cd "$(dirname "$0")/.."
SCRIPT=store
. bench/lib.sh
cmd=$(bench_cmd QUICK NJOBS PROCS THREADS BATCH REPS WPOOL STORE_NOOP PG_BIN)
if [ "${QUICK:-0}" = 1 ]; then
  NJOBS=${NJOBS:-20000}
  REPS=${REPS:-1}
fi
NJOBS=${NJOBS:-200000}
PROCS=${PROCS:-"1 2 4"}
THREADS=${THREADS:-1}
BATCH=${BATCH:-500}
REPS=${REPS:-3}
BAR=6000

build_wpool
[ -x "$STORE_NOOP_BIN" ] || die "$STORE_NOOP_BIN was not built"
pg_start || die "$PG_ERR"
URL=$DB
echo "== PostgreSQL on 127.0.0.1:$PG_PORT" >&2
"$WPOOL_BIN" migrate --db "$URL" >/dev/null
awk -v n="$NJOBS" 'BEGIN { for (i = 1; i <= n; i++) printf "http://127.0.0.1:9/noop/%d\n", i }' >"$TMP/urls"
psql() { "$PG_BIN/psql" -X -q -A -t -d "$URL" -c "$1"; }

raw=$TMP/raw
: >"$raw"
for p in $PROCS; do
  r=1
  while [ $r -le "$REPS" ]; do
    psql "TRUNCATE wpool_jobs, wpool_workers" >/dev/null
    "$WPOOL_BIN" enqueue --db "$URL" "$TMP/urls" >/dev/null
    psql "VACUUM ANALYZE wpool_jobs" >/dev/null
    t0=$(date +%s%N)
    k=1
    pids=""
    while [ $k -le "$p" ]; do
      "$STORE_NOOP_BIN" "$URL" default "$THREADS" "$BATCH" >"$TMP/out.$k" 2>"$TMP/err.$k" &
      pids="$pids $!"
      k=$((k + 1))
    done
    for pid in $pids; do wait "$pid" || die "a store_noop failed: $(cat "$TMP"/err.*)"; done
    t1=$(date +%s%N)
    done_n=$(psql "SELECT count(*) FROM wpool_jobs WHERE state = 2 AND attempts = 1")
    [ "$done_n" = "$NJOBS" ] || die "$done_n of $NJOBS jobs completed exactly once"
    rate=$(awk -v n="$NJOBS" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / ((b - a) / 1e9) }')
    echo "$p $r $rate" >>"$raw"
    echo "procs $p rep $r: $rate jobs/s" >&2
    r=$((r + 1))
  done
done

median() { # procs -> "median min max", whole jobs/s
  stats_of "$raw" 3 "\$1 == $1" | awk '{ printf "%.0f %s %s\n", $1, $2, $3 }'
}
mkdir -p bench/out
{
  echo "# wpool store benchmark (PostgreSQL queue, no-op jobs)"
  echo
  echo "$NJOBS pre-enqueued jobs burned down by P worker processes at once"
  echo "(bench/store_noop: the runner of \`wpool work\`, $THREADS no-op task thread(s),"
  echo "claims of $BATCH), PostgreSQL $("$PG_BIN/postgres" --version | awk '{ print $3 }') on the same machine,"
  echo "default settings (fsync and synchronous_commit on). $REPS runs each."
  echo
  echo "| processes | jobs/s (median) | min | max |"
  echo "|---:|---:|---:|---:|"
  best=0
  for p in $PROCS; do
    set -- $(median "$p")
    echo "| $p | $1 | $2 | $3 |"
    [ "$1" -gt "$best" ] && best=$1
  done
  echo
  v=FAIL
  [ "$best" -ge "$BAR" ] && v=PASS
  echo "- Bar: >= $BAR jobs/s: **$v** (best median $best jobs/s)."
  echo
  echo "Machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)."
  echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
  echo "Command: \`$cmd\` (NJOBS=$NJOBS PROCS='$PROCS' THREADS=$THREADS BATCH=$BATCH REPS=$REPS)"
} >bench/out/store.md
cat bench/out/store.md
