#!/usr/bin/env bash
# Smoke check of wpool-testserver: starts it on a free port of 127.0.0.1,
# drives every route with curl, checks status codes, body sizes, headers,
# redirect counts, flaky counts, /stats, concurrency (500 and 1000
# parallel /delay requests) and a clean exit 0 on SIGTERM with connections
# still hanging. Exits non-zero on any mismatch.
#
# usage: testserver_smoke.sh [path/to/wpool-testserver]
#        (default: $WPOOL_TESTSERVER, else build/h4/tests/wpool-testserver)
set -u

here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-${WPOOL_TESTSERVER:-$here/../../build/h4/tests/wpool-testserver}}
[ -x "$bin" ] || { echo "no server binary at $bin" >&2; exit 2; }

# The Debian python3 starts in 0.05 s; a pyenv shim can take a second.
py=python3
[ -x /usr/bin/python3 ] && py=/usr/bin/python3
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; } # a < b, floats

tmp=$(mktemp -d)
server_pid=
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -KILL "$server_pid" 2>/dev/null
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

pass=0
fail=0
check() { # description got want
  if [ "$2" == "$3" ]; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1))
    printf 'FAIL %s: got [%s], want [%s]\n' "$1" "$2" "$3"
  fi
}
check_true() { # description command...
  local d=$1
  shift
  if "$@"; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1))
    printf 'FAIL %s\n' "$d"
  fi
}

"$bin" --port 0 --port-file "$tmp/port" >"$tmp/out" 2>"$tmp/err" &
server_pid=$!
for _ in $(seq 100); do
  grep -q '^port=' "$tmp/out" 2>/dev/null && break
  sleep 0.05
done
port=$(sed -n 's/^port=\([0-9]*\)$/\1/p' "$tmp/out")
[ -n "$port" ] || { echo "server did not report its port" >&2; cat "$tmp/err"; exit 1; }
check "stdout is exactly one port line" "$(wc -l <"$tmp/out")" 1
check "--port-file" "$(cat "$tmp/port")" "$port"
check "listens on 127.0.0.1 only" \
  "$(ss -Hltn "sport = :$port" 2>/dev/null | awk '{print $4}' | sort -u)" \
  "127.0.0.1:$port"
base="http://127.0.0.1:$port"

C=(curl -sS --max-time 20 -o /dev/null)
code() { "${C[@]}" -w '%{http_code}' "$@"; }
size() { "${C[@]}" -w '%{http_code} %{size_download}' "$@"; }
rc() { "${C[@]}" "$@" 2>/dev/null; echo $?; }
header() { # url header-name: the value of that response header
  curl -sS --max-time 20 -o /dev/null -D - "$1" |
    tr -d '\r' | sed -n "s/^$2: //Ip"
}
stats() { curl -sS --max-time 20 "$base/stats"; }
stat() { # python expression on d, the /stats object
  stats | "$py" -c "import json,sys; d=json.load(sys.stdin); print($1)"
}

# --- / and /ok
check "/ size" "$(size "$base/")" "200 100"
check "/ok size" "$(size "$base/ok")" "200 100"
check "HEAD /ok" "$(curl -sSI "$base/ok" | tr -d '\r' | sed -n 's/^Content-Length: //Ip')" 100
check "POST /ok" "$(code -X POST -d x "$base/ok")" 405

# --- keep-alive: later transfers reuse the connection, also after a delay
check "keep-alive" "$(curl -sS -o /dev/null -o /dev/null -o /dev/null -w '%{num_connects} ' \
  "$base/ok" "$base/delay/20" "$base/status/404")" "1 0 0 "

# --- /status
for s in 200 201 204 301 304 400 404 418 429 500 502 503 599; do
  check "/status/$s" "$(code "$base/status/$s")" "$s"
done
check "/status/404 body" "$(curl -sS "$base/status/404")" "status 404"
for s in 100 101 199 600 1000 abc -1 '' 20x; do
  check "/status/$s rejected" "$(code "$base/status/$s")" 400
done

