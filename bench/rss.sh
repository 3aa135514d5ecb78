#!/bin/sh
# bench/rss.sh: memory against input size. Each peer fetches lists of 1
# thousand to 10 million URLs from a local nginx at 64 workers; its max RSS
# per size shows whether it streams the input or holds it.
#
#   sh bench/rss.sh               sizes 1000 10000 100000 1000000 10000000
#   QUICK=1 sh bench/rss.sh       sizes 1000 10000 100000
#
# Environment (all optional):
#   SIZES="..."     input sizes (URLs per run)
#   RSS_WORKERS=n       transfers in flight, every peer (default 64)
#   PEERS="..."     default "wpool go-tuned go-post curl"
#   CURL_MAX_SIZE=n curl --parallel reads its whole config before the first
#                   transfer: above this size it is not run (default 1000000;
#                   at 10M it would take gigabytes of a shared machine)
#   REPS=n          runs per size and peer (default 1: max RSS hardly varies)
#   TIMEOUT=n       seconds per run (default 3600)
#   RSS_EXTRA=file  rows of an earlier bench/rss.sh run (its rss.raw), for
#                   sizes not run now (the 10M point takes long): added to
#                   this run's table and raw file, each cell marked †
#   WPOOL=path      a wpool binary to use instead of building build/bench
#
# The peers:
#   wpool     wpool fetch -w 64 -f csv (reads ahead 2 x workers, the default)
#   go-tuned  the Go peer, tuned transport, channels 2 x workers (streams)
#   go-post   the Go peer, tuned transport, -buf 0: the post's NUM_JOBS
#             buffers, so it reads the whole list into a slice first
#   curl      curl --parallel --parallel-max 64 --config (url/output pairs)
# Each run's output goes through a pipe to a checker (every URL answered
# 200 exactly once), never to a file: 10M result lines would be gigabytes.
# Writes bench/out/rss.md and bench/out/rss.raw
# (peer size rep seconds rss_kb status).
set -eu

cd "$(dirname "$0")/.."
SCRIPT=rss
. bench/lib.sh
cmd=$(bench_cmd QUICK SIZES RSS_WORKERS PEERS CURL_MAX_SIZE REPS TIMEOUT WPOOL RSS_EXTRA)

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
  SIZES=${SIZES:-"1000 10000 100000"}
else
  SIZES=${SIZES:-"1000 10000 100000 1000000 10000000"}
fi
RSS_WORKERS=${RSS_WORKERS:-64}
PEERS=${PEERS:-"wpool go-tuned go-post curl"}
CURL_MAX_SIZE=${CURL_MAX_SIZE:-1000000}
REPS=${REPS:-1}
TIMEOUT=${TIMEOUT:-3600}
for p in $PEERS; do
  case $p in wpool | go-tuned | go-post | curl) ;; *) die "PEERS: unknown peer $p" ;; esac
done
for s in $SIZES $RSS_WORKERS $REPS $CURL_MAX_SIZE; do
  case $s in '' | *[!0-9]*) die "not a number: $s" ;; esac
done

need_tools nginx curl go time
raise_nofile
mkdir -p bench/out
build_wpool
GO_BIN=$(build_go_peer go-fetch)
nginx_start

max=0
for s in $SIZES; do [ "$s" -gt "$max" ] && max=$s; done
ALL=$TMP/urls-all.txt
url_list "$max" "$ALL"

raw=bench/out/rss.raw
: >"$raw"
TIMEF=$TMP/run.time
RCF=$TMP/run.rc
CNT=$TMP/run.count
fails=""

# count PEER: reads a peer's output; prints "answered-200 results".
count() {
  case $1 in
  wpool) awk -F, 'NR > 1 { n++; if ($3 == "true" && $4 == "200") ok++ } END { print ok + 0, n + 0 }' ;;
  go-*) awk '{ n++; if ($3 == "done:" && $4 == "200") ok++ } END { print ok + 0, n + 0 }' ;;
  curl) awk '{ n++; if ($1 == "200") ok++ } END { print ok + 0, n + 0 }' ;;
  esac
}

run_one() { # peer size rep
  peer=$1
  n=$2
  rep=$3
  if [ "$peer" = curl ] && [ "$n" -gt "$CURL_MAX_SIZE" ]; then
    echo "$peer $n $rep NA NA skipped" >>"$raw"
    return
  fi
  URLS=$TMP/urls.txt
  head -n "$n" "$ALL" >"$URLS"
  case $peer in
  wpool) set -- "$WPOOL_BIN" fetch -w "$RSS_WORKERS" --no-progress -f csv "$URLS" ;;
  go-tuned) set -- "$GO_BIN" -workers "$RSS_WORKERS" -tuned "$URLS" ;;
  go-post) set -- "$GO_BIN" -workers "$RSS_WORKERS" -tuned -buf 0 "$URLS" ;;
  curl)
    curl_config "$URLS" "$TMP/curl.cfg"
    set -- curl --parallel --parallel-max "$RSS_WORKERS" -s --no-progress-meter \
      -w '%{http_code} %{url}\n' --config "$TMP/curl.cfg"
    ;;
  esac
  t0=$(date +%s%N)
  {
    rc=0
    /usr/bin/time -f '%e %U %S %M' -o "$TIMEF" timeout "$TIMEOUT" "$@" 2>"$TMP/run.err" || rc=$?
    echo "$rc" >"$RCF"
  } | count "$peer" >"$CNT"
  t1=$(date +%s%N)
  rc=$(cat "$RCF")
  read -r ok got <"$CNT"
  rss=$(tail -n 1 "$TIMEF" | awk '{ print $4 }')
  [ -n "$rss" ] || rss=NA
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
  status=ok
  if [ "$rc" != 0 ] || [ "$ok" != "$n" ] || [ "$got" != "$n" ]; then
    status=FAIL
    fails="$fails
