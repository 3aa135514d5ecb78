#!/bin/sh
# bench/shutdown.sh: time from ShutdownNow (a second SIGINT) to exit, with
# 256 transfers in flight (bench/shutdown.py says how).
#
#   sh bench/shutdown.sh          5 reps
#   QUICK=1 sh bench/shutdown.sh  3 reps
#
# Environment (all optional): REPS, INFLIGHT (default 256), QUEUED (jobs
# read but not started, default 1000), WPOOL=path (a wpool binary; then
# TESTSERVER=path too, default next to it in tests/).
# Writes bench/out/shutdown.md and bench/out/shutdown.raw.
set -eu
cd "$(dirname "$0")/.."
SCRIPT=shutdown
. bench/lib.sh
cmd=$(bench_cmd QUICK REPS INFLIGHT QUEUED WPOOL TESTSERVER)
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then REPS=${REPS:-3}; else REPS=${REPS:-5}; fi
INFLIGHT=${INFLIGHT:-256}
QUEUED=${QUEUED:-1000}
need_tools python3
raise_nofile
mkdir -p bench/out
build_wpool
[ -x "$TESTSERVER_BIN" ] || die "$TESTSERVER_BIN was not built"
echo "== ShutdownNow with $INFLIGHT transfers in flight, $REPS reps" >&2
python3 bench/shutdown.py --wpool "$WPOOL_BIN" --server "$TESTSERVER_BIN" \
  --inflight "$INFLIGHT" --queued "$QUEUED" --reps "$REPS" \
  --md bench/out/shutdown.md --raw bench/out/shutdown.raw --cmd "$cmd"