# --- /delay
t=$("${C[@]}" -w '%{http_code} %{time_total}' "$base/delay/300")
check "/delay/300 code" "${t%% *}" 200
check_true "/delay/300 waits >= 0.3 s (${t#* })" \
  lt 0.299 "${t#* }"
check "/delay/0" "$(code "$base/delay/0")" 200
check "HEAD /delay/50" "$(curl -sSI -o /dev/null -w '%{http_code}' "$base/delay/50")" 200
for v in x -5 1.5 ''; do
  check "/delay/$v rejected" "$(code "$base/delay/$v")" 400
done

# --- /bytes
check "/bytes/0" "$(size "$base/bytes/0")" "200 0"
check "/bytes/1" "$(size "$base/bytes/1")" "200 1"
check "/bytes/30 content" "$(curl -sS "$base/bytes/30")" \
  abcdefghijklmnopqrstuvwxyzabcd
check "/bytes/1048576" "$(size "$base/bytes/1048576")" "200 1048576"
check "/bytes/50000000" "$(size "$base/bytes/50000000")" "200 50000000"
check "HEAD /bytes/10^12 length" \
  "$(curl -sSI "$base/bytes/1000000000000" | tr -d '\r' | sed -n 's/^Content-Length: //Ip')" \
  1000000000000
check "HEAD /bytes/huge clamps to 10^12" \
  "$(curl -sSI "$base/bytes/99999999999999999999999" | tr -d '\r' | sed -n 's/^Content-Length: //Ip')" \
  1000000000000
check "/bytes/10^12 streams (first 2 MB)" \
  "$(curl -s --max-time 20 "$base/bytes/1000000000000" | head -c 2000000 | wc -c)" \
  2000000
for v in x -1 1e3 ''; do
  check "/bytes/$v rejected" "$(code "$base/bytes/$v")" 400
done

# --- /hang, /reset
check "/hang times out (curl 28)" "$(rc --max-time 1 "$base/hang")" 28
check "/reset resets (curl 56)" "$(rc "$base/reset")" 56
check "HEAD /reset resets" "$(rc -I "$base/reset")" 56
for _ in $(seq 30); do
  [ "$(stat "d['in_flight']")" == 0 ] && break
  sleep 0.1
done
check "in_flight back to 0 after /hang gave up" "$(stat "d['in_flight']")" 0

# --- redirects
check "/redirect/0" "$(code "$base/redirect/0")" 200
check "/redirect/3 no -L" "$(code "$base/redirect/3")" 302
check "/redirect/3 Location" "$(header "$base/redirect/3" Location)" /redirect/2
check "/redirect/3 -L" \
  "$("${C[@]}" -L -w '%{http_code} %{num_redirects}' "$base/redirect/3")" "200 3"
check "/redirect/5 --max-redirs 2 (curl 47)" \
  "$(rc -L --max-redirs 2 "$base/redirect/5")" 47
check "/redirect/x" "$(code "$base/redirect/x")" 400
check "/redirect-loop Location" "$(header "$base/redirect-loop" Location)" /redirect-loop
check "/redirect-loop -L --max-redirs 5" \
  "$("${C[@]}" -L --max-redirs 5 -w '%{num_redirects}' "$base/redirect-loop" 2>/dev/null)" 5
check "/redirect-loop (curl 47)" "$(rc -L --max-redirs 5 "$base/redirect-loop")" 47
for target in file:///etc/passwd ftp://127.0.0.1/x gopher://127.0.0.1/x \
  "http://127.0.0.1:$port/ok?a=1&b=2"; do
  enc=$("$py" -c 'import sys, urllib.parse as u; print(u.quote(sys.argv[1], safe=""))' "$target")
  check "/redirect-to $target" "$(header "$base/redirect-to?url=$enc" Location)" "$target"
done
check "/redirect-to -L" \
  "$("${C[@]}" -L -w '%{http_code} %{num_redirects} %{size_download}' \
    "$base/redirect-to?url=%2Fok")" "200 1 100"
