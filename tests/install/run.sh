#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The installed package as its users get it. One build, configured for a prefix nothing is ever
# installed into, installed three ways:
#   moved      cmake --install --prefix A, then A is renamed: no installed file may name a path
#   destdir    DESTDIR=B cmake --install (a staging tree, as distribution packages are built)
#   multiarch  the same build with libdir lib/x86_64-linux-gnu, cmake --install --prefix C
# Against each: consumers built through find_package(tslab) and through pkg-config, shared and
# static, core and telemetry, and run. The static telemetry consumer starts its exporter on port
# 0, scrapes itself, and must need no libtslab*.so (one copy of the allocator).
# usage: run.sh SOURCE_DIR WORK_DIR [TELEMETRY ON|OFF]
set -euo pipefail
src=$1
work=$2
telemetry=${3:-ON}
rm -rf "$work" && mkdir -p "$work"
configured=/nonexistent/tslab-configured-prefix
version=$(sed -n 's/^#define TSLAB_VERSION_STRING "\([^"]*\)".*/\1/p' "$src/allocator/include/tslab.h")
consumer_src=$src/tests/install/consumer
cflags=(-std=c11 -Wall -Wextra -Werror)

fail() {
  echo "install test: $*" >&2
  exit 1
}
[ -n "$version" ] || fail "no TSLAB_VERSION_STRING in tslab.h"

# No libtslab*.so among the shared libraries a binary needs.
no_shared_tslab() {
  if readelf -d "$1" | grep NEEDED | grep -q libtslab; then
    readelf -d "$1" | grep NEEDED >&2
    fail "$1 needs a shared libtslab"
  fi
}

# check NAME PREFIX LIBDIR: PREFIX/LIBDIR holds an installed tree.
check() {
  local name=$1 prefix=$2 lib=$2/$3 out=$work/consumers-$1
  mkdir -p "$out"
  echo "== $name: $prefix ($3)"
  test -f "$prefix/include/tslab.h" || fail "$name: no include/tslab.h"
  test -f "$lib/libtslab.so.1" -a -f "$lib/libtslab.a" || fail "$name: no libtslab in $lib"
  if grep -rl -e "$configured" -e "$work" "$lib/pkgconfig" "$lib/cmake"; then
    fail "$name: installed files name an absolute prefix"
  fi

  # pkg-config
  local pc=(env PKG_CONFIG_PATH="$lib/pkgconfig" pkg-config)
  [ "$("${pc[@]}" --modversion tslab)" = "$version" ] || fail "$name: pkg-config version"
  test -f "$("${pc[@]}" --variable=includedir tslab)/tslab.h" || fail "$name: .pc includedir"
  # shellcheck disable=SC2046 # pkg-config output is a list of flags
  cc "${cflags[@]}" $("${pc[@]}" --cflags tslab) "$consumer_src/main.c" \
    $("${pc[@]}" --libs tslab) -Wl,-rpath,"$lib" -o "$out/pc-shared"
  "$out/pc-shared" | grep -qx "consumer ok $version" || fail "$name: pkg-config shared consumer"
  # shellcheck disable=SC2046
  cc "${cflags[@]}" $("${pc[@]}" --cflags tslab-static) "$consumer_src/main.c" \
    $("${pc[@]}" --libs tslab-static) -o "$out/pc-static"
  no_shared_tslab "$out/pc-static"
  "$out/pc-static" | grep -qx "consumer ok $version" || fail "$name: pkg-config static consumer"
  if [ "$telemetry" = ON ]; then
    # shellcheck disable=SC2046
    cc "${cflags[@]}" $("${pc[@]}" --cflags tslab-telemetry) "$consumer_src/telemetry.c" \
      $("${pc[@]}" --libs tslab-telemetry) -Wl,-rpath,"$lib" -o "$out/pc-telemetry"
    "$out/pc-telemetry"
    # shellcheck disable=SC2046
    cc "${cflags[@]}" $("${pc[@]}" --cflags tslab-telemetry-static) \
      "$consumer_src/telemetry_static.c" $("${pc[@]}" --libs tslab-telemetry-static) \
      -o "$out/pc-telemetry-static"
    no_shared_tslab "$out/pc-telemetry-static"
    "$out/pc-telemetry-static"
  fi

  # CMake
  cmake -S "$consumer_src" -B "$out/cmake" -DCMAKE_PREFIX_PATH="$prefix" \
    -DTSLAB_EXPECT_TELEMETRY="$telemetry" >/dev/null
  cmake --build "$out/cmake" >/dev/null
  "$out/cmake/consumer" | grep -qx "consumer ok $version" || fail "$name: CMake shared consumer"
  no_shared_tslab "$out/cmake/consumer_static"
  "$out/cmake/consumer_static" | grep -qx "consumer ok $version" ||
    fail "$name: CMake static consumer"
  if [ "$telemetry" = ON ]; then
    "$out/cmake/consumer_telemetry"
    no_shared_tslab "$out/cmake/consumer_telemetry_static"
    "$out/cmake/consumer_telemetry_static"
  fi
}

cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DTSLAB_BUILD_TESTS=OFF \
  -DTSLAB_BUILD_EXAMPLES=OFF -DTSLAB_BUILD_TELEMETRY="$telemetry" \
  -DCMAKE_INSTALL_PREFIX="$configured" -DCMAKE_INSTALL_LIBDIR=lib >/dev/null
cmake --build "$work/build" -j2 >/dev/null

cmake --install "$work/build" --prefix "$work/installed" >/dev/null
mv "$work/installed" "$work/moved"
check moved "$work/moved" lib

DESTDIR="$work/stage" cmake --install "$work/build" >/dev/null
check destdir "$work/stage$configured" lib

cmake -S "$src" -B "$work/build" -DCMAKE_INSTALL_LIBDIR=lib/x86_64-linux-gnu >/dev/null
cmake --build "$work/build" -j2 >/dev/null
cmake --install "$work/build" --prefix "$work/multiarch" >/dev/null
check multiarch "$work/multiarch" lib/x86_64-linux-gnu

echo "install consumer: moved, DESTDIR and multiarch installs; find_package and pkg-config" \
  "consumers (shared, static, telemetry $telemetry) built and ran"
