#!/bin/sh
# Real programs nobody here wrote, run natively and under `steward check`:
# each must exit the same way, print the same stdout (and write the same
# output file), finish within its time limit, and the checker must report.
# Prints one markdown table row per program (docs/checker-real-programs.md
# keeps the latest table) and "ok   real/NAME" or "FAIL real/NAME" lines.
# The sampled-* checks run a program in full tracking and in sampling mode
# and fail when sampling calls lost what full tracking does not.
#   tests/real/run.sh STEWARD
set -u
steward=${1:?usage: tests/real/run.sh STEWARD}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.org GIT_COMMITTER_NAME=t
export GIT_COMMITTER_EMAIL=t@example.org GIT_AUTHOR_DATE=2026-01-01T00:00:00Z
export GIT_COMMITTER_DATE=2026-01-01T00:00:00Z HOME="$work"

rows="$work/rows"
: >"$rows"
status=0

# run NAME OUTFILE-or-- CMD...: compare a native run with a checked one.
run() {
    name=$1
    outfile=$2
    shift 2
    if ! command -v "$1" >/dev/null 2>&1; then
        echo "skip real/$name ($1 not installed)"
        return
    fi
    rm -f "$outfile"
    timeout 120 "$@" >"$work/native.out" 2>/dev/null
    nrc=$?
    [ "$outfile" != - ] && [ -f "$outfile" ] && cksum <"$outfile" >"$work/native.sum"
    rm -f "$outfile"
    t0=$(date +%s.%N)
    timeout 300 "$steward" check -q --json="$work/$name.json" -- "$@" >"$work/checked.out" \
        2>"$work/checked.err"
    crc=$?
    t1=$(date +%s.%N)
    [ "$outfile" != - ] && [ -f "$outfile" ] && cksum <"$outfile" >"$work/checked.sum"
    why=""
    [ "$crc" = "$nrc" ] || why="exit $crc under the checker, $nrc natively"
    cmp -s "$work/native.out" "$work/checked.out" || why="$why; stdout differs"
    if [ "$outfile" != - ] && ! cmp -s "$work/native.sum" "$work/checked.sum"; then
        why="$why; output file differs"
    fi
    summary=$(grep "SUMMARY:" "$work/checked.err" | tail -1 | sed 's/^==[0-9]*== //')
    [ -n "$summary" ] || why="$why; no report"
    if [ -n "$why" ]; then
        echo "FAIL real/$name: $why"
        tail -20 "$work/checked.err" | sed 's/^/    /'
        status=1
    else
        echo "ok   real/$name"
    fi
    cmd=$(printf '%s' "$*" | tr '\n' ' ' | sed "s|$work|\$TMP|g")
    printf '| %s | `%s` | %s | %.2f s | %s |\n' "$name" "$cmd" "$crc" \
        "$(echo "$t1 - $t0" | bc)" "$summary" >>"$rows"
}

printf 'hello\n' >"$work/in.txt"
run curl-version - curl --version
run curl-file - curl -s "file://$work/in.txt"
run python3 - /usr/bin/python3 -c 'import json, sqlite3, threading
db = sqlite3.connect(":memory:")
db.execute("create table t(x)")
db.executemany("insert into t values (?)", [(i,) for i in range(1000)])
t = threading.Thread(target=lambda: None); t.start(); t.join()
print(json.dumps({"rows": db.execute("select count(*) from t").fetchone()[0]}))'
if command -v git >/dev/null 2>&1; then
    (cd "$work" && git init -q repo && cd repo && echo a >a && git add a && git commit -qm first)
fi
run git-log - git -C "$work/repo" log --stat --format=%H%n%an%n%s
run git-fsck - git -C "$work/repo" fsck --full
run ffmpeg "$work/out.mjpeg" ffmpeg -nostdin -hide_banner -loglevel error -f lavfi \
    -i testsrc=size=160x120:rate=10 -frames:v 20 -f mjpeg -y "$work/out.mjpeg"

# sampled NAME CMD...: sampling mode must never call a block lost that full
# tracking calls reachable: every heap group it reports lost must be at a
# site full tracking reports lost too (a sampled block that only unsampled
# blocks point to used to be called lost: 212 false leaks in this cc1 run
# at --sample=16k).
sampled() {
    name=$1
    shift
    if ! command -v "$1" >/dev/null 2>&1; then
        echo "skip real/$name ($1 not installed)"
        return
    fi
    timeout 300 "$steward" check -q --json="$work/full.json" -- "$@" >/dev/null 2>&1
    timeout 300 "$steward" check -q --sample=16k --json="$work/sampled.json" -- "$@" \
        >/dev/null 2>&1
    why=$(python3 - "$work/full.json" "$work/sampled.json" <<'PY'
import json, sys
def lost(path):
    with open(path) as f:
        r = json.load(f)
    return [g for g in r["leaks"] if g["kind"] == "heap"], r.get("scan", {})
try:
    full, _ = lost(sys.argv[1])
    samp, scan = lost(sys.argv[2])
except (OSError, ValueError, KeyError) as err:
    print(f"no report: {err}")
    sys.exit()
def key(g):
    return tuple((fr.get("func") or fr.get("pc")) for fr in g["stack"])
known = {key(g) for g in full}
bad = [g for g in samp if key(g) not in known]
if bad:
    funcs = [fr.get("func") or "??" for fr in bad[0]["stack"]][:4]
    print(f"{len(bad)} heap group(s) lost under sampling only, e.g. {' < '.join(funcs)}")
elif not scan.get("sampled") or scan.get("unsampled_heap_bytes", 0) == 0:
    print("the sampled report read no unsampled heap")
PY
)
    if [ -n "$why" ]; then
        echo "FAIL real/$name: $why"
        status=1
    else
        echo "ok   real/$name"
    fi
}

cc1=$(gcc -print-prog-name=cc1 2>/dev/null || true)
if [ -x "$cc1" ]; then
    here=$(cd "$(dirname "$0")/../.." && pwd)
    gcc -E -D_GNU_SOURCE -I"$here/include" "$here/src/check/heap.c" -o "$work/heap.i"
    sampled sampled-cc1 "$cc1" -fpreprocessed -quiet -O2 "$work/heap.i" -o "$work/heap.s"
fi
sampled sampled-python3 /usr/bin/python3 -c 'import json
for i in range(20000):
    json.dumps({"id": i, "tags": [str(j) for j in range(20)]})'
sampled sampled-git git -C "$work/repo" log -p

echo
echo "| program | command | exit | wall under checker | checker summary |"
echo "|---|---|---:|---:|---|"
cat "$rows"
exit $status
