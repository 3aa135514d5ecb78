#!/bin/sh
# Installs the build in $1 into a temporary prefix, then builds and runs a
# consumer with pkg-config and with CMake's find_package, and checks that the
# tool and its man page are there.
set -eu
build=$1
src=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
libdir=$(ls -d "$tmp/prefix"/lib*/ | head -n 1)
for f in include/wpool/wpool.h bin/wpool share/man/man1/wpool.1; do
  [ -e "$tmp/prefix/$f" ] || { echo "missing after install: $f"; exit 1; }
done
ls "$libdir"/libwpool.a "$libdir"/libwpool.so >/dev/null
export PKG_CONFIG_PATH="$libdir/pkgconfig"
cc -std=c11 -Wall -Werror $(pkg-config --cflags wpool) "$src/consumer.c" \
  -o "$tmp/consumer-pc" $(pkg-config --libs wpool) -Wl,-rpath,"$libdir"
"$tmp/consumer-pc"
cmake -S "$src" -B "$tmp/cm" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/cm" >/dev/null
"$tmp/cm/consumer"
"$tmp/prefix/bin/wpool" --version
echo "install ok"
