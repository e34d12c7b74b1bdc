#!/bin/sh
# SPDX-License-Identifier: MIT
# Benchmark suite of issue 5: builds the harness, runs every workload over temporal-slab and the
# peers (glibc, jemalloc, mimalloc, tcmalloc), counts instructions under callgrind and draws the
# plots. `make bench` calls this script.
#
#   bench/run.sh                 full suite (under 15 minutes on a 2-core machine)
#   bench/run.sh --quick         smoke run: one repeat, 128 B, small counts (under a minute
#                                once built); no callgrind pass
#   bench/run.sh [harness options]   e.g. --workloads ab --sizes 128 --reps 7
#
# Environment: BUILD_DIR (default build/bench), OUT (default $BUILD_DIR/results),
#              BUDGET (seconds for the timed part, default 560), INSTRUCTIONS=0 to skip callgrind.
# Results: $OUT/table.txt, summary.csv, summary.json, raw.csv, instructions.{txt,csv,json},
#          plots/*.png.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build/bench}
OUT=${OUT:-$BUILD_DIR/results}
BUDGET=${BUDGET:-560}

quick=0
for a in "$@"; do
    [ "$a" = "--quick" ] && quick=1
done
INSTRUCTIONS=${INSTRUCTIONS:-$([ $quick = 1 ] && echo 0 || echo 1)}

# ---- Debian packages the suite needs (installed only when missing) --------------------------
need=""
for p in gcc make cmake pkg-config libjemalloc-dev libmimalloc-dev libgoogle-perftools-dev \
         valgrind gnuplot-nox libmicrohttpd-dev libcjson-dev zlib1g-dev; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        need="$need $p"
done
if [ -n "$need" ]; then
    echo "bench: installing$need" >&2
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends $need
fi

# ---- Build ------------------------------------------------------------------------------------
cmake -S "$ROOT" -B "$BUILD_DIR" -DTSLAB_BUILD_BENCH=ON -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)" --target tslab-bench tslab-bench-nocounters \
    tslab-epoch-pair >/dev/null
BENCH="$BUILD_DIR/bench/tslab-bench"

# ---- Run --------------------------------------------------------------------------------------
mkdir -p "$OUT"
start=$(date +%s)
if [ $quick = 1 ]; then
    "$BENCH" --out "$OUT" "$@"
    # The epoch instruction probe (bench/README.md) runs: every mode, a few pairs.
    for m in plain epoch mplain mepoch; do "$BUILD_DIR/bench/tslab-epoch-pair" $m 10000; done
else
    "$BENCH" --out "$OUT" --budget "$BUDGET" "$@"
fi
if [ "$INSTRUCTIONS" = 1 ]; then
    # Instruction counts do not vary between runs: one pass, sizes as given (default 64/128/512).
    sizes=""
    prev=""
    for a in "$@"; do
        [ "$prev" = "--sizes" ] && sizes="--sizes $a"
        prev=$a
    done
    # shellcheck disable=SC2086
    "$BENCH" --instructions --out "$OUT" $sizes
fi

# ---- Plots ------------------------------------------------------------------------------------
if command -v gnuplot >/dev/null 2>&1 && [ -d "$OUT/plots" ]; then
    for gp in "$OUT"/plots/*.gp; do
        [ -f "$gp" ] && (cd "$OUT/plots" && gnuplot "$(basename "$gp")") || true
    done
fi
echo "bench: done in $(($(date +%s) - start)) s; results in $OUT (table.txt, summary.csv," \
     "summary.json, instructions.txt, plots/*.png)" >&2
