# steward check: bad command lines get a message and exit 2, a missing
# program 127; the program's exit status and output pass through; with
# --error-exitcode a leak changes the status; -q prints only the summary;
# every option takes its value as --opt=VALUE or as --opt VALUE.
set -u
err=$(mktemp)
prog=$(mktemp)
json=$(mktemp)
log=$(mktemp)
trap 'rm -f "$err" "$prog" "$prog.c" "$json" "$log"' EXIT
fail() { echo "FAIL: $*"; cat "$err"; exit 1; }

for args in "check" "check --" "check --depth=0 -- true" "check --depth=x -- true" \
    "check --error-exitcode=0 -- true" "check --bogus -- true" \
    "check --suppressions=/nonexistent -- true" "check --report-every=0 -- true" \
    "check --depth" "check --depth 0 -- true" "check --error-exitcode 0 -- true" \
    "check --sample-interval -1 -- true" "check --report-signal NOPE -- true"; do
    # shellcheck disable=SC2086
    "$STEWARD" $args >/dev/null 2>"$err"
    rc=$?
    [ "$rc" = 2 ] || fail "steward $args: exit $rc, want 2"
    [ -s "$err" ] || fail "steward $args: no message"
done

"$STEWARD" check -- /nonexistent/prog 2>"$err"
[ $? = 127 ] || fail "missing program: want 127"
grep -q "cannot run" "$err" || fail "missing program: no message"

cat >"$prog.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* The lost pointer must not linger in a dead stack slot, where a
 * conservative scan would still see it: leak in a frame of its own, then
 * overwrite that stack area. */
__attribute__((noinline)) static void lose(void)
{
    char *volatile p = malloc(64);
    p = NULL;
}
__attribute__((noinline)) static void scrub(void)
{
    volatile char junk[4096];
    memset((char *)junk, 0, sizeof(junk));
}
int main(int argc, char **argv)
{
    if (argc > 1) {
        lose();
        scrub();
    }
    printf("out %d\n", argc);
    fprintf(stderr, "err\n");
    return 7;
}
C
cc -g -O0 -o "$prog" "$prog.c" || fail "cannot compile"

out=$("$STEWARD" check -q -- "$prog" 2>"$err")
rc=$?
[ "$rc" = 7 ] || fail "exit status $rc, want the program's 7"
[ "$out" = "out 1" ] || fail "stdout changed: $out"
grep -q "^err$" "$err" || fail "program stderr lost"
grep -q "SUMMARY: 0 leaks" "$err" || fail "clean run should report 0 leaks"

"$STEWARD" check -q --error-exitcode=42 -- "$prog" leak >/dev/null 2>"$err"
rc=$?
[ "$rc" = 42 ] || fail "leak with --error-exitcode=42: exit $rc"
grep -q "SUMMARY: 1 leak (heap: 1), 64 bytes lost" "$err" || fail "summary line"
[ "$(grep -c . "$err")" = 2 ] || fail "-q should print only stderr's line and the summary"
# The same options with their values as separate words.
"$STEWARD" check -q --error-exitcode 42 --json "$json" --log-file "$log" --depth 8 \
    --sample-interval 100 -- "$prog" leak >/dev/null 2>"$err"
rc=$?
[ "$rc" = 42 ] || fail "--error-exitcode 42 (space form): exit $rc"
grep -q '"leaks":1' "$json" || fail "--json FILE (space form) wrote no report"
grep -q "SUMMARY: 1 leak" "$log" || fail "--log-file FILE (space form) got no summary"
# Options end at PROG: its own options are passed through.
out=$("$STEWARD" check -q "$prog" --depth 3 2>"$err")
[ "$out" = "out 3" ] || fail "PROG's own options were taken: $out"
echo ok
