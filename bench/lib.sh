# bench/lib.sh: what the benchmark scripts share; sourced, never run.
#
#   . bench/lib.sh          (from the repository's root; sets ROOT)
#
# Provides: die, bench_cmd (the command line as given, for a report),
# need_tools (say what is missing), raise_nofile, build_wpool (Release build
# in build/bench: the tool, the test server, pool_noop, store_noop),
# build_go_peer, nginx_start / nginx_stop (a private nginx on a free loopback
# port serving one 100-byte file; NGINX_PID, PORT, BASE, BODY_BYTES,
# NGINX_WORKERS), nginx_ns (its workers' CPU so far), nginx_accepts,
# pg_start / pg_stop (a private PostgreSQL; PG_BIN, PG_PORT, DB), stats_of
# (median/min/max of a column), and TMP, a private temporary directory
# removed at exit (nginx and PostgreSQL stopped with it).

ROOT=$(pwd)
SCRIPT=${SCRIPT:-bench}

die() {
  echo "$SCRIPT: $*" >&2
  exit 1
}

# bench_cmd VAR... : "VAR='value' ... sh bench/NAME.sh" with only the
# variables that were set, as the report's exact command.
bench_cmd() {
  _c=""
  for _v in "$@"; do
    eval "_isset=\${$_v+x}"
    if [ -n "$_isset" ]; then
      _val=
      eval "_val=\$$_v"
      _c="$_c$_v='$_val' "
    fi
  done
  echo "${_c}sh bench/$SCRIPT.sh"
}

# need_tools TOOL...: nginx, wrk, curl, go, time, gnuplot, python3.
# `make bench` installs them (scripts/deps.sh); run alone, a script says
# which Debian packages are missing.
need_tools() {
  _miss=""
  for _t in "$@"; do
    case $_t in
    nginx) command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || _miss="$_miss nginx-light" ;;
    go) command -v go >/dev/null 2>&1 || _miss="$_miss golang-go" ;;
    time) [ -x /usr/bin/time ] || _miss="$_miss time" ;;
    gnuplot) command -v gnuplot >/dev/null 2>&1 || _miss="$_miss gnuplot-nox" ;;
    *) command -v "$_t" >/dev/null 2>&1 || _miss="$_miss $_t" ;;
    esac
  done
  [ -z "$_miss" ] || die "missing:$_miss (make bench installs them; or apt-get install$_miss)"
}

# At 1024 workers a client needs more than 1024 descriptors.
raise_nofile() {
  _n=$(ulimit -n)
  if [ "$_n" != unlimited ] && [ "$_n" -lt 8192 ]; then
    _h=$(ulimit -Hn)
    if [ "$_h" = unlimited ] || [ "$_h" -ge 65536 ]; then
      ulimit -n 65536 2>/dev/null || true
    else
      ulimit -n "$_h" 2>/dev/null || true
    fi
  fi
}

# build_wpool [pool_noop]: the Release build (-O3, warnings are errors as
# everywhere, tests on so that the test server is a target) of the wpool
# tool, the test server, pool_noop and store_noop in build/bench. Sets
# WPOOL_BIN, TESTSERVER_BIN, POOL_NOOP_BIN and STORE_NOOP_BIN. WPOOL=path
# uses that tool instead (the others beside it unless TESTSERVER,
# POOL_NOOP, STORE_NOOP say otherwise) and builds nothing. A caller that
# needs pool_noop alone says so ("build_wpool pool_noop"): then POOL_NOOP=path
# also builds nothing.
build_wpool() {
  mkdir -p build/bench
  if [ "${1:-}" = pool_noop ] && [ -n "${POOL_NOOP:-}" ] && [ -z "${WPOOL:-}" ]; then
    POOL_NOOP_BIN=$POOL_NOOP
    [ -x "$POOL_NOOP_BIN" ] || die "POOL_NOOP=$POOL_NOOP is not an executable"
    return 0
  fi
  if [ -n "${WPOOL:-}" ]; then
    WPOOL_BIN=$WPOOL
    TESTSERVER_BIN=${TESTSERVER:-$(dirname "$WPOOL")/tests/wpool-testserver}
    POOL_NOOP_BIN=${POOL_NOOP:-$(dirname "$WPOOL")/pool_noop}
    STORE_NOOP_BIN=${STORE_NOOP:-$(dirname "$WPOOL")/store_noop}
  else
    command -v cmake >/dev/null 2>&1 || die "cmake not found"
    echo "== building wpool (build/bench, Release)" >&2
    # Every option named: CMake keeps a cached value, so a configure elsewhere
    # with other values must not leave this build without -Werror or tests.
    cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=Release -DWPOOL_WERROR=ON \
      -DWPOOL_BUILD_TESTS=ON -DWPOOL_BUILD_BENCH=ON \
      >build/bench/configure.log 2>&1 || { cat build/bench/configure.log >&2; die "cmake configure failed"; }
    cmake --build build/bench --target wpool_cli wpool-testserver pool_noop store_noop \
      -j "$(nproc 2>/dev/null || echo 2)" \
      >build/bench/build.log 2>&1 || { cat build/bench/build.log >&2; die "cmake build failed"; }
    WPOOL_BIN=$ROOT/build/bench/wpool
    TESTSERVER_BIN=$ROOT/build/bench/tests/wpool-testserver
    POOL_NOOP_BIN=${POOL_NOOP:-$ROOT/build/bench/pool_noop}
    STORE_NOOP_BIN=${STORE_NOOP:-$ROOT/build/bench/store_noop}
  fi
  [ -x "$WPOOL_BIN" ] || die "$WPOOL_BIN was not built"
}

