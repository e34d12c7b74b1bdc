#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# docs.headers: every public header compiles on its own, as C11 and as C++11, with every warning
# an error, so C++ services can include it and no header depends on another being included first.
#
#   headers.sh CC CXX INCLUDE_DIR...   (every *.h of each INCLUDE_DIR is a public header)
#
# A missing C++ compiler fails under CI=true and skips (77) elsewhere.
set -uo pipefail
cc=$1 cxx=$2
shift 2
incs=()
for d in "$@"; do incs+=(-I "$d"); done
if ! command -v "$cxx" >/dev/null; then
    echo "no C++ compiler ($cxx): install g++ (scripts/deps.sh test)" >&2
    [ "${CI:-}" = true ] && exit 1
    exit 77
fi
total=0 failed=0
for d in "$@"; do
    for h in "$d"/*.h; do
        [ -e "$h" ] || continue
        for lang in "c $cc -std=c11" "c++ $cxx -std=c++11"; do
            read -r x compiler std <<<"$lang"
            total=$((total + 1))
            # Included from a file of its own, as a user would (as the main file, clang would
            # warn about its unused static inline functions).
            if out=$(echo "#include <$(basename "$h")>" |
                "$compiler" -x "$x" "$std" -Wall -Wextra -Werror -pedantic -fsyntax-only \
                    "${incs[@]}" - 2>&1); then
                echo "ok: $h as $x ($std)"
            else
                echo "FAIL: $h as $x ($std):"
                echo "$out" | sed 's/^/    /'
                failed=$((failed + 1))
            fi
        done
    done
done
echo "$total header compilations, $failed failed"
[ "$total" -gt 0 ] && [ "$failed" -eq 0 ]
