#!/bin/sh
# Run every steward test against the build in $1 and end with the line
# "N passed, N failed". Unit tests are cmocka binaries: each test case
# counts once; a binary that dies mid-run counts its unfinished cases as
# failed. The leak corpus (tests/leaks/run.py) and the real programs under
# the checker (tests/real/run.sh) count one per program.
# The relay's integration tests (tests/integration/relay_basic.py) count
# one per test case, and so do the real media servers' own tests
# (tests/integration/media_servers_test.py) and the web UI's checks in a browser
# (tests/browser/ui_test.mjs, ui_record_test.mjs). Command-line tests are the tests/cli/*.sh scripts:
# each counts once.
#   tests/run.sh BUILD_DIR [--unit-only]
set -u
build=${1:?usage: tests/run.sh BUILD_DIR [--unit-only]}
unit_only=${2:-}
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
passed=0
failed=0

for t in "$build"/tests/test_*; do
    [ -f "$t" ] && [ -x "$t" ] || continue
    name=$(basename "$t")
    timeout 300 "$t" >"$out/$name.log" 2>&1
    rc=$?
    ok=$(grep -c '^\[       OK \]' "$out/$name.log")
    run=$(grep -c '^\[ RUN      \]' "$out/$name.log")
    bad=$((run - ok))
    # A binary that failed before running any case is one failure.
    if [ "$rc" != 0 ] && [ "$bad" = 0 ]; then bad=1; fi
    passed=$((passed + ok))
    failed=$((failed + bad))
    if [ "$bad" != 0 ]; then
        echo "FAIL $name (exit $rc):"
        sed 's/^/    /' "$out/$name.log" | tail -60
    else
        echo "ok   $name ($ok)"
    fi
done

if [ "$unit_only" != --unit-only ]; then
    # The leak corpus: one line per program, "ok   leaks/NAME" or "FAIL leaks/NAME".
    python3 "$here/leaks/run.py" "$build" >"$out/leaks.log" 2>&1
    cat "$out/leaks.log"
    passed=$((passed + $(grep -c '^ok   leaks/' "$out/leaks.log")))
    failed=$((failed + $(grep -c '^FAIL leaks/' "$out/leaks.log")))
    if ! grep -q '^ok   leaks/\|^FAIL leaks/' "$out/leaks.log"; then
        failed=$((failed + 1))
        echo "FAIL leaks: the corpus runner did not run"
    fi
    # Real programs under the checker: "ok   real/NAME" or "FAIL real/NAME".
    sh "$here/real/run.sh" "$build/src/steward" >"$out/real.log" 2>&1
    grep -E '^(ok|FAIL|skip) ' "$out/real.log"
    grep -A20 '^FAIL real/' "$out/real.log" | grep '^    ' || true
    passed=$((passed + $(grep -c '^ok   real/' "$out/real.log")))
    failed=$((failed + $(grep -c '^FAIL real/' "$out/real.log")))
    # The relay over HTTP under the checker: "ok   relay/NAME" or "FAIL relay/NAME".
    # XDG_STATE_HOME points into $out so that runs without --state never
    # read or write the user's own relay state file.
    for t in relay_basic relay_api relay_mjpeg relay_load relay_attack relay_auth relay_ffmpeg relay_record; do
        XDG_STATE_HOME="$out/state" timeout 900 python3 "$here/integration/$t.py" "$build" \
            >"$out/$t.log" 2>&1
        cat "$out/$t.log"
        passed=$((passed + $(grep -c '^ok   relay/' "$out/$t.log")))
        failed=$((failed + $(grep -c '^FAIL relay/' "$out/$t.log")))
        if ! grep -q '^ok   relay/\|^FAIL relay/' "$out/$t.log"; then
            failed=$((failed + 1))
            echo "FAIL relay: $t did not run"
        fi
    done
    # Real media servers (nginx-rtmp, gst-rtsp-server, ffmpeg's SRT and HLS)
    # proven with plain ffmpeg, no relay: "ok   media/NAME" or "FAIL media/NAME".
    timeout 300 python3 "$here/integration/media_servers_test.py" "$build" \
        >"$out/media.log" 2>&1
    cat "$out/media.log"
    passed=$((passed + $(grep -c '^ok   media/' "$out/media.log")))
    failed=$((failed + $(grep -c '^FAIL media/' "$out/media.log")))
    if ! grep -q '^ok   media/\|^FAIL media/' "$out/media.log"; then
        failed=$((failed + 1))
        echo "FAIL media: tests/integration/media_servers_test.py did not run"
    fi
    # The web UI in Debian's chromium (playwright-core from web/node_modules):
    # "ok   ui/NAME" or "FAIL ui/NAME"; it saves tests/out/ui.png.
    XDG_STATE_HOME="$out/state" timeout 300 node "$here/browser/ui_test.mjs" "$build" \
        >"$out/ui.log" 2>&1
    cat "$out/ui.log"
    passed=$((passed + $(grep -c '^ok   ui/' "$out/ui.log")))
    failed=$((failed + $(grep -c '^FAIL ui/' "$out/ui.log")))
    if ! grep -q '^ok   ui/\|^FAIL ui/' "$out/ui.log"; then
        failed=$((failed + 1))
        echo "FAIL ui: tests/browser/ui_test.mjs did not run"
    fi
    # The recordings view: a recorded segment plays in the page
    # (tests/browser/ui_record_test.mjs).
    timeout 300 node "$here/browser/ui_record_test.mjs" "$build" >"$out/ui_record.log" 2>&1
    cat "$out/ui_record.log"
    passed=$((passed + $(grep -c '^ok   ui/' "$out/ui_record.log")))
    failed=$((failed + $(grep -c '^FAIL ui/' "$out/ui_record.log")))
    if ! grep -q '^ok   ui/\|^FAIL ui/' "$out/ui_record.log"; then
        failed=$((failed + 1))
        echo "FAIL ui: tests/browser/ui_record_test.mjs did not run"
    fi
    # The same UI behind users and TLS (tests/browser/ui_auth_test.mjs).
    timeout 300 node "$here/browser/ui_auth_test.mjs" "$build" >"$out/ui_auth.log" 2>&1
    cat "$out/ui_auth.log"
    passed=$((passed + $(grep -c '^ok   ui/' "$out/ui_auth.log")))
    failed=$((failed + $(grep -c '^FAIL ui/' "$out/ui_auth.log")))
    if ! grep -q '^ok   ui/\|^FAIL ui/' "$out/ui_auth.log"; then
        failed=$((failed + 1))
        echo "FAIL ui: tests/browser/ui_auth_test.mjs did not run"
    fi
    for s in "$here"/cli/*.sh; do
        [ -f "$s" ] || continue
        name=$(basename "$s" .sh)
        if STEWARD="$build/src/steward" timeout 300 sh "$s" >"$out/$name.log" 2>&1; then
            passed=$((passed + 1))
            echo "ok   cli/$name"
        else
            failed=$((failed + 1))
            echo "FAIL cli/$name:"
            sed 's/^/    /' "$out/$name.log" | tail -40
        fi
    done
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
