#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Sanitizer build matrix: configure, build, run the whole ctest suite and tslab-stress under each
# sanitizer, print a summary table, exit non-zero on any failure or sanitizer report.
#
#   sanitizers/run-matrix.sh [asan|ubsan|tsan|valgrind|all]...     (default: all)
#
# Configurations (binary dirs build/san-<name>):
#   asan-clang, asan-gcc     preset asan (ASan + UBSan, -fno-sanitize-recover=all)
#   ubsan-clang, ubsan-gcc   preset ubsan
#   tsan-clang               preset tsan
#   valgrind-clang           preset valgrind (-DTSLAB_VALGRIND=ON), suite under memcheck
#
# Environment knobs (defaults are what CI runs; see sanitizers/README.md):
#   JOBS=2                 build and ctest parallelism
#   STRESS_OPS=20000000    tslab-stress operations under TSan (full length)
#   STRESS_OPS_SHORT=4000000   ... under ASan and UBSan (shortened: races are TSan's job)
#   STRESS_THREADS=8
#   VALGRIND_STRESS_OPS=300000   (memcheck serialises threads: shortened)
#   SAN_BUILD_ROOT=<repo>/build
#   CC_CLANG=clang-14 (or clang), CC_GCC=gcc
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
JOBS=${JOBS:-2}
STRESS_OPS=${STRESS_OPS:-20000000}
STRESS_OPS_SHORT=${STRESS_OPS_SHORT:-4000000}
STRESS_THREADS=${STRESS_THREADS:-8}
VALGRIND_STRESS_OPS=${VALGRIND_STRESS_OPS:-300000}
BUILD_ROOT=${SAN_BUILD_ROOT:-$ROOT/build}
CC_CLANG=${CC_CLANG:-$(command -v clang-14 || command -v clang || echo clang)}
CC_GCC=${CC_GCC:-$(command -v gcc || echo gcc)}
VALGRIND=${VALGRIND:-$(command -v valgrind || echo valgrind)}

# Sanitizer runtime options. No suppression file: our own code must be clean.
#  - ASan: leaks are errors; abort so a core/stack is printed; keep going is never allowed.
#  - TSan: halt at the first report, exit 66. libmicrohttpd (Debian, not instrumented) is covered
#    by TSan's interceptors (pthread, socket, epoll); see sanitizers/README.md, "TSan and the HTTP
#    thread".
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:exitcode=66:second_deadlock_stack=1:history_size=4}

# What counts as a report in any log.
REPORT_RE='ERROR: AddressSanitizer|ERROR: LeakSanitizer|WARNING: ThreadSanitizer|ERROR: ThreadSanitizer|ThreadSanitizer: reported|runtime error: |SUMMARY: UndefinedBehaviorSanitizer|^==[0-9]+== (Invalid (read|write|free)|Conditional jump|Use of uninitialised|Syscall param|Mismatched free|Source and destination overlap)|definitely lost: [1-9]'

SUMMARY=()
FAILED=0

note() { printf '\n=== %s\n' "$*"; }

# What the failed tests of a ctest log printed (--output-on-failure), so that a CI log says why a
# test failed and not only which.
show_failures() { # ctest-log
    grep -E -A40 '\*\*\*(Failed|Timeout|Exception)' "$1" | head -200
}

count_reports() { # files...
    local n=0 f c
    for f in "$@"; do
        [ -f "$f" ] || continue
        c=$(grep -Ec "$REPORT_RE" "$f" || true)
        n=$((n + c))
    done
    echo "$n"
}

compiler_name() {
    "$1" --version 2>/dev/null | head -1 | sed -E 's/^(Debian |Ubuntu )?//; s/ \(.*\)//; s/ version//; s/-[0-9]+\)?.*$//' |
        awk '{print $1" "$NF}'
}

