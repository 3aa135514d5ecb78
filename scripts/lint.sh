#!/bin/sh
# Static analysis, run by `make test`: cppcheck over the sources, the tests
# and the fuzz targets, and clang-tidy (.clang-tidy at the root) over the
# product's sources (src/), with the compile commands of a build directory
# (default build/plain, configured here if needed). Both must be clean:
# every suppression is inline or in .clang-tidy, with its reason.
# Ends with "lint: N passed, N failed" (two checks).
set -u
cd "$(dirname "$0")/.."
B=${1:-build/plain}
JOBS=${JOBS:-2}
passed=0
failed=0
mkdir -p build

if cppcheck --std=c11 --enable=warning,performance,portability --inline-suppr \
  --error-exitcode=1 -q -j "$JOBS" -Iinclude -Isrc -Ifuzz -D_POSIX_C_SOURCE=200809L \
  src tests/unit tests/support fuzz examples >build/cppcheck.log 2>&1; then
  echo "cppcheck: clean"
  passed=$((passed + 1))
else
  cat build/cppcheck.log
  echo "cppcheck: FAILED"
  failed=$((failed + 1))
fi

[ -f "$B/compile_commands.json" ] ||
  cmake -S . -B "$B" -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >/dev/null
tidy=$(command -v run-clang-tidy-14 || command -v run-clang-tidy || true)
if [ -z "$tidy" ]; then
  echo "clang-tidy: run-clang-tidy not found (make deps installs clang-tidy)"
  failed=$((failed + 1))
elif "$tidy" -j "$JOBS" -quiet -p "$B" "$PWD/src/" >build/clang-tidy.log 2>&1 &&
  ! grep -qE '(warning|error):' build/clang-tidy.log; then
  echo "clang-tidy: clean"
  passed=$((passed + 1))
else
  grep -E -A3 '(warning|error):' build/clang-tidy.log | sed 's/\x1b\[[0-9;]*m//g' | head -n 80
  echo "clang-tidy: FAILED"
  failed=$((failed + 1))
fi
echo "lint: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
