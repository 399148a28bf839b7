#!/bin/sh
# Run the ledger microbenchmarks against the build in $1 and print the
# markdown table that bench/README.md keeps.
set -eu
build=${1:-build}
echo "| operation (8 frames below the caller) | unwinder | threads | ns/op/thread |"
echo "|---|---|---:|---:|"
"$build/bench/bench_ledger"
STW_UNWIND=libunwind "$build/bench/bench_ledger" 500000
