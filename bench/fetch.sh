#!/bin/sh
# bench/fetch.sh: `wpool fetch` against the post's Go program (as written
# and tuned), curl --parallel, xargs + curl and wrk, side by side on the same
# machine in the same run, all fetching from one local nginx.
#
#   sh bench/fetch.sh           100,000 URLs, 3 reps, workers 1 4 16 64 256 1024
#   QUICK=1 sh bench/fetch.sh    10,000 URLs, 1 rep,  workers 1 16 256 1024
#
# Environment (all optional):
#   REPS=n        repetitions per worker count and peer (default 3; QUICK: 1)
#   NURLS=n       URLs per run (default 100000; QUICK: 10000)
#   SLOW_NURLS=n  URLs per run of Go as written (default NURLS / 10): the
#                 first n of the same list (it opens a connection per URL)
#   XARGS_NURLS=n URLs per run of xargs + curl (default NURLS / 2000, at
#                 least 20): a process per URL costs milliseconds
#   WORKERS="..." worker counts (default "1 4 16 64 256 1024";
#                 QUICK: "1 16 256 1024")
#   PEERS="..."   peers, in this order in the first rep (default
#                 "wpool go-tuned go-written curl xargs wrk"); also
#                 wpool-metrics (wpool with --metrics 0: the pool's and the
#                 engine's metrics kept and served) and wpool-obs (also
#                 --traceparent and JSON logs at info into /dev/null), to
#                 measure what observability costs (bench/obs.sh)
#   WRK_SECS=n    seconds per wrk run (default 3)
#   TIMEOUT=n     seconds per run; a run that takes longer fails (default 600)
#   WPOOL=path    a wpool binary to use instead of building build/bench
#   FETCH_OUT=name the report's name in bench/out (default fetch; bench/obs.sh
#                 uses obs-fetch so that it does not overwrite this one's)
#
# What it does:
#   - builds wpool (build/bench, Release) and the Go peer
#     (bench/peers/go-fetch -> build/bench/go-fetch, offline);
#   - starts its own nginx (bench/lib.sh: 127.0.0.1 on a free port,
#     worker_processes auto, keep-alive for 1,000,000 requests and 60 s, no
#     access log, open_file_cache, a 100-byte static file), stopped at exit;
#   - writes NURLS URLs http://127.0.0.1:PORT/f.txt?i=1..NURLS (all the same
#     file, each URL unique) to a list, and the same as a curl config;
#   - for each worker count, REPS times, runs every peer once, rotating the
#     order from one rep to the next, each under /usr/bin/time (CPU, max
#     RSS); counts the TCP connections each run opened (nginx stub_status);
#     checks that every URL was answered 200 exactly once; takes each job's
#     latency from the peer's own output (p50, p99);
#   - writes one markdown table per metric (URLs/s, CPU us per URL, nginx
#     CPU, latency, max RSS, connections per URL; medians and min-max), the
#     bar's PASS/FAIL lines, the machine and the exact commands to
#     bench/out/fetch.md, raw numbers to bench/out/fetch.raw.
set -eu

cd "$(dirname "$0")/.."
SCRIPT=fetch
. bench/lib.sh
cmd=$(bench_cmd QUICK REPS NURLS SLOW_NURLS XARGS_NURLS WORKERS PEERS WRK_SECS TIMEOUT WPOOL)

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
  REPS=${REPS:-1}
  NURLS=${NURLS:-10000}
  WORKERS=${WORKERS:-"1 16 256 1024"}
else
  REPS=${REPS:-3}
  NURLS=${NURLS:-100000}
  WORKERS=${WORKERS:-"1 4 16 64 256 1024"}
fi
PEERS=${PEERS:-"wpool go-tuned go-written curl xargs wrk"}
WRK_SECS=${WRK_SECS:-3}
TIMEOUT=${TIMEOUT:-600}
CURL_MAX=300 # curl caps --parallel-max at 300