# run_config NAME PRESET CC
run_config() {
    local name=$1 preset=$2 cc=$3
    local dir=$BUILD_ROOT/san-$name logs t0 t1 status=PASS tests="-" reports=0 stress_ops="-"
    logs=$dir/matrix-logs
    t0=$(date +%s)
    note "$name: configure ($preset, $cc)"
    # A build dir configured with another compiler would be wiped by CMake *without* the preset's
    # flags: start it afresh instead.
    if [ -f "$dir/CMakeCache.txt" ] && ! grep -Eqx "CMAKE_C_COMPILER:[A-Z]+=$cc" "$dir/CMakeCache.txt"; then
        rm -rf "$dir"
    fi
    mkdir -p "$logs"
    rm -f "$logs"/*.log
    local extra=()
    # Valgrind 3.19 cannot read clang 14's default DWARF 5 ("unhandled dwarf2 abbrev form").
    [ "$preset" = valgrind ] && extra=(-DCMAKE_C_FLAGS=-gdwarf-4)
    if ! cmake --preset "$preset" -S "$ROOT" -B "$dir" -DCMAKE_C_COMPILER="$cc" \
        -DTSLAB_BUILD_BENCH=OFF "${extra[@]}" >"$logs/configure.log" 2>&1; then
        tail -30 "$logs/configure.log"
        status=FAIL-configure
    fi
    # The sanitizer flags must have reached the cache (tslab-stress would otherwise pass
    # uninstrumented).
    if [ $status = PASS ] && [ "$preset" != valgrind ] &&
        ! grep -q "^CMAKE_C_FLAGS:.*-fsanitize=" "$dir/CMakeCache.txt"; then
        echo "$name: CMAKE_C_FLAGS has no -fsanitize= after configuring"
        status=FAIL-configure
    fi
    if [ $status = PASS ]; then
        note "$name: build"
        if ! cmake --build "$dir" -j"$JOBS" >"$logs/build.log" 2>&1; then
            grep -E 'error|warning' "$logs/build.log" | head -30
            status=FAIL-build
        fi
    fi
    if [ $status = PASS ]; then
        if [ "$preset" = valgrind ]; then
            run_valgrind_suite "$dir" "$logs" || status=FAIL-tests
        else
            note "$name: ctest"
            (cd "$dir" && ctest --output-on-failure -j"$JOBS" --timeout 1200 \
                $(ctest_excludes "$preset")) >"$logs/ctest.log" 2>&1 || status=FAIL-tests
            tail -15 "$logs/ctest.log"
            [ $status = PASS ] || show_failures "$logs/ctest.log"
        fi
        # The ASan configurations must really run the use-after-free test (not skip it).
        if [ "$preset" = asan ] && ! grep -q 'asan-uaf: PASS' "$dir"/Testing/Temporary/LastTest*.log; then
            echo "$name: san_asan_uaf did not pass (skipped or failed): is ASan really on?"
            status=FAIL-tests
        fi
        tests=$(sed -nE 's/.*tests passed, ([0-9]+) tests failed out of ([0-9]+).*/\2-\1/p' "$logs/ctest.log" | tail -1)
        if [ -n "$tests" ]; then
            local total=${tests%-*} failed=${tests#*-}
            tests="$((total - failed))/$total"
        else
            tests="?"
            status=FAIL-tests
        fi
        local ops=$STRESS_OPS threads=$STRESS_THREADS prefix=()
        [ "$preset" = tsan ] || ops=$STRESS_OPS_SHORT
        if [ "$preset" = valgrind ]; then
            ops=$VALGRIND_STRESS_OPS
            threads=4
            prefix=("$VALGRIND" --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --fair-sched=yes)
        fi
        note "$name: tslab-stress --threads $threads --ops $ops"
        if ! "${prefix[@]}" "$dir/sanitizers/tslab-stress" --threads "$threads" --ops "$ops" \
            >"$logs/stress.log" 2>&1; then
            status=FAIL-stress
        fi
        grep -E '^tslab-stress:|MISMATCH|check failed' "$logs/stress.log" | cut -c1-400
        stress_ops=$(sed -nE 's/.*ops ([0-9]+) in .*/\1/p' "$logs/stress.log" | tail -1)
        [ -n "$stress_ops" ] || stress_ops="-"
        # Reports: every test's output (ctest keeps it in LastTest*.log), memcheck logs, stress.
        reports=$(count_reports "$dir"/Testing/Temporary/LastTest*.log \
            "$dir"/Testing/Temporary/MemoryChecker.*.log "$logs/stress.log")
        if [ "$reports" != 0 ]; then
            echo "--- sanitizer reports in $name:"
            grep -EHn "$REPORT_RE" "$dir"/Testing/Temporary/LastTest*.log \
                "$dir"/Testing/Temporary/MemoryChecker.*.log "$logs/stress.log" 2>/dev/null | head -20
            [ $status = PASS ] && status=FAIL-reports
        fi
    fi
    t1=$(date +%s)
    [ $status = PASS ] || FAILED=1
    SUMMARY+=("$(printf '%-15s %-16s %-9s %-13s %-8s %-8s %s' "$name" "$(compiler_name "$cc")" \
        "$tests" "$stress_ops" "$reports" "$((t1 - t0))" "$status")")
}

# Tests left out of a configuration, with the reason (also in sanitizers/README.md).
ctest_excludes() {
    case $1 in
    # core.install_consumer builds an unsanitized program against the installed (sanitized)
    # library: it checks packaging, which the release build of .ci/run covers.
    asan | ubsan | tsan) echo "-E ^core\.install_consumer$" ;;
    *) ;;
    esac
}

