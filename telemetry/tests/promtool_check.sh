#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# `promtool check metrics` on the golden text output and on live /metrics of tslab-demo (plain,
# gzip, and with rejections moving): zero problems. promtool reads standard input only and exits
# 0 clean, 3 on lint problems, 1 on parse errors; both the status and its output are
# checked. OpenMetrics output is not linted (promtool lints the text format).
#
# usage: promtool_check.sh TSLAB_DEMO GOLDEN_DIR
set -u
demo=$1
golden=$2
skip=77

if ! command -v promtool >/dev/null; then
  if [ "${CI:-}" = true ]; then
    echo "FAIL: promtool is required in CI (apt-get install --no-install-recommends prometheus)" >&2
    exit 1
  fi
  echo "SKIP: promtool not installed" >&2
  exit $skip
fi
command -v curl >/dev/null || { echo "FAIL: curl is required" >&2; exit 1; }

failures=0
demo_pid=
cleanup() { [ -n "$demo_pid" ] && kill "$demo_pid" 2>/dev/null && wait "$demo_pid" 2>/dev/null; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# lint NAME < text: promtool must exit 0 and print nothing.
lint() {
  local out rc
  out=$(promtool check metrics 2>&1)
  rc=$?
  if [ $rc -ne 0 ] || [ -n "$out" ]; then
    echo "FAIL: promtool check metrics on $1: exit $rc" >&2
    echo "$out" >&2
    failures=$((failures + 1))
  else
    echo "ok: $1"
  fi
}

lint "golden metrics.prom" < "$golden/metrics.prom"

# A lint that must fail, so a promtool that accepts anything cannot make this test pass.
printf '# TYPE bad_counter counter\nbad_counter 1\n' | promtool check metrics >/dev/null 2>&1
[ $? -eq 3 ] || { echo "FAIL: promtool did not flag a counter without _total" >&2; failures=$((failures + 1)); }

coproc DEMO { exec "$demo" --listen 127.0.0.1:0 --quiet --threads 2 --inject-bad-frees 50; }
demo_pid=$DEMO_PID
if ! read -t 30 -r line <&"${DEMO[0]}"; then
  echo "FAIL: tslab-demo printed no listening line" >&2
  exit 1
fi
if [[ ! $line =~ ^listening\ on\ http://127\.0\.0\.1:([0-9]+)/$ ]]; then
  echo "FAIL: unexpected first line: $line" >&2
  exit 1
fi
url="http://127.0.0.1:${BASH_REMATCH[1]}/metrics"

body=$(curl -sSf "$url") || { echo "FAIL: curl $url" >&2; exit 1; }
lint "live /metrics" <<<"$body"
lint "live /metrics (gzip)" < <(curl -sSf --compressed -H 'Accept-Encoding: gzip' "$url")

# Scrape until the injected bad frees show in the output, then lint that output too.
deadline=$((SECONDS + 30))
while [ $SECONDS -lt $deadline ]; do
  body=$(curl -sSf "$url") || break
  if grep -qE '^tslab_free_rejections_total\{allocator="sessions",class="128",reason="stale"\} [1-9]' <<<"$body"; then
    break
  fi
done
if grep -qE '^tslab_free_rejections_total\{allocator="sessions",class="128",reason="stale"\} [1-9]' <<<"$body"; then
  lint "live /metrics with rejections" <<<"$body"
else
  echo "FAIL: stale rejections never appeared in /metrics" >&2
  failures=$((failures + 1))
fi

# Every family has HELP and TYPE exactly once (promtool accepts some duplicates silently).
dups=$(grep -E '^# (HELP|TYPE) ' <<<"$body" | awk '{print $2, $3}' | sort | uniq -d)
[ -z "$dups" ] || { echo "FAIL: duplicate HELP/TYPE: $dups" >&2; failures=$((failures + 1)); }

kill -TERM "$demo_pid"
wait "$demo_pid"
rc=$?
demo_pid=
[ $rc -eq 0 ] || { echo "FAIL: tslab-demo exited $rc after SIGTERM" >&2; failures=$((failures + 1)); }

if [ $failures -ne 0 ]; then
  echo "promtool_check: $failures failure(s)" >&2
  exit 1
fi
echo "promtool_check: all checks passed"
