#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# docs.inventory: the READMEs name everything the project has, so a new test or metric cannot
# ship undocumented.
#   - every ctest test is a row of a README test table: a line starting with | `NAME` (core tests
#     may drop their "core." prefix);
#   - every metric family of the golden Prometheus output is named in README.md and in
#     telemetry/README.md.
#
#   inventory.sh CTEST BUILD_DIR GOLDEN_PROM SOURCE_DIR
set -uo pipefail
ctest=$1 build=$2 golden=$3 src=$4
failed=0
readmes=("$src"/README.md "$src"/*/README.md)

# The tests are read from the build's CTestTestfile.cmake files, not with `ctest -N`: that would
# rewrite the build's Testing/Temporary/LastTest.log while the suite runs, which the sanitizer
# matrix reads afterwards (it checks that san_asan_uaf printed its PASS line there).
: "$ctest"
tests=$(find "$build" -name CTestTestfile.cmake -exec sed -nE \
    -e 's/^add_test\(\[=\[([^]]+)\]=\].*/\1/p' -e 's/^add_test\(([^ "[]+) .*/\1/p' {} + | sort -u)
[ -n "$tests" ] || { echo "FAIL: no add_test in $build's CTestTestfile.cmake files"; exit 1; }
n=0
for t in $tests; do
    n=$((n + 1))
    short=${t#core.}
    if ! grep -qE "^\| \`($t|$short)\`" "${readmes[@]}"; then
        echo "FAIL: test $t is in no README test table (a row starting with | \`$short\`)"
        failed=$((failed + 1))
    fi
done
echo "$n tests checked"

families=$(sed -nE 's/^# TYPE ([a-z_:]+) .*/\1/p' "$golden")
[ -n "$families" ] || { echo "FAIL: no # TYPE line in $golden"; exit 1; }
m=0
for f in $families; do
    m=$((m + 1))
    for doc in "$src/README.md" "$src/telemetry/README.md"; do
        if ! grep -qF "$f" "$doc"; then
            echo "FAIL: metric family $f is not named in $doc"
            failed=$((failed + 1))
        fi
    done
done
echo "$m metric families checked, $failed missing"
[ "$failed" -eq 0 ]
