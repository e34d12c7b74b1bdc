#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# docs.code_blocks: every ```c block of the given Markdown files compiles against the in-tree
# headers and links against the built libraries, so an example cannot drift from the API.
#
#   code_blocks.sh --cc CC --out DIR [--cflags "FLAGS"] [-I DIR]... [--lib FILE]... FILE.md...
#
# Convention for the blocks (stated in README.md, "Tests"):
#   ```c            a complete program: compiled as-is with -std=c11 -Wall -Wextra -Werror
#                   -pedantic, linked, and run; it must exit 0.
#   ```c fragment   a few lines that need context: the block's #include lines stay at file scope
#                   and the rest becomes the body of `void fragment(tslab *sessions)` (the
#                   instance of README.md's first example), compiled with the same flags except
#                   the unused-variable warnings, and linked; not run.
# Any other info string (```sh, ```cmake, ...) is not C and is ignored.
set -uo pipefail

cc=cc out=
cflags=()
incs=()
libs=()
files=()
while [ $# -gt 0 ]; do
    case $1 in
    --cc) cc=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --cflags) read -r -a more <<<"$2"; cflags+=("${more[@]}"); shift 2 ;;
    -I) incs+=(-I "$2"); shift 2 ;;
    --lib) libs+=("$2" "-Wl,-rpath,$(dirname "$2")"); shift 2 ;;
    *) files+=("$1"); shift ;;
    esac
done
[ -n "$out" ] && [ ${#files[@]} -gt 0 ] || { echo "usage: see $0" >&2; exit 2; }
rm -rf "$out" && mkdir -p "$out" || exit 1

total=0 failed=0
for md in "${files[@]}"; do
    [ -r "$md" ] || { echo "FAIL: cannot read $md"; failed=$((failed + 1)); continue; }
    name=$(basename "$(dirname "$md")")_$(basename "$md" .md)
    # Split the file into out/<name>_<n>.<kind>.c, one per ```c block, and list "file line" (the
    # Markdown line of the block's first line, for #line, so errors point into the .md file).
    awk -v prefix="$out/$name" '
        !inblock && /^```c( fragment)?[ \t]*$/ {
            inblock = 1; n++; kind = ($0 ~ /fragment/) ? "fragment" : "program"
            file = sprintf("%s_%d.%s.c", prefix, n, kind); start = NR + 1
            printf "%s %d\n", file, start
            next
        }
        inblock && /^```[ \t]*$/ { inblock = 0; close(file); next }
        inblock { print > file }
        END { if (inblock) { print "UNTERMINATED " start; exit 1 } }' "$md" >"$out/$name.list" ||
        { echo "FAIL: $md: unterminated code block"; failed=$((failed + 1)); continue; }
    if [ ! -s "$out/$name.list" ]; then
        echo "FAIL: $md has no \`\`\`c block: nothing to check"
        failed=$((failed + 1))
    fi
    while read -r src line; do
        total=$((total + 1))
        where="$md:$line"
        bin=${src%.c}
        kind=${bin##*.}
        flags=(-std=c11 -Wall -Wextra -Werror -pedantic "${cflags[@]}" "${incs[@]}")
        case $src in
        *.fragment.c)
            wrapped=${src%.c}.wrapped.c
            {
                echo '#include <tslab.h>'
                grep -E '^[[:space:]]*#[[:space:]]*include' "$src"
                echo "void fragment(tslab *sessions);"
                echo "void fragment(tslab *sessions)"
                echo "{"
                echo "#line $line \"$md\""
                sed -E 's/^[[:space:]]*#[[:space:]]*include.*//' "$src" # keeps line numbers
                echo "}"
                echo "int main(void) { return 0; }"
            } >"$wrapped"
            flags+=(-Wno-unused-variable -Wno-unused-but-set-variable -Wno-unused-parameter)
            compile=("$cc" "${flags[@]}" -x c "$wrapped" -o "$bin" -x none "${libs[@]}")
            ;;
        *)
            numbered=${src%.c}.numbered.c
            { echo "#line $line \"$md\""; cat "$src"; } >"$numbered"
            compile=("$cc" "${flags[@]}" -x c "$numbered" -o "$bin" -x none "${libs[@]}")
            ;;
        esac
        if ! "${compile[@]}" 2>"$bin.log"; then
            echo "FAIL: $where: the block does not compile or link:"
            head -40 "$bin.log" | sed "s/^/    /"
            failed=$((failed + 1))
            continue
        fi
        if [[ $src != *.fragment.c ]]; then
            if ! "$bin" >"$bin.out" 2>&1; then
                echo "FAIL: $where: the program exits with status $?:"
                sed 's/^/    /' "$bin.out"
                failed=$((failed + 1))
                continue
            fi
        fi
        echo "ok: $where ($kind)"
    done <"$out/$name.list"
done
echo "$total code blocks, $failed failed"
[ "$failed" -eq 0 ]
