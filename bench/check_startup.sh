#!/bin/sh
# What the checker costs a program that does almost nothing, the case of a
# test suite of thousands of short processes: `true` natively, under
# `steward check`, and built with -fsanitize=leak; and a shell loop of N
# such programs natively, under `steward check --trace-children` (every
# program in the loop checked) and with each program built with LSan.
# Wall time; the configurations are measured in turn in each of REPS
# rounds (default 5) and each figure is the median, so a machine that is
# busy with other work weighs on all of them alike. Prints markdown.
#   bench/check_startup.sh BUILD_DIR [N [REPS]]     (N = 0: no loop)
set -eu
build=${1:-build}
n=${2:-2000}
reps=${3:-5}
steward="$(cd "$build/src" && pwd)/steward"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf 'int main(void) { return 0; }\n' >"$tmp/true.c"
cc -O2 -o "$tmp/true" "$tmp/true.c"
have_lsan=0
clang -O2 -fsanitize=leak -o "$tmp/true-lsan" "$tmp/true.c" 2>/dev/null && have_lsan=1

# One measurement of 200 back-to-back runs of "$@" (output discarded):
# "wall_ms cpu_ms" per program, CPU being user + system of all processes
# involved (the loop's shell too, the same for every row).
each_once() {
    /usr/bin/time -f '%e %U %S' -o "$tmp/time" sh -c \
        'j=0; while [ $j -lt 200 ]; do "$@" >/dev/null 2>&1 || true; j=$((j + 1)); done' sh "$@"
    awk '{ printf "%.3f %.3f\n", $1 * 5, ($2 + $3) * 5 }' "$tmp/time"
}
# Wall milliseconds of one run of "$@".
wall_once() {
    s=$(date +%s%N)
    "$@" >/dev/null 2>&1 || true
    e=$(date +%s%N)
    echo "($e - $s) / 1000000" | bc -l
}
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# The configurations are measured in turn within each of the $reps
# rounds, so a load that comes and goes affects them alike; each figure
# is the median over the rounds.
lib="$(dirname "$steward")/libsteward-check.so"
: >"$tmp/one"
r=0
while [ $r -lt "$reps" ]; do
    echo "native $(each_once "$tmp/true")" >>"$tmp/one"
    echo "check $(each_once "$steward" check -- "$tmp/true")" >>"$tmp/one"
    echo "sample $(each_once "$steward" check --sample=512k -- "$tmp/true")" >>"$tmp/one"
    echo "env $(each_once env "$tmp/true")" >>"$tmp/one"
    echo "preload $(each_once env LD_PRELOAD="$lib" "$tmp/true")" >>"$tmp/one"
    [ "$have_lsan" = 1 ] && echo "lsan $(each_once "$tmp/true-lsan")" >>"$tmp/one"
    r=$((r + 1))
done
med() { awk -v k="$2" -v f="${3:-2}" '$1 == k { print $f }' "$1" | median; }
row() { # name key base-key
    w=$(med "$tmp/one" "$2" 2) c=$(med "$tmp/one" "$2" 3)
    bw=$(med "$tmp/one" "$3" 2) bc=$(med "$tmp/one" "$3" 3)
    printf '| %s | %.2f | %+.2f | %.2f | %+.2f |\n' "$1" "$w" "$(echo "$w - $bw" | bc -l)" \
        "$c" "$(echo "$c - $bc" | bc -l)"
}

echo "### fixed cost: one program that returns at once"
echo
echo "Medians of $reps rounds of 200 runs each, the rows measured in turn in every round."
echo
echo "| how | wall ms per run | wall ms added | CPU ms per run | CPU ms added |"
echo "|---|---:|---:|---:|---:|"
row native native native
row "steward check" check native
row "steward check --sample=512k" sample native
row "LD_PRELOAD=libsteward-check.so (no launcher; against \`env true\`)" preload env
[ "$have_lsan" = 1 ] && row "-fsanitize=leak" lsan native
[ "$n" -gt 0 ] || exit 0

loop="i=0; while [ \$i -lt $n ]; do \"\$0\"; i=\$((i + 1)); done"
: >"$tmp/loop"
r=0
while [ $r -lt "$reps" ]; do
    echo "native $(wall_once sh -c "$loop" "$tmp/true")" >>"$tmp/loop"
    echo "check $(wall_once "$steward" check --trace-children -- sh -c "$loop" "$tmp/true")" >>"$tmp/loop"
    [ "$have_lsan" = 1 ] && echo "lsan $(wall_once sh -c "$loop" "$tmp/true-lsan")" >>"$tmp/loop"
    r=$((r + 1))
done
echo
echo "### a shell loop of $n programs"
echo
echo "| how | wall ms (median of $reps) | ms added per program |"
echo "|---|---:|---:|"
native=$(med "$tmp/loop" native)
per() { printf '| %s | %.0f | %.2f |\n' "$1" "$2" "$(echo "($2 - $native) / $n" | bc -l)"; }
per native "$native"
per "steward check --trace-children" "$(med "$tmp/loop" check)"
[ "$have_lsan" = 1 ] && per "each program built with -fsanitize=leak" "$(med "$tmp/loop" lsan)"
exit 0