# build_go_peer NAME: bench/peers/NAME -> build/bench/NAME (offline,
# standard library only). Prints the binary's path.
build_go_peer() {
  echo "== building the Go peer (build/bench/$1)" >&2
  mkdir -p build/bench
  if [ -z "${GOCACHE:-}" ] && [ -z "${HOME:-}" ] && [ -z "${XDG_CACHE_HOME:-}" ]; then
    export GOCACHE="$ROOT/build/bench/go-cache"
  fi
  (cd "bench/peers/$1" && GOPROXY=off GOFLAGS=-buildvcs=false go build -o "$ROOT/build/bench/$1" .) >&2 ||
    die "go build of bench/peers/$1 failed"
  echo "$ROOT/build/bench/$1"
}

# stats_of FILE COLUMN AWK-FILTER -> "median min max count" of that column over
# the matching rows ("NA" values skipped); exit 1 if none.
stats_of() {
  awk "$3 && \$$2 != \"NA\" { print \$$2 }" "$1" |
    sort -g |
    awk '{ v[NR] = $1 }
         END {
           if (NR == 0) exit 1
           med = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
           print med, v[1], v[NR], NR
         }'
}

# --- a private temporary directory and nginx ---------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/wpool-bench.XXXXXX")
NGINX_PID=""
CLEANUP_EXTRA=""
PG_PID=""
lib_cleanup() {
  if [ -n "$CLEANUP_EXTRA" ]; then eval "$CLEANUP_EXTRA" || true; fi
  nginx_stop
  pg_stop
  rm -rf "$TMP"
}
trap lib_cleanup EXIT
trap 'exit 130' INT TERM
# nginx's workers run as nobody when we are root: they must read the files.
chmod 755 "$TMP"

port_in_use() {
  if command -v ss >/dev/null 2>&1; then
    [ -n "$(ss -Htln "sport = :$1" 2>/dev/null)" ]
  else
    curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/" 2>/dev/null
  fi
}

# nginx_start: 127.0.0.1 on a free port, worker_processes auto, keep-alive
# for 1,000,000 requests and 60 s, no access log, open_file_cache,
# stub_status, one 100-byte static file f.txt. A foreground child (daemon off), stopped at exit.
nginx_start() {
  NGINX=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
  mkdir -p "$TMP/www"
  _token=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
  printf 'wpool bench %s %s\n' "$_token" \
    "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrs" >"$TMP/www/f.txt"
  chmod 644 "$TMP/www/f.txt"
  chmod 755 "$TMP/www"
  BODY_BYTES=$(wc -c <"$TMP/www/f.txt" | tr -d ' ')
  # Workers may not raise their limit past ours (no CAP_SYS_RESOURCE, say).
  _nofile=$(ulimit -Hn)
  if [ "$_nofile" = unlimited ] || [ "$_nofile" -gt 65536 ]; then _nofile=65536; fi
  _user=""
  if [ "$(id -u)" = 0 ]; then _user="user nobody $(id -gn nobody 2>/dev/null || echo nogroup);"; fi
  PORT=""
  _tries=0
  while [ -z "$PORT" ] && [ "$_tries" -lt 20 ]; do
    _tries=$((_tries + 1))
    _p=$((20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 30000))
    port_in_use "$_p" && continue
    cat >"$TMP/nginx.conf" <<EOF
# written by bench/lib.sh
daemon off;
master_process on;
worker_processes auto;
worker_rlimit_nofile $_nofile;
$_user
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
  # The file stays open: no open, fstat and close per request (3 system
  # calls instead of 6, and a system call costs ~1.2 us on this machine's
  # virtual CPUs), so that the server takes less of the cores the clients
  # share with it.
  open_file_cache max=16 inactive=600s;
  open_file_cache_valid 600s;
  default_type text/plain;
  server {
    listen 127.0.0.1:$_p backlog=4096;
    root $TMP/www;
    location = /nginx_status { stub_status; }
  }
}
EOF
    "$NGINX" -p "$TMP" -c "$TMP/nginx.conf" -e "$TMP/error.log" >"$TMP/nginx.out" 2>&1 &
    NGINX_PID=$!
    _i=0
    while [ "$_i" -lt 50 ]; do
      kill -0 "$NGINX_PID" 2>/dev/null || break # exited (port taken meanwhile?)
      if curl -s --max-time 1 "http://127.0.0.1:$_p/f.txt" 2>/dev/null | grep -q "$_token"; then
        PORT=$_p
        break
      fi
      sleep 0.1
      _i=$((_i + 1))
    done
    [ -n "$PORT" ] || nginx_stop
  done
  [ -n "$PORT" ] || { cat "$TMP/nginx.out" "$TMP/error.log" >&2 2>/dev/null || true; die "could not start nginx"; }
  BASE=http://127.0.0.1:$PORT/f.txt
  echo "== nginx (pid $NGINX_PID) on 127.0.0.1:$PORT, $BODY_BYTES-byte file" >&2
  # Its worker processes (the master's children), found once, a moment after
  # the first answer so that the master has forked them all.
  sleep 0.5
  NGINX_WORKERS=$(for f in /proc/[0-9]*/stat; do
    # "pid (comm) state ppid ...": the ppid is the 2nd field after "(comm)"
    awk -v pp="$NGINX_PID" '{ p = $1; sub(/^.*\) /, ""); if ($2 == pp) print p }' "$f" 2>/dev/null || true
  done)
  [ -n "$NGINX_WORKERS" ] || die "no nginx worker processes under pid $NGINX_PID"
}

