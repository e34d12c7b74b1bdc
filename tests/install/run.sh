#!/usr/bin/env bash
# Installs the project into a scratch prefix and builds a consumer against the *installed*
# package twice: through CMake's find_package(tslab) and through pkg-config.
set -euo pipefail
src=$1
work=$2
rm -rf "$work" && mkdir -p "$work"
cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DTSLAB_BUILD_TESTS=OFF \
      -DTSLAB_BUILD_EXAMPLES=OFF -DTSLAB_BUILD_TELEMETRY=ON -DCMAKE_INSTALL_PREFIX="$work/prefix" >/dev/null
cmake --build "$work/build" -j2 >/dev/null
cmake --install "$work/build" >/dev/null
test -f "$work/prefix/include/tslab.h"
ls "$work/prefix"/lib*/libtslab.so.1 >/dev/null

cmake -S "$src/tests/install/consumer" -B "$work/consumer" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/consumer" >/dev/null
"$work/consumer/consumer"
"$work/consumer/consumer_static"
if [ -x "$work/consumer/consumer_telemetry" ]; then
  "$work/consumer/consumer_telemetry"
elif pkg-config --exists libmicrohttpd libcjson 2>/dev/null; then
  echo "tslab::telemetry was not installed although its dependencies exist" >&2
  exit 1
fi

pcdir=$(dirname "$(ls "$work/prefix"/lib*/pkgconfig/tslab.pc)")
cflags=$(PKG_CONFIG_PATH=$pcdir pkg-config --cflags tslab)
libs=$(PKG_CONFIG_PATH=$pcdir pkg-config --libs tslab)
cc -std=c11 $cflags "$src/tests/install/consumer/main.c" $libs -Wl,-rpath,"$(dirname "$pcdir")" \
   -o "$work/pc-consumer"
"$work/pc-consumer"
if [ -f "$pcdir/tslab-telemetry.pc" ]; then
  cc -std=c11 $(PKG_CONFIG_PATH=$pcdir pkg-config --cflags tslab-telemetry) \
     "$src/tests/install/consumer/telemetry.c" \
     $(PKG_CONFIG_PATH=$pcdir pkg-config --libs tslab-telemetry) \
     -Wl,-rpath,"$(dirname "$pcdir")" -o "$work/pc-telemetry-consumer"
  "$work/pc-telemetry-consumer"
fi
echo "install consumer: find_package (shared, static) and pkg-config builds ran"
