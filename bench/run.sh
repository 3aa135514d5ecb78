#!/bin/sh
# `make bench`: every benchmark, side by side with its peers. QUICK=1 for a
# short run. Results: bench/out/*.md (copied into docs/benchmarks.md by
# hand, with the command and the machine, when they are published).
set -eu
cd "$(dirname "$0")/.."
sh bench/pool.sh
if [ -f bench/fetch.sh ]; then sh bench/fetch.sh; fi
echo "results: bench/out/"
