#!/bin/sh
# bench/fetch.sh: `wpool fetch` against the post's Go program, curl
# --parallel and wrk, side by side on the same machine in the same run,
# all fetching from one local nginx.
#
#   sh bench/fetch.sh                200,000 URLs, 3 reps, workers 1 8 64 256 1024
#   QUICK=1 sh bench/fetch.sh         20,000 URLs, 1 rep,  workers 8 64 256 1024
#
# Environment (all optional):
#   REPS=n        repetitions per worker count and peer (default 3; QUICK: 1)
#   NURLS=n       URLs per run (default 200000; QUICK: 20000)
#   WORKERS="..." worker counts (default "1 8 64 256 1024"; QUICK: "8 64 256 1024")
#   PEERS="..."   peers, in this order in the first rep (default
#                 "wpool go-tuned go-written curl wrk")
#   WRK_SECS=n    seconds per wrk run (default 5)
#   TIMEOUT=n     seconds per run; a run that takes longer fails (default 600)
#   WPOOL=path    a wpool binary to use instead of building build/bench
#
# What it does:
#   - installs what is missing (nginx-light or nginx, wrk, curl, golang-go,
#     time) with apt-get when root; otherwise says what to install;
#   - builds wpool (build/bench, Release) and the Go peer
#     (bench/peers/go-fetch -> build/bench/go-fetch, offline);
#   - writes its own nginx.conf into a temporary directory (127.0.0.1 on a
#     free port, worker_processes auto, keep-alive for 1,000,000 requests and
#     60 s, no access log, a 100-byte static file) and runs nginx as a
#     foreground child (daemon off), stopped at exit;
#   - writes NURLS URLs http://127.0.0.1:PORT/f.txt?i=1..NURLS (all the same
#     file, each URL unique) to a list, and the same as a curl config;
#   - for each worker count, REPS times, runs every peer once, rotating the
#     order from one rep to the next, each under /usr/bin/time (CPU, max
#     RSS); counts the TCP connections each run opened (nginx stub_status);
#     checks that every URL was answered 200 exactly once;
#   - writes one markdown table per metric (URLs/s, CPU us per URL, max RSS,
#     connections per URL; medians and min-max), the bar's PASS/FAIL lines,
#     the machine and the exact commands to bench/out/fetch.md, raw numbers
#     to bench/out/fetch.raw.
set -eu

cd "$(dirname "$0")/.."
ROOT=$(pwd)

# The command as given, for the report (only the variables that were set).
cmd=""
for v in QUICK REPS NURLS WORKERS PEERS WRK_SECS TIMEOUT WPOOL; do
  eval "isset=\${$v+x}"
  if [ -n "$isset" ]; then
    val=
    eval "val=\$$v"
    cmd="$cmd$v='$val' "
  fi
done
cmd="${cmd}sh bench/fetch.sh"

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
  REPS=${REPS:-1}
  NURLS=${NURLS:-20000}
  WORKERS=${WORKERS:-"8 64 256 1024"}
else
  REPS=${REPS:-3}
  NURLS=${NURLS:-200000}
  WORKERS=${WORKERS:-"1 8 64 256 1024"}
fi
PEERS=${PEERS:-"wpool go-tuned go-written curl wrk"}
WRK_SECS=${WRK_SECS:-5}
TIMEOUT=${TIMEOUT:-600}
CURL_MAX=300 # curl caps --parallel-max at 300

# The bar (the issue).
BAR_WORKERS="64 256"
BAR_GO=1.6
BAR_CURL=2.5
BAR_RSS_WORKERS=1024
BAR_RSS_MB=32

die() {
  echo "bench/fetch.sh: $*" >&2
  exit 1
}

for p in $PEERS; do
  case $p in wpool | go-tuned | go-written | curl | wrk) ;; *) die "PEERS: unknown peer $p" ;; esac
done
case $NURLS in '' | *[!0-9]*) die "NURLS: not a number: $NURLS" ;; esac
[ "$NURLS" -ge 1 ] || die "NURLS must be at least 1"