nginx_stop() {
  if [ -n "$NGINX_PID" ]; then
    kill -TERM "$NGINX_PID" 2>/dev/null || true
    wait "$NGINX_PID" 2>/dev/null || true
    NGINX_PID=""
  fi
}

CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
# nginx_ns: CPU time of nginx's workers so far, in ns (the first field of
# /proc/PID/schedstat, the scheduler's run time); "x" if a worker is gone.
nginx_ns() {
  for _p in $NGINX_WORKERS; do
    if [ -r "/proc/$_p/schedstat" ]; then
      cat "/proc/$_p/schedstat" 2>/dev/null || echo x
    else
      # no schedstat: utime + stime from stat, in clock ticks
      awk -v hz="$CLK_TCK" '{ sub(/^.*\) /, ""); printf "%.0f\n", ($12 + $13) * 1e9 / hz }' "/proc/$_p/stat" 2>/dev/null || echo x
    fi
  done | awk '$1 == "x" || $1 !~ /^[0-9]+$/ { bad = 1 } { t += $1 } END { if (bad) print "x"; else printf "%.0f\n", t }'
}

# nginx_accepts: nginx's count of accepted connections (this request too).
nginx_accepts() {
  curl -s --max-time 5 "http://127.0.0.1:$PORT/nginx_status" | awk 'NR == 3 { n = $1 } END { print n + 0 }'
}

# url_list N FILE: N unique URLs of the one file, one a line.
url_list() {
  awk -v n="$1" -v b="$BASE" 'BEGIN { for (i = 1; i <= n; i++) print b "?i=" i }' >"$2"
}

# curl_config URLFILE CFGFILE: the same as curl `url`/`output` pairs.
curl_config() {
  awk '{ print "url = \"" $0 "\"\noutput = \"/dev/null\"" }' "$1" >"$2"
}

# --- a private PostgreSQL -----------------------------------------------------
# pg_start: initdb into $TMP/pg and start the newest installed PostgreSQL
# (PG_BIN=dir overrides: its bin directory) on a free loopback port, as the
# postgres user when we are root; default settings (fsync and
# synchronous_commit on). Sets PG_BIN, PG_PORT, DB (a connection URL) and
# PG_PID; stopped at exit. On failure returns 1 with the reason in PG_ERR.
pg_start() {
  PG_ERR=""
  if [ -z "${PG_BIN:-}" ]; then
    PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  fi
  [ -n "$PG_BIN" ] && [ -x "$PG_BIN/initdb" ] || {
    PG_ERR="PostgreSQL server binaries not found (Debian: postgresql)."
    return 1
  }
  PG_AS=""
  if [ "$(id -u)" = 0 ]; then
    PG_AS="runuser -u postgres --"
    mkdir -p "$TMP/pg"
    chown postgres "$TMP/pg"
  fi
  $PG_AS "$PG_BIN/initdb" -D "$TMP/pg" -A trust -U postgres -E UTF8 --locale=C >"$TMP/initdb.log" 2>&1 ||
    { cat "$TMP/initdb.log" >&2; PG_ERR="initdb failed."; return 1; }
  _tries=0
  while [ "$_tries" -lt 20 ]; do
    _tries=$((_tries + 1))
    PG_PORT=$((20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 30000))
    port_in_use "$PG_PORT" && continue
    if $PG_AS "$PG_BIN/pg_ctl" -D "$TMP/pg" -w -t 60 -l "$TMP/pg/server.log" \
      -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $TMP/pg -c fsync=on" start >/dev/null 2>&1; then
      PG_PID=started
      DB="postgresql://postgres@127.0.0.1:$PG_PORT/postgres"
      return 0
    fi
  done
  PG_ERR="could not start PostgreSQL: $(tail -n 3 "$TMP/pg/server.log" 2>/dev/null | tr '\n' ' ')"
  return 1
}

pg_stop() {
  if [ -n "$PG_PID" ]; then
    $PG_AS "$PG_BIN/pg_ctl" -D "$TMP/pg" -m immediate stop >/dev/null 2>&1 || true
    PG_PID=""
  fi
}
