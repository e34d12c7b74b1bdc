#!/usr/bin/env bash
# go tool pprof (Debian golang-go, offline) reads the profile tslab_profile_write wrote and finds:
#   1. at the default 512 KiB interval with 1M live objects, inuse_space within 10% of the true
#      live bytes (a fixed seed: the same samples every run);
#   2. at a 64 KiB interval, the allocating functions named, with pprof_alpha holding three times
#      pprof_beta's bytes (within 10%) and pprof_gamma, whose objects are all freed, holding none
#      but having allocated twice what alpha and beta did together (within 10%).
# Usage: pprof_check.sh PPROF_PROGRAM. Skips (77) without go, fails instead when CI=true.
set -euo pipefail
prog=$1
if ! command -v go >/dev/null; then
  echo "go not found (Debian golang-go)" >&2
  [ "${CI:-}" = true ] && exit 1
  exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# A private, offline Go environment: nothing written to the user's home or cache.
export HOME=$tmp GOPATH=$tmp/gopath GOCACHE=$tmp/gocache GOPROXY=off GOTOOLCHAIN=local
export PPROF_TMPDIR=$tmp

# Bytes of function $2 (flat) in `go tool pprof -top -unit=B` output file $1; 0 when absent.
flat() { awk -v f="$2" '$NF == f { sub(/B$/, "", $1); print $1; found = 1 } END { if (!found) print 0 }' "$1"; }
within() { # within A B PCT: |A - B| <= PCT% of B
  awk -v a="$1" -v b="$2" -v p="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= b * p / 100) }'
}

read -r _ live _ _ _ _ < <("$prog" "$tmp/default.pb.gz")
go tool pprof -top -unit=B -sample_index=inuse_space "$tmp/default.pb.gz" >"$tmp/inuse.txt" 2>&1
total=$(sed -n 's/.* of \([0-9]*\)B total.*/\1/p' "$tmp/inuse.txt")
echo "inuse_space ${total:-?} B, true live bytes $live"
[ -n "$total" ] && within "$total" "$live" 10 || { cat "$tmp/inuse.txt"; echo "FAIL: inuse_space" >&2; exit 1; }

"$prog" "$tmp/fine.pb.gz" 65536 >/dev/null
go tool pprof -top -unit=B -sample_index=inuse_space "$tmp/fine.pb.gz" >"$tmp/fine_inuse.txt" 2>&1
go tool pprof -top -unit=B -sample_index=alloc_space "$tmp/fine.pb.gz" >"$tmp/fine_alloc.txt" 2>&1
a=$(flat "$tmp/fine_inuse.txt" pprof_alpha)
b=$(flat "$tmp/fine_inuse.txt" pprof_beta)
g=$(flat "$tmp/fine_inuse.txt" pprof_gamma)
ga=$(flat "$tmp/fine_alloc.txt" pprof_gamma)
aa=$(flat "$tmp/fine_alloc.txt" pprof_alpha)
ba=$(flat "$tmp/fine_alloc.txt" pprof_beta)
echo "inuse: alpha $a beta $b gamma $g; alloc: alpha $aa beta $ba gamma $ga"
fail=0
[ "$b" -gt 0 ] && within "$a" $((3 * b)) 10 || { echo "FAIL: alpha != 3 x beta" >&2; fail=1; }
[ "$g" -eq 0 ] || { echo "FAIL: gamma holds live bytes" >&2; fail=1; }
within "$ga" $((2 * (aa + ba))) 10 || { echo "FAIL: gamma's alloc_space" >&2; fail=1; }
[ $fail = 0 ] || { cat "$tmp/fine_inuse.txt" "$tmp/fine_alloc.txt"; exit 1; }
echo "ok"
