#!/usr/bin/env bash
# Installs the Debian 12 packages a make target needs, only those missing.
#   scripts/deps.sh build|demo|test|sanitize|bench|docs|lint|all
# Uses apt-get directly as root, through sudo otherwise.
set -euo pipefail

build=(cmake make gcc pkg-config libmicrohttpd-dev libcjson-dev zlib1g-dev libyaml-dev libgnutls28-dev libcrypt-dev
       libprotobuf-c-dev protobuf-c-compiler libunwind-dev)
demo=("${build[@]}" curl)
docs=(doxygen)
lint=(git clang-format cppcheck)
test=("${build[@]}" "${docs[@]}" g++ curl python3 prometheus openssl chromium clang libclang-rt-14-dev golang-go)
sanitize=("${build[@]}" clang libclang-rt-14-dev valgrind python3 curl)
bench=("${build[@]}" libjemalloc-dev libmimalloc-dev libgoogle-perftools-dev gnuplot-nox valgrind)

case "${1:-build}" in
  build) want=("${build[@]}") ;;
  demo) want=("${demo[@]}") ;;
  test) want=("${test[@]}") ;;
  sanitize) want=("${sanitize[@]}") ;;
  bench) want=("${bench[@]}") ;;
  docs) want=("${docs[@]}") ;;
  lint) want=("${lint[@]}") ;;
  all) want=("${test[@]}" "${sanitize[@]}" "${bench[@]}" "${lint[@]}") ;;
  *) echo "usage: $0 build|demo|test|sanitize|bench|docs|lint|all" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# The prometheus package would start a service on port 9090; nothing here wants it running.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null && $sudo chmod +x "$policy" && made_policy=1
fi
trap '[ $made_policy = 1 ] && $sudo rm -f "$policy"' EXIT
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
