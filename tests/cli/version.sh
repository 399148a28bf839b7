# steward --version prints the version and exits 0.
set -eu
v=$("$STEWARD" --version)
echo "$v"
case "$v" in "steward "[0-9]*.[0-9]*.[0-9]*) ;; *) echo "unexpected: $v"; exit 1 ;; esac
