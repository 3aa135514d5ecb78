#!/bin/sh
# bench/durable.sh: the durable modes, when the wpool binary has them.
#
#   sh bench/durable.sh             100,000 URLs, 3 reps
#   QUICK=1 sh bench/durable.sh      10,000 URLs, 1 rep
#
# - SQLite (`wpool fetch --state FILE`): at DURABLE_WORKERS (64) workers, runs with
#   and without --state alternate (a fresh state file each time); URLs/s of
#   each and the ratio (issue 6's bar: >= 70% of the rate without it).
# - PostgreSQL (`wpool migrate/enqueue/work`): a private server (initdb into
#   a temporary folder, its own loopback port, as the postgres user), then
#   for 1, 2 and 4 `wpool work --exit-when-empty` processes: enqueue NURLS
#   URLs into a fresh queue, start the processes together, time until the
#   last exits; jobs/s. If bench/store.sh exists (issue 6's library-level
#   no-op burn-down), it runs too and its report is appended.
# A mode the binary does not have (its --help does not list it) is reported
# as "not measured: this wpool has no ..." and skipped: this script is ready
# before the feature is.
#
# Environment (all optional): REPS, NURLS, DURABLE_WORKERS (64), PG_PROCS ("1 2 4"),
# PG_BIN (the PostgreSQL bin directory; default the newest
# /usr/lib/postgresql/*/bin), TIMEOUT (600), WPOOL=path.
# Writes bench/out/durable.md and bench/out/durable.raw
# (mode procs rep n seconds rate status).
set -eu
cd "$(dirname "$0")/.."
SCRIPT=durable
. bench/lib.sh
cmd=$(bench_cmd QUICK REPS NURLS DURABLE_WORKERS PG_PROCS PG_BIN TIMEOUT WPOOL)

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
  REPS=${REPS:-1}
  NURLS=${NURLS:-10000}
else
  REPS=${REPS:-3}
  NURLS=${NURLS:-100000}
fi
DURABLE_WORKERS=${DURABLE_WORKERS:-64}
PG_PROCS=${PG_PROCS:-"1 2 4"}
TIMEOUT=${TIMEOUT:-600}

need_tools nginx curl time
raise_nofile
mkdir -p bench/out
build_wpool

raw=bench/out/durable.raw
: >"$raw"
md=bench/out/durable.md
notes=""
has_state=0
has_pg=0
"$WPOOL_BIN" fetch --help 2>&1 | grep -q -- '--state' && has_state=1
if "$WPOOL_BIN" work --help >/dev/null 2>&1 && "$WPOOL_BIN" enqueue --help >/dev/null 2>&1 &&
  "$WPOOL_BIN" migrate --help >/dev/null 2>&1; then
  has_pg=1
fi

if [ "$has_state" = 1 ] || [ "$has_pg" = 1 ]; then
  nginx_start
  URLS=$TMP/urls.txt
  url_list "$NURLS" "$URLS"
fi

# count_csv FILE -> answered 200
count_csv() {
  awk -F, 'NR > 1 && $3 == "true" && $4 == "200" { ok++ } END { print ok + 0 }' "$1"
}

# --- SQLite -------------------------------------------------------------------
sqlite_run() { # with|without rep
  rm -f "$TMP/state.db" "$TMP/state.db-wal" "$TMP/state.db-shm"
  if [ "$1" = with ]; then
    set -- "$WPOOL_BIN" fetch -w "$DURABLE_WORKERS" --no-progress -f csv --state "$TMP/state.db" "$URLS"
    mode=sqlite-state
  else
    set -- "$WPOOL_BIN" fetch -w "$DURABLE_WORKERS" --no-progress -f csv "$URLS"
    mode=no-state
  fi
  t0=$(date +%s%N)
  rc=0
  timeout "$TIMEOUT" "$@" >"$TMP/out.csv" 2>"$TMP/err.txt" || rc=$?
  t1=$(date +%s%N)
  ok=$(count_csv "$TMP/out.csv")
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
  rate=$(awk -v n="$NURLS" -v s="$secs" 'BEGIN { printf "%.0f", n / s }')
  st=ok
  [ "$rc" = 0 ] && [ "$ok" = "$NURLS" ] || st=FAIL
  if [ "$mode" = sqlite-state ]; then
    # the state holds every job once, answered (not timed)
    "$WPOOL_BIN" results --state "$TMP/state.db" -f csv >"$TMP/results.csv" 2>>"$TMP/err.txt" || st=FAIL
    [ "$(count_csv "$TMP/results.csv")" = "$NURLS" ] || st=FAIL
  fi
  echo "$mode 1 $r $NURLS $secs $rate $st" >>"$raw"
  printf '%-13s rep=%s %8s URLs/s  %s\n' "$mode" "$r" "$rate" "$st" >&2
}

