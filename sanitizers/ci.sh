#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The two sanitizer stages of .ci/run (make sanitize, make fuzz) in one command: the whole
# sanitizer matrix, then each libFuzzer target for a bounded time. Exit status non-zero if
# either failed. Budget on 2 cores: see README.md.
#   sanitizers/ci.sh            (env: FUZZ_SECONDS=60, and run-matrix.sh's knobs)
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
rc=0
"$HERE/run-matrix.sh" all || rc=1
"$HERE/run-fuzz.sh" "${FUZZ_SECONDS:-60}" || rc=1
[ $rc = 0 ] && echo "sanitizers ci: PASS" || echo "sanitizers ci: FAIL"
exit $rc