# The bar (issue 3).
BAR_WORKERS="64 256"
BAR_GO=1.6
BAR_CURL=2.5
BAR_RSS_WORKERS=1024
BAR_RSS_MB=32

for p in $PEERS; do
  case $p in wpool | wpool-metrics | wpool-obs | go-tuned | go-written | curl | xargs | wrk) ;; *) die "PEERS: unknown peer $p" ;; esac
done
case $NURLS in '' | *[!0-9]*) die "NURLS: not a number: $NURLS" ;; esac
[ "$NURLS" -ge 1 ] || die "NURLS must be at least 1"
SLOW_NURLS=${SLOW_NURLS:-$((NURLS / 10))}
case $SLOW_NURLS in '' | *[!0-9]*) die "SLOW_NURLS: not a number: $SLOW_NURLS" ;; esac
[ "$SLOW_NURLS" -ge 1 ] || SLOW_NURLS=1
[ "$SLOW_NURLS" -le "$NURLS" ] || SLOW_NURLS=$NURLS
XARGS_NURLS=${XARGS_NURLS:-$((NURLS / 2000))}
case $XARGS_NURLS in '' | *[!0-9]*) die "XARGS_NURLS: not a number: $XARGS_NURLS" ;; esac
[ "$XARGS_NURLS" -ge 20 ] || XARGS_NURLS=20
[ "$XARGS_NURLS" -le "$NURLS" ] || XARGS_NURLS=$NURLS

need_tools nginx wrk curl go time xargs
raise_nofile

# --- build ------------------------------------------------------------------
mkdir -p bench/out
build_wpool
GO_BIN=$(build_go_peer go-fetch)

# --- nginx and the inputs -----------------------------------------------------
nginx_start
URLS=$TMP/urls.txt
CURLCFG=$TMP/curl.cfg
url_list "$NURLS" "$URLS"
curl_config "$URLS" "$CURLCFG"
# The slow peers fetch the first SLOW_NURLS of the same URLs.
SLOW_URLS=$TMP/urls-slow.txt
head -n "$SLOW_NURLS" "$URLS" >"$SLOW_URLS"
XARGS_URLS=$TMP/urls-xargs.txt
head -n "$XARGS_NURLS" "$URLS" >"$XARGS_URLS"
WRK_URL="$BASE?i=0"

# --- runs -------------------------------------------------------------------
NAME=${FETCH_OUT:-fetch}
raw=bench/out/$NAME.raw
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

# check <peer> <file> <n>: prints "ok200 distinct": results that are 200,
# and the distinct IDs 1..n that have a result, each counted once. Writes
# each result's latency in ms, one a line, to $LAT.
check() {
  case $1 in
  wpool*) # csv: id,url,ok,status,error,attempts,elapsed_ms,... (no commas in our URLs)
    awk -F, -v n="$3" -v lat="$LAT" 'NR > 1 {
        if ($3 == "true" && $4 == "200") ok++
        if ($1 >= 1 && $1 <= n && !seen[$1]++) d++
        print $7 > lat
      } END { printf "%d %d\n", ok, d }' "$2" ;;
  go-*) # job ID done: 200 OK (1.234ms)
    awk -v n="$3" -v lat="$LAT" '{
        if ($3 == "done:" && $4 == "200") ok++
        if ($2 >= 1 && $2 <= n && !seen[$2]++) d++
        t = $NF; gsub(/[()ms]/, "", t); print t + 0 > lat
      } END { printf "%d %d\n", ok, d }' "$2" ;;
  curl | xargs) # 200 http://127.0.0.1:PORT/f.txt?i=ID 0.001234
    awk -v n="$3" -v lat="$LAT" '{
        if ($1 == "200") ok++
        id = $2; sub(/.*\?i=/, "", id); id += 0
        if (id >= 1 && id <= n && !seen[id]++) d++
        print $3 * 1000 > lat
      } END { printf "%d %d\n", ok, d }' "$2" ;;
  esac
}

