# The recipe of docs/checker.md for a project's whole test suite:
# `steward check --trace-children -- make check` checks make, the shell and
# every test binary; clean programs stay silent, the one that leaked is
# named with its leak site, one summary line counts them all, and
# --error-exitcode fails the run for a leak in any of them (not only in
# make itself).
set -u
STEWARD=$(cd "$(dirname "$STEWARD")" && pwd)/$(basename "$STEWARD")
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
out="$dir/out"
fail() { echo "FAIL: $*"; cat "$out"; exit 1; }

cat >"$dir/t_clean.c" <<'C'
#include <stdlib.h>
int main(void) { void *p = malloc(10); free(p); return 0; }
C
cat >"$dir/t_lossy.c" <<'C'
#include <stdlib.h>
#include <string.h>
static __attribute__((noinline)) char *make_buffer(void)
{
    char *p = malloc(64);
    memset(p, 7, 64);
    return p;
}
int main(void) { char *p = make_buffer(); p[0] = 1; p = 0; return 0; }
C
# Three clean tests and one that leaks, as a project's Makefile runs them.
cat >"$dir/Makefile" <<'M'
TESTS = t_clean t_lossy t_clean2 t_clean3
all: $(TESTS)
t_clean2 t_clean3: t_clean.c
	$(CC) -g -O0 -fno-omit-frame-pointer -o $@ t_clean.c
%: %.c
	$(CC) -g -O0 -fno-omit-frame-pointer -o $@ $<
check: $(TESTS)
	for t in $(TESTS); do ./$$t || exit 1; done
M
make -s -C "$dir" all >"$out" 2>&1 || fail "cannot build the test project"

(cd "$dir" && "$STEWARD" check --trace-children --error-exitcode=9 -- make -s check) >"$out" 2>&1
rc=$?
[ "$rc" = 9 ] || fail "a leak in one test binary: exit $rc, want 9"
grep -q "report at exit (./t_lossy)" "$out" || fail "the leaking test is not named in its report"
grep -q "make_buffer .*t_lossy.c:5" "$out" || fail "no leak site for t_lossy"
grep -q "steward check: pid [0-9]* ./t_lossy: 1 leak(s), 64 bytes lost" "$out" ||
    fail "the summary does not list t_lossy"
grep -q "t_clean" "$out" && fail "a clean test binary was reported"
grep -Eq "steward check: [0-9]+ programs checked, 1 with leaks or bad frees" "$out" ||
    fail "no merged summary line"
n=$(sed -n 's/^steward check: \([0-9]*\) programs checked.*/\1/p' "$out")
# make, the recipe's shell and the four tests at least.
[ "$n" -ge 6 ] || fail "only $n programs checked"

# Without the leaking test the same run passes.
sed -i 's/ t_lossy / /' "$dir/Makefile"
(cd "$dir" && "$STEWARD" check --trace-children --error-exitcode=9 -- make -s check) >"$out" 2>&1
rc=$?
[ "$rc" = 0 ] || fail "a clean suite: exit $rc, want 0"
grep -Eq "steward check: [0-9]+ programs checked, 0 with leaks" "$out" || fail "no summary for a clean run"
exit 0
