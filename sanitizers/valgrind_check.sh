#!/bin/sh
# SPDX-License-Identifier: MIT
# Valgrind side of the misuse checks (registered by sanitizers/CMakeLists.txt when built with
# -DTSLAB_VALGRIND=ON): memcheck must see a use after free of a slab object (freed one by one or
# by tslab_epoch_destroy) as an invalid access,
# report a dropped slab object as definitely lost, and find nothing at all in correct use, nor
# after tslab_destroy of an instance that still had live objects (destroy releases them).
# usage: valgrind_check.sh VALGRIND san_misuse
set -u
VG=$1
PROG=$2
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
fail=0
vg() { "$VG" --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
             --show-leak-kinds=definite "$@" >"$OUT" 2>&1; }

check() { # name expected-status regex...
    name=$1 want=$2 st=$3
    shift 3
    ok=1
    [ "$st" = "$want" ] || ok=0
    for re in "$@"; do grep -Eq "$re" "$OUT" || ok=0; done
    if [ $ok = 1 ]; then
        echo "valgrind $name: ok (exit $st)"
    else
        echo "valgrind $name: FAIL (exit $st, wanted $want and /$*/)"
        cat "$OUT"
        fail=1
    fi
}

vg "$PROG" uaf-malloc; st=$?
check uaf-malloc 99 $st "Invalid write of size 1" "definitely lost: 0 bytes"
vg "$PROG" uaf-handle; st=$?
check uaf-handle 99 $st "Invalid read of size 1" "inside a block of size [0-9]+ free'd" "definitely lost: 0 bytes"
vg "$PROG" uaf-epoch; st=$?
check uaf-epoch 99 $st "Invalid read of size 1" "(inside|after) a block of size [0-9]+ free'd" "tslab_epoch_destroy" "definitely lost: 0 bytes"
vg "$PROG" leak; st=$?
check leak 99 $st "definitely lost: 256 bytes in 1 blocks" "tslab_malloc" "leak_one"
vg "$PROG" clean; st=$?
check clean 0 $st "ERROR SUMMARY: 0 errors"
vg "$PROG" destroy-live; st=$?
check destroy-live 0 $st "ERROR SUMMARY: 0 errors"
[ $fail = 0 ] && echo "valgrind-misuse: PASS" || echo "valgrind-misuse: FAIL"
exit $fail