if [ "$has_state" = 1 ]; then
  echo "== SQLite --state: $REPS reps x $NURLS URLs at $DURABLE_WORKERS workers" >&2
  r=1
  while [ "$r" -le "$REPS" ]; do
    if [ $((r % 2)) = 1 ]; then sqlite_run with; sqlite_run without; else sqlite_run without; sqlite_run with; fi
    r=$((r + 1))
  done
fi

# --- PostgreSQL -----------------------------------------------------------------
pg_ok=0
if [ "$has_pg" = 1 ]; then
  if pg_start; then pg_ok=1; else notes="$notes $PG_ERR"; fi
fi
if [ "$pg_ok" = 1 ]; then
  echo "== PostgreSQL on 127.0.0.1:$PG_PORT: $REPS reps x $NURLS URLs, processes: $PG_PROCS" >&2
  "$WPOOL_BIN" migrate --db "$DB" >"$TMP/migrate.log" 2>&1 || { cat "$TMP/migrate.log" >&2; die "wpool migrate failed"; }
  r=1
  while [ "$r" -le "$REPS" ]; do
    for k in $PG_PROCS; do
      q="bench_${k}_$r"
      "$WPOOL_BIN" enqueue --db "$DB" --queue "$q" "$URLS" >"$TMP/enqueue.log" 2>&1 ||
        { cat "$TMP/enqueue.log" >&2; die "wpool enqueue failed"; }
      per=$((DURABLE_WORKERS / k))
      [ "$per" -ge 1 ] || per=1
      t0=$(date +%s%N)
      pids=""
      i=1
      while [ "$i" -le "$k" ]; do
        timeout "$TIMEOUT" "$WPOOL_BIN" work --db "$DB" --queue "$q" -w "$per" --exit-when-empty \
          >"$TMP/work.$i.out" 2>"$TMP/work.$i.err" &
        pids="$pids $!"
        i=$((i + 1))
      done
      st=ok
      for p in $pids; do wait "$p" || st=FAIL; done
      t1=$(date +%s%N)
      secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
      rate=$(awk -v n="$NURLS" -v s="$secs" 'BEGIN { printf "%.0f", n / s }')
      # every job once in the results
      got=$("$WPOOL_BIN" results --db "$DB" --queue "$q" -f csv 2>/dev/null | awk -F, 'NR > 1 && $3 == "true" { n++ } END { print n + 0 }') || got=0
      [ "$got" = "$NURLS" ] || st=FAIL
      echo "postgres $k $r $NURLS $secs $rate $st" >>"$raw"
      printf 'postgres %s procs x %s workers rep=%s %8s jobs/s  %s (%s results ok)\n' "$k" "$per" "$r" "$rate" "$st" "$got" >&2
    done
    r=$((r + 1))
  done
fi

STORE_MD=""
if [ "$has_pg" = 1 ] && [ -f bench/store.sh ]; then
  echo "== bench/store.sh" >&2
  if QUICK=$QUICK sh bench/store.sh >"$TMP/store.out" 2>"$TMP/store.err"; then
    if [ -f bench/out/store.md ]; then STORE_MD=bench/out/store.md; else STORE_MD=$TMP/store.out; fi
  else
    notes="$notes bench/store.sh failed: $(tail -n 2 "$TMP/store.err" | tr '\n' ' ')"
  fi
