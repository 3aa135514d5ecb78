#!/bin/sh
# bench/pool.sh: the no-op pool benchmark, wpool against the post's Go
# pipeline, side by side on the same machine in the same run.
#
#   sh bench/pool.sh                 5 reps x 1,000,000 jobs
#   QUICK=1 sh bench/pool.sh         3 reps x   200,000 jobs
#
# Environment (all optional):
#   REPS=n        repetitions per worker count and peer (default 5; QUICK: 3)
#   NJOBS=n       jobs per run (default 1000000; QUICK: 200000)
#   WORKERS="..." worker counts (default "1 2 4 8 16 64 256")
#   MODES="..."   wpool result modes, one table each (default "chan callback")
#   QUEUE=n       the bound both peers get: wpool's max_outstanding (-q) and
#                 the Go channels' buffer (-buf) (default 1024)
#   GO_BUF=n      override the Go peer's -buf alone (0 = NJOBS, the post's)
#   POOL_NOOP=path  a pool_noop binary to use instead of building build/bench
#
# Builds bench/pool_noop.c (build/bench, Release, bench/lib.sh) and the Go
# peer (build/bench/go-noop), then for each worker count runs the two
# peers alternately (wpool, go, wpool, go, ...) so that drift in the machine
# hits both alike. Every run checks its own results and any failure stops the
# benchmark. Prints a markdown table per mode and writes it, with the machine
# and the exact commands, to bench/out/pool.md (raw rates: bench/out/pool.raw).
set -eu

cd "$(dirname "$0")/.."
SCRIPT=pool
. bench/lib.sh
cmd=$(bench_cmd QUICK REPS NJOBS WORKERS MODES QUEUE GO_BUF POOL_NOOP)

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
  REPS=${REPS:-3}
  NJOBS=${NJOBS:-200000}
else
  REPS=${REPS:-5}
  NJOBS=${NJOBS:-1000000}
fi
WORKERS=${WORKERS:-"1 2 4 8 16 64 256"}
MODES=${MODES:-"chan callback"}
QUEUE=${QUEUE:-1024}
GO_BUF=${GO_BUF:-$QUEUE}
TIMEOUT=${TIMEOUT:-300} # seconds per run: a hang is a failure, not a wait

for mode in $MODES; do
  case $mode in callback | chan) ;; *) die "MODES: unknown mode $mode (callback, chan)" ;; esac
done

# --- build ------------------------------------------------------------------
need_tools go
mkdir -p build/bench bench/out
# The Release build of bench/lib.sh (build/bench), as every benchmark here;
# POOL_NOOP=path uses that binary instead.
build_wpool pool_noop
WPOOL_BIN=$POOL_NOOP_BIN
[ -x "$WPOOL_BIN" ] || die "$WPOOL_BIN was not built"

GO_BIN=$(build_go_peer go-noop)

# --- run --------------------------------------------------------------------
raw=bench/out/pool.raw
: >"$raw"
run_tmp=build/bench/run.out
run_err=build/bench/run.err

# run <label> <command...>: runs it, checks it, appends "label rate" to $raw.
run() {
  label=$1
  shift
  if ! timeout "$TIMEOUT" "$@" >"$run_tmp" 2>"$run_err"; then
    cat "$run_err" >&2
    die "FAILED: $* (see above)"
  fi
  rate=$(sed -n 's/.* jobs_per_s=\([0-9][0-9]*\)$/\1/p' "$run_tmp")
  [ -n "$rate" ] || { cat "$run_tmp" "$run_err" >&2; die "no rate in the output of: $*"; }
  echo "$label $rate" >>"$raw"
  printf '%s\n' "$(cat "$run_tmp")" >&2
}

go_args() { # workers
  if [ -n "$GO_BUF" ]; then
    echo "-jobs $NJOBS -workers $1 -buf $GO_BUF"
  else
    echo "-jobs $NJOBS -workers $1"
  fi
}

for mode in $MODES; do
  echo "== mode=$mode: $REPS reps x $NJOBS jobs" >&2
  for w in $WORKERS; do
    r=1
    while [ "$r" -le "$REPS" ]; do
      run "$mode wpool $w" "$WPOOL_BIN" -j "$NJOBS" -w "$w" -q "$QUEUE" -m "$mode"
      # shellcheck disable=SC2046 # go_args is a list of words on purpose
      run "$mode go $w" "$GO_BIN" $(go_args "$w")
      r=$((r + 1))
    done
  done
done

# --- report -----------------------------------------------------------------
stats() { # mode peer workers -> "median min max count"
  stats_of "$raw" 4 "\$1 == \"$1\" && \$2 == \"$2\" && \$3 == $3"
}

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)
if [ -n "${POOL_NOOP:-}" ]; then
  cc_used="not built here: $POOL_NOOP"
