#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# docs.doxygen: the API reference builds from the public headers (docs/Doxyfile) without a single
# warning; an undocumented public declaration is a warning. The output goes to OUT_DIR, not to
# the source tree. A missing doxygen fails under CI=true and skips (77) elsewhere.
#
#   doxygen.sh SOURCE_DIR OUT_DIR
#
# To fix a failure: give the declaration it names a `/**` comment (a member or macro a trailing
# `/**<` one), as the conventions at the top of docs/Doxyfile say.
set -uo pipefail
src=$1 out=$2
if ! command -v doxygen >/dev/null; then
    echo "doxygen not found: install it (scripts/deps.sh docs)" >&2
    [ "${CI:-}" = true ] && exit 1
    exit 77
fi
rm -rf "$out" && mkdir -p "$out" || exit 1
cd "$src" || exit 1
# The same Doxyfile as `make docs`, with the output and the warning log moved to the build tree.
{
    cat docs/Doxyfile
    echo "OUTPUT_DIRECTORY = \"$out\""
    echo "WARN_LOGFILE = \"$out/warnings.log\""
} | doxygen - >"$out/doxygen.log" 2>&1
rc=$?
if [ $rc -ne 0 ] || [ -s "$out/warnings.log" ]; then
    echo "FAIL: doxygen exited with $rc; warnings:"
    cat "$out/warnings.log" "$out/doxygen.log"
    exit 1
fi
# The reference really documents the API (not an empty run): the headers' pages exist and carry
# the descriptions of a few declarations.
for want in "tslab_8h.html:Allocates an object of the smallest class" \
    "tslab__telemetry_8h.html:Starts the exporter thread" \
    "slab__alloc_8h.html:tslab_create(NULL)" "index.html:temporal-slab API reference"; do
    page=${want%%:*} text=${want#*:}
    if ! grep -qF "$text" "$out/html/$page" 2>/dev/null; then
        echo "FAIL: $out/html/$page does not contain \"$text\""
        exit 1
    fi
done
echo "doxygen $(doxygen --version): reference in $out/html, no warning"