check "/redirect-to status=307" "$(code "$base/redirect-to?url=%2Fok&status=307")" 307
check "/redirect-to status=200" "$(code "$base/redirect-to?url=%2Fok&status=200")" 400
check "/redirect-to no url" "$(code "$base/redirect-to")" 400
check "/redirect-to CRLF" "$(code "$base/redirect-to?url=%2Fok%0D%0AX-Evil:%201")" 400

# --- /flaky
got=
for _ in 1 2 3 4; do got="$got $(code "$base/flaky/k1/2")"; done
check "/flaky/k1/2 x4" "$got" " 503 503 200 200"
got=
for _ in 1 2; do got="$got $(code "$base/flaky/a/b%20c/1")"; done
check "/flaky/a/b c/1 x2" "$got" " 503 200"
check "/flaky/k0/0" "$(code "$base/flaky/k0/0")" 200
check "/flaky/x" "$(code "$base/flaky/x")" 400
check "/flaky/x/y" "$(code "$base/flaky/x/y")" 400
check "stats flaky" "$(stat "d['flaky']['k1'], d['flaky']['a/b c'], d['flaky']['k0']")" "4 2 1"

# --- /retry-after
check "/retry-after/1 first" "$(code "$base/retry-after/1?key=r1")" 503
check "/retry-after/1 Retry-After" "$(header "$base/retry-after/1?key=r2" Retry-After)" 1
sleep 1.1
check "/retry-after/1 second" "$(code "$base/retry-after/1?key=r1")" 200
check "/retry-after/1 third" "$(code "$base/retry-after/1?key=r1")" 200
gap=$(stat "d['retry_after']['r1']['gaps_ms'][0]")
check_true "stats retry_after gap >= 1000 ms ($gap)" lt 999 "$gap"
check "stats retry_after requests" "$(stat "d['retry_after']['r1']['requests'], len(d['retry_after']['r1']['gaps_ms'])")" "3 2"
check "/retry-after default key" "$(code "$base/retry-after/0")" 503
check "/retry-after default key again" "$(code "$base/retry-after/0")" 200
check_true "/retry-after form=date" bash -c \
  "curl -sSD - -o /dev/null '$base/retry-after/5?key=d&form=date' | tr -d '\r' |
   grep -Eq '^Retry-After: [A-Z][a-z]{2}, [0-9]{2} [A-Z][a-z]{2} [0-9]{4} [0-9:]{8} GMT$'"
check "/retry-after/x" "$(code "$base/retry-after/x")" 400

# --- /echo-headers
json=$(curl -sS -A "smoke/1.0" -H "X-Test: hello \"q\"" -H "X-Dup: a" -H "X-Dup: b" \
  -H "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" \
  "$base/echo-headers")
check "/echo-headers" "$(printf '%s' "$json" | "$py" -c '
import json, sys
d = {k.lower(): v for k, v in json.load(sys.stdin).items()}
print(d["user-agent"], d["x-test"], d["x-dup"], d["traceparent"][:5], sep="|")')" \
  'smoke/1.0|hello "q"|a, b|00-0a'

# --- 404, stats
check "/nope" "$(code "$base/nope")" 404
check "/ok/" "$(code "$base/ok/")" 404
check_true "/stats parses (json.tool)" bash -c "curl -sS '$base/stats' | $py -m json.tool >/dev/null"
check "stats exclude /stats" "$(stat "'/stats' in d['paths'], '/stats/reset' in d['paths']")" "False False"
# /ok: GET, HEAD, POST, keep-alive, and once through /redirect-to -L
check "stats /ok count" "$(stat "d['paths']['/ok'], d['status_codes']['405']")" "5 1"
check "stats keys" "$(stat "sorted(d)")" \
  "['flaky', 'in_flight', 'in_flight_by_host', 'max_concurrent', 'max_concurrent_by_host', 'paths', 'retry_after', 'status_codes', 'total_requests']"
check "POST /stats/reset" "$(code -X POST "$base/stats/reset")" 200
check "stats after reset" "$(stat "d['total_requests'], d['paths'], d['flaky'], d['max_concurrent']")" "0 {} {} 0"
check "/flaky restarts after reset" "$(code "$base/flaky/k1/1")" 503