else
  cc_used="$(sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' build/bench/CMakeCache.txt | head -n 1) (Release)"
fi
first_w=$(echo "$WORKERS" | awk '{ print $1 }')
last_w=$(echo "$WORKERS" | awk '{ print $NF }')

table() { # mode
  mode=$1
  echo "### mode=$mode"
  echo
  echo "| workers | wpool median (min-max) | go median (min-max) | ratio wpool/go | wpool vs its own $first_w-worker rate |"
  echo "|---:|---:|---:|---:|---:|"
  base=$(stats "$mode" wpool "$first_w" | awk '{ print $1 }')
  spread=""
  minratio=""
  minratio_w=""
  lastpct=""
  for w in $WORKERS; do
    read -r wm wlo whi _ <<END
$(stats "$mode" wpool "$w")
END
    read -r gm glo ghi _ <<END
$(stats "$mode" go "$w")
END
    line=$(awk -v wm="$wm" -v wlo="$wlo" -v whi="$whi" -v gm="$gm" -v glo="$glo" -v ghi="$ghi" \
      -v base="$base" -v w="$w" 'BEGIN {
        ws = (whi / wlo > 1.3) ? " ⚠" : ""
        gs = (ghi / glo > 1.3) ? " ⚠" : ""
        printf "| %s | %.2fM (%.2f-%.2f)%s | %.2fM (%.2f-%.2f)%s | %.2f | %.0f%% |\n",
          w, wm / 1e6, wlo / 1e6, whi / 1e6, ws, gm / 1e6, glo / 1e6, ghi / 1e6, gs,
          wm / gm, 100 * wm / base
      }')
    echo "$line"
    case $line in *⚠*) spread="$spread $w" ;; esac
    ratio=$(awk -v a="$wm" -v b="$gm" 'BEGIN { printf "%.2f", a / b }')
    if [ -z "$minratio" ] || awk -v a="$ratio" -v b="$minratio" 'BEGIN { exit !(a < b) }'; then
      minratio=$ratio
      minratio_w=$w
    fi
    lastpct=$(awk -v a="$wm" -v b="$base" 'BEGIN { printf "%.0f", 100 * a / b }')
  done
  echo
  echo "Rates in millions of jobs/s; median of $REPS runs, (min-max) over them."
  if [ -n "$spread" ]; then
    echo "⚠ spread: max/min > 1.3 at workers =$spread. The machine was not quiet"
    echo "or the rate is unstable there; rerun before trusting those rows."
  fi
  pass1=$(awk -v r="$minratio" 'BEGIN { print (r >= 1.5) ? "PASS" : "FAIL" }')
  pass2=$(awk -v p="$lastpct" 'BEGIN { print (p >= 50) ? "PASS" : "FAIL" }')
  echo
  echo "Bar: wpool >= 1.5x go at every worker count: **$pass1** (lowest ratio $minratio, at $minratio_w workers)."
  echo "Bar: wpool at $last_w workers >= 50% of its $first_w-worker rate: **$pass2** ($lastpct%)."
  echo
}

case $GO_BUF in
"$QUEUE") go_buf_desc="$QUEUE, the same bound as wpool's -q" ;;
0) go_buf_desc="$NJOBS = NJOBS, the post's setting" ;;
*) go_buf_desc=$GO_BUF ;;
esac

{
  echo "# wpool no-op pool benchmark"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'). Command: \`$cmd\`"
  echo
  echo "Each peer runs a task that does nothing; wpool submits $NJOBS jobs with"
  echo "wp_pool_submit (max_outstanding = $QUEUE), the Go peer is the"
  echo "post's pipeline (jobs and results channels buffered $go_buf_desc)."
  echo "Timed from the first submit until the last result is collected."
  echo "Peers alternate run by run: wpool, go, wpool, go, ..."
  echo
  for mode in $MODES; do
    table "$mode"
  done
  echo "Runs, per worker count W and rep:"
  echo
  for mode in $MODES; do
    echo "    ${POOL_NOOP:-build/bench/pool_noop} -j $NJOBS -w W -q $QUEUE -m $mode"
  done
  echo "    build/bench/go-noop $(go_args W)"
  echo
  echo "Machine:"
  echo
  echo "- CPU: ${cpu:-unknown}; nproc: $(nproc 2>/dev/null || echo '?')"
  echo "- kernel: $(uname -r)"
  echo "- gcc: $(gcc --version 2>/dev/null | head -n 1 || echo 'not found')"
  echo "- compiler used by CMake: ${cc_used:-unknown}"
  echo "- go: $(go version)"
} >bench/out/pool.md

cat bench/out/pool.md
echo "bench/pool.sh: wrote bench/out/pool.md and $raw" >&2