# --- what we need -------------------------------------------------------------
need_pkgs=""
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_pkgs="$need_pkgs nginx"
command -v wrk >/dev/null 2>&1 || need_pkgs="$need_pkgs wrk"
command -v curl >/dev/null 2>&1 || need_pkgs="$need_pkgs curl"
command -v go >/dev/null 2>&1 || need_pkgs="$need_pkgs golang-go"
[ -x /usr/bin/time ] || need_pkgs="$need_pkgs time"
if [ -n "$need_pkgs" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing:$need_pkgs" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2 || die "apt-get update failed"
    for p in $need_pkgs; do
      if [ "$p" = nginx ]; then
        # nginx-light is the smallest build (Debian 12); later releases
        # only have nginx.
        apt-get install -y -q --no-install-recommends nginx-light >&2 ||
          apt-get install -y -q --no-install-recommends nginx >&2 ||
          die "could not install nginx"
      else
        apt-get install -y -q --no-install-recommends "$p" >&2 || die "could not install $p"
      fi
    done
  else
    die "missing:$need_pkgs (Debian: apt-get install nginx-light wrk curl golang-go time)"
  fi
fi
NGINX=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
command -v cmake >/dev/null 2>&1 || [ -n "${WPOOL:-}" ] || die "cmake not found"

# wpool at 1024 workers needs more than 1024 descriptors.
nofile=$(ulimit -n)
if [ "$nofile" != unlimited ] && [ "$nofile" -lt 8192 ]; then
  hard=$(ulimit -Hn)
  if [ "$hard" = unlimited ] || [ "$hard" -ge 65536 ]; then
    ulimit -n 65536 2>/dev/null || true
  else
    ulimit -n "$hard" 2>/dev/null || true
  fi
fi

# --- build ------------------------------------------------------------------
mkdir -p build/bench bench/out
if [ -n "${WPOOL:-}" ]; then
  WPOOL_BIN=$WPOOL
else
  echo "== building wpool (build/bench, Release)" >&2
  # WPOOL_WERROR=OFF: GCC 12 at -O3 reports a false -Wnonnull in
  # src/core/chan.c (pop() inlined into wp_chan_send, where it cannot run),
  # and -Werror would stop the Release build on it.
  cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=Release -DWPOOL_WERROR=OFF \
    >build/bench/fetch-configure.log 2>&1 || { cat build/bench/fetch-configure.log >&2; die "cmake configure failed"; }
  cmake --build build/bench --target wpool_cli -j "$(nproc 2>/dev/null || echo 2)" \
    >build/bench/fetch-build.log 2>&1 || { cat build/bench/fetch-build.log >&2; die "cmake build failed"; }
  WPOOL_BIN=$ROOT/build/bench/wpool
fi
[ -x "$WPOOL_BIN" ] || die "$WPOOL_BIN was not built"

echo "== building the Go peer (build/bench/go-fetch)" >&2
if [ -z "${GOCACHE:-}" ] && [ -z "${HOME:-}" ] && [ -z "${XDG_CACHE_HOME:-}" ]; then
  export GOCACHE="$ROOT/build/bench/go-cache"
fi
GO_BIN=$ROOT/build/bench/go-fetch
(cd bench/peers/go-fetch && GOPROXY=off GOFLAGS=-buildvcs=false go build -o "$GO_BIN" .) ||
  die "go build failed"

# --- nginx ------------------------------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/wpool-bench-fetch.XXXXXX")
NGINX_PID=""
cleanup() {
  if [ -n "$NGINX_PID" ]; then
    kill -TERM "$NGINX_PID" 2>/dev/null || true
    wait "$NGINX_PID" 2>/dev/null || true
    NGINX_PID=""
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# nginx's workers run as nobody when we are root: they must read the file.
chmod 755 "$TMP"
mkdir -p "$TMP/www"
token=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
# 100 bytes: the token (16) + padding + newline.
printf 'wpool bench %s %s\n' "$token" \
  "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrs" >"$TMP/www/f.txt"
chmod 644 "$TMP/www/f.txt"
chmod 755 "$TMP/www"
BODY_BYTES=$(wc -c <"$TMP/www/f.txt" | tr -d ' ')

# Workers may not raise their limit past ours (no CAP_SYS_RESOURCE, say).
NGINX_NOFILE=$(ulimit -Hn)
if [ "$NGINX_NOFILE" = unlimited ] || [ "$NGINX_NOFILE" -gt 65536 ]; then NGINX_NOFILE=65536; fi
user_line=""
if [ "$(id -u)" = 0 ]; then
  user_line="user nobody $(id -gn nobody 2>/dev/null || echo nogroup);"
fi

write_conf() { # port
  cat >"$TMP/nginx.conf" <<EOF
# written by bench/fetch.sh
daemon off;
master_process on;
worker_processes auto;
worker_rlimit_nofile $NGINX_NOFILE;
$user_line
pid $TMP/nginx.pid;
error_log $TMP/error.log warn;
events {
  worker_connections 16384;
}
http {
  access_log off;
  client_body_temp_path $TMP/body;
  proxy_temp_path $TMP/proxy;
  fastcgi_temp_path $TMP/fastcgi;
  uwsgi_temp_path $TMP/uwsgi;
  scgi_temp_path $TMP/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  default_type text/plain;
  server {
    listen 127.0.0.1:$1 backlog=4096;
    root $TMP/www;
    location = /nginx_status { stub_status; }
  }
}
EOF
}

port_in_use() {
  if command -v ss >/dev/null 2>&1; then
    [ -n "$(ss -Htln "sport = :$1" 2>/dev/null)" ]
  else
    curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/" 2>/dev/null
  fi
}

PORT=""
tries=0
while [ -z "$PORT" ] && [ "$tries" -lt 20 ]; do
  tries=$((tries + 1))
  p=$((20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 30000))
  port_in_use "$p" && continue
  write_conf "$p"
  "$NGINX" -p "$TMP" -c "$TMP/nginx.conf" -e "$TMP/error.log" >"$TMP/nginx.out" 2>&1 &
  NGINX_PID=$!
  i=0
  while [ "$i" -lt 50 ]; do
    if ! kill -0 "$NGINX_PID" 2>/dev/null; then
      break # it exited (the port was taken meanwhile?): try another
    fi
    if curl -s --max-time 1 "http://127.0.0.1:$p/f.txt" 2>/dev/null | grep -q "$token"; then
      PORT=$p
      break
    fi
    sleep 0.1
    i=$((i + 1))
  done
  if [ -z "$PORT" ]; then
    kill -TERM "$NGINX_PID" 2>/dev/null || true
    wait "$NGINX_PID" 2>/dev/null || true
    NGINX_PID=""
  fi
done
[ -n "$PORT" ] || { cat "$TMP/nginx.out" "$TMP/error.log" >&2 2>/dev/null || true; die "could not start nginx"; }
echo "== nginx (pid $NGINX_PID) on 127.0.0.1:$PORT, $BODY_BYTES-byte file" >&2

# nginx's worker processes (the master's children), found once (a moment
# after the first answer, so that the master has forked them all).
sleep 0.5
NGINX_WORKERS=$(for f in /proc/[0-9]*/stat; do
  # "pid (comm) state ppid ...": the ppid is the 2nd field after "(comm)"
  awk -v pp="$NGINX_PID" '{ p = $1; sub(/^.*\) /, ""); if ($2 == pp) print p }' "$f" 2>/dev/null
done)
[ -n "$NGINX_WORKERS" ] || die "no nginx worker processes under pid $NGINX_PID"
# nginx_ns: CPU time of nginx's workers so far, in ns (the first field of
# /proc/PID/schedstat, the scheduler's run time); "x" if a worker is gone
# (then the run's nginx CPU is not reported).
nginx_ns() {
  for p in $NGINX_WORKERS; do
    if [ -r "/proc/$p/schedstat" ]; then
      cat "/proc/$p/schedstat" 2>/dev/null || echo x
    else
      # no schedstat: utime + stime from stat, in clock ticks
      awk -v hz="$CLK_TCK" '{ sub(/^.*\) /, ""); printf "%.0f\n", ($12 + $13) * 1e9 / hz }' "/proc/$p/stat" 2>/dev/null || echo x
    fi
  done | awk '$1 == "x" || $1 !~ /^[0-9]+$/ { bad = 1 } { t += $1 } END { if (bad) print "x"; else printf "%.0f\n", t }'
}
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)

accepts() { # nginx's count of accepted connections (this request included)
  curl -s --max-time 5 "http://127.0.0.1:$PORT/nginx_status" | awk 'NR == 3 { n = $1 } END { print n + 0 }'
}

# --- inputs -------------------------------------------------------------------
URLS=$TMP/urls.txt
CURLCFG=$TMP/curl.cfg
BASE=http://127.0.0.1:$PORT/f.txt
awk -v n="$NURLS" -v b="$BASE" 'BEGIN { for (i = 1; i <= n; i++) print b "?i=" i }' >"$URLS"
# curl: one url and one output per transfer; the fastest way to give it a list.
awk '{ print "url = \"" $0 "\"\noutput = \"/dev/null\"" }' "$URLS" >"$CURLCFG"
WRK_URL="$BASE?i=0"

# --- runs -------------------------------------------------------------------
raw=bench/out/fetch.raw
: >"$raw"
OUT=$TMP/run.out
ERR=$TMP/run.err
TIMEF=$TMP/run.time
fails=""

curl_n() { # workers -> --parallel-max
  if [ "$1" -gt "$CURL_MAX" ]; then echo "$CURL_MAX"; else echo "$1"; fi
}
wrk_t() { # workers -> wrk threads (at most 2, at most one per connection)
  if [ "$1" -lt 2 ]; then echo 1; else echo 2; fi
}

# check <peer> <file>: prints "ok200 distinct": results that are 200, and
# the distinct IDs 1..NURLS that have a result, each counted once.
check() {
  case $1 in
  wpool) # csv: id,url,ok,status,... (our URLs hold no commas)
    awk -F, -v n="$NURLS" 'NR > 1 {
        if ($3 == "true" && $4 == "200") ok++
        if ($1 >= 1 && $1 <= n && !seen[$1]++) d++
      } END { printf "%d %d\n", ok, d }' "$2" ;;
  go-*) # job ID done: 200 OK
    awk -v n="$NURLS" '{
        if ($3 == "done:" && $4 == "200") ok++
        if ($2 >= 1 && $2 <= n && !seen[$2]++) d++
      } END { printf "%d %d\n", ok, d }' "$2" ;;
  curl) # 200 http://127.0.0.1:PORT/f.txt?i=ID
    awk -v n="$NURLS" '{
        if ($1 == "200") ok++
        id = $2; sub(/.*\?i=/, "", id); id += 0
        if (id >= 1 && id <= n && !seen[id]++) d++
      } END { printf "%d %d\n", ok, d }' "$2" ;;
  esac
}

