#!/bin/sh
# Runs every libFuzzer target (fuzz/fuzz_*.c) for FUZZ_SECONDS each (default
# 60), FUZZ_JOBS at a time (default 2), under ASan+UBSan, built with clang
# into build/fuzz. Each starts from its seed corpus (fuzz/corpus/<target>)
# and its regression inputs (fuzz/regress/<target>), and keeps what it
# finds in build/fuzz/work/<target> (not in the repository; merge by hand:
# see fuzz/README.md). A crash, a leak, a failed check or an input slower
# than 25 s fails the target; its input is saved as
# build/fuzz/artifacts/<target>-crash-<sha1> and the log tail is printed.
# Ends with "fuzz: N passed, N failed".
#
#   scripts/fuzz.sh                 build, then run every target
#   scripts/fuzz.sh --one TARGET    run one (used by the above)
set -u
cd "$(dirname "$0")/.."
SECONDS_EACH=${FUZZ_SECONDS:-60}
JOBS=${FUZZ_JOBS:-2}
B=build/fuzz

if [ "${1:-}" = "--one" ]; then
  t=$2
  mkdir -p "$B/work/$t" "$B/artifacts" "$B/logs"
  extra=""
  case $t in
    fuzz_args) extra="-close_fd_mask=2" ;; # usage messages on every input
    fuzz_input) extra="-max_len=20000" ;;  # past WP__LINE_MAX (8192)
  esac
  dirs="$B/work/$t fuzz/corpus/$t"
  [ -d "fuzz/regress/$t" ] && dirs="$dirs fuzz/regress/$t"
  rm -f "$B/artifacts/$t-"*
  # shellcheck disable=SC2086
  "$B/fuzz/$t" -max_total_time="$SECONDS_EACH" -timeout=25 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$B/artifacts/$t-" $extra $dirs \
    >"$B/logs/$t.log" 2>&1
  rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$B/logs/$t.log")
  if [ "$rc" -eq 0 ] && ! ls "$B/artifacts/$t-"* >/dev/null 2>&1; then
    echo "fuzz $t: ok (${runs:-?} runs in ${SECONDS_EACH}s)"
  else
    tail -n 40 "$B/logs/$t.log"
    echo "fuzz $t: FAILED (exit $rc): $(ls "$B/artifacts/$t-"* 2>/dev/null | tr '\n' ' ')"
  fi
  exit 0
fi

if ! command -v clang >/dev/null 2>&1; then
  echo "fuzz: clang not found (make deps installs it)"
  echo "fuzz: 0 passed, 1 failed"
  exit 1
fi
mkdir -p "$B"
if ! CC=clang cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWPOOL_FUZZ=ON \
  -DWPOOL_SANITIZE=address -DWPOOL_BUILD_TESTS=OFF -DWPOOL_BUILD_EXAMPLES=OFF \
  -DWPOOL_BUILD_BENCH=OFF >"$B.configure.log" 2>&1 ||
  ! cmake --build "$B" -j "${JOBS_BUILD:-2}" --target fuzz_all >"$B.build.log" 2>&1; then
  tail -n 40 "$B.configure.log" "$B.build.log" 2>/dev/null
  echo "fuzz: 0 passed, 1 failed"
  exit 1
fi
targets=$(ls "$B/fuzz" | grep -E '^fuzz_[a-z0-9_]+$' | grep -v '\.' | sort)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
out=$(printf '%s\n' $targets | xargs -P "$JOBS" -n 1 sh "$0" --one)
echo "$out"
p=$(echo "$out" | grep -c ': ok (')
f=$(echo "$out" | grep -c ': FAILED')
echo "fuzz: $p passed, $f failed"
[ "$f" -eq 0 ]