# pctl FILE -> "p50 p99" of the numbers in it (nearest rank), or "NA NA".
pctl() {
  sort -g "$1" | awk '{ v[NR] = $1 }
    END {
      if (NR == 0) { print "NA NA"; exit }
      i50 = int(0.50 * NR + 0.999999); i99 = int(0.99 * NR + 0.999999)
      if (i50 < 1) i50 = 1; if (i99 < 1) i99 = 1
      printf "%.3f %.3f\n", v[i50], v[i99]
    }'
}

# wrk --latency prints "50%  1.23ms" lines; -> ms.
wrk_ms() { # file percent
  awk -v p="$2%" '$1 == p {
      v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
      f = (u == "us") ? 0.001 : (u == "s") ? 1000 : (u == "m") ? 60000 : 1
      printf "%.3f\n", v * f; found = 1
    } END { if (!found) print "NA" }' "$1"
}

LAT=$TMP/run.lat
CURL_W='%{http_code} %{url} %{time_total}\n'

# run_one <peer> <workers> <rep>: one timed run; appends to $raw.
run_one() {
  peer=$1
  w=$2
  rep=$3
  n=$NURLS
  case $peer in
  wpool) set -- "$WPOOL_BIN" fetch -w "$w" --no-progress -f csv "$URLS" ;;
  wpool-metrics) set -- "$WPOOL_BIN" fetch -w "$w" --no-progress -f csv --metrics 0 "$URLS" ;;
  wpool-obs) set -- "$WPOOL_BIN" fetch -w "$w" --no-progress -f csv --metrics 0 \
    --traceparent --log-format json --log-file /dev/null "$URLS" ;;
  go-tuned) set -- "$GO_BIN" -workers "$w" -tuned "$URLS" ;;
  go-written)
    n=$SLOW_NURLS
    set -- "$GO_BIN" -workers "$w" "$SLOW_URLS"
    ;;
  curl) set -- curl --parallel --parallel-max "$(curl_n "$w")" -s --no-progress-meter \
    -w "$CURL_W" --config "$CURLCFG" ;;
  xargs)
    n=$XARGS_NURLS
    set -- sh -c 'exec xargs -P "$1" -n 1 curl -s -o /dev/null -w "$2" <"$3"' xargs "$w" "$CURL_W" "$XARGS_URLS"
    ;;
  wrk) set -- wrk -t "$(wrk_t "$w")" -c "$w" -d "${WRK_SECS}s" --timeout 10s --latency "$WRK_URL" ;;
  esac
  a0=$(nginx_accepts)
  s0=$(nginx_ns)
  t0=$(date +%s%N)
  rc=0
  /usr/bin/time -f '%e %U %S %M' -o "$TIMEF" timeout "$TIMEOUT" "$@" >"$OUT" 2>"$ERR" || rc=$?
  t1=$(date +%s%N)
  a1=$(nginx_accepts)
  s1=$(nginx_ns)
  conns=$((a1 - a0 - 1))
  # (time writes "Command exited with non-zero status N" first on failure)
  rss=
  read -r _e user sys rss <<END || true
$(tail -n 1 "$TIMEF" 2>/dev/null)
END
  [ -n "${rss:-}" ] || { user=0 sys=0 rss=0; }
  # xargs: /usr/bin/time's max RSS is the largest single process, not the
  # sum of up to N curl processes at once: not comparable, not reported.
  [ "$peer" = xargs ] && rss=NA
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
    p50=$(wrk_ms "$OUT" 50)
    p99=$(wrk_ms "$OUT" 99)
  else
    : >"$LAT"
    set -- $(check "$peer" "$OUT" "$n")
    ok=$1
    distinct=$2
    rate=$(awk -v n="$n" -v e="$elapsed" 'BEGIN { printf "%.0f", n / e }')
    set -- $(pctl "$LAT")
    p50=$1
    p99=$2
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
  echo "$peer $w $rep $n $ok $elapsed $user $sys $rss $conns $rate $cpu_us $status $srv_us $p50 $p99" >>"$raw"
  printf '%-10s w=%-5s rep=%s %8s URLs/s  %7s us/URL  (nginx %6s)  p50 %7s p99 %7s ms  %6s KB  %7s conns  %s\n' \
    "$peer" "$w" "$rep" "$rate" "$cpu_us" "$srv_us" "$p50" "$p99" "$rss" "$conns" "$status" >&2
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
# stats <column> <peer> <workers> -> "median min max count"
stats() {
  stats_of "$raw" "$1" "\$1 == \"$2\" && \$2 == $3"
}
has_fail() { # peer workers
  awk -v p="$1" -v w="$2" '$1 == p && $2 == w && $13 != "ok" { f = 1 } END { exit !f }' "$raw"
}