# run_one <peer> <workers> <rep>: one timed run; appends to $raw.
run_one() {
  peer=$1
  w=$2
  rep=$3
  case $peer in
  wpool) set -- "$WPOOL_BIN" fetch -w "$w" --no-progress -f csv "$URLS" ;;
  go-tuned) set -- "$GO_BIN" -workers "$w" -tuned "$URLS" ;;
  go-written) set -- "$GO_BIN" -workers "$w" "$URLS" ;;
  curl) set -- curl --parallel --parallel-max "$(curl_n "$w")" -s --no-progress-meter \
    -w '%{http_code} %{url}\n' --config "$CURLCFG" ;;
  wrk) set -- wrk -t "$(wrk_t "$w")" -c "$w" -d "${WRK_SECS}s" --timeout 10s "$WRK_URL" ;;
  esac
  a0=$(accepts)
  s0=$(nginx_ns)
  t0=$(date +%s%N)
  rc=0
  /usr/bin/time -f '%e %U %S %M' -o "$TIMEF" timeout "$TIMEOUT" "$@" >"$OUT" 2>"$ERR" || rc=$?
  t1=$(date +%s%N)
  a1=$(accepts)
  s1=$(nginx_ns)
  conns=$((a1 - a0 - 1))
  # (time writes "Command exited with non-zero status N" first on failure)
  rss=
  read -r _e user sys rss <<END || true
