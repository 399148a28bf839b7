#!/bin/sh
# Relay benchmarks, side by side in one run: steward relay, a GStreamer
# pipeline doing the same job (videotestsrc ! jpegenc ! multipartmux !
# tcpserversink, default and slow-client settings) and a raw loopback sender
# (the physical limit). Fan-out, stalled viewers, create/delete churn.
# Prints markdown tables (progress on stderr).
#   bench/relay_bench.sh BUILD_DIR [--quick] [--json OUT] [--only fanout|stall|churn]
set -eu
build=${1:-build}
[ $# -gt 0 ] && shift
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cc -O2 -Wall -Wextra bench/relay_viewers.c -o "$tmp/relay_viewers"
cc -O2 -Wall -Wextra bench/relay_rawsend.c -o "$tmp/relay_rawsend"
# 1000 viewers: the viewers' and the servers' descriptors.
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 4096 ]; then
    ulimit -n 4096 2>/dev/null || echo "relay_bench: cannot raise ulimit -n to 4096; 1000 viewers will fail" >&2
fi
python3 bench/relay_bench.py --build "$build" --bin "$tmp" "$@"