peer_title() {
  case $1 in
  wpool) echo "wpool" ;;
  wpool-metrics) echo "wpool --metrics" ;;
  wpool-obs) echo "wpool --metrics --traceparent, JSON logs" ;;
  go-tuned) echo "Go tuned" ;;
  go-written) echo "Go as written" ;;
  curl) echo "curl --parallel" ;;
  xargs) echo "xargs + curl" ;;
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
  p50) col=15 ;;
  p99) col=16 ;;
  esac
  nd=$NURLS
  case $p in go-written) nd=$SLOW_NURLS ;; xargs) nd=$XARGS_NURLS ;; esac
  s=$(stats "$col" "$p" "$w") || { echo "-"; return; }
  set -- $s
  c=$(awk -v m="$m" -v med="$1" -v lo="$2" -v hi="$3" -v n="$nd" -v reps="$REPS" 'BEGIN {
      if (m == "rate" && med < 1000) { f = "%.0f"; d = 1 }
      else if (m == "rate") { f = "%.1fk"; d = 1000 }
      else if (m == "cpu" || m == "srv") { f = "%.1f"; d = 1 }
      else if (m == "p50" || m == "p99") { f = "%.2f"; d = 1 }
      else if (m == "rss") { f = "%.1f"; d = 1024 }
      else { f = "%.3f"; d = n }
      if (m == "conns") { printf f, med / d; exit }
      s = sprintf(f, med / d)
      if (reps > 1) s = s sprintf(" (" f "-" f ")", lo / d, hi / d)
      if ((m == "rate" || m == "cpu" || m == "p50" || m == "p99") && lo > 0 && hi / lo > 1.3) s = s " ⚠"
      print s
    }')
  if [ "$m" = conns ] && [ "$p" = wrk ]; then c="$w conns"; fi
  if [ "$m" = rss ] && [ "$p" = xargs ]; then c="n/a ³"; fi
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
    case $p in
    go-written | xargs) hdr="$hdr $(peer_title "$p") ² |" ;;
    *) hdr="$hdr $(peer_title "$p") |" ;;
    esac
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
  # The cost of observability (issue 5): within 5% of wpool's URLs/s.
  for q in wpool-metrics wpool-obs; do
    in_list "$q" $PEERS && in_list wpool $PEERS || continue
    for w in $WORKERS; do
      r=$(ratio "$q" wpool "$w")
      c=$(ratio "$q" wpool "$w" 12)
      v=$(awk -v r="$r" 'BEGIN { print (r != "-" && r + 0 >= 0.95) ? "PASS" : "FAIL" }')
      echo "- Bar: at $w workers, $(peer_title "$q") >= 0.95x wpool's URLs/s: **$v** (${r}x; CPU per URL ${c}x of wpool's; medians)."
    done
  done
  np=$(awk '$1 !~ /^wpool/ && $1 != "wrk" { n++ } END { print n + 0 }' "$raw")
  nf=$(awk '$1 !~ /^wpool/ && $1 != "wrk" && $13 != "ok" { n++ } END { print n + 0 }' "$raw")
  echo "- (The other URL-list peers: every URL answered 200, exactly once, in $((np - nf)) of $np runs.)"
}

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)
first() { head -n 1 | tr -d '\r'; }

