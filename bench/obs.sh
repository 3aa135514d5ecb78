#!/bin/sh
# bench/obs.sh: what observability costs, on and off side by side in one
# run, alternating so that both see the same machine.
#
#   sh bench/obs.sh               REPS=7, NJOBS=1000000, WORKERS="1 64"
#
# 1. The hot path alone: bench/pool_noop (no-op task, callback results),
#    without and with -M (wp_pool_config.metrics: the pool's counters and
#    duration histogram updated per job), at each of WORKERS.
# 2. The fetch tool: bench/fetch.sh at 64 workers with the peers wpool,
#    wpool-metrics (--metrics 0) and wpool-obs (also --traceparent and JSON
#    logs at info), NURLS URLs (default 200000) from nginx.
# Results: bench/out/obs.md (part 2's full report, appended there, is also
# bench/out/obs-fetch.md; bench/run.sh puts obs.md on the page).
# Environment: REPS, NJOBS, WORKERS, NURLS, SKIP_FETCH=1 (part 1 only),
# QUICK=1 (REPS 3, NJOBS 300000, NURLS 20000).
set -eu
cd "$(dirname "$0")/.."
SCRIPT=obs
. bench/lib.sh
if [ "${QUICK:-0}" = 1 ]; then # bench/run.sh QUICK=1
  REPS=${REPS:-3}
  NJOBS=${NJOBS:-300000}
  NURLS=${NURLS:-20000}
fi
REPS=${REPS:-7}
NJOBS=${NJOBS:-1000000}
WORKERS=${WORKERS:-"1 64"}
NURLS=${NURLS:-200000}
mkdir -p bench/out
build_wpool pool_noop
BIN=$POOL_NOOP_BIN
raw=bench/out/obs.raw
: >"$raw"
for w in $WORKERS; do
  r=1
  while [ "$r" -le "$REPS" ]; do
    # Alternate which goes first.
    if [ $((r % 2)) = 1 ]; then order="off on"; else order="on off"; fi
    for m in $order; do
      flag=
      [ "$m" = on ] && flag=-M
      rate=$($BIN -j "$NJOBS" -w "$w" $flag | sed -n 's/.*jobs_per_s=\([0-9]*\).*/\1/p')
      echo "$m $w $r $rate" >>"$raw"
      printf 'metrics %-3s w=%-4s rep=%s %10s jobs/s\n' "$m" "$w" "$r" "$rate" >&2
    done
    r=$((r + 1))
  done
done
med() { # mode workers -> "median min max count"
  stats_of "$raw" 4 "\$1 == \"$1\" && \$2 == $2"
}
{
  echo "# Observability cost"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
  echo "Command: \`REPS=$REPS NJOBS=$NJOBS WORKERS=\"$WORKERS\" NURLS=$NURLS sh bench/obs.sh\`"
  echo
  echo "## The pool's hot path (pool_noop, no-op task): metrics off vs on"
  echo
  echo "| workers | off: jobs/s median (min-max) | on (-M) | on / off |"
  echo "|---:|---:|---:|---:|"
  for w in $WORKERS; do
    set -- $(med off "$w")
    off=$1 offr="$2-$3"
    set -- $(med on "$w")
    echo "| $w | $off ($offr) | $1 ($2-$3) | $(awk -v a="$1" -v b="$off" 'BEGIN { printf "%.3f", a / b }') |"
  done
} >bench/out/obs.md
cat bench/out/obs.md
if [ "${SKIP_FETCH:-0}" != 1 ]; then
  PEERS="wpool wpool-metrics wpool-obs" WORKERS=64 REPS=$REPS NURLS=$NURLS \
    FETCH_OUT=obs-fetch sh bench/fetch.sh >/dev/null
  {
    echo
    echo "## The fetch tool at 64 workers: wpool, with --metrics, with metrics, traces and logs"
    echo
    # bench/fetch.sh's report, its headings one level down.
    sed 's/^#/###/' bench/out/obs-fetch.md
  } >>bench/out/obs.md
fi
