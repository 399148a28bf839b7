#!/bin/sh
# Run one libFuzzer target of the sanitizer build for SECONDS.
#   scripts/fuzz.sh NAME SECONDS
# NAME is mjpeg (the multipart parser) or http_request (request parsing):
# build-asan/tests/fuzz_NAME, seeded from tests/fuzz/seeds_NAME; the inputs
# it finds are kept in build-asan/fuzz-NAME-corpus, a crash in
# build-asan/crash-*, its log in build-asan/fuzz-NAME.log.
set -eu
name=${1:?usage: scripts/fuzz.sh NAME SECONDS}
secs=${2:-20}
log=build-asan/fuzz-$name.log
mkdir -p "build-asan/fuzz-$name-corpus"
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 "build-asan/tests/fuzz_$name" \
    -max_total_time="$secs" -print_final_stats=1 -artifact_prefix=build-asan/ \
    "build-asan/fuzz-$name-corpus" "tests/fuzz/seeds_$name" >"$log" 2>&1 || {
    tail -60 "$log"
    echo "fuzz $name: FAILED ($log)"
    exit 1
}
grep -E '^Done|^stat::(number_of_executed_units|new_units_added|peak_rss_mb)' "$log"
echo "fuzz $name: ok ($secs s, corpus build-asan/fuzz-$name-corpus)"
