#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# `make lint`, run by .ci/run: fails on any clang-format difference (the repo's .clang-format) and
# on any cppcheck finding in our C sources. Run from anywhere inside the repository.
#   scripts/lint.sh            both checks
#   make format                fixes the first (clang-format -i on every tracked .c and .h)
# A cppcheck false positive gets an inline suppression on the line before it, with the reason:
#   /* cppcheck-suppress <id> ; <why this is not a bug> */
set -uo pipefail
cd "$(git rev-parse --show-toplevel)" || exit 2
rc=0

mapfile -t sources < <(git ls-files '*.c' '*.h')
echo "lint: clang-format --dry-run --Werror on ${#sources[@]} files"
if ! clang-format --dry-run --Werror "${sources[@]}"; then
    echo "lint: clang-format differences above; 'make format' fixes them" >&2
    rc=1
fi

# Every configuration of #if blocks cppcheck can find (no -D), with the project's include paths.
mapfile -t units < <(git ls-files '*.c')
echo "lint: cppcheck on ${#units[@]} translation units"
if ! cppcheck --enable=warning,performance,portability --error-exitcode=1 --inline-suppr \
    --std=c11 --quiet -j 2 -I allocator/include -I telemetry/include -I allocator/src \
    -I telemetry/src "${units[@]}"; then
    echo "lint: cppcheck findings above" >&2
    rc=1
fi
[ $rc -eq 0 ] && echo "lint: clean"
exit $rc
