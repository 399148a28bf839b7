# Run "$@" with XDG_STATE_HOME in a fresh temporary directory, removed
# after, so that a relay started without --state never reads or writes the
# user's state file, nor one an earlier test left.
d=$(mktemp -d)
XDG_STATE_HOME="$d/state" "$@"
rc=$?
rm -rf "$d"
exit $rc