$(tail -n 1 "$TIMEF" 2>/dev/null)
END
  [ -n "${rss:-}" ] || { user=0 sys=0 rss=0; }
  elapsed=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", (b - a) / 1e9 }')
  if [ "$peer" = wrk ]; then
    # Not a URL list: W connections, one URL, as fast as the server goes.
    n=$(awk '/ requests in / { print $1 }' "$OUT")
    rate=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$OUT")
    [ -n "$n" ] || n=0
    [ -n "$rate" ] || rate=0
    bad=$(awk '/Non-2xx or 3xx responses:/ { s += $NF } /Socket errors:/ { gsub(/,/, ""); s += $4 + $6 + $8 + $10 } END { print s + 0 }' "$OUT")
    ok=$((n - bad))
    distinct=$n
  else
    n=$NURLS
    set -- $(check "$peer" "$OUT")
    ok=$1
    distinct=$2
    rate=$(awk -v n="$n" -v e="$elapsed" 'BEGIN { printf "%.0f", n / e }')
  fi
  cpu_us=$(awk -v n="$n" -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", (n > 0) ? (u + s) * 1e6 / n : 0 }')
  status=ok
  if [ "$rc" != 0 ] || [ "$ok" != "$n" ] || [ "$distinct" != "$n" ] || [ "$n" = 0 ]; then
    status=FAIL
    fails="$fails
- $peer at $w workers, rep $rep: exit $rc, $ok of $n answered 200, $distinct distinct IDs; stderr: $(tail -n 3 "$ERR" | tr '\n' ' ' | cut -c 1-300)"
  fi
  srv_us=$(awk -v n="$n" -v a="$s0" -v b="$s1" 'BEGIN {
      if (a == "x" || b == "x" || b < a || n == 0) print "NA"
      else printf "%.2f", (b - a) / 1e3 / n
    }')
  echo "$peer $w $rep $n $ok $elapsed $user $sys $rss $conns $rate $cpu_us $status $srv_us" >>"$raw"
  printf '%-10s w=%-5s rep=%s %8s URLs/s  %7s us/URL  (nginx %6s)  %6s KB  %7s conns  %s\n' \
    "$peer" "$w" "$rep" "$rate" "$cpu_us" "$srv_us" "$rss" "$conns" "$status" >&2
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')
npeers=$(echo "$PEERS" | wc -w | tr -d ' ')
echo "== $REPS reps x $NURLS URLs; workers: $WORKERS; peers: $PEERS" >&2
for w in $WORKERS; do
  r=1
  while [ "$r" -le "$REPS" ]; do
    # Rotate the order so that no peer always runs right after another.
    k=$(((r - 1) % npeers))
    order=$(echo "$PEERS" | awk -v k="$k" '{ for (i = 0; i < NF; i++) printf "%s ", $((i + k) % NF + 1) }')
    for p in $order; do
      run_one "$p" "$w" "$r"
    done
    r=$((r + 1))
  done
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')

# --- report -----------------------------------------------------------------
# stats <column> <peer> <workers> -> "median min max"
stats() {
  awk -v c="$1" -v p="$2" -v w="$3" '$1 == p && $2 == w && $c != "NA" { print $c }' "$raw" |
    sort -g |
    awk '{ v[NR] = $1 }
         END {
           if (NR == 0) exit 1
           med = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
           print med, v[1], v[NR]
         }'
}
has_fail() { # peer workers
  awk -v p="$1" -v w="$2" '$1 == p && $2 == w && $13 != "ok" { f = 1 } END { exit !f }' "$raw"
}

peer_title() {
  case $1 in
  wpool) echo "wpool" ;;
  go-tuned) echo "Go tuned" ;;
  go-written) echo "Go as written" ;;
  curl) echo "curl --parallel" ;;
  wrk) echo "wrk (ceiling)" ;;
  esac
}

