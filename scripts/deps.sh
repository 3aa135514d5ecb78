#!/bin/sh
# Installs the Debian packages named as arguments that are missing: with
# apt-get when root, otherwise prints the one line to run.
missing=""
for p in "$@"; do
  st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)
  case "$st" in *"ok installed"*) ;; *) missing="$missing $p" ;; esac
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
  echo "installing:$missing"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y --no-install-recommends $missing >/tmp/wpool-apt.log 2>&1; then
    apt-get update >/tmp/wpool-apt.log 2>&1 || { cat /tmp/wpool-apt.log; exit 1; }
    apt-get install -y --no-install-recommends $missing >/tmp/wpool-apt.log 2>&1 ||
      { cat /tmp/wpool-apt.log; exit 1; }
  fi
else
  echo "missing packages; run as root:"
  echo "  apt-get install -y$missing"
  exit 1
fi
