#!/bin/sh
# Run every steward test against the build in $1 through `meson test` (the
# suites are registered in tests/meson.build: unit, leaks, real, relay,
# media, browser, cli) and end with the line "N passed, N failed"
# (tests/summarize.py): unit tests count each cmocka case; the leak corpus,
# the real programs, the relay's integration tests, the real media servers'
# own tests and the web UI's browser checks count each "ok   X/NAME" or
# "FAIL X/NAME" line they print; command-line tests count once each.
#   tests/run.sh BUILD_DIR [--unit-only]
# STEWARD_TEST_JOBS (default 1) runs that many tests at once; SUITES
# ("relay cli", ...) picks suites. The timing-sensitive suites were written
# for one at a time on two cores.
set -u
build=${1:?usage: tests/run.sh BUILD_DIR [--unit-only]}
here=$(cd "$(dirname "$0")" && pwd)
suites=${SUITES:-}
[ "${2:-}" = --unit-only ] && suites=unit
args=""
for s in $suites; do args="$args --suite $s"; done
# As tests/run.sh always ran them: no glibc malloc perturbation (meson's
# default) under the leak checker's pointer scans and the relay's timing.
export MALLOC_PERTURB_=0
rm -f "$build/meson-logs/testlog-run.json"
# meson's one line per finished test as it goes; its whole output in run.out.
{
    # shellcheck disable=SC2086
    meson test -C "$build" --no-rebuild --num-processes "${STEWARD_TEST_JOBS:-1}" \
        --logbase testlog-run $args
    echo $? >"$build/meson-logs/run.rc"
} 2>&1 | tee "$build/meson-logs/run.out" | grep --line-buffered -E '^ *[0-9]+/[0-9]+ '
rc=$(cat "$build/meson-logs/run.rc" 2>/dev/null || echo 1)
if [ ! -s "$build/meson-logs/testlog-run.json" ]; then
    tail -20 "$build/meson-logs/run.out"
    echo "0 passed, 1 failed"
    exit 1
fi
python3 "$here/summarize.py" "$build/meson-logs/testlog-run.json" || rc=1
exit $rc
