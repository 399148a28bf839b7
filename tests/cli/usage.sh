# Bad command lines get a clear message on stderr and exit code 2.
set -u
err=$(mktemp)
trap 'rm -f "$err"' EXIT
for args in "" "frobnicate" "demo --bogus"; do
    # shellcheck disable=SC2086
    "$STEWARD" $args >/dev/null 2>"$err"
    rc=$?
    cat "$err"
    [ "$rc" = 2 ] || { echo "steward $args: exit $rc, want 2"; exit 1; }
    grep -q "usage\|unknown" "$err" || { echo "steward $args: no message"; exit 1; }
done
