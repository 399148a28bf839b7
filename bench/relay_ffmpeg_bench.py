#!/usr/bin/env python3
"""RTSP camera -> RTMP push, N streams at once: what the job costs done by
bare ffmpeg processes (the floor) and, side by side, by the relay.

  relay_ffmpeg_bench.py [--sides ffmpeg,relay] [--counts 1,10,50]
                        [--size 640x360] [--fps 25] [--bitrate 800]
                        [--window 10] [--repeat 3] [--build BUILD_DIR]
                        [--json OUT]

The servers, all real, on 127.0.0.1 ephemeral ports
(tests/integration/media_servers.py):

  camera   one gst-rtsp-server with one *shared* mount: a single
           videotestsrc ! x264enc pipeline (one encoder) feeds every RTSP
           client, so N streams cost the camera N RTP sessions, not N
           encoders, and the machine's 2 cores go to the side measured.
           Its media is prepared when it starts (an always-on camera).
  nginx    nginx-rtmp, `application live`: stream i is pushed to
           rtmp://127.0.0.1:PORT/live/SIDE N-rREP-sI (fresh names each
           round, so a viewer never sees an earlier round's stream).

Sides (each a class with prepare/start/pids/check/stop; add one to SIDES):

  ffmpeg   N bare `ffmpeg -rtsp_transport tcp -i rtsp://CAM -c copy -f flv
           rtmp://NGINX/live/...` processes: the floor.
  relay    steward relay (release build, not under the checker, --state
           none --no-default-input), started before the camera; one input
           per stream, POST /api/inputs {"name","kind":"ffmpeg","url"} and
           POST /api/inputs/{name}/outputs {"type":"push","url"}; its CPU
           and memory are the relay's plus its descendants' (the ffmpeg it
           runs).

Per side and N, three things:

  first frame  the camera is started from nothing (its process spawned);
               once it answers RTSP OPTIONS ("camera up") the side starts its
               N streams; a viewer (ffmpeg, -frames:v 1), already waiting on
               the last stream's RTMP play URL, exits at its first decoded
               frame. Reported: camera up -> first frame, median of --repeat.
               A rep that fails (no frame in 60 s) is counted and shown, and
               the other reps go on.
  CPU          the camera and the side start afresh; once the last stream
               plays at a viewer and a 3 s warm-up has passed, user+sys of
               the side's processes (and their reaped children) from
               /proc/PID/stat over --window seconds; % of one core, total
               and per stream.
  memory       VmRSS and PSS (/proc/PID/smaps_rollup; shared library pages
               split between the processes) summed over the side's
               processes, per stream.

Then the last stream is probed (ffprobe, 2 s) for its frame rate, and
after the side stops no process carrying the run's marker may be left.
Prints a markdown table on stdout (progress on stderr).
"""
import argparse
import http.client
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import media_servers as ms  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
MARKER = ms.new_marker("stwbench")
os.environ["STEWARD_BENCH_MARKER"] = MARKER  # inherited by every process started here


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- /proc