# --- per-host concurrency
code "$base/stats/reset" >/dev/null
pids=()
for h in a a a b b; do
  code -H "Host: $h.test" "$base/delay/4000" >/dev/null &
  pids+=($!)
done
for _ in $(seq 60); do
  [ "$(stat "d['in_flight']")" == 5 ] && break
  sleep 0.05
done
check "in_flight during" "$(stat "d['in_flight'], d['in_flight_by_host']")" \
  "5 {'a.test': 3, 'b.test': 2}"
wait "${pids[@]}"
check "max_concurrent_by_host" "$(stat "d['max_concurrent'], d['max_concurrent_by_host']")" \
  "5 {'a.test': 3, 'b.test': 2}"

# --- concurrency: n requests to /delay/ms, from n/100 curl processes
# running 100 transfers each (curl caps --parallel-max at 300)
parallel_delay() { # n ms
  local n=$1 ms=$2 i j
  code "$base/stats/reset" >/dev/null
  local t0=$(date +%s.%N) cpids=()
  for ((i = 0; i < n / 100; i++)); do
    for ((j = 0; j < 100; j++)); do echo "url = \"$base/delay/$ms\""; echo "output = /dev/null"; done >"$tmp/cfg$i"
    curl -sS --no-progress-meter --parallel --parallel-immediate --parallel-max 100 --max-time 60 \
      -w '%{http_code}\n' -K "$tmp/cfg$i" >"$tmp/codes$i" &
    cpids+=($!)
  done
  wait "${cpids[@]}" # not a bare wait: the server is a child too
  local t1=$(date +%s.%N)
  elapsed=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
  ok=$(cat "$tmp"/codes* | grep -c '^200$')
  rm -f "$tmp"/codes* "$tmp"/cfg*
}
parallel_delay 500 200
check "500 x /delay/200 all 200" "$ok" 500
check_true "500 x /delay/200 concurrent (${elapsed} s, serial would be 100 s)" \
  lt "$elapsed" 5
# How many overlapped depends on how fast 5 curl processes connect.
echo "info: 500 x /delay/200 in $elapsed s, max_concurrent $(stat "d['max_concurrent']")"
# Long enough for every connection to be made while the first still waits.
parallel_delay 1000 3000
check "1000 x /delay/3000 all 200" "$ok" 1000
check_true "1000 x /delay/3000 concurrent (${elapsed} s)" lt "$elapsed" 20
check "1000 x /delay/3000 max_concurrent" "$(stat "d['max_concurrent']")" 1000

# --- /ok throughput while 200 connections hang
for ((i = 0; i < 200; i++)); do echo "url = \"$base/hang\""; echo "output = /dev/null"; done >"$tmp/hang"
curl -sS --no-progress-meter --parallel --parallel-immediate --parallel-max 200 --max-time 30 \
  -K "$tmp/hang" 2>/dev/null &
hang_pid=$!
for _ in $(seq 100); do
  [ "$(stat "d['in_flight']")" == 200 ] && break
  sleep 0.05
done
for ((i = 0; i < 2000; i++)); do echo "url = \"$base/ok\""; echo "output = /dev/null"; done >"$tmp/oks"
t0=$(date +%s.%N)
got=$(curl -sS --no-progress-meter --parallel --parallel-max 50 -w '%{http_code}\n' -K "$tmp/oks" | grep -c '^200$')
t1=$(date +%s.%N)
check "2000 x /ok while 200 hang" "$got" 2000
echo "info: 2000 x /ok (50 parallel) in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s"
check "200 hanging in flight" "$(stat "d['in_flight']")" 200

# --- clean exit on SIGTERM with hanging connections
kill -TERM "$server_pid"
for _ in $(seq 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.05; done
if kill -0 "$server_pid" 2>/dev/null; then
  check "server exits on SIGTERM within 5 s" running exited
else
  wait "$server_pid"
  check "server exit status after SIGTERM" $? 0
fi
wait "$hang_pid" 2>/dev/null
server_pid=
if [ -s "$tmp/err" ]; then
  echo "server stderr:"
  cat "$tmp/err"
  check "server stderr empty" nonempty empty
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
