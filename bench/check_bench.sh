#!/bin/sh
# Checker overhead, side by side in one run: the same workloads natively,
# under steward check, Valgrind memcheck (--leak-check=full --track-fds=yes),
# heaptrack, and built with -fsanitize=leak. Prints markdown tables.
#   bench/check_bench.sh BUILD_DIR [allocations-per-thread]
set -eu
build=${1:-build}
per=${2:-1000000}
steward="$build/src/steward"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cc -O2 -g -fno-omit-frame-pointer -pthread bench/alloc_heavy.c -o "$tmp/ah"
cc -O2 -g -fno-omit-frame-pointer -pthread bench/live_blocks.c -o "$tmp/lb"
have_lsan=0
if clang -O2 -g -fsanitize=leak -pthread bench/alloc_heavy.c -o "$tmp/ah-lsan" 2>/dev/null &&
    clang -O2 -g -fsanitize=leak -pthread bench/live_blocks.c -o "$tmp/lb-lsan" 2>/dev/null; then
    have_lsan=1
fi

# Median wall seconds of 3 runs of "$@" (output discarded).
wall() {
    for i in 1 2 3; do
        s=$(date +%s.%N)
        "$@" >/dev/null 2>&1 || true
        e=$(date +%s.%N)
        echo "$e - $s" | bc
    done | sort -n | sed -n 2p
}

row() { # name seconds native-seconds
    printf '| %s | %.3f | %.1fx |\n' "$1" "$2" "$(echo "$2 / $3" | bc -l)"
}

echo "### alloc_heavy: $((per * 2)) malloc/free pairs in 2 threads"
echo
echo "| tool | wall s (median of 3) | vs native |"
echo "|---|---:|---:|"
native=$(wall "$tmp/ah" "$per" 2)
row native "$native" "$native"
row "steward check" "$(wall "$steward" check -q -- "$tmp/ah" "$per" 2)" "$native"
row "steward check --sample=512k" "$(wall "$steward" check -q --sample=512k -- "$tmp/ah" "$per" 2)" "$native"
if [ "$have_lsan" = 1 ]; then
    row "-fsanitize=leak" "$(wall "$tmp/ah-lsan" "$per" 2)" "$native"
fi
row "heaptrack" "$(wall heaptrack -o "$tmp/ht" "$tmp/ah" "$per" 2)" "$native"
row "valgrind memcheck" "$(wall valgrind -q --leak-check=full --track-fds=yes "$tmp/ah" "$per" 2)" "$native"

echo
echo "### real program: python3 building and serialising 20000 small dicts"
echo
echo "| tool | wall s (median of 3) | vs native |"
echo "|---|---:|---:|"
# The interpreter itself, not a wrapper script that execs it (pyenv shims):
# the tools below follow the process they start, not what it execs.
python=$(python3 -c 'import sys; print(sys.executable)')
py='import json
for i in range(20000):
    json.dumps({"id": i, "tags": [str(j) for j in range(20)]})'
native=$(wall "$python" -c "$py")
row native "$native" "$native"
row "steward check" "$(wall "$steward" check -q -- "$python" -c "$py")" "$native"
row "steward check --sample=512k" "$(wall "$steward" check -q --sample=512k -- "$python" -c "$py")" "$native"
row "heaptrack" "$(wall heaptrack -o "$tmp/ht2" "$python" -c "$py")" "$native"
row "valgrind memcheck" "$(wall valgrind -q --leak-check=full --track-fds=yes "$python" -c "$py")" "$native"

echo
echo "### memory per live allocation: 1,000,000 live 32-byte blocks"
echo
echo "| tool | peak RSS MiB | extra bytes per live block |"
echo "|---|---:|---:|"
n=1000000
base=$("$tmp/lb" $n)
printf '| native | %.1f | - |\n' "$(echo "$base / 1024" | bc -l)"
st=$("$steward" check -q -- "$tmp/lb" $n 2>/dev/null)
printf '| steward check | %.1f | %.0f |\n' "$(echo "$st / 1024" | bc -l)" "$(echo "($st - $base) * 1024 / $n" | bc -l)"
if [ "$have_lsan" = 1 ]; then
    ls=$("$tmp/lb-lsan" $n 2>/dev/null)
    printf '| -fsanitize=leak | %.1f | %.0f |\n' "$(echo "$ls / 1024" | bc -l)" "$(echo "($ls - $base) * 1024 / $n" | bc -l)"
fi
