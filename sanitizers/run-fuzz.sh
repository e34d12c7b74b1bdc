#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds the libFuzzer targets (clang, ASan + UBSan + fuzzer coverage) and runs each for a bounded
# time, starting from the committed seed corpora. Prints the executions done per target and exits
# non-zero if any target found a crash, a sanitizer report, a leak or a timeout.
#
#   sanitizers/run-fuzz.sh [SECONDS_PER_TARGET]     (default 60; env FUZZ_SECONDS works too)
#
# Targets: fuzz_alloc (always), fuzz_http (when the telemetry library is built).
# New inputs go to build/san-fuzz/corpus/<target>/ (not committed); crash inputs to
# build/san-fuzz/artifacts/. Reproduce one with: build/san-fuzz/sanitizers/<target> <file>
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECONDS_PER_TARGET=${1:-${FUZZ_SECONDS:-60}}
JOBS=${JOBS:-2}
DIR=${SAN_BUILD_ROOT:-$ROOT/build}/san-fuzz
CC_CLANG=${CC_CLANG:-$(command -v clang-14 || command -v clang || echo clang)}
FLAGS="-fsanitize=address,undefined,fuzzer-no-link -fno-sanitize-recover=all -fno-omit-frame-pointer"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

mkdir -p "$DIR/logs" "$DIR/artifacts"
echo "=== fuzz: configure and build ($CC_CLANG, $FLAGS)"
if ! cmake -S "$ROOT" -B "$DIR" -DCMAKE_C_COMPILER="$CC_CLANG" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_FLAGS="$FLAGS" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
    -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" \
    -DTSLAB_BUILD_FUZZ=ON -DTSLAB_BUILD_TESTS=ON -DTSLAB_BUILD_EXAMPLES=OFF \
    -DTSLAB_BUILD_BENCH=OFF >"$DIR/logs/configure.log" 2>&1; then
    tail -30 "$DIR/logs/configure.log"
    exit 1
fi
targets=(fuzz_alloc)
grep -q '^fuzz_http:' <(cmake --build "$DIR" --target help 2>/dev/null | sed -nE 's/^\.\.\. (fuzz_[a-z]+).*/\1:/p') &&
    targets+=(fuzz_http)
if ! cmake --build "$DIR" -j"$JOBS" --target "${targets[@]}" >"$DIR/logs/build.log" 2>&1; then
    grep -E 'error|warning' "$DIR/logs/build.log" | head -30
    exit 1
fi

rows=()
failed=0
for t in "${targets[@]}"; do
    seeds=$ROOT/sanitizers/fuzz/corpus/$t
    work=$DIR/corpus/$t
    mkdir -p "$work"
    log=$DIR/logs/$t.log
    echo "=== fuzz: $t for ${SECONDS_PER_TARGET}s (seeds: $(ls "$seeds" | wc -l))"
    extra=()
    # fuzz_http: each input is a loopback round trip; keep inputs request-sized.
    [ "$t" = fuzz_http ] && extra=(-max_len=8192)
    start=$(date +%s)
    "$DIR/sanitizers/$t" -max_total_time="$SECONDS_PER_TARGET" -timeout=30 -rss_limit_mb=4096 \
        -print_final_stats=1 -artifact_prefix="$DIR/artifacts/$t-" "${extra[@]}" \
        "$work" "$seeds" >"$log" 2>&1
    rc=$?
    secs=$(($(date +%s) - start))
    execs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$log" | tail -1)
    speed=$(sed -nE 's/^stat::average_exec_per_sec: *([0-9]+).*/\1/p' "$log" | tail -1)
    cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -1 | awk '{print $2}')
    corpus=$(ls "$work" | wc -l)
    status=PASS
    if [ $rc -ne 0 ] || grep -Eq 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|==ERROR' "$log"; then
        status=FAIL
        failed=1
        grep -E 'ERROR|runtime error|fuzz_(alloc|http):|Test unit written' "$log" | head -20
    fi
    rows+=("$(printf '%-11s %-12s %-10s %-9s %-9s %-8s %s' "$t" "${execs:-0}" "${speed:-0}" "${cov:-?}" "$corpus" "$secs" "$status")")
done

echo
echo "=== fuzz summary (executions done per target)"
printf '%-11s %-12s %-10s %-9s %-9s %-8s %s\n' target executions exec/s coverage corpus seconds status
for r in "${rows[@]}"; do echo "$r"; done
[ $failed = 0 ] && echo "fuzz: PASS" || echo "fuzz: FAIL"
exit $failed
