#!/bin/sh
# `make run`: the main job on a demo. Starts the project's test server on
# 127.0.0.1 (a free port), writes a few thousand URLs of mixed outcomes, and
# runs `wpool fetch` on them with the progress bar and the summary.
set -eu
BUILD=${BUILD:-build/plain}
N=${N:-3000}
tmp=$(mktemp -d)
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

"$BUILD/tests/wpool-testserver" --port 0 --port-file "$tmp/port" >"$tmp/server.out" 2>&1 &
server=$!
i=0
while [ ! -s "$tmp/port" ]; do
  i=$((i + 1))
  [ $i -gt 100 ] && { echo "the test server did not start"; cat "$tmp/server.out"; exit 1; }
  sleep 0.1
done
port=$(cat "$tmp/port")
base="http://127.0.0.1:$port"

# Mostly fast successes; some slow ones, redirects, client and server
# errors, a refused port, a name that cannot resolve, and bad lines.
awk -v n="$N" -v base="$base" 'BEGIN {
  srand(42)
  print "# wpool demo: " n " URLs of mixed outcomes"
  for (i = 1; i <= n; i++) {
    r = rand()
    if (r < 0.70)      printf "%s/bytes/%d\n", base, int(rand() * 4096)
    else if (r < 0.85) printf "%s/delay/%d\n", base, int(rand() * 400)
    else if (r < 0.90) printf "%s/redirect/%d\n", base, 1 + int(rand() * 3)
    else if (r < 0.94) printf "%s/status/404\n", base
    else if (r < 0.97) printf "%s/status/503\n", base
    else if (r < 0.98) print "http://127.0.0.1:1/refused"
    else if (r < 0.99) print "http://nothing.invalid/"
    else               print "bobobo"
  }
}' >"$tmp/urls.txt"

echo "wpool fetch -w 64 --progress $tmp/urls.txt > $tmp/results.txt"
status=0
"$BUILD/wpool" fetch -w 64 --progress "$tmp/urls.txt" >"$tmp/results.txt" || status=$?
echo
echo "first results:"
head -n 8 "$tmp/results.txt"
echo "..."
echo "wpool exited with status $status (1: some URLs were not ok, as planned)"
[ "$status" -le 1 ]
