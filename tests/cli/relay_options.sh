# steward relay's options: --opt VALUE and --opt=VALUE mean the same;
# unknown options, missing and bad values, and stray operands are refused
# with a message and exit code 2.
set -u
out=$(mktemp)
trap 'rm -f "$out"' EXIT
fail() { echo "$*"; cat "$out"; exit 1; }

"$STEWARD" relay --listen=127.0.0.1:9 --max-viewers 7 --log-level=debug --log-format json \
    --print-config >"$out" 2>&1 || fail "--opt=value with --print-config failed"
grep -q 'listen: "127.0.0.1:9"' "$out" || fail "--listen=VALUE not applied"
grep -q 'max_viewers: 7$' "$out" || fail "--max-viewers VALUE not applied"

for args in "--bogus" "--max-viewers" "--max-viewers=lots" "--log-level=loud" \
    "--log-format=xml" "--log-max-size=1k" "stray" "--listen=nowhere"; do
    # shellcheck disable=SC2086
    "$STEWARD" relay $args >"$out" 2>&1
    rc=$?
    [ "$rc" = 2 ] || fail "steward relay $args: exit $rc, want 2"
    grep -q "unknown option\|missing value\|bad value\|unexpected argument" "$out" ||
        fail "steward relay $args: no message"
    echo "steward relay $args: $(head -1 "$out")"
done
"$STEWARD" relay --help | grep -q -- "--log-file PATH" || fail "--help lacks --log-file"