run_valgrind_suite() { # dir logs
    local dir=$1 logs=$2 rc=0
    # Memcheck wraps a test's command. Tests driven by a script (bash, python, cmake: promtool,
    # Prometheus scrape, HTTP robustness, dashboards, install) would put the interpreter under
    # memcheck, not our code, so they run natively here (their programs are covered by ASan,
    # UBSan and TSan); every test whose command is one of our compiled programs runs under
    # memcheck. san_valgrind_misuse runs valgrind itself and expects reports: natively below.
    local scripted
    scripted=$(cd "$dir" && ctest --show-only=json-v1 | python3 -c '
import json, sys
d = json.load(sys.stdin); build = sys.argv[1]
names = [t["name"] for t in d["tests"]
         if not t.get("command") or not t["command"][0].startswith(build + "/")
         or t["name"] == "san_valgrind_misuse"]
print("|".join(n.replace(".", "\\.") for n in names))' "$dir")
    echo "not under memcheck (script-driven, run natively): ${scripted//|/ }"
    note "valgrind: ctest -T memcheck (every compiled test program under memcheck)"
    # Loop counts of the core tests scaled to 10% under memcheck (TSLAB_TEST_SCALE): the same
    # assertions, on fewer iterations, so the configuration fits the CI budget.
    (cd "$dir" && TSLAB_TEST_SCALE=${VALGRIND_TEST_SCALE:-10} \
        ctest -T memcheck -j"$JOBS" --timeout 2400 --output-on-failure \
        --overwrite MemoryCheckCommand="$VALGRIND" \
        --overwrite "MemoryCheckCommandOptions=--error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite --track-origins=no --fair-sched=yes --child-silent-after-fork=yes" \
        -E "^($scripted)\$") >"$logs/ctest.log" 2>&1 || rc=1
    tail -25 "$logs/ctest.log"
    [ $rc = 0 ] || show_failures "$logs/ctest.log"
    note "valgrind: script-driven tests natively, and san_valgrind_misuse (deliberate misuse must be reported)"
    (cd "$dir" && ctest --output-on-failure -j"$JOBS" --timeout 1200 -R "^($scripted)\$" \
        -E '^core\.install_consumer$') >"$logs/ctest-native.log" 2>&1 || { rc=1; show_failures "$logs/ctest-native.log"; }
    grep -E '^valgrind|tests passed|Failed|Passed' "$logs/ctest-native.log"
    # One total for the summary table.
    local a b
    a=$(sed -nE 's/.*tests passed, ([0-9]+) tests failed out of ([0-9]+).*/\2 \1/p' "$logs/ctest.log" | tail -1)
    b=$(sed -nE 's/.*tests passed, ([0-9]+) tests failed out of ([0-9]+).*/\2 \1/p' "$logs/ctest-native.log" | tail -1)
    if [ -n "$a" ] && [ -n "$b" ]; then
        set -- $a $b
        echo "combined: tests passed, $(($2 + $4)) tests failed out of $(($1 + $3))" >>"$logs/ctest.log"
    else
        rc=1
    fi
    return $rc
}

main() {
    configs=()
    [ $# -eq 0 ] && set -- all
    for arg in "$@"; do
        case $arg in
        asan) configs+=("asan-clang asan $CC_CLANG" "asan-gcc asan $CC_GCC") ;;
        ubsan) configs+=("ubsan-clang ubsan $CC_CLANG" "ubsan-gcc ubsan $CC_GCC") ;;
        tsan) configs+=("tsan-clang tsan $CC_CLANG") ;;
        valgrind) configs+=("valgrind-clang valgrind $CC_CLANG") ;;
        all) configs+=("asan-clang asan $CC_CLANG" "asan-gcc asan $CC_GCC" "ubsan-clang ubsan $CC_CLANG"
            "ubsan-gcc ubsan $CC_GCC" "tsan-clang tsan $CC_CLANG" "valgrind-clang valgrind $CC_CLANG") ;;
        -h | --help)
            sed -n '2,20p' "$0"
            exit 0
            ;;
        *)
            echo "unknown configuration: $arg (asan|ubsan|tsan|valgrind|all)" >&2
            exit 2
            ;;
        esac
    done

    T0=$(date +%s)
    for c in "${configs[@]}"; do
        # shellcheck disable=SC2086
        run_config $c
    done

    printf '\n=== sanitizer matrix summary (tests = passed/run; stress = tslab-stress operations; reports = sanitizer reports found)\n'
    printf '%-15s %-16s %-9s %-13s %-8s %-8s %s\n' configuration compiler tests stress-ops reports seconds status
    for row in "${SUMMARY[@]}"; do echo "$row"; done
    printf 'total %s s\n' "$(($(date +%s) - T0))"
    if [ $FAILED = 0 ]; then
        echo "sanitizer matrix: PASS"
    else
        echo "sanitizer matrix: FAIL"
    fi
    exit $FAILED
}

# Everything above is parsed before anything runs, so editing this file during a run is safe.
main "$@"