in_list() { # word list...
  x=$1
  shift
  for y in "$@"; do [ "$x" = "$y" ] && return 0; done
  return 1
}

# cell <metric> <peer> <workers>: "median (min-max)" formatted, with marks.
cell() {
  m=$1
  p=$2
  w=$3
  case $m in
  rate) col=11 ;;
  cpu) col=12 ;;
  rss) col=9 ;;
  srv) col=14 ;;
  conns) col=10 ;;
  esac
  s=$(stats "$col" "$p" "$w") || { echo "-"; return; }
  set -- $s
  c=$(awk -v m="$m" -v med="$1" -v lo="$2" -v hi="$3" -v n="$NURLS" -v reps="$REPS" 'BEGIN {
      if (m == "rate") { f = "%.1fk"; d = 1000 }
      else if (m == "cpu" || m == "srv") { f = "%.1f"; d = 1 }
      else if (m == "rss") { f = "%.1f"; d = 1024 }
      else { f = "%.3f"; d = n }
      if (m == "conns") { printf f, med / d; exit }
      s = sprintf(f, med / d)
      if (reps > 1) s = s sprintf(" (" f "-" f ")", lo / d, hi / d)
      if ((m == "rate" || m == "cpu") && lo > 0 && hi / lo > 1.3) s = s " ⚠"
      print s
    }')
  if [ "$m" = conns ] && [ "$p" = wrk ]; then c="$w conns"; fi
  has_fail "$p" "$w" && c="$c ✗"
  echo "$c"
}

