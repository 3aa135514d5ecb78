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
#
# What it does: builds build/bench (Release) if needed; initdb into a
# temporary folder and starts PostgreSQL 15 on a free loopback port (as the
# postgres user when root; default settings: fsync on, synchronous_commit
# on), stopped at exit; `wpool migrate`; then for each process count and
# rep: empties the table, `wpool enqueue`s NJOBS URLs (not timed), starts
# the processes at once and times them until the last exits (the queue is
# empty), checks every job completed exactly once. Writes
# bench/out/store.md and prints it.
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
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
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}

die() {
  echo "bench/store.sh: $*" >&2
  exit 1
}
[ -x "$PGBIN/postgres" ] || die "PostgreSQL 15 not found in $PGBIN (apt-get install postgresql)"

if [ -z "${WPOOL:-}" ] && { [ ! -x build/bench/store_noop ] || [ ! -x build/bench/wpool ]; }; then
  echo "== building build/bench (Release)" >&2
  cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=Release -DWPOOL_WERROR=OFF \
    -DWPOOL_BUILD_TESTS=OFF >/dev/null
  cmake --build build/bench -j "$(nproc)" --target wpool_cli store_noop >/dev/null
fi
WPOOL=${WPOOL:-$ROOT/build/bench/wpool}
NOOP=${NOOP:-$(dirname "$WPOOL")/store_noop}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/wpool-bench-store.XXXXXX")
PGPID=
cleanup() {
  if [ -n "$PGPID" ]; then
    kill -INT "$PGPID" 2>/dev/null || true
    while kill -0 "$PGPID" 2>/dev/null; do sleep 0.2; done
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
[ "$(id -u)" = 0 ] && chown postgres "$TMP"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
as_pg "$PGBIN/initdb" -D "$TMP/data" -A trust -U postgres -E UTF8 --locale=C >/dev/null
# exec: PGPID is postgres itself, so SIGINT (fast shutdown) reaches it.
if [ "$(id -u)" = 0 ]; then
  setpriv --reuid=postgres --regid=postgres --init-groups \
    "$PGBIN/postgres" -D "$TMP/data" -p "$PORT" -k "$TMP" \
    -c listen_addresses=127.0.0.1 -c max_connections=100 >"$TMP/pg.log" 2>&1 &
else
  "$PGBIN/postgres" -D "$TMP/data" -p "$PORT" -k "$TMP" \
    -c listen_addresses=127.0.0.1 -c max_connections=100 >"$TMP/pg.log" 2>&1 &
fi
PGPID=$!
URL="postgresql://postgres@127.0.0.1:$PORT/postgres"
i=0
until "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PORT"; do
  i=$((i + 1))
  [ $i -lt 300 ] || die "PostgreSQL did not start: $(tail -5 "$TMP/pg.log")"
  sleep 0.1
done
"$WPOOL" migrate --db "$URL" >/dev/null
awk -v n="$NJOBS" 'BEGIN { for (i = 1; i <= n; i++) printf "http://127.0.0.1:9/noop/%d\n", i }' >"$TMP/urls"
psql() { "$PGBIN/psql" -X -q -A -t -d "$URL" -c "$1"; }

raw=$TMP/raw
: >"$raw"
for p in $PROCS; do
  r=1
  while [ $r -le "$REPS" ]; do
    psql "TRUNCATE wpool_jobs, wpool_workers" >/dev/null
    "$WPOOL" enqueue --db "$URL" "$TMP/urls" >/dev/null
    psql "VACUUM ANALYZE wpool_jobs" >/dev/null
    t0=$(date +%s%N)
    k=1
    pids=""
    while [ $k -le "$p" ]; do
      "$NOOP" "$URL" default "$THREADS" "$BATCH" >"$TMP/out.$k" 2>"$TMP/err.$k" &
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

median() { # procs
  awk -v p="$1" '$1 == p { print $3 }' "$raw" | sort -n | awk '{ v[NR] = $1 }
    END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.0f %s %s\n", m, v[1], v[NR] }'
}
mkdir -p bench/out
{
  echo "# wpool store benchmark (PostgreSQL queue, no-op jobs)"
  echo
  echo "$NJOBS pre-enqueued jobs burned down by P worker processes at once"
  echo "(bench/store_noop: the runner of \`wpool work\`, $THREADS no-op task thread(s),"
  echo "claims of $BATCH), PostgreSQL $("$PGBIN/postgres" --version | awk '{ print $3 }') on the same machine,"
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
  echo "Command: NJOBS=$NJOBS PROCS='$PROCS' THREADS=$THREADS BATCH=$BATCH REPS=$REPS sh bench/store.sh"
} >bench/out/store.md
cat bench/out/store.md
