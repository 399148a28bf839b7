# The demo books memory and fds, reports them with symbolized stacks, and
# ends with nothing leaked (exit 0); its JSON report parses.
set -eu
out=$("$STEWARD" demo)
echo "$out"
echo "$out" | grep -q "demo_make_session .*demo.c:[0-9]"
echo "$out" | grep -q '"pipe:demo"'
echo "$out" | grep -q "demo: 0 resource(s) leaked"
"$STEWARD" demo --json | python3 -c '
import json, sys
r = json.load(sys.stdin)
assert r["schema"] == "steward.ledger/1", r["schema"]
kinds = {k["kind"]: k for k in r["kinds"]}
assert kinds["heap"]["live"] - kinds["heap"]["initial_live"] == 12, kinds
assert kinds["fd"]["live"] == 3, kinds
funcs = [f.get("func") for s in r["sites"] for f in s["stack"]]
assert "demo_make_name" in funcs, funcs
print("json ok")
'