ratio() { # peerA peerB workers [column] -> ratio of their medians (URLs/s)
  a=$(stats "${4:-11}" "$1" "$3" | awk '{ print $1 }') || true
  b=$(stats "${4:-11}" "$2" "$3" | awk '{ print $1 }') || true
  if [ -z "$a" ] || [ -z "$b" ]; then echo "-"; return; fi
  awk -v a="$a" -v b="$b" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'
}

spread_rows=""
table() { # metric title
  m=$1
  echo "### $2"
  echo
  hdr="| workers |"
  sep="|---:|"
  for p in $PEERS; do
    hdr="$hdr $(peer_title "$p") |"
    sep="$sep---:|"
  done
  if [ "$m" = rate ]; then
    in_list go-tuned $PEERS && in_list wpool $PEERS && { hdr="$hdr wpool / Go tuned |"; sep="$sep---:|"; }
    in_list curl $PEERS && in_list wpool $PEERS && { hdr="$hdr wpool / curl |"; sep="$sep---:|"; }
  fi
  if [ "$m" = cpu ]; then
    in_list go-tuned $PEERS && in_list wpool $PEERS && { hdr="$hdr Go tuned / wpool |"; sep="$sep---:|"; }
    in_list curl $PEERS && in_list wpool $PEERS && { hdr="$hdr curl / wpool |"; sep="$sep---:|"; }
  fi
  echo "$hdr"
  echo "$sep"
  for w in $WORKERS; do
    row="| $w |"
    for p in $PEERS; do
      c=$(cell "$m" "$p" "$w")
      if [ "$p" = curl ] && [ "$w" -gt "$CURL_MAX" ]; then c="$c ¹"; fi
      case $c in *⚠*) spread_rows="$spread_rows $m:$p@$w" ;; esac
      row="$row $c |"
    done
    if [ "$m" = rate ]; then
      in_list go-tuned $PEERS && in_list wpool $PEERS && row="$row $(ratio wpool go-tuned "$w") |"
      in_list curl $PEERS && in_list wpool $PEERS && row="$row $(ratio wpool curl "$w") |"
    fi
    if [ "$m" = cpu ]; then
      in_list go-tuned $PEERS && in_list wpool $PEERS && row="$row $(ratio go-tuned wpool "$w" 12) |"
      in_list curl $PEERS && in_list wpool $PEERS && row="$row $(ratio curl wpool "$w" 12) |"
    fi
    echo "$row"
  done
  echo
}

