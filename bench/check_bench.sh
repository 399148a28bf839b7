#!/bin/sh
# Checker overhead, side by side in one run: the same workloads natively,
# under steward check (full tracking and --sample=512k), LeakSanitizer,
# AddressSanitizer, heaptrack and Valgrind memcheck. Every measured run is
# paired with a native run right before it (the machine may be shared:
# a pair sees the same load), and each table cell is a median over RUNS
# pairs; "x native" is the median of the per-pair ratios. Wall time, CPU
# time (user + system of the run and its children: what a loaded machine
# distorts least) and peak RSS come from /usr/bin/time (%e, %U+%S, %M:
# the largest process of the run). Prints markdown tables.
#   bench/check_bench.sh BUILD_DIR [RUNS]      (RUNS default 5)
# CHECK_BENCH_ONLY=name,name limits the workloads (hash_table, alloc_heavy,
# python3, git, sqlite, cc1, ffmpeg, sort, live_blocks);
# CHECK_BENCH_NO_VALGRIND=1 leaves Valgrind out (the longest rows);
# CHECK_BENCH_TOOLS=full,sample,lsan,asan,heaptrack,valgrind limits the rows
# of the real programs (sample: --sample=512k against native only).
# CHECK_BENCH_ONLY=startup runs the fixed cost (bench/check_startup.sh:
# `true` and a shell loop of CHECK_BENCH_STARTUP_N programs, default 2000,
# natively, under steward check and built with LSan, interleaved).
# CHECK_BENCH_BASELINE=OTHER_BUILD_DIR adds a --sample=512k row of another
# build (the code before a change) to the real programs, in the same run.
set -eu
build=${1:-build}
runs=${2:-5}
only=${CHECK_BENCH_ONLY:-}
steward="$build/src/steward"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