def cpu_ticks(pid):
    """utime+stime+cutime+cstime of @pid (its reaped children included), or
    None if it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # fields[0] is the state (stat field 3): utime..cstime are fields 14-17.
    return sum(int(x) for x in fields[11:15])


def mem_kb(pid):
    """(VmRSS, Pss) in KiB, (0, 0) if @pid is gone."""
    rss = pss = 0
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def measure(pids_fn, window):
    """CPU seconds used by the processes @pids_fn() names over @window
    seconds (a process that appears meanwhile counts from zero), and their
    summed RSS/PSS sampled mid-window. Returns a dict."""
    before = {p: cpu_ticks(p) for p in pids_fn()}
    t0 = time.monotonic()
    time.sleep(window / 2)
    rss = pss = 0
    for p in pids_fn():
        r, s = mem_kb(p)
        rss += r
        pss += s
    time.sleep(max(0.0, window - (time.monotonic() - t0)))
    after_pids = pids_fn()
    elapsed = time.monotonic() - t0
    ticks = 0
    for p in set(before) | set(after_pids):
        a, b = cpu_ticks(p), before.get(p) or 0
        if a is not None:
            ticks += a - b
    gone = [p for p in before if p not in after_pids]
    return {"cpu_s": ticks / CLK_TCK, "elapsed": elapsed, "rss_kb": rss, "pss_kb": pss,
            "processes": len(after_pids), "gone": len(gone)}


# ---------------------------------------------------------------- sides


class FfmpegSide:
    """The floor: one bare ffmpeg per stream, copying RTSP into FLV."""
    name = "ffmpeg"

    def __init__(self, args):
        self.args = args
        self.children = []

    def prepare(self):
        """Called before the camera starts: nothing to do for bare ffmpeg."""

    def start(self, n, cam_url, push_urls):
        """Start @n streams, stream i pushing @cam_url to @push_urls[i]."""
        for i in range(n):
            self.children.append(ms.Child("ffmpeg push %d" % i, [
                ms.FFMPEG, "-nostdin", "-hide_banner", "-v", "error",
                "-rtsp_transport", self.args.rtsp_transport, "-i", cam_url,
                "-c", "copy", "-f", "flv", push_urls[i]]))

    def pids(self):
        return [c.pid for c in self.children if c.alive()]

    def describe(self, i):
        """What stream @i looks like, for a failure message."""
        c = self.children[i]
        return "ffmpeg pid %d %s, log: %s" % (c.pid, "running" if c.alive() else "exited",
                                               c.tail(5).replace("\n", " | ") or "(empty)")

    def check(self):
        """None if every stream is still being pushed, else why not."""
        dead = [c for c in self.children if c.exited()]
        if dead:
            return "%d of %d ffmpeg exited; first: %s" % (len(dead), len(self.children),
                                                         dead[0].fail("exited"))
        return None

    def stop(self):
        ms.stop_all(self.children, timeout=5)
        self.children = []


class RelaySide:
    """steward relay doing the same job: one ffmpeg input per stream and a
    push output on each, through the REST API."""
    name = "relay"

    def __init__(self, args):
        if not args.build:
            raise SystemExit("the relay side needs --build BUILD_DIR")
        self.args = args
        self.steward = os.path.join(args.build, "src", "steward")
        self.child = None
        self.port = None
        self.inputs = []

    def _start_relay(self):
        # A new log file for each relay: the address line is this one's.
        self.child = ms.Child("steward relay", [self.steward, "relay", "--listen", "127.0.0.1:0",
                               "--state", "none", "--no-default-input", "--max-inputs", "64"])
        out = self.child.log_path
        # The relay prints "steward relay: serving http://127.0.0.1:PORT/"
        # on stdout, which goes to its log with stderr.
        m = ms.wait_until(lambda: re.search(r"serving http://127\.0\.0\.1:(\d+)/",
                                            ms.tail_file(out, 200)),
                          ms.START_TIMEOUT, self.child, "no address line")
        self.port = int(m.group(1))

    def _api(self, method, path, body=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            c.request(method, path, body=json.dumps(body) if body is not None else None,
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            data = r.read()
        finally:
            c.close()
        if r.status >= 300:
            raise RuntimeError("relay: %s %s -> %d %s" % (method, path, r.status, data[:300]))
        return json.loads(data) if data else None

    def prepare(self):
        # The relay is up before the camera: its start-up is not part of
        # "camera up -> first frame", the API calls and ffmpeg spawns are.
        if self.child is None or not self.child.alive():
            self._start_relay()

    def start(self, n, cam_url, push_urls):
        self.prepare()
        for i in range(n):
            name = "bench%d" % i
            self._api("POST", "/api/inputs", {"name": name, "kind": "ffmpeg", "url": cam_url})
            self._api("POST", "/api/inputs/%s/outputs" % name,
                      {"type": "push", "url": push_urls[i]})
            self.inputs.append(name)

    def pids(self):
        if self.child is None or not self.child.alive():
            return []
        return [self.child.pid] + [p["pid"] for p in ms.children_of(self.child.pid)
                                   if not p["zombie"]]

    def describe(self, i):
        try:
            return json.dumps(self._api("GET", "/api/inputs/bench%d" % i))[:400]
        except Exception as e:
            return "GET /api/inputs/bench%d: %s" % (i, e)

    def check(self):
        if self.child is None or not self.child.alive():
            return "the relay exited: %s" % (self.child.tail() if self.child else "")
        return None

    def stop(self):
        # A fresh relay per round: deleting N inputs is the relay's business,
        # not this benchmark's; SIGTERM stops its children in order.
        if self.child:
            self.child.stop(timeout=15)
        self.child = None
        self.inputs = []


SIDES = {"ffmpeg": FfmpegSide, "relay": RelaySide}


# ---------------------------------------------------------------- one round


def viewer(url):
    """An ffmpeg that exits 0 at the first decoded video frame of @url."""
    return ms.Child("viewer %s" % url, [
        ms.FFMPEG, "-nostdin", "-hide_banner", "-v", "error",
        "-analyzeduration", "1000000", "-i", url,
        "-map", "0:v:0", "-frames:v", "1", "-f", "null", "-"])


def first_frame(side, cam, nginx, n, tag):
    """Camera from nothing, side starts n streams once it is up; seconds
    from camera up to the first frame at a viewer of the last stream, and
    seconds from camera spawn to camera up."""
    urls = [nginx.url("%s-s%d" % (tag, i)) for i in range(n)]
    side.prepare()
    v = viewer(urls[-1])  # nginx holds it until the stream is published
    try:
        t_spawn = time.monotonic()
        cam.start()
        t_up = time.monotonic()
        side.start(n, cam.url, urls)
        t_started = time.monotonic()
        try:
            ms.wait_until(v.exited, 60, None, "no frame at the viewer")
        except ms.ServerError:
            raise RuntimeError("no frame at the viewer of %s in 60 s; side: %s; last stream: %s"
                               % (urls[-1], side.check() or "running", side.describe(n - 1)))
        t_frame = time.monotonic()
        if v.stop() != 0:
            raise RuntimeError("viewer failed: %s" % v.tail())
    finally:
        v.stop()
    return {"up_s": t_up - t_spawn, "start_s": t_started - t_up, "first_frame_s": t_frame - t_up,
            "urls": urls}


def run_count(side_cls, args, cam, nginx, n):
    res = {"side": side_cls.name, "streams": n, "first_frame_s": [], "up_s": [], "start_s": [],
           "failed_reps": []}
    side = side_cls(args)
    try:
        for rep in range(args.repeat):
            try:
                ff = first_frame(side, cam, nginx, n, "%s%d-r%d" % (side.name, n, rep))
                for k in ("first_frame_s", "up_s", "start_s"):
                    res[k].append(ff[k])
                log("  %s N=%d rep %d: camera up in %.2f s, first frame %.0f ms after it"
                    % (side.name, n, rep, ff["up_s"], ff["first_frame_s"] * 1000))
            except Exception as e:  # counted and shown, the other reps go on
                res["failed_reps"].append("%s: %s" % (type(e).__name__, e))
                log("  %s N=%d rep %d FAILED: %s" % (side.name, n, rep, res["failed_reps"][-1]))
            finally:
                side.stop()
                cam.stop()
        if not res["first_frame_s"]:
            raise RuntimeError("every rep failed; first: " + res["failed_reps"][0])
        # Steady state, from a fresh start: flowing to the last stream's
        # viewer, then warm-up, then the window.
        urls = [nginx.url("%s%d-steady-s%d" % (side.name, n, i)) for i in range(n)]
        side.prepare()
        cam.start()
        side.start(n, cam.url, urls)
        try:
            ms.ffprobe_stream(urls[-1], seconds=1, timeout=120)
        except ms.ServerError as e:
            raise RuntimeError("steady state: the last stream never played (%s); side: %s; "
                               "last stream: %s" % (str(e).splitlines()[0], side.check() or
                                                    "running", side.describe(n - 1)))
        time.sleep(args.warmup)
        why = side.check()
        if why:
            raise RuntimeError(why)
        m = measure(side.pids, args.window)
        # The harness' own cost, measured right after.
        cam_m = measure(lambda: [cam.pid, nginx.pid], min(3.0, args.window))
        probe = ms.ffprobe_stream(urls[-1], seconds=2, timeout=60)
        why = side.check()
        if why:
            raise RuntimeError(why)
        res.update({
            "cpu_pct": 100.0 * m["cpu_s"] / m["elapsed"],
            "rss_kb": m["rss_kb"], "pss_kb": m["pss_kb"], "processes": m["processes"],
            "harness_cpu_pct": 100.0 * cam_m["cpu_s"] / cam_m["elapsed"],
            "viewer_fps": probe["frames"] / 2.0,
            "viewer_size": "%sx%s" % (probe["width"], probe["height"]),
        })
    finally:
        side.stop()
        cam.stop()
    # Everything started here carries MARKER; only nginx may still run.
    left = ms.wait_for_none(lambda: ms.orphans(MARKER, exclude=[nginx.pid]), 10)
    res["left_behind"] = len(left)
    if left:
        log("  LEFT BEHIND: " + ms.describe(left))
    return res


# ---------------------------------------------------------------- report


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"^model name\s*:\s*(.*)$", f.read(), re.M)
            return m.group(1) if m else platform.machine()
    except OSError:
        return platform.machine()


def ffmpeg_version():
    try:
        out = subprocess.run([ms.FFMPEG, "-version"], capture_output=True, text=True,
                             timeout=10).stdout
        return out.split()[2]
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def table(results, args):
    lines = [
        "RTSP %s@%d H.264 ~%d kbit/s (one shared gst-rtsp-server pipeline) -> N pushes to "
        "nginx-rtmp, all on 127.0.0.1; %d cores (%s), ffmpeg %s; CPU over %g s after %g s "
        "warm-up; first frame: median of %d; load average %.1f before, %.1f after."
        % (args.size, args.fps, args.bitrate, os.cpu_count(), cpu_model(), ffmpeg_version(),
           args.window, args.warmup, args.repeat, args.load_before, os.getloadavg()[0]),
        "",
        "| side | streams | camera up -> first frame ms (median, max) | CPU % of a core "
        "(total) | CPU % per stream | RSS MiB per stream | PSS MiB per stream | "
        "processes | viewer fps | camera+nginx CPU % | failed reps |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if "error" in r:
            lines.append("| %s | %d | failed: %s |  |  |  |  |  |  |  |  |"
                         % (r["side"], r["streams"], r["error"].splitlines()[0][:120]))
            continue
        n = r["streams"]
        ff = [x * 1000 for x in r["first_frame_s"]]
        lines.append(("| %s | %d | %.0f, %.0f | %.1f | %.2f | %.1f | %.1f | %d | %.1f | %.1f "
                      "| %d of %d |") % (
            r["side"], n, statistics.median(ff), max(ff), r["cpu_pct"], r["cpu_pct"] / n,
            r["rss_kb"] / 1024 / n, r["pss_kb"] / 1024 / n, r["processes"],
            r["viewer_fps"], r["harness_cpu_pct"], len(r["failed_reps"]), args.repeat))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sides", default="ffmpeg", help="comma-separated: " + ",".join(SIDES))
    ap.add_argument("--counts", default="1,10,50")
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--bitrate", type=int, default=800, help="camera kbit/s")
    ap.add_argument("--window", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rtsp-transport", default="tcp", choices=("tcp", "udp"))
    ap.add_argument("--build", help="BUILD_DIR with src/steward (relay side)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    w, h = (int(x) for x in args.size.split("x"))
    counts = [int(x) for x in args.counts.split(",")]
    sides = [SIDES[s] for s in args.sides.split(",")]

    args.load_before = os.getloadavg()[0]
    results = []
    with ms.nginx_rtmp() as nginx:
        cam = ms.RtspCamera(width=w, height=h, fps=args.fps, bitrate=args.bitrate)
        try:
            for side_cls in sides:
                for n in counts:
                    log("%s, %d stream(s)" % (side_cls.name, n))
                    try:
                        results.append(run_count(side_cls, args, cam, nginx, n))
                    except Exception as e:  # one failed count must not hide the others
                        log("  failed: %s: %s" % (type(e).__name__, e))
                        results.append({"side": side_cls.name, "streams": n,
                                        "error": "%s: %s" % (type(e).__name__, e)})
        finally:
            cam.stop()
    print(table(results, args))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0 if all("error" not in r and not r["left_behind"] and not r["failed_reps"]
                    for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