# The bar.
bar_lines() {
  for w in $BAR_WORKERS; do
    if ! in_list "$w" $WORKERS; then
      echo "- Bar at $w workers: **not measured** ($w not in WORKERS)."
      continue
    fi
    for q in go-tuned curl; do
      in_list "$q" $PEERS && in_list wpool $PEERS || continue
      if [ "$q" = go-tuned ]; then need=$BAR_GO; else need=$BAR_CURL; fi
      r=$(ratio wpool "$q" "$w")
      v=$(awk -v r="$r" -v n="$need" 'BEGIN { print (r != "-" && r + 0 >= n) ? "PASS" : "FAIL" }')
      echo "- Bar: at $w workers, wpool >= ${need}x $(peer_title "$q"): **$v** (${r}x, medians)."
    done
  done
  if in_list "$BAR_RSS_WORKERS" $WORKERS && in_list wpool $PEERS; then
    mx=$(stats 9 wpool "$BAR_RSS_WORKERS" | awk '{ printf "%.1f", $3 / 1024 }')
    v=$(awk -v m="$mx" -v l="$BAR_RSS_MB" 'BEGIN { print (m <= l) ? "PASS" : "FAIL" }')
    echo "- Bar: at $BAR_RSS_WORKERS workers, wpool max RSS <= $BAR_RSS_MB MB: **$v** ($mx MB, the largest of the runs)."
  else
    echo "- Bar: wpool max RSS at $BAR_RSS_WORKERS workers: **not measured**."
  fi
  if in_list wpool $PEERS; then
    nw=$(awk '$1 == "wpool" { n++ } END { print n + 0 }' "$raw")
    nf=$(awk '$1 == "wpool" && $13 != "ok" { n++ } END { print n + 0 }' "$raw")
    v=PASS
    [ "$nf" = 0 ] || v=FAIL
    echo "- Bar: every URL answered 200, exactly once, in every wpool run: **$v** ($((nw - nf)) of $nw runs)."
  fi
  np=$(awk '$1 != "wpool" && $1 != "wrk" { n++ } END { print n + 0 }' "$raw")
  nf=$(awk '$1 != "wpool" && $1 != "wrk" && $13 != "ok" { n++ } END { print n + 0 }' "$raw")
  echo "- (The other URL-list peers: every URL answered 200, exactly once, in $((np - nf)) of $np runs.)"
}

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)
first() { head -n 1 | tr -d '\r'; }