[ -x /usr/bin/time ] || { echo "check_bench: needs /usr/bin/time (package time)" >&2; exit 2; }
want() { [ -z "$only" ] || case ",$only," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
tools=${CHECK_BENCH_TOOLS:-}
tool() { [ -z "$tools" ] || case ",$tools," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

# The hash-table workload as a user builds it (gcc -O2, no frame
# pointers), with frame pointers, and for the sanitizers (clang -O2, same
# source: what their users build).
gcc -O2 -g bench/hash_table.c -o "$tmp/ht"
gcc -O2 -g -fno-omit-frame-pointer bench/hash_table.c -o "$tmp/ht-fp"
cc -O2 -g -fno-omit-frame-pointer -pthread bench/alloc_heavy.c -o "$tmp/ah"
cc -O2 -g -fno-omit-frame-pointer -pthread bench/live_blocks.c -o "$tmp/lb"
have_clang=0
if clang -O2 -g -fsanitize=leak bench/hash_table.c -o "$tmp/ht-lsan" 2>/dev/null &&
    clang -O2 -g -fsanitize=address bench/hash_table.c -o "$tmp/ht-asan" 2>/dev/null &&
    clang -O2 -g -fsanitize=leak -pthread bench/alloc_heavy.c -o "$tmp/ah-lsan" 2>/dev/null &&
    clang -O2 -g -fsanitize=address -pthread bench/alloc_heavy.c -o "$tmp/ah-asan" 2>/dev/null &&
    clang -O2 -g -fsanitize=leak -pthread bench/live_blocks.c -o "$tmp/lb-lsan" 2>/dev/null; then
    have_clang=1
fi
# For programs nobody rebuilt: the sanitizers' runtimes preloaded (their
# interceptors and leak check, without ASan's compiled-in checks).
liblsan=$(gcc -print-file-name=liblsan.so)
libasan=$(gcc -print-file-name=libasan.so)
[ -f "$liblsan" ] || liblsan=""
[ -f "$libasan" ] || libasan=""
have_heaptrack=0
command -v heaptrack >/dev/null 2>&1 && have_heaptrack=1
have_valgrind=0
command -v valgrind >/dev/null 2>&1 && [ -z "${CHECK_BENCH_NO_VALGRIND:-}" ] && have_valgrind=1

# one CMD...: "wall_s rss_kib cpu_s" of one run, output discarded; "0 0 0" when
# the program was killed by a signal (a tool that crashes it) or could
# not be started.
one() {
    /usr/bin/time -f '%e %M %U %S' -o "$tmp/time" "$@" >/dev/null 2>"$tmp/stderr" </dev/null || true
    if grep -q 'terminated by signal\|non-zero status 12[67]' "$tmp/time"; then
        echo "0 0 0"
    else
        tail -1 "$tmp/time" | awk '{ print $1, $2, $3 + $4 }'
    fi
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# pairs NAME NATIVE-CMD... -- TOOL-CMD...: RUNS pairs, one table row.
pairs() {
    name=$1
    shift
    # The native command is the words before "--": referenced by position
    # for eval, so no word is ever re-split or expanded twice.
    n=0
    refs=""
    for a in "$@"; do
        [ "$a" = -- ] && break
        n=$((n + 1))
        refs="$refs \"\${$n}\""
    done
    : >"$tmp/pairs"
    i=0
    while [ "$i" -lt "$runs" ]; do
        native_out=$(eval "one $refs")
        tool_out=$(shift $((n + 1)) && one "$@")
        echo "$native_out $tool_out" >>"$tmp/pairs"
        i=$((i + 1))
    done
    # Columns of $tmp/pairs: native wall rss cpu, tool wall rss cpu.
    nw=$(awk '{ print $1 }' "$tmp/pairs" | median)
    nr=$(awk '{ print $2 }' "$tmp/pairs" | median)
    nc=$(awk '{ print $3 }' "$tmp/pairs" | median)
    tw=$(awk '{ print $4 }' "$tmp/pairs" | median)
    tr=$(awk '{ print $5 }' "$tmp/pairs" | median)
    tc=$(awk '{ print $6 }' "$tmp/pairs" | median)
    if awk '$4 == 0 { bad = 1 } END { exit !bad }' "$tmp/pairs"; then
        printf '| %s | %.2f | crashed | - | %.2f | - | - | %.1f | - | - |\n' "$name" "$nw" "$nc" \
            "$(echo "$nr / 1024" | bc -l)"
        return 0
    fi
    wx=$(awk '{ if ($1 > 0) print $4 / $1 }' "$tmp/pairs" | median)
    cx=$(awk '{ if ($3 > 0) print $6 / $3 }' "$tmp/pairs" | median)
    rx=$(awk '{ if ($2 > 0) print $5 / $2 }' "$tmp/pairs" | median)
    printf '| %s | %.2f | %.2f | %.2fx | %.2f | %.2f | %.2fx | %.1f | %.1f | %.2fx |\n' "$name" \
        "$nw" "$tw" "$wx" "$nc" "$tc" "$cx" "$(echo "$nr / 1024" | bc -l)" "$(echo "$tr / 1024" | bc -l)" "$rx"
}

header() {
    echo
    echo "### $1"
    echo
    echo "| tool | native wall s | tool wall s | wall x native | native CPU s | tool CPU s | CPU x native | native MiB | tool MiB | RSS x native |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
}

# compare TITLE CMD...: every tool on one program that nobody rebuilt.
compare() {
    title=$1
    shift
    header "$title"
    tool full && pairs "steward check" "$@" -- "$steward" check -q -- "$@"
    tool sample && pairs "steward check --sample=512k" "$@" -- "$steward" check -q --sample=512k -- "$@"
    [ -n "${CHECK_BENCH_BASELINE:-}" ] && tool sample &&
        pairs "baseline build, --sample=512k" "$@" -- "$CHECK_BENCH_BASELINE/src/steward" check -q \
            --sample=512k -- "$@"
    [ -n "$liblsan" ] && tool lsan && pairs "LeakSanitizer (preloaded)" "$@" -- env LD_PRELOAD="$liblsan" "$@"
    [ -n "$libasan" ] && tool asan &&
        pairs "AddressSanitizer (preloaded)" "$@" -- env LD_PRELOAD="$libasan" \
            ASAN_OPTIONS=verify_asan_link_order=0:detect_leaks=1 "$@"
    [ "$have_heaptrack" = 1 ] && tool heaptrack && pairs "heaptrack" "$@" -- heaptrack -o "$tmp/ht-out" "$@"
    [ "$have_valgrind" = 1 ] && tool valgrind &&
        pairs "valgrind memcheck" "$@" -- valgrind -q --leak-check=full --track-fds=yes "$@"
    return 0
}

echo "Machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start; medians of $runs paired runs."

if want hash_table; then
    header "hash table: 2,000,000 string keys, 4,000,000 allocations (\`bench/hash_table.c\`, gcc -O2)"
    pairs "steward check" "$tmp/ht" -- "$steward" check -q -- "$tmp/ht"
    pairs "steward check (built -fno-omit-frame-pointer)" "$tmp/ht-fp" -- "$steward" check -q -- "$tmp/ht-fp"
    pairs "steward check --sample=512k" "$tmp/ht" -- "$steward" check -q --sample=512k -- "$tmp/ht"
    if [ "$have_clang" = 1 ]; then
        pairs "LeakSanitizer (clang -O2 -fsanitize=leak)" "$tmp/ht" -- "$tmp/ht-lsan"
        pairs "AddressSanitizer (clang -O2 -fsanitize=address)" "$tmp/ht" -- "$tmp/ht-asan"
    fi
    [ "$have_heaptrack" = 1 ] && pairs "heaptrack" "$tmp/ht" -- heaptrack -o "$tmp/ht-out" "$tmp/ht"
    [ "$have_valgrind" = 1 ] &&
        pairs "valgrind memcheck" "$tmp/ht" -- valgrind -q --leak-check=full --track-fds=yes "$tmp/ht"
    echo "load average $(cut -d' ' -f1-3 /proc/loadavg)"
fi

if want alloc_heavy; then
    header "alloc_heavy: 4,000,000 malloc/free pairs in 2 threads (\`bench/alloc_heavy.c\`)"
    pairs "steward check" "$tmp/ah" 2000000 2 -- "$steward" check -q -- "$tmp/ah" 2000000 2
    pairs "steward check --sample=512k" "$tmp/ah" 2000000 2 -- "$steward" check -q --sample=512k -- "$tmp/ah" 2000000 2
    if [ "$have_clang" = 1 ]; then
        pairs "LeakSanitizer (clang -O2 -fsanitize=leak)" "$tmp/ah" 2000000 2 -- "$tmp/ah-lsan" 2000000 2
        pairs "AddressSanitizer (clang -O2 -fsanitize=address)" "$tmp/ah" 2000000 2 -- "$tmp/ah-asan" 2000000 2
    fi
    [ "$have_heaptrack" = 1 ] && pairs "heaptrack" "$tmp/ah" 2000000 2 -- heaptrack -o "$tmp/ht-out" "$tmp/ah" 2000000 2
    [ "$have_valgrind" = 1 ] &&
        pairs "valgrind memcheck" "$tmp/ah" 2000000 2 -- valgrind -q --leak-check=full --track-fds=yes "$tmp/ah" 2000000 2
    echo "load average $(cut -d' ' -f1-3 /proc/loadavg)"
fi

# The interpreter itself, not a wrapper script that execs it (pyenv shims):
# the tools follow the process they start, not what it execs.
if want python3 && command -v python3 >/dev/null 2>&1; then
    python=$(python3 -c 'import sys; print(sys.executable)')
    compare "python3: building and serialising 50,000 small dicts" "$python" -c 'import json
for i in range(50000):
    json.dumps({"id": i, "tags": [str(j) for j in range(20)]})'
fi

if want git && command -v git >/dev/null 2>&1 && git rev-parse --git-dir >/dev/null 2>&1; then
    compare "git: log -p over this repository's history" git log -p
fi

if want sqlite && command -v sqlite3 >/dev/null 2>&1; then
    cat >"$tmp/rows.sql" <<'EOF'
create table t(id integer primary key, k text, v blob);
with recursive c(x) as (select 1 union all select x + 1 from c where x < 200000)
insert into t(k, v) select hex(randomblob(8)), randomblob(32) from c;
create index tk on t(k);
select count(*), sum(length(v)) from t;
EOF
    compare "sqlite3: 200,000 rows inserted and indexed in memory" sqlite3 :memory: ".read $tmp/rows.sql"
fi

cc1=$(gcc -print-prog-name=cc1 2>/dev/null || true)
if want cc1 && [ -x "$cc1" ]; then
    gcc -E -D_GNU_SOURCE -Iinclude src/check/scan.c -o "$tmp/scan.i"
    compare "gcc's cc1: compiling src/check/scan.c at -O2" "$cc1" -fpreprocessed -quiet -O2 "$tmp/scan.i" -o "$tmp/scan.s"
fi

if want ffmpeg && command -v ffmpeg >/dev/null 2>&1; then
    compare "ffmpeg: 100 frames 320x240 test pattern to MJPEG" ffmpeg -nostdin -hide_banner -loglevel error \
        -f lavfi -i testsrc=size=320x240:rate=25 -frames:v 100 -f mjpeg -y "$tmp/out.mjpeg"
fi

if want sort; then
    awk 'BEGIN { for (i = 0; i < 300000; i++) printf "%d-%x\n", (i * 7919) % 1000003, i }' >"$tmp/lines"
    compare "sort: 300,000 lines" sort "$tmp/lines" -o "$tmp/sorted"
fi

if want live_blocks; then
    echo
    echo "### memory per live allocation: 1,000,000 live 32-byte blocks (\`bench/live_blocks.c\`)"
    echo
    echo "| tool | peak RSS MiB | extra bytes per live block |"
    echo "|---|---:|---:|"
    n=1000000
    base=$("$tmp/lb" $n)
    printf '| native | %.1f | - |\n' "$(echo "$base / 1024" | bc -l)"
    st=$("$steward" check -q -- "$tmp/lb" $n 2>/dev/null)
    printf '| steward check | %.1f | %.0f |\n' "$(echo "$st / 1024" | bc -l)" "$(echo "($st - $base) * 1024 / $n" | bc -l)"
    if [ "$have_clang" = 1 ]; then
        ls=$("$tmp/lb-lsan" $n 2>/dev/null)
        printf '| -fsanitize=leak | %.1f | %.0f |\n' "$(echo "$ls / 1024" | bc -l)" "$(echo "($ls - $base) * 1024 / $n" | bc -l)"
    fi
fi
if [ -n "$only" ] && want startup; then
    echo
    sh bench/check_startup.sh "$build" "${CHECK_BENCH_STARTUP_N:-2000}" "$runs"
fi
echo
echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
