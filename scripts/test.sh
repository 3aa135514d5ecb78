#!/bin/sh
# Builds the three flavours (plain, ASan+UBSan, TSan) and runs every test in
# each with CTest, then valgrind on the example. Ends with "N passed, N failed"
# summed over everything.
set -u
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
passed=0
failed=0
log=build/test-summary.log
mkdir -p build
: >"$log"

flavour() { # name sanitize-value compiler
  dir=build/$1
  CC=$3 cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWPOOL_SANITIZE="$2" >"$dir.configure.log" 2>&1 ||
    { cat "$dir.configure.log"; failed=$((failed + 1)); echo "configure $1 FAILED" >>"$log"; return; }
  if ! cmake --build "$dir" -j "$JOBS" >"$dir.build.log" 2>&1; then
    cat "$dir.build.log"; failed=$((failed + 1)); echo "build $1 FAILED" >>"$log"; return
  fi
  echo "== $1: ctest"
  (cd "$dir" && ctest --output-on-failure -j "$JOBS" ${CTEST_ARGS:-}) >"$dir.ctest.log" 2>&1
  tail -n 40 "$dir.ctest.log" | grep -E 'tests passed|Failed|\*\*\*|Timeout|Not Run' || true
  p=$(grep -cE '^ *[0-9]+/[0-9]+ Test +#[0-9]+: .* +Passed' "$dir.ctest.log")
  f=$(grep -cE '^ *[0-9]+/[0-9]+ Test +#[0-9]+: .*(\*\*\*|Failed|Not Run|Timeout)' "$dir.ctest.log")
  if [ "$f" -gt 0 ]; then
    grep -E '^ *[0-9]+/[0-9]+ Test +#[0-9]+: .*(\*\*\*|Failed|Not Run|Timeout)' "$dir.ctest.log"
  fi
  echo "$1: $p passed, $f failed" | tee -a "$log"
  passed=$((passed + p))
  failed=$((failed + f))
}

# gcc for two flavours, clang for the third: both compilers stay clean.
flavour plain "" gcc
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  flavour asan address gcc
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 flavour tsan thread clang

echo "== valgrind: examples"
if valgrind --error-exitcode=3 --leak-check=full --show-leak-kinds=all --errors-for-leak-kinds=all \
  build/plain/pipeline >build/valgrind.log 2>&1; then
  echo "valgrind pipeline: ok" | tee -a "$log"
  passed=$((passed + 1))
else
  tail -n 30 build/valgrind.log
  echo "valgrind pipeline: FAILED" | tee -a "$log"
  failed=$((failed + 1))
fi

# A step that ends with "<what>: N passed, N failed" (scripts/lint.sh,
# scripts/fuzz.sh): its counts are added to the total.
step() { # name command...
  name=$1
  shift
  echo "== $name"
  "$@" >"build/$name.log" 2>&1
  grep -vE ': [0-9]+ passed, [0-9]+ failed$' "build/$name.log" | tail -n 60
  line=$(grep -E "^$name: [0-9]+ passed, [0-9]+ failed$" "build/$name.log" | tail -n 1)
  if [ -z "$line" ]; then
    echo "$name: no result line" | tee -a "$log"
    failed=$((failed + 1))
    return
  fi
  echo "$line" | tee -a "$log"
  p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/')
  f=$(echo "$line" | sed -E 's/.*, ([0-9]+) failed$/\1/')
  passed=$((passed + p))
  failed=$((failed + f))
}

# Static analysis (cppcheck, clang-tidy) with the plain build's compile
# commands; then every fuzz target for FUZZ_SECONDS (30) under ASan+UBSan,
# two at a time.
step lint sh scripts/lint.sh build/plain
export FUZZ_SECONDS="${FUZZ_SECONDS:-30}"
step fuzz sh scripts/fuzz.sh

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