{
  echo "# wpool fetch benchmark"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'). Command: \`$cmd\`"
  echo
  echo "$NURLS URLs per run, \`$BASE?i=1\` .. \`?i=$NURLS\` (all the same"
  echo "$BODY_BYTES-byte static file, each URL unique), served by nginx on"
  echo "127.0.0.1 (worker_processes auto, keep-alive up to 1,000,000 requests"
  echo "and 60 s, no access log) on the same machine. $REPS run(s) per peer and"
  echo "worker count, peers in rotating order; each cell is the median"
  [ "$REPS" -gt 1 ] && echo "(min-max over the runs)."
  [ "$REPS" -gt 1 ] || echo "of one run."
  echo "URLs/s = URLs / wall time of the whole process (start, reading the"
  echo "list, every fetch, writing every result, exit). CPU = user + sys of"
  echo "the client process, per URL (nginx's is in its own table). RSS = the"
  echo "client's max RSS. On a machine this small and this shared, URLs/s"
  echo "swings with the other tenants; CPU per URL is the steadier measure."
  echo
  table rate "URLs/s (wrk: requests/s)"
  table cpu "CPU µs per URL (user + sys of the client)"
  table srv "nginx CPU µs per URL (its workers' run time during the run, /proc/PID/schedstat)"
  table rss "Max RSS, MB"
  table conns "New TCP connections per URL (nginx stub_status accepts / URLs)"
  echo "⚠ max/min > 1.3 over the runs; ✗ a run in that cell failed (see below)."
  if in_list curl $PEERS; then
    for w in $WORKERS; do
      if [ "$w" -gt "$CURL_MAX" ]; then
        echo "¹ curl caps --parallel-max at $CURL_MAX: at $w workers it ran $CURL_MAX transfers at a time."
        break
      fi
    done
  fi
  if [ -n "$spread_rows" ]; then
    echo
    echo "Spread above 1.3 at:$spread_rows. The machine is shared (load average"
    echo "$load_start at the start, $load_end at the end): rerun before trusting those cells."
  fi
  echo
  echo "## Bar"
  echo
  bar_lines
  if [ -n "$fails" ]; then
    echo
    echo "## Failed runs"
    echo "$fails"
  fi
  echo
  echo "## Peers"
  echo
  echo "- **wpool**: \`wpool fetch\`, libcurl multi on one event loop per core;"
  echo "  \`--workers N\` transfers in flight; results as CSV to a file."
  echo "- **Go as written**: the post's program (bench/peers/go-fetch):"
  echo "  jobs channel, N worker goroutines, results channel, collector;"
  echo "  \`http.DefaultClient\` and \`defer resp.Body.Close()\` without reading the"
  echo "  body, as in the post. net/http closes a connection whose body was not"
  echo "  read to the end, so this opens one TCP connection per URL (see the"
  echo "  connections table); DefaultTransport would also keep only 2 idle"
  echo "  connections per host."
  echo "- **Go tuned**: the same pipeline, with a Transport whose"
  echo "  MaxIdleConnsPerHost = MaxIdleConns = N, reading each body to io.Discard."
  echo "- Both Go variants: channels buffered 2 x N (wpool's default queue),"
  echo "  the post's result line per URL through a buffered writer."
  echo "- **curl --parallel**: one curl process, the URLs in a config file"
  echo "  (\`url\`/\`output\` pairs), \`-w '%{http_code} %{url}'\` to check them."
  echo "- **wrk**: \`-c N\` connections on one URL for ${WRK_SECS} s. It does not"
  echo "  take a URL list: its requests/s is the server's ceiling here, not a"
  echo "  peer doing the same job."
  echo
  echo "Client and server share the machine's cores: every client's CPU per"
  echo "URL is CPU that nginx does not get. When the machine is saturated,"
  echo "URLs/s is about cores / (client + nginx CPU per URL)."
  echo
  echo "## Commands (per worker count N and rep)"
  echo
  echo "    ${WPOOL:-build/bench/wpool} fetch -w N --no-progress -f csv URLS > out"
  echo "    build/bench/go-fetch -workers N -tuned URLS > out"
  echo "    build/bench/go-fetch -workers N URLS > out"
  printf '    %s\n' "curl --parallel --parallel-max min(N,$CURL_MAX) -s --no-progress-meter -w '%{http_code} %{url}\\n' --config CURLCFG > out"
  echo "    wrk -t min(N,2) -c N -d ${WRK_SECS}s --timeout 10s $BASE?i=0"
  echo
  echo "each under \`/usr/bin/time -f '%e %U %S %M' timeout $TIMEOUT\`; wall time"
  echo "from \`date +%s%N\` around it. URLS: one URL a line; CURLCFG: the same"
  echo "as \`url = \"...\"\` / \`output = \"/dev/null\"\` pairs."
  echo
  echo "## Machine"
  echo
  echo "- CPU: ${cpu:-unknown}; nproc: $(nproc 2>/dev/null || echo '?')"
  echo "- kernel: $(uname -r)"
  echo "- load average (1, 5, 15 min): $load_start at the start, $load_end at the end"
  echo "- nginx: $("$NGINX" -v 2>&1 | first)"
  echo "- wrk: $(wrk -v 2>&1 | first)"
  echo "- curl: $(curl --version | first)"
  echo "- go: $(go version)"
  echo "- wpool: $("$WPOOL_BIN" --version | first) ($WPOOL_BIN$( [ -z "${WPOOL:-}" ] && echo ', Release'))"
} >bench/out/fetch.md

cat bench/out/fetch.md
echo "bench/fetch.sh: wrote bench/out/fetch.md and $raw" >&2
