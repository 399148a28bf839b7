# The Debian package: built from this tree (scripts/build-deb.sh, as `make
# deb`), installed into a throwaway root by dpkg (--root, unpacked with a
# database of its own: no container, the host's dpkg database untouched),
# then checked: the files and conffile,
# the maintainer scripts systemd needs, the unit (systemd-analyze verify),
# Depends naming the package of every library the binary loads, and the
# unpacked steward run from there: --version, check, the relay serving
# /healthz with the packaged config and exiting 0 on SIGTERM, and the unit's
# ExecStart/ExecReload run as systemd would (tests/cli/unit_emulate.py).
set -eu
src=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
relay=
cleanup() {
    [ -n "$relay" ] && kill "$relay" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
command -v dpkg-buildpackage >/dev/null || { echo "dpkg-buildpackage missing (scripts/deps.sh test)"; exit 1; }
deb=$("$src/scripts/build-deb.sh" "$tmp/out" | tail -1)
[ -f "$deb" ] || { echo "no package built"; exit 1; }
echo "built $(basename "$deb"), $(du -k "$deb" | cut -f1) KiB"
# dpkg itself installs it into the throwaway root, with a package database
# of its own there; --unpack stops before the maintainer scripts, which
# would talk to the host's systemd (they are checked below).
root="$tmp/root"
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates"
: >"$root/var/lib/dpkg/status"
dpkg --root="$root" --force-depends --force-not-root --unpack "$deb" >"$tmp/dpkg.log" 2>&1 ||
    { cat "$tmp/dpkg.log"; exit 1; }
dpkg --root="$root" -s steward | grep -q '^Status: install ok unpacked' ||
    { dpkg --root="$root" -s steward; exit 1; }
dpkg --root="$root" -s steward | grep -Eq '^ /etc/steward/relay.yaml ([0-9a-f]+|newconffile)$' ||
    { echo "dpkg did not record the conffile"; exit 1; }
dpkg --root="$root" -L steward | grep -qx /usr/bin/steward || { echo "dpkg -L lacks the binary"; exit 1; }
# Unpacked, a new conffile waits as .dpkg-new; configuring puts it in place.
[ -f "$root/etc/steward/relay.yaml.dpkg-new" ] || { echo "no conffile unpacked"; exit 1; }
mv "$root/etc/steward/relay.yaml.dpkg-new" "$root/etc/steward/relay.yaml"
dpkg-deb -e "$deb" "$root/DEBIAN"

for f in usr/bin/steward usr/lib/x86_64-linux-gnu/steward/libsteward-check.so \
    lib/systemd/system/steward-relay.service etc/steward/relay.yaml \
    usr/share/man/man1/steward.1.gz usr/share/man/man1/steward-relay.1.gz \
    usr/share/man/man1/steward-check.1.gz usr/share/doc/steward/examples/steward-relay.example.yaml; do
    [ -e "$root/$f" ] || { echo "missing /$f"; exit 1; }
done
grep -qx /etc/steward/relay.yaml "$root/DEBIAN/conffiles" || { echo "relay.yaml is not a conffile"; exit 1; }
grep -q "deb-systemd-helper enable 'steward-relay.service'" "$root/DEBIAN/postinst" ||
    { echo "postinst does not enable the unit"; exit 1; }

unit="$root/lib/systemd/system/steward-relay.service"
grep -q '^ExecStart=/usr/bin/steward relay --config /etc/steward/relay.yaml ' "$unit" ||
    { grep ExecStart "$unit"; exit 1; }
if command -v systemd-analyze >/dev/null 2>&1; then
    sed "s#/usr/bin/steward#$root/usr/bin/steward#" "$unit" >"$tmp/steward-relay.service"
    out=$(MANPATH="$root/usr/share/man" systemd-analyze verify "$tmp/steward-relay.service" 2>&1) ||
        { echo "$out"; exit 1; }
    [ -z "$out" ] || { echo "systemd-analyze verify: $out"; exit 1; }
fi

# Every library the binary and the preload library link against directly
# comes from a package the control file depends on (libsteward is the
# package's own).
depends=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $depends"
for bin in "$root/usr/bin/steward" "$root/usr/lib/x86_64-linux-gnu/steward/libsteward-check.so"; do
    for so in $(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
        case "$so" in libsteward.so*) continue ;; esac
        lib=$(ldd "$bin" | awk -v so="$so" '$1 == so {print $3}')
        [ -n "$lib" ] || { echo "$(basename "$bin"): $so not found"; exit 1; }
        pkg=$(dpkg -S "$lib" 2>/dev/null || dpkg -S "$(readlink -f "$lib")" 2>/dev/null || true)
        pkg=$(echo "$pkg" | head -1 | cut -d: -f1)
        [ -n "$pkg" ] || { echo "no package owns $lib"; exit 1; }
        echo "$depends" | tr ',' '\n' | grep -q "^ *$pkg\( \|$\)" ||
            { echo "$(basename "$bin") needs $so from $pkg, not in Depends"; exit 1; }
    done
done

bin="$root/usr/bin/steward"
v=$("$bin" --version)
[ "$v" = "steward $(dpkg-deb -f "$deb" Version | cut -d- -f1)" ] || { echo "version: $v"; exit 1; }
echo "$v"
env -u STW_CHECK_LIB "$bin" check --error-exitcode=3 -q -- true

# The packaged config, on a free port, as the unit would start it.
"$bin" relay --config "$root/etc/steward/relay.yaml" --listen 127.0.0.1:0 \
    --state "$tmp/state.json" >"$tmp/relay.out" 2>"$tmp/relay.err" &
relay=$!
for _ in $(seq 100); do
    grep -q serving "$tmp/relay.out" && break
    sleep 0.1
done
port=$(sed -n 's#.*127.0.0.1:\([0-9]*\)/#\1#p' "$tmp/relay.out")
[ -n "$port" ] || { cat "$tmp/relay.err"; exit 1; }
curl -fsS "http://127.0.0.1:$port/healthz" | grep -q '"ok"' || { echo "no /healthz"; exit 1; }
kill -TERM "$relay"
wait "$relay" || { echo "relay exit $?"; tail -20 "$tmp/relay.err"; exit 1; }
relay=
grep -q "shutdown: clean: exit code 0" "$tmp/relay.err" || { tail -20 "$tmp/relay.err"; exit 1; }
# The unit itself, as systemd would run it (its ExecStart and ExecReload,
# the notify socket, a 1 s watchdog so the test is short).
python3 "$src/tests/cli/unit_emulate.py" "$unit" "$root" --watchdog-sec 1
echo "deb: ok"