{
  echo "# wpool fetch benchmark"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'). Command: \`$cmd\`"
  echo
  echo "$NURLS URLs per run (Go as written: the first $SLOW_NURLS, xargs + curl: the first $XARGS_NURLS ²),"
  echo "\`$BASE?i=1\` .. \`?i=$NURLS\` (all the same"
  echo "$BODY_BYTES-byte static file, each URL unique), served by nginx on"
  echo "127.0.0.1 (worker_processes auto, keep-alive up to 1,000,000 requests"
  echo "and 60 s, no access log, open_file_cache: the file stays open) on the"
  echo "same machine. $REPS run(s) per peer and"
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
  ALL_PEERS=$PEERS
  PEERS=$(for p in $ALL_PEERS; do case $p in curl | xargs) ;; *) printf '%s ' "$p" ;; esac; done)
  table p50 "Job latency p50, ms (each URL's own time: request to response, under the load of N in flight)"
  table p99 "Job latency p99, ms"
  PEERS=$ALL_PEERS
  echo "⚠ max/min > 1.3 over the runs; ✗ a run in that cell failed (see below)."
  if in_list curl $PEERS; then
    for w in $WORKERS; do
      if [ "$w" -gt "$CURL_MAX" ]; then
        echo "¹ curl caps --parallel-max at $CURL_MAX: at $w workers it ran $CURL_MAX transfers at a time."
        break
      fi
    done
  fi
  if in_list go-written $PEERS || in_list xargs $PEERS; then
    echo "² Go as written (a new TCP connection per URL) and xargs + curl (a new"
    echo "process and connection per URL) are 3-1000x slower: they fetch the first"
    echo "$SLOW_NURLS and $XARGS_NURLS URLs of the same list, so that a run takes seconds, not"
    echo "minutes. Every figure here is per URL or per second, so the tables compare alike."
  fi
  if in_list xargs $PEERS; then
    echo "³ xargs + curl runs up to N curl processes at once; /usr/bin/time's max"
    echo "RSS is that of the largest single one, not their sum, so it is not shown."
  fi
  echo
  echo "Latency: wpool's \`elapsed_ms\` (first attempt's start to its result),"
  echo "the Go program's time around its task (request, response, body), wrk's"
  echo "--latency percentiles. Not curl's: its \`%{time_total}\` does not count"
  echo "the time a transfer waits for its turn in curl's own loop (it shows"
  echo "0.1 ms at 64 in flight), so it is not comparable. With N transfers"
  echo "in flight on a saturated server, p50 is about N / (URLs/s): queueing"
  echo "at the server, not the client's own cost. p99 shows the stragglers."
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
  echo "- **xargs + curl**: the shell way, \`xargs -P N -n 1 curl -s -o /dev/null"
  echo "  -w ...\` over the URL list: a new curl process (and TCP connection) per URL."
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
  echo "    build/bench/go-fetch -workers N SLOW_URLS > out"
  printf '    %s\n' "curl --parallel --parallel-max min(N,$CURL_MAX) -s --no-progress-meter -w '%{http_code} %{url} %{time_total}\\n' --config CURLCFG > out"
  printf '    %s\n' "xargs -P N -n 1 curl -s -o /dev/null -w '%{http_code} %{url} %{time_total}\\n' < XARGS_URLS > out"
  echo "    wrk -t min(N,2) -c N -d ${WRK_SECS}s --timeout 10s --latency $BASE?i=0"
  echo
  echo "each under \`/usr/bin/time -f '%e %U %S %M' timeout $TIMEOUT\`; wall time"
  echo "from \`date +%s%N\` around it. URLS: one URL a line (SLOW_URLS, XARGS_URLS: its first $SLOW_NURLS, $XARGS_NURLS); CURLCFG: the same"
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
} >"bench/out/$NAME.md"

cat "bench/out/$NAME.md"
echo "bench/fetch.sh: wrote bench/out/$NAME.md and $raw" >&2
