# meson install into a throwaway DESTDIR, then run the installed files:
# steward --version, steward check (the launcher must find the preload
# library in the installed layout, not the build tree), the man pages, the
# systemd unit (systemd-analyze verify where available), the config the
# unit starts the relay with (--print-config), and the docs.
set -eu
build=$(dirname "$(dirname "$STEWARD")")
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
meson install -C "$build" --destdir "$dest" --no-rebuild --quiet >/dev/null
bin=$(find "$dest" -path '*/bin/steward' -type f)
[ -x "$bin" ] || { echo "no bin/steward under $dest"; exit 1; }
root=$(dirname "$(dirname "$bin")")
prefix=${root#"$dest"}
echo "installed under prefix $prefix"
v=$("$bin" --version)
case "$v" in "steward "[0-9]*.[0-9]*.[0-9]*) echo "$v" ;; *) echo "unexpected: $v"; exit 1 ;; esac

# The launcher finds libsteward-check.so beside the installed binary: a
# planted leak is found, and without the library the launcher says so.
cat >"$dest/leak.c" <<'C'
#include <stdlib.h>
void *keep;
int main(void) { keep = malloc(1); keep = NULL; return 0; }
C
cc -g -O0 -o "$dest/leak" "$dest/leak.c"
out=$(env -u STW_CHECK_LIB "$bin" check --error-exitcode=7 -- "$dest/leak" 2>&1) && rc=0 || rc=$?
echo "$out" | tail -1
[ "$rc" = 7 ] || { echo "installed check: exit $rc, expected 7"; echo "$out"; exit 1; }
lib=$(find "$root" -name libsteward-check.so)
[ -n "$lib" ] || { echo "no libsteward-check.so installed"; exit 1; }
mv "$lib" "$lib.away"
if out=$(env -u STW_CHECK_LIB "$bin" check -- true 2>&1); then
    echo "check ran without its library: $out"; exit 1
fi
echo "$out" | grep -q 'cannot find libsteward-check.so' || { echo "$out"; exit 1; }
mv "$lib.away" "$lib"

for p in steward steward-relay steward-check; do
    f="$root/share/man/man1/$p.1"
    [ -s "$f" ] || { echo "missing man page $f"; exit 1; }
    grep -q '^\.TH' "$f" || { echo "$f is not a man page"; exit 1; }
done
for d in relay.md service.md relay-config.md checker.md examples/steward-relay.example.yaml; do
    [ -s "$root/share/doc/steward/$d" ] || { echo "missing doc $d"; exit 1; }
done

unit="$root/lib/systemd/system/steward-relay.service"
[ -s "$unit" ] || { echo "missing $unit"; exit 1; }
grep -q "^ExecStart=$prefix/bin/steward relay " "$unit" || { grep Exec "$unit"; exit 1; }
grep -q '^Type=notify$' "$unit" && grep -q '^WatchdogSec=' "$unit" || { echo "unit: not notify/watchdog"; exit 1; }
conf=$(find "$dest" -path '*/steward/relay.yaml')
"$bin" relay --config "$conf" --print-config >/dev/null
if command -v systemd-analyze >/dev/null 2>&1; then
    # verify checks that ExecStart's binary exists: point it at the DESTDIR.
    sed "s#$prefix/bin/steward#$bin#" "$unit" >"$dest/steward-relay.service"
    out=$(MANPATH="$root/share/man" systemd-analyze verify "$dest/steward-relay.service" 2>&1) || {
        echo "$out"; exit 1; }
    [ -z "$out" ] || { echo "systemd-analyze verify: $out"; exit 1; }
    echo "systemd-analyze verify: clean"
else
    echo "systemd-analyze not available: unit not verified"
fi
echo "install: ok"
