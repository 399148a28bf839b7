#!/bin/sh
# Install the Debian packages steward needs, when they are missing.
#   scripts/deps.sh run    what building and running needs
#   scripts/deps.sh test   that plus what the test suite needs
#   scripts/deps.sh asan   that plus clang and its sanitizer runtimes
#   scripts/deps.sh bench  that plus the peers the benchmarks compare with
#   scripts/deps.sh deb    that plus what building the Debian package needs
# As root it installs with apt-get; otherwise it names what is missing and fails.
set -eu

want="meson ninja-build gcc pkg-config scdoc libsystemd-dev libunwind-dev libdw-dev libcmocka-dev libevent-dev libjpeg62-turbo-dev libjansson-dev libcurl4-openssl-dev libfyaml-dev libsodium-dev libssl-dev"
# The real media servers the relay's integration tests start: nginx-rtmp,
# gst-rtsp-server through python3-gi (H.264 via x264enc, AAC via avenc_aac).
media="nginx libnginx-mod-rtmp python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly gstreamer1.0-libav"
case "${1:-run}" in
    run) ;;
    test) want="$want valgrind python3 bc curl git ffmpeg chromium openssl debhelper dpkg-dev strace systemd $media" ;;
    deb) want="$want debhelper dpkg-dev" ;;
    asan) want="$want clang libclang-rt-14-dev" ;;
    bench) want="$want valgrind heaptrack clang libclang-rt-14-dev bc time python3 git sqlite3 ffmpeg gstreamer1.0-tools $media" ;;
    *) echo "usage: scripts/deps.sh run|test|asan|bench|deb" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# The build embeds uPlot from npm into the binary. Any node and npm will
# do (Debian's, NodeSource's, nvm's), so the commands are looked for, not
# the packages; Debian's are installed when there are none.
command -v npm >/dev/null 2>&1 || missing="$missing nodejs npm"
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
    echo "steward: missing Debian packages:$missing" >&2
    echo "steward: install them with: sudo apt-get install -y$missing" >&2
    exit 1
fi
echo "steward: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# The package lists may be stale or absent on a fresh machine: refresh once on failure.
apt-get install -y -q $missing >/dev/null 2>&1 || {
    apt-get update -q >/dev/null 2>&1 || true
    apt-get install -y -q $missing
}
