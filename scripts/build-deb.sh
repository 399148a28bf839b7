#!/bin/sh
# Build the Debian package from this tree into OUTDIR (default build-deb):
# the tree is copied to OUTDIR/src (build directories, .git and outputs
# left out; web/node_modules, which the build embeds, included) and
# dpkg-buildpackage runs there, so its outputs land in OUTDIR and the tree
# stays clean.
#   scripts/build-deb.sh [OUTDIR]
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$here/build-deb}
mkdir -p "$out"
out=$(cd "$out" && pwd)
[ -f "$here/web/node_modules/uplot/dist/uPlot.iife.min.js" ] ||
    { echo "build-deb: run 'npm ci --prefix web' first (make deb does)" >&2; exit 1; }
rm -rf "$out/src"
mkdir "$out/src"
(cd "$here" && tar --exclude='./build*' --exclude=./.git --exclude=./stress-logs \
    --exclude=./bench/out --exclude=./tests/out --exclude='__pycache__' -cf - .) |
    tar -xf - -C "$out/src"
cd "$out/src"
dpkg-buildpackage -us -uc -b >"$out/build.log" 2>&1 ||
    { tail -40 "$out/build.log" >&2; echo "build-deb: failed, see $out/build.log" >&2; exit 1; }
rm -rf "$out/src"
ls "$out"/steward_*.deb