fi

cell() { # mode procs -> "median (min-max)"
  s=$(stats_of "$raw" 6 "\$1 == \"$1\" && \$2 == $2") || { echo "-"; return; }
  echo "$s" | awk -v reps="$REPS" '{
      c = sprintf("%.0f", $1); if (reps > 1) c = c sprintf(" (%.0f-%.0f)", $2, $3)
      if ($2 > 0 && $3 / $2 > 1.3) c = c " ⚠"; print c }'
}
failed() { awk -v m="$1" -v k="$2" '$1 == m && $2 == k && $7 != "ok" { f = 1 } END { exit !f }' "$raw"; }

{
  echo "# Durable modes"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'). Command: \`$cmd\`"
  echo
  echo "$NURLS URLs per run from nginx on 127.0.0.1 (bench/lib.sh), $REPS rep(s)."
  echo
  echo "## SQLite state (\`wpool fetch --state\`)"
  echo
  if [ "$has_state" = 1 ]; then
    echo "| workers | without --state, URLs/s | with --state, URLs/s | with / without |"
    echo "|---:|---:|---:|---:|"
    a=$(stats_of "$raw" 6 '$1 == "sqlite-state"' | awk '{ print $1 }') || a=""
    b=$(stats_of "$raw" 6 '$1 == "no-state"' | awk '{ print $1 }') || b=""
    ratio=$(awk -v a="$a" -v b="$b" 'BEGIN { if (a != "" && b > 0) printf "%.0f%%", 100 * a / b; else print "-" }')
    c1=$(cell no-state 1)
    c2=$(cell sqlite-state 1)
    failed no-state 1 && c1="$c1 ✗"
    failed sqlite-state 1 && c2="$c2 ✗"
    echo "| $DURABLE_WORKERS | $c1 | $c2 | $ratio |"
    echo
    echo "Runs alternate (with, without; then without, with); a fresh state file"
    echo "each time. Commands: \`wpool fetch -w $DURABLE_WORKERS --no-progress -f csv [--state FILE] URLS\`;"
    echo "after each run with a state, \`wpool results --state FILE -f csv\` (not timed) must"
    echo "hold every job once, answered 200 (✗ otherwise)."
    echo "Issue 6's bar: with --state >= 70% of the rate without."
  else
    echo "Not measured: this wpool has no \`fetch --state\` (issue 6). When it has,"
    echo "\`make bench\` measures it."
  fi
  echo
  echo "## PostgreSQL (\`wpool work\`, 1-4 processes)"
  echo
  if [ "$has_pg" = 1 ] && [ -n "$PG_PID" ]; then
    echo "| processes | workers each | jobs/s |"
    echo "|---:|---:|---:|"
    for k in $PG_PROCS; do
      c=$(cell postgres "$k")
      failed postgres "$k" && c="$c ✗"
      echo "| $k | $((DURABLE_WORKERS / k)) | $c |"
    done
    echo
    echo "A private PostgreSQL ($("$PG_BIN/postgres" --version 2>/dev/null)) on the same machine;"
    echo "per run: \`wpool enqueue --db URL --queue Q URLS\`, then K x"
    echo "\`wpool work --db URL --queue Q -w $DURABLE_WORKERS/K --exit-when-empty\` started together,"
    echo "timed until the last exits; ✗: a process failed or \`wpool results\` did not"
    echo "hold every job once, answered."
  else
    echo "Not measured: this wpool has no \`migrate\`/\`enqueue\`/\`work\` (issue 6)."
    echo "When it has, \`make bench\` measures 1, 2 and 4 worker processes."
  fi
  if [ -n "$notes" ]; then
    echo
    echo "Notes:$notes"
  fi
  if [ -n "$STORE_MD" ]; then
    echo
    sed 's/^#/###/' "$STORE_MD"
  fi
} >"$md"
cat "$md"
echo "bench/durable.sh: wrote $md and $raw" >&2