- $peer, $n URLs, rep $rep: exit $rc, $ok of $n answered 200 ($got results); stderr: $(tail -n 2 "$TMP/run.err" | tr '\n' ' ' | cut -c 1-200)"
  fi
  echo "$peer $n $rep $secs $rss $status" >>"$raw"
  printf '%-9s %9s URLs rep=%s %8s s  max RSS %8s KB  %s\n' "$peer" "$n" "$rep" "$secs" "$rss" "$status" >&2
  rm -f "$URLS" "$TMP/curl.cfg"
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')
echo "== RSS against input size: sizes $SIZES; $RSS_WORKERS workers; peers: $PEERS" >&2
for s in $SIZES; do
  r=1
  while [ "$r" -le "$REPS" ]; do
    for p in $PEERS; do run_one "$p" "$s" "$r"; done
    r=$((r + 1))
  done
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')

# Rows of an earlier run, for the sizes this one did not run.
extra_sizes=""
if [ -n "${RSS_EXTRA:-}" ]; then
  [ -r "$RSS_EXTRA" ] || die "RSS_EXTRA: cannot read $RSS_EXTRA"
  for s in $(awk 'NF == 6 { print $2 }' "$RSS_EXTRA" | sort -n -u); do
    case " $SIZES " in *" $s "*) ;; *) extra_sizes="$extra_sizes $s" ;; esac
  done
  for s in $extra_sizes; do
    awk -v s="$s" 'NF == 6 && $2 == s' "$RSS_EXTRA" >>"$raw"
  done
  SIZES="$SIZES$extra_sizes"
fi

title() {
  case $1 in
  wpool) echo "wpool" ;;
  go-tuned) echo "Go tuned (streams)" ;;
  go-post) echo "Go, the post's buffers" ;;
  curl) echo "curl --parallel" ;;
  esac
}

{
  echo "# Memory against input size"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'). Command: \`$cmd\`"
  echo
  echo "Max RSS (MB) of the client fetching N URLs from nginx on 127.0.0.1,"
  echo "$RSS_WORKERS transfers in flight; median of $REPS run(s). Seconds: the whole run."
  echo
  hdr="| URLs |"
  sep="|---:|"
  for p in $PEERS; do
    hdr="$hdr $(title "$p") |"
    sep="$sep---:|"
  done
  echo "$hdr"
  echo "$sep"
  for s in $SIZES; do
    row="| $s |"
    for p in $PEERS; do
      if st=$(stats_of "$raw" 5 "\$1 == \"$p\" && \$2 == $s"); then
        t=$(stats_of "$raw" 4 "\$1 == \"$p\" && \$2 == $s" | awk '{ print $1 }')
        c=$(echo "$st" | awk -v t="$t" '{ printf "%.1f MB (%s s)", $1 / 1024, t }')
        if awk -v p="$p" -v s="$s" '$1 == p && $2 == s && $6 == "FAIL" { f = 1 } END { exit !f }' "$raw"; then
          c="$c ✗"
        fi
        case " $extra_sizes " in *" $s "*) c="$c †" ;; esac
      else
        c="-"
      fi
      row="$row $c |"
    done
    echo "$row"
  done
  echo
  echo "- **wpool**: \`wpool fetch -w $RSS_WORKERS --no-progress -f csv URLS\`: reads"
  echo "  ahead 2 x workers (\`--queue\`), so its memory does not grow with the list."
  echo "- **Go tuned (streams)**: \`go-fetch -workers $RSS_WORKERS -tuned URLS\`: the post's"
  echo "  pipeline with channels of 2 x workers, fed as the list is read."
  echo "- **Go, the post's buffers**: \`go-fetch -workers $RSS_WORKERS -tuned -buf 0 URLS\`:"
  echo "  the post's NUM_JOBS-sized channels, so the whole list is read into a"
  echo "  slice first (the post's \`urls\`)."
  echo "- **curl --parallel**: \`curl --parallel --parallel-max $RSS_WORKERS --config CFG\`;"
  echo "  curl parses the whole config before the first transfer. Not run above"
  echo "  $CURL_MAX_SIZE URLs (\`-\`)."
  echo
  echo "Each under \`/usr/bin/time -f '%e %U %S %M' timeout $TIMEOUT\`, its output"
  echo "piped to a checker: every URL answered 200 exactly once (✗ otherwise)."
  echo "Load average: $load_start at the start, $load_end at the end."
  if [ -n "$extra_sizes" ]; then
    echo
    echo "† Not run by this command: from an earlier run of bench/rss.sh"
    echo "(\`RSS_EXTRA=$RSS_EXTRA\`; sizes$extra_sizes), on the same machine and build."
  fi
  if [ -n "$fails" ]; then
    echo
    echo "Failed runs:"
    echo "$fails"
  fi
} >bench/out/rss.md

cat bench/out/rss.md
echo "bench/rss.sh: wrote bench/out/rss.md and $raw" >&2
