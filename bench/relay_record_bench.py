#!/usr/bin/env python3
"""RTSP camera -> fragmented MP4 segments on disk, N streams at once: what
recording costs done by bare ffmpeg processes (the floor) and, side by
side, by the relay's recorders.

  relay_record_bench.py [--sides ffmpeg,relay] [--counts 1,10,50]
                        [--size 640x360] [--fps 25] [--bitrate 800]
                        [--segment 10] [--window 10] [--warmup 5]
                        [--build BUILD_DIR] [--dir DIR] [--json OUT]

The camera is one gst-rtsp-server with one shared H.264 pipeline
(tests/integration/media_servers.py), so N streams cost it N RTP sessions,
not N encoders. Both sides write the same thing: fragmented MP4 segments of
--segment seconds, a fragment a second, each fragment flushed to the file
as it completes (the relay's recorder options, src/relay/recorder.c).

  ffmpeg   N bare `ffmpeg -rtsp_transport tcp -i rtsp://CAM -c copy -f
           segment -segment_format mp4 ...` processes: the floor.
  relay    steward relay (release build, not under the checker); one
           ffmpeg input per stream with "record": true, through the API.
           CPU and memory are the relay's plus its children's (the ingest
           and the recorder of each stream).

Per side and N, after every stream has written its first segment file
and a warm-up: user+sys CPU over --window seconds (/proc/PID/stat, % of one
core, total and per stream), VmRSS and PSS per stream, and the bytes the
side wrote under its directory over the window (write throughput, per
stream). Then the newest finished segment of the last stream is probed
(ffprobe) for its duration, and after the side stops no process carrying
the run's marker may be left. Prints a markdown table on stdout.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import relay_ffmpeg_bench as rb  # noqa: E402  (its /proc helpers, marker, relay side)
from relay_ffmpeg_bench import log, measure, ms  # noqa: E402

SEGMENT_OPTS = "movflags=+frag_keyframe+empty_moov+default_base_moof:frag_duration=1000000:" \
               "flush_packets=1"


def dir_bytes(path):
    total = 0
    for d, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(d, f))
            except OSError:
                pass
    return total


def segment_files(path):
    out = []
    for d, _, files in os.walk(path):
        out += [os.path.join(d, f) for f in files if f.endswith(".mp4")]
    return sorted(out, key=os.path.getmtime)


class FfmpegSide:
    name = "ffmpeg"

    def __init__(self, args, root):
        self.args = args
        self.root = root
        self.children = []

    def start(self, n, cam_url):
        for i in range(n):
            d = os.path.join(self.root, "s%d" % i)
            os.makedirs(d)
            self.children.append(ms.Child("ffmpeg record %d" % i, [
                ms.FFMPEG, "-nostdin", "-hide_banner", "-v", "error",
                "-rtsp_transport", "tcp", "-i", cam_url, "-map", "0:v?", "-map", "0:a?",
                "-c", "copy", "-f", "segment", "-segment_time", str(self.args.segment),
                "-segment_format", "mp4", "-segment_format_options", SEGMENT_OPTS,
                "-reset_timestamps", "1", "-strftime", "1",
                os.path.join(d, "%Y-%m-%dT%H-%M-%SZ.mp4")], env=dict(os.environ, TZ="UTC0")))

    def stream_dir(self, i):
        return os.path.join(self.root, "s%d" % i)

    def pids(self):
        return [c.pid for c in self.children if c.alive()]

    def check(self):
        dead = [c for c in self.children if c.exited()]
        return "%d ffmpeg exited; first: %s" % (len(dead), dead[0].fail("exited")) if dead else None

    def stop(self):
        ms.stop_all(self.children, timeout=5)
        self.children = []


class RelaySide(rb.RelaySide):
    name = "relay"

    def __init__(self, args, root):
        super().__init__(args)
        self.root = root

    def _start_relay(self):
        self.child = ms.Child("steward relay", [
            self.steward, "relay", "--listen", "127.0.0.1:0", "--state", "none",
            "--no-default-input", "--max-inputs", "64", "--recordings", self.root,
            "--recordings-min-free", "0"])
        m = ms.wait_until(lambda: __import__("re").search(
            r"serving http://127\.0\.0\.1:(\d+)/", ms.tail_file(self.child.log_path, 200)),
            ms.START_TIMEOUT, self.child, "no address line")
        self.port = int(m.group(1))

    def start(self, n, cam_url):
        self.prepare()
        for i in range(n):
            name = "bench%d" % i
            self._api("POST", "/api/inputs", {"name": name, "kind": "ffmpeg", "url": cam_url,
                                              "record": True,
                                              "record_segment": self.args.segment})
            self.inputs.append(name)

    def stream_dir(self, i):
        return os.path.join(self.root, "bench%d" % i)


SIDES = {"ffmpeg": FfmpegSide, "relay": RelaySide}


def run_count(side_cls, args, cam, n, root):
    res = {"side": side_cls.name, "streams": n}
    side = side_cls(args, root)
    try:
        cam.start()
        t0 = time.monotonic()
        side.start(n, cam.url)
        ms.wait_until(lambda: all(segment_files(side.stream_dir(i)) for i in range(n)), 120,
                      None, "every stream's first segment")
        res["first_file_s"] = time.monotonic() - t0
        time.sleep(args.warmup)
        why = side.check()
        if why:
            raise RuntimeError(why)
        b0 = dir_bytes(root)
        m = measure(side.pids, args.window)
        b1 = dir_bytes(root)
        why = side.check()
        if why:
            raise RuntimeError(why)
        # The newest segment the last stream finished (the one before the
        # one being written), or the one being written.
        segs = segment_files(side.stream_dir(n - 1))
        seg = segs[-2] if len(segs) >= 2 else segs[-1]
        out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration",
                              "-of", "csv=p=0", seg], capture_output=True, text=True, timeout=60)
        res.update({
            "cpu_pct": 100.0 * m["cpu_s"] / m["elapsed"],
            "rss_kb": m["rss_kb"], "pss_kb": m["pss_kb"], "processes": m["processes"],
            "write_kBps": (b1 - b0) / 1024.0 / m["elapsed"],
            "probe_s": float(out.stdout.strip() or 0),
        })
    finally:
        side.stop()
        cam.stop()
    left = ms.wait_for_none(lambda: ms.orphans(rb.MARKER), 10)
    res["left_behind"] = len(left)
    if left:
        log("  LEFT BEHIND: " + ms.describe(left))
    return res


def table(results, args):
    lines = [
        "RTSP %s@%d H.264 ~%d kbit/s (one shared gst-rtsp-server pipeline) -> N streams "
        "recorded to fragmented MP4 (%d s segments, a fragment a second), all on one machine; "
        "%d cores (%s), ffmpeg %s; CPU over %g s after every stream wrote its first file and "
        "a %g s warm-up; load average %.1f before, %.1f after."
        % (args.size, args.fps, args.bitrate, args.segment, os.cpu_count(), rb.cpu_model(),
           rb.ffmpeg_version(), args.window, args.warmup, args.load_before,
           os.getloadavg()[0]),
        "",
        "| side | streams | CPU % of a core (total) | CPU % per stream | written kB/s per "
        "stream | RSS MiB per stream | PSS MiB per stream | processes | last segment probed s "
        "| first files after s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if "error" in r:
            lines.append("| %s | %d | failed: %s |  |  |  |  |  |  |  |"
                         % (r["side"], r["streams"], r["error"].splitlines()[0][:120]))
            continue
        n = r["streams"]
        lines.append("| %s | %d | %.1f | %.2f | %.1f | %.1f | %.1f | %d | %.2f | %.1f |" % (
            r["side"], n, r["cpu_pct"], r["cpu_pct"] / n, r["write_kBps"] / n,
            r["rss_kb"] / 1024 / n, r["pss_kb"] / 1024 / n, r["processes"], r["probe_s"],
            r["first_file_s"]))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sides", default="ffmpeg,relay")
    ap.add_argument("--counts", default="1,10,50")
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--bitrate", type=int, default=800)
    ap.add_argument("--segment", type=int, default=10)
    ap.add_argument("--window", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--build", help="BUILD_DIR with src/steward (relay side)")
    ap.add_argument("--dir", help="where to write (default: a temporary directory)")
    ap.add_argument("--json")
    args = ap.parse_args()
    w, h = (int(x) for x in args.size.split("x"))
    counts = [int(x) for x in args.counts.split(",")]
    args.load_before = os.getloadavg()[0]
    base = tempfile.mkdtemp(prefix="steward-record-bench-", dir=args.dir)
    results = []
    cam = ms.RtspCamera(width=w, height=h, fps=args.fps, bitrate=args.bitrate)
    try:
        for side_name in args.sides.split(","):
            for n in counts:
                log("%s, %d stream(s)" % (side_name, n))
                root = os.path.join(base, "%s-%d" % (side_name, n))
                os.makedirs(root)
                try:
                    results.append(run_count(SIDES[side_name], args, cam, n, root))
                except Exception as e:
                    log("  failed: %s: %s" % (type(e).__name__, e))
                    results.append({"side": side_name, "streams": n,
                                    "error": "%s: %s" % (type(e).__name__, e)})
                shutil.rmtree(root, ignore_errors=True)
    finally:
        cam.stop()
        shutil.rmtree(base, ignore_errors=True)
    print(table(results, args))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0 if all("error" not in r and not r["left_behind"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
