#!/bin/sh
# What the checker costs a program that does almost nothing, the case of a
# test suite of thousands of short processes: `true` natively, under
# `steward check`, and built with -fsanitize=leak; and a shell loop of N
# such programs natively, under `steward check --trace-children` (every
# program in the loop checked) and with each program built with LSan.
# Medians of 5; wall time, so run it on a quiet machine. Prints markdown.
#   bench/check_startup.sh BUILD_DIR [N]
set -eu
build=${1:-build}
n=${2:-2000}
steward="$(cd "$build/src" && pwd)/steward"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf 'int main(void) { return 0; }\n' >"$tmp/true.c"
cc -O2 -o "$tmp/true" "$tmp/true.c"
have_lsan=0
clang -O2 -fsanitize=leak -o "$tmp/true-lsan" "$tmp/true.c" 2>/dev/null && have_lsan=1

# Median wall milliseconds of 5 runs of "$@" (output discarded).
wall_ms() {
    for i in 1 2 3 4 5; do
        s=$(date +%s%N)
        "$@" >/dev/null 2>&1 || true
        e=$(date +%s%N)
        echo "($e - $s) / 1000000" | bc -l
    done | sort -n | sed -n 3p
}
# Median per-run milliseconds of 200 back-to-back runs of "$@", 5 times.
each_ms() {
    for i in 1 2 3 4 5; do
        s=$(date +%s%N)
        j=0
        while [ $j -lt 200 ]; do "$@" >/dev/null 2>&1 || true; j=$((j + 1)); done
        e=$(date +%s%N)
        echo "($e - $s) / 200000000" | bc -l
    done | sort -n | sed -n 3p
}
row() { # name ms native-ms
    printf '| %s | %.2f | %+.2f |\n' "$1" "$2" "$(echo "$2 - $3" | bc -l)"
}

echo "### fixed cost: one program that returns at once"
echo
echo "| how | ms per run (median) | ms added |"
echo "|---|---:|---:|"
native=$(each_ms "$tmp/true")
row native "$native" "$native"
row "steward check" "$(each_ms "$steward" check -- "$tmp/true")" "$native"
row "LD_PRELOAD=libsteward-check.so (no launcher)" \
    "$(each_ms env LD_PRELOAD="$(dirname "$steward")/libsteward-check.so" "$tmp/true")" \
    "$(each_ms env "$tmp/true")"
[ "$have_lsan" = 1 ] && row "-fsanitize=leak" "$(each_ms "$tmp/true-lsan")" "$native"

echo
echo "### a shell loop of $n programs"
echo
echo "| how | wall ms (median of 5) | ms added per program |"
echo "|---|---:|---:|"
loop="i=0; while [ \$i -lt $n ]; do \"\$0\"; i=\$((i + 1)); done"
native=$(wall_ms sh -c "$loop" "$tmp/true")
per() { printf '| %s | %.0f | %.2f |\n' "$1" "$2" "$(echo "($2 - $native) / $n" | bc -l)"; }
per native "$native"
per "steward check --trace-children" "$(wall_ms "$steward" check --trace-children -- sh -c "$loop" "$tmp/true")"
[ "$have_lsan" = 1 ] && per "each program built with -fsanitize=leak" "$(wall_ms sh -c "$loop" "$tmp/true-lsan")"
exit 0
