#!/bin/sh
# make stress-test: prove the suites that touch timing are deterministic.
# Runs the unit tests, the leak corpus, the real programs under the checker
# and the relay's integration tests RUNS times each (default 50) while
# CPU-heavy jobs keep every core busy, and reports every run that failed.
# Not part of `make test`: 50 rounds take an hour or more.
#   scripts/stress-test.sh BUILD_DIR [RUNS] [SUITE...]
# SUITE: unit, leaks, real, or an integration test name (relay_basic, ...);
# default all of them (every tests/integration/relay_*.py). Failed runs keep
# their logs in $STRESS_LOGS (default stress-logs/). relay_ffmpeg runs its churn case with
# STEWARD_FFMPEG_CHURN cycles (default here 500; `make test` runs 100).
set -u
build=${1:?usage: scripts/stress-test.sh BUILD_DIR [RUNS] [SUITE...]}
runs=${2:-50}
[ $# -ge 2 ] && shift 2 || shift $#
here=$(cd "$(dirname "$0")/.." && pwd)
logs=${STRESS_LOGS:-stress-logs}
mkdir -p "$logs"
relay_suites=$(cd "$here/tests/integration" && ls relay_*.py | sed 's/\.py$//' | tr '\n' ' ')
suites=${*:-"unit leaks real $relay_suites media_servers_test"}

# The load: one busy loop per core (STRESS_HOGS overrides the count, for two
# loops run side by side), ended by pid whatever happens.
hogs=""
cleanup() {
    for p in $hogs; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$tmp"
}
tmp=$(mktemp -d)
trap cleanup EXIT
trap 'exit 130' INT TERM
for _ in $(seq 1 "${STRESS_HOGS:-$(nproc)}"); do
    sh -c 'while :; do :; done' &
    hogs="$hogs $!"
done

run_suite() { # SUITE LOG: exit status 0 when every case passed
    case $1 in
    unit) sh "$here/tests/run.sh" "$build" --unit-only >"$2" 2>&1 ;;
    leaks) python3 "$here/tests/leaks/run.py" "$build" >"$2" 2>&1 ;;
    real) sh "$here/tests/real/run.sh" "$build/src/steward" >"$2" 2>&1 ;;
    relay_ffmpeg) STEWARD_FFMPEG_CHURN=${STEWARD_FFMPEG_CHURN:-500} XDG_STATE_HOME="$tmp/state" \
        timeout 2400 python3 "$here/tests/integration/$1.py" "$build" >"$2" 2>&1 &&
        ! grep -q '^FAIL' "$2" ;;
    *) XDG_STATE_HOME="$tmp/state" timeout 900 python3 "$here/tests/integration/$1.py" "$build" \
        >"$2" 2>&1 && ! grep -q '^FAIL' "$2" ;;
    esac
}

total_failed=0
for s in $suites; do
    failed=0
    i=1
    while [ "$i" -le "$runs" ]; do
        started=$(date +%s)
        if ! run_suite "$s" "$tmp/$s.log"; then
            failed=$((failed + 1))
            cp "$tmp/$s.log" "$logs/$s.$i.log"
            echo "FAIL stress/$s run $i:"
            grep -A8 '^FAIL' "$tmp/$s.log" | sed 's/^/    /' | head -30
        else
            echo "ok   stress/$s run $i ($(($(date +%s) - started)) s)"
        fi
        i=$((i + 1))
    done
    echo "stress/$s: $((runs - failed)) of $runs runs passed"
    total_failed=$((total_failed + failed))
done
[ "$total_failed" = 0 ] && echo "stress: every run passed" || echo "stress: $total_failed failed runs"
[ "$total_failed" = 0 ]
