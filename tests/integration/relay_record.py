#!/usr/bin/env python3
"""Integration tests of the relay's recordings: the real binary under
`steward check`, real ffmpeg recorder children, a real RTSP camera
(gst-rtsp-server), ffprobe on what was written, a small tmpfs for the full
disk (when run as root; skipped, and said so, otherwise).

  record_pattern        test pattern recorded: segments appear in
                        {input}/{YYYY-MM-DD}/{HH-MM-SS}/, roll on time
                        (ffprobe duration = the segment length within a
                        fragment), decode, and the API's durations agree
  record_rtsp_copy      an RTSP camera recorded with -c copy: H.264 320x240
                        and AAC as they came, durations on time
  record_mjpeg          an MJPEG camera (fake_camera.py, 20 fps) encoded to
                        H.264 at its own rate, on time
  record_events         /api/events announced segment-created and
                        segment-finished for both inputs
  record_burst          the recorder child stopped for 10 s: the backlog cut
                        into several segments within a second, each its
                        own file and finished once (names by the child's
                        clock overwrote each other)
  record_orphan         a staged segment left unnamed (the relay died
                        before its recorder named it) is named by the
                        janitor, announced, listed
  record_kill9          the recorder child SIGKILLed mid-segment: the cut
                        file still probes with all but its last fragment,
                        a new child records on in the same session
  record_api            list with a time range, Range downloads (206,
                        Content-Range, suffix ranges, 416), HEAD, delete a
                        segment and a session, 409 for what is being
                        recorded, path traversal and symlinks refused with
                        4xx JSON, PATCH validation
  record_manual_rm      a session folder removed by hand (rm -rf):
                        segment-deleted and session-deleted events
  record_retention      per-input max bytes and max age delete the oldest
                        segments (reason size / age in /metrics) and remove
                        empty session and day folders
  record_churn          100 start/stop cycles of recording ($STEWARD_RECORD_CHURN):
                        never two recorder children, none left, fds,
                        threads and children back to the baseline, every
                        segment finished
  record_delete_finalises  an input deleted while recording: its last
                        segment is finished, no child left, its
                        recordings stay
  record_stop_finalises recording switched off: the last segment is
                        finished (probes whole, duration = what was
                        recorded within a fragment); the child is gone
  record_relay_sigkill  the relay itself SIGKILLed 3.5 s into a segment: its
                        recorder dies with it, the file plays to its last
                        fragment
  record_state_restart  record and its options are kept in the state file:
                        after a restart the input records again (a new
                        session)
  record_shutdown       SIGTERM while recording: the last segment is
                        finished, exit 0, 0 leaks, no child or zombie
  record_disk_guard     (root) a 48 MiB tmpfs, free-space threshold above
                        what is free: oldest segments deleted (reason
                        space), then disk-full (state, event, metric, log),
                        resumed by itself when space returns
  record_enospc         (root) the tmpfs filled to ENOSPC mid-segment: the
                        segment is closed and still probes, finished
                        segments untouched, the relay and its other input
                        unharmed, recording resumes when space returns

Usage: relay_record.py BUILD_DIR
STEWARD_RECORD_ONLY=main,relay_kill,restart,disk runs only those parts.
Prints "ok   relay/NAME (S s)" or "FAIL relay/NAME: reason" per case and
exits non-zero if any failed.
"""
import calendar
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import media_servers as ms  # noqa: E402
from fake_camera import FakeCamera  # noqa: E402
from relay_ffmpeg import RELAYS, RESULTS, Relay, assert_clean_exit, check, report, wait_for  # noqa: E402,E501

SEG = 3  # seconds per segment in these tests
CHURN = int(os.environ.get("STEWARD_RECORD_CHURN", "100"))
ONLY_FNS = None  # set in main from STEWARD_RECORD_ONLY (main, relay_kill, disk)
SEG_RE = re.compile(r"^[A-Za-z0-9_-]+/\d{4}-\d\d-\d\d/\d\d-\d\d-\d\d/"
                    r"\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ\.mp4$")


def probe(path):
    """(duration s, decoded video frames, codec, width, height) by ffprobe."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
         "format=duration:stream=codec_name,width,height,nb_read_frames", "-of", "json", path],
        capture_output=True, timeout=60)
    assert out.returncode == 0, "ffprobe %s: %s" % (path, out.stderr.decode()[-500:])
    j = json.loads(out.stdout)
    s = j["streams"][0]
    return (float(j["format"].get("duration", 0)), int(s.get("nb_read_frames", 0)),
            s["codec_name"], s["width"], s["height"])


def segments(root, input_name):
    """Every segment file of @input_name under @root, oldest first, as
    paths relative to @root."""
    out = []
    base = os.path.join(root, input_name)
    for dirpath, _, files in os.walk(base):
        for f in files:
            if f.endswith(".mp4"):
                out.append(os.path.relpath(os.path.join(dirpath, f), root))
    return sorted(out, key=lambda p: os.path.basename(p))


def name_time(path):
    """The UTC start a segment's name says (seconds since the epoch)."""
    return calendar.timegm(time.strptime(os.path.basename(path), "%Y-%m-%dT%H-%M-%SZ.mp4"))


def finished(root, input_name, idle=2):
    """Segments not written to for @idle s (the newest is being recorded)."""
    now = time.time()
    return [p for p in segments(root, input_name)
            if now - os.path.getmtime(os.path.join(root, p)) > idle]


class Events:
    """/api/events read on a thread: .events is a list of (name, data)."""

    def __init__(self, relay):
        self.conn = http.client.HTTPConnection("127.0.0.1", relay.port, timeout=120)
        self.conn.request("GET", "/api/events")
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200
        self.events = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        name = None
        try:
            while True:
                line = self.resp.fp.readline()
                if not line:
                    return
                line = line.decode().rstrip("\n")
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: ") and name:
                    try:
                        data = json.loads(line[6:])
                    except ValueError:
                        data = line[6:]
                    with self.lock:
                        self.events.append((name, data, time.time()))
                    name = None
        except Exception:
            return

    def find(self, name, pred=lambda d: True):
        with self.lock:
            return [d for n, d, _ in self.events if n == name and pred(d)]

    def created(self, path):
        """When the segment at @path was announced as created."""
        with self.lock:
            for n, d, t in self.events:
                if n == "segment-created" and d.get("path") == path:
                    return t
        raise AssertionError("no segment-created event for %s" % path)

    def newest(self, input_name):
        """(path, seconds since) of the last segment-created of @input_name."""
        with self.lock:
            for n, d, t in reversed(self.events):
                if n == "segment-created" and d.get("input") == input_name:
                    return d["path"], time.time() - t
        return None, None

    def close(self):
        try:
            self.conn.sock.shutdown(2)
        except (OSError, AttributeError):
            pass
        self.conn.close()


def metric(relay, name, labels=""):
    st, body = relay.raw("/metrics")
    assert st == 200
    m = re.search(r"^%s%s (\S+)$" % (re.escape(name), re.escape(labels)), body.decode(), re.M)
    return float(m.group(1)) if m else None


def rec_state(relay, name):
    return relay.input(name)["recording"]


def keyframe_times(path):
    """The video keyframes' times in @path, from its first frame on (s)."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-skip_frame", "nokey",
         "-show_entries", "frame=best_effort_timestamp_time", "-of", "csv=p=0", path],
        capture_output=True, timeout=60)
    assert out.returncode == 0, "ffprobe %s: %s" % (path, out.stderr.decode()[-500:])
    cells = (line.split(",")[0].strip() for line in out.stdout.decode().splitlines())
    t = [float(x) for x in cells if x not in ("", "N/A")]
    return [x - t[0] for x in t] if t else []


def check_segment_timing(root, paths, what, fps=None, copied=False):
    """Every finished segment but a session's last lasts SEG s within a
    fragment, and decodes (frames close to fps x duration, from the
    second on). @copied: the source's H.264 is copied, so a segment can
    only end at the source's next keyframe: a source that sends one late
    (a camera starved of CPU) makes it longer, and that is right as long
    as no keyframe past SEG s was passed over. The muxer cuts at whole
    multiples of SEG of the stream's time, so the segment after a long
    one is shorter by as much."""
    assert len(paths) >= 2, "%s: %d finished segments" % (what, len(paths))
    over = 0.0  # how far the last copied segment ran past SEG
    for k, p in enumerate(paths[:-1]):
        dur, frames, codec, w, h = probe(os.path.join(root, p))
        short_ok, over = (over, max(0.0, dur - SEG)) if copied else (0.0, 0.0)
        if copied and dur - SEG > 1.05:
            keys = keyframe_times(os.path.join(root, p))
            assert keys and keys[-1] <= SEG + 0.15, \
                "%s: %s lasts %.2f s, want %d; keyframes at %s" % (what, p, dur, SEG, keys)
            print("     %s: %s lasts %.2f s: the source's keyframes came at %s" %
                  (what, p, dur, ["%.2f" % x for x in keys]), flush=True)
            continue
        assert SEG - 1.05 - short_ok <= dur <= SEG + 1.05, \
            "%s: %s lasts %.2f s, want %d" % (what, p, dur, SEG)
        # (a live camera's first seconds may come unevenly on a busy machine;
        # a recorder short of CPU takes the newest frame and skips the rest,
        # so the bound is loose: it catches a rate off by half, not load)
        # A copied stream has the frames the camera sent, and the test
        # camera starved of CPU sends fewer (8.5 of 15 a second seen).
        if fps and k > 0:
            assert frames >= (0.4 if copied else 0.6) * fps * dur, "%s: %s: %d frames in %.2f s" % (what, p, frames,
                                                                                dur)
    return probe(os.path.join(root, paths[0]))


def run_main(build, tmp, marker):
    env = dict(os.environ, STEWARD_TEST_MARKER=marker)
    root = os.path.join(tmp, "rec")
    cam = ms.RtspCamera(width=320, height=240, fps=15, audio=True, tmpdir=tmp)
    cam.start()
    door = FakeCamera()
    door.start()
    relay = Relay(build, ["--recordings", root, "--recordings-min-free", "0"], env=env)
    ev = Events(relay)
    try:
        st, b = relay.api("POST", "/api/inputs",
                          {"name": "pat", "kind": "test", "width": 320, "height": 240,
                           "fps": 10, "record": True, "record_segment": SEG})
        assert st == 201, (st, b)
        relay.create("cam", cam.url, record=True, record_segment=SEG)
        st, b = relay.api("POST", "/api/inputs", {"name": "door", "kind": "mjpeg",
                                                  "url": door.url("/good"), "record": True,
                                                  "record_segment": SEG})
        assert st == 201, (st, b)
        t_start = time.time()
        wait_for("3 finished segments of each input",
                 lambda: all(len(finished(root, n)) >= 3 for n in ("pat", "cam", "door")),
                 timeout=40, interval=0.5)

        def pattern():
            paths = finished(root, "pat")
            for p in paths:
                assert SEG_RE.match(p), "layout: %s" % p
            # One session folder, started when recording started.
            sessions = {os.path.dirname(p) for p in segments(root, "pat")}
            assert len(sessions) == 1, sessions
            sess = sessions.pop()
            day, hms = sess.split("/")[1:]
            started = calendar.timegm(time.strptime(day + hms, "%Y-%m-%d%H-%M-%S"))
            assert abs(started - t_start) < 5, (sess, t_start)
            dur, frames, codec, w, h = check_segment_timing(root, paths, "pat", fps=10)
            assert (codec, w, h) == ("h264", 320, 240), (codec, w, h)
            # The API says what ffprobe says.
            st, lst = relay.api("GET", "/api/recordings/pat")
            assert st == 200, (st, lst)
            segs = {s["path"]: s for se in lst["sessions"] for s in se["segments"]}
            for p in paths[:-1]:
                s = segs[p]
                d = probe(os.path.join(root, p))[0]
                assert abs(s["duration_ms"] / 1000 - d) < 0.15, (s, d)
                assert s["codec"] == "h264" and s["size"] == os.path.getsize(
                    os.path.join(root, p)), s
            print("     pattern: %d segments, %.2f s each, h264 320x240" % (len(paths), dur),
                  flush=True)

        def rtsp_copy():
            paths = finished(root, "cam")
            for p in paths:
                assert SEG_RE.match(p), p
            dur, frames, codec, w, h = check_segment_timing(root, paths, "cam", fps=15, copied=True)
            assert (codec, w, h) == ("h264", 320, 240), (codec, w, h)
            a = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "a:0",
                                "-show_entries", "stream=codec_name", "-of", "csv=p=0",
                                os.path.join(root, paths[0])], capture_output=True, timeout=30)
            assert a.stdout.decode().strip() == "aac", "audio: %r" % a.stdout
            st, lst = relay.api("GET", "/api/recordings/cam")
            seg = lst["sessions"][0]["segments"][0]
            assert (seg["codec"], seg["audio_codec"]) == ("h264", "aac"), seg
            pid = rec_state(relay, "cam")["pid"]
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
            assert b"copy" in argv and b"libx264" not in argv, argv
            print("     rtsp: %d segments copied, %.2f s each" % (len(paths), dur), flush=True)

        def mjpeg():
            paths = finished(root, "door")
            dur, frames, codec, w, h = check_segment_timing(root, paths, "door", fps=20)
            assert (codec, w, h) == ("h264", 32, 24), (codec, w, h)
            # Bytes written: every finished segment whole, the current one
            # as far as it got, nothing more.
            done = sum(os.path.getsize(os.path.join(root, q)) for q in finished(root, "door"))
            written = metric(relay, "steward_recording_bytes_written_total", '{input="door"}')
            on_disk = sum(os.path.getsize(os.path.join(root, q)) for q in segments(root, "door"))
            assert 0 < done <= written <= on_disk, (done, written, on_disk)
            st, b = relay.api("PATCH", "/api/inputs/door", {"record": False})
            assert st == 200, (st, b)
            print("     mjpeg camera: %d segments encoded, %.2f s each" % (len(paths), dur),
                  flush=True)

        def events():
            for name in ("pat", "cam"):
                c = ev.find("segment-created", lambda d: d["input"] == name)
                f = ev.find("segment-finished", lambda d: d["input"] == name)
                assert len(c) >= 3 and len(f) >= 2, (name, len(c), len(f))
                # Every finished segment has a size and duration; one that
                # held no frame (a child stopped before its first fragment)
                # is then removed by the recorder, and says so.
                gone = {d["path"] for d in ev.find("segment-deleted", lambda d: True)}
                assert all("size" in d and "duration_ms" in d for d in f), f
                assert all(d["size"] > 0 or d["path"] in gone for d in f), (f, gone)
            assert ev.find("recording-state", lambda d: d["input"] == "pat"
                           and d["recording"]["state"] == "recording")

        def burst():
            # The recorder child stopped for 10 s: the TS backlog then comes
            # as a burst, several segments cut within one second. Each keeps
            # its own file (a later second's name when its own is taken):
            # none finished twice, none truncated, all play.
            pid = rec_state(relay, "cam")["pid"]
            os.kill(pid, signal.SIGSTOP)
            try:
                time.sleep(10)
            finally:
                os.kill(pid, signal.SIGCONT)
            t_cont = time.time()

            def finished_since():
                with ev.lock:
                    return [(d, t) for n, d, t in ev.events
                            if n == "segment-finished" and d["input"] == "cam" and t >= t_cont]

            def burst_size():
                # The most segments finished within 2.5 s: in real time
                # (one every SEG s) never more than 1; in a burst, the
                # backlog's. When the burst comes depends on the load.
                ts = [t for _, t in finished_since()]
                return max([sum(1 for u in ts if t <= u < t + 2.5) for t in ts] or [0])
            burst_n = wait_for("a burst of 3 segments within 2.5 s",
                               lambda: (lambda n: n if n >= 3 else None)(burst_size()),
                               timeout=20, interval=0.2)
            time.sleep(2)
            fin = finished_since()
            paths = [d["path"] for d, _ in fin]
            assert len(paths) == len(set(paths)), "finished twice: %s" % paths
            for d, _ in fin:
                assert d["size"] > 0 and d["duration_ms"] > 0, d
                assert os.path.getsize(os.path.join(root, d["path"])) == d["size"], d
                dur = probe(os.path.join(root, d["path"]))[0]
                assert abs(dur - d["duration_ms"] / 1000) < 0.15, (d, dur)
            assert paths == sorted(paths), paths
            print("     stalled 10 s: %d segments in one burst, each its own file" % burst_n,
                  flush=True)

        def orphan():
            # A staged segment whose recorder never named it (the relay died
            # in between): the janitor names it once it is idle, and says so.
            # (In a folder of its own: an input's newest segment stays the
            # recorder's, which record_kill9 waits for.)
            src = os.path.join(root, finished(root, "pat")[0])
            day = time.strftime("%Y-%m-%d", time.gmtime())
            sess = os.path.join(root, "orphan", day, "00-00-01")
            os.makedirs(sess, exist_ok=True)
            staged = os.path.join(sess, ".part-77-0.mp4")
            shutil.copyfile(src, staged)
            old = time.time() - 60
            os.utime(staged, (old, old))
            size = os.path.getsize(staged)
            # (the janitor scans when a segment is finished: every SEG s)
            named = wait_for("the staged segment named",
                             lambda: not os.path.exists(staged) and os.listdir(sess),
                             timeout=20, interval=0.2)
            rel = "orphan/%s/00-00-01/%s" % (day, named[0])
            assert len(named) == 1 and SEG_RE.match(rel), named
            assert os.path.getsize(os.path.join(root, rel)) == size
            wait_for("segment-finished for it",
                     lambda: ev.find("segment-finished", lambda d: d["path"] == rel), timeout=5)
            assert "segment .part-77-0.mp4 was left unnamed: now %s" % named[0] in relay.stderr()
            st, lst = relay.api("GET", "/api/recordings/orphan")
            assert st == 200 and any(g["path"] == rel for se in lst["sessions"]
                                     for g in se["segments"]), lst
            shutil.rmtree(os.path.join(root, "orphan"))

        def kill9():
            # Wait until the current segment is 2.5 s old, then SIGKILL.
            def fresh():
                path, age = ev.newest("pat")
                return path if age is not None and 2.3 < age < 2.7 else None
            cut = wait_for("a segment 2.5 s into recording", fresh, timeout=10, interval=0.05)
            rs = rec_state(relay, "pat")
            pid, sess = rs["pid"], rs["session"]
            t_cut = time.time()
            os.kill(pid, signal.SIGKILL)
            age = t_cut - ev.created(cut)
            new = wait_for("a new recorder child",
                           lambda: (lambda r: r if r["pid"] not in (0, pid) else None)(
                               rec_state(relay, "pat")), timeout=15)
            assert new["session"] == sess, (new, sess)
            dur, frames, _, _, _ = probe(os.path.join(root, cut))
            # At most about a second (one fragment) lost.
            assert dur >= age - 1.3 and frames >= 10 * (age - 1.3), \
                "cut after %.1f s: %.2f s, %d frames left" % (age, dur, frames)
            st, lst = relay.api("GET", "/api/recordings/pat")
            s = [s for se in lst["sessions"] for s in se["segments"] if s["path"] == cut][0]
            assert abs(s["duration_ms"] / 1000 - dur) < 0.15, s
            n = len(segments(root, "pat"))
            wait_for("segments after the restart", lambda: len(segments(root, "pat")) > n,
                     timeout=15)
            print("     kill -9 after %.1f s: %.2f s playable" % (age, dur), flush=True)

        def api():
            paths = finished(root, "pat")
            p = paths[0]
            data = open(os.path.join(root, p), "rb").read()
            st, whole = relay.raw("/api/recordings/" + p)
            assert st == 200 and whole == data, (st, len(whole), len(data))
            c = http.client.HTTPConnection("127.0.0.1", relay.port, timeout=15)

            def get(path, hdrs=None, method="GET"):
                c.request(method, path, headers=hdrs or {})
                r = c.getresponse()
                return r, r.read()
            r, body = get("/api/recordings/" + p, {"Range": "bytes=0-99"})
            assert r.status == 206 and body == data[:100], r.status
            assert r.getheader("Content-Range") == "bytes 0-99/%d" % len(data)
            assert r.getheader("Accept-Ranges") == "bytes"
            assert r.getheader("Content-Type") == "video/mp4"
            r, body = get("/api/recordings/" + p, {"Range": "bytes=-50"})
            assert r.status == 206 and body == data[-50:], r.status
            r, body = get("/api/recordings/" + p, {"Range": "bytes=100-"})
            assert r.status == 206 and body == data[100:], r.status
            r, body = get("/api/recordings/" + p, {"Range": "bytes=%d-" % len(data)})
            assert r.status == 416 and json.loads(body)["error"], (r.status, body)
            assert r.getheader("Content-Range") == "bytes */%d" % len(data)
            r, body = get("/api/recordings/" + p, {"Range": "bytes=0-9"}, "HEAD")
            assert r.status == 206 and body == b"" and r.getheader("Content-Length") == "10"
            # Time range: only segments that overlap it.
            st, lst = relay.api("GET", "/api/recordings/pat?from=%d&to=%d"
                                % (int(time.time()) + 3600, int(time.time()) + 7200))
            assert st == 200 and lst["sessions"] == [], lst
            st, lst = relay.api("GET", "/api/recordings/pat?from=2000-01-01T00:00:00Z")
            assert st == 200 and len(lst["sessions"]) == 1, lst
            st, b = relay.api("GET", "/api/recordings/pat?from=yesterday")
            assert st == 400 and b["error"], (st, b)
            # Names never leave the directory.
            for bad in ("/api/recordings/..%2F..%2Fetc%2Fpasswd",
                        "/api/recordings/pat/../../etc/passwd",
                        "/api/recordings/pat/2026-01-01/00-00-00/..%2F..%2F..%2Fx.mp4",
                        "/api/recordings/pat%00/x", "/api/recordings/pat/%2e%2e",
                        "/api/recordings/pat/2026-01-01/00-00-00/passwd"):
                for m in ("GET", "DELETE"):
                    st, b = relay.api(m, bad)
                    assert 400 <= st < 500 and isinstance(b, dict) and b.get("error"), \
                        (m, bad, st, b)
            # A symlink planted in the tree is not followed out of it.
            sess = os.path.dirname(p)
            evil = os.path.join(root, sess, "2000-01-01T00-00-00Z.mp4")
            os.symlink("/etc/passwd", evil)
            os.makedirs(os.path.join(root, "evil"), exist_ok=True)
            os.symlink("/etc", os.path.join(root, "evil", "2000-01-01"))
            try:
                st, b = relay.api("GET", "/api/recordings/%s/2000-01-01T00-00-00Z.mp4" % sess)
                assert 400 <= st < 500 and b.get("error"), (st, b)
                st, b = relay.api("GET", "/api/recordings/evil")
                assert st == 200 and b["sessions"] == [], (st, b)
                st, b = relay.api("DELETE", "/api/recordings/evil/2000-01-01/00-00-00")
                assert 400 <= st < 500 and b.get("error"), (st, b)
            finally:
                os.unlink(evil)
                shutil.rmtree(os.path.join(root, "evil"))
            assert os.path.exists("/etc/passwd")
            # Delete a finished segment; the one being recorded is refused.
            st, b = relay.api("DELETE", "/api/recordings/" + p)
            assert st == 200 and b["segments"] == 1, (st, b)
            assert not os.path.exists(os.path.join(root, p))
            wait_for("segment-deleted event", lambda: ev.find(
                "segment-deleted", lambda d: d.get("path") == p), timeout=5)
            live = segments(root, "pat")[-1]
            st, b = relay.api("DELETE", "/api/recordings/" + live)
            assert st == 409 and b["error"], (st, b)
            st, b = relay.api("DELETE", "/api/recordings/" + os.path.dirname(live))
            assert st == 409 and b["error"], (st, b)
            st, b = relay.api("PUT", "/api/recordings/" + live)
            assert st == 405, (st, b)
            assert metric(relay, "steward_recording_deletions_total", '{reason="api"}') >= 1
            # PATCH takes only the recording fields, checked.
            for body, code in (({"record": "yes"}, 400), ({"record_segment": 1}, 422),
                               ({"fps": 5}, 422), ([1], 400)):
                st, b = relay.api("PATCH", "/api/inputs/pat", body)
                assert st == code and b["error"], (body, st, b)
            c.close()

        def manual_rm():
            # An old session made by hand from a finished segment.
            src = os.path.join(root, finished(root, "pat")[-2])
            old = os.path.join(root, "pat", "2026-01-01", "00-00-00")
            os.makedirs(old)
            wait_for("session-created of the hand-made folder", lambda: ev.find(
                "session-created", lambda d: d["session"] == "2026-01-01/00-00-00"), timeout=5)
            shutil.copy(src, os.path.join(old, "2026-01-01T00-00-00Z.mp4"))
            wait_for("segment-finished of the copy", lambda: ev.find(
                "segment-finished", lambda d: d["session"] == "2026-01-01/00-00-00"), timeout=5)
            st, b = relay.api("GET", "/api/recordings/pat?to=2026-01-02T00:00:00Z")
            assert st == 200 and [s["id"] for s in b["sessions"]] == ["2026-01-01/00-00-00"], b
            subprocess.run(["rm", "-rf", os.path.join(root, "pat", "2026-01-01")], check=True)
            wait_for("segment-deleted and session-deleted events", lambda: ev.find(
                "segment-deleted", lambda d: d["session"] == "2026-01-01/00-00-00") and ev.find(
                "session-deleted", lambda d: d["session"] == "2026-01-01/00-00-00"), timeout=5)

        def retention():
            # An old session of two segments for the age limit.
            src = os.path.join(root, finished(root, "pat")[-2])
            old = os.path.join(root, "pat", "2025-06-01", "10-00-00")
            os.makedirs(old)
            for n in ("2025-06-01T10-00-00Z.mp4", "2025-06-01T10-00-03Z.mp4"):
                shutil.copy(src, os.path.join(old, n))
                os.utime(os.path.join(old, n), (time.time() - 86400 * 30,) * 2)
            os.utime(old, (time.time() - 86400 * 30,) * 2)
            age0 = metric(relay, "steward_recording_deletions_total", '{reason="age"}')
            st, b = relay.api("PATCH", "/api/inputs/pat", {"record_max_age": 86400})
            assert st == 200 and b["record_max_age"] == 86400, (st, b)
            wait_for("the old session deleted by age",
                     lambda: not os.path.exists(os.path.join(root, "pat", "2025-06-01")),
                     timeout=10)
            assert metric(relay, "steward_recording_deletions_total",
                          '{reason="age"}') == age0 + 2
            # Bytes: keep about two segments' worth.
            segs = segments(root, "pat")
            size = max(os.path.getsize(os.path.join(root, s)) for s in segs)
            oldest = segs[0]
            size0 = metric(relay, "steward_recording_deletions_total", '{reason="size"}')
            st, b = relay.api("PATCH", "/api/inputs/pat", {"record_max_bytes": 2 * size + 1})
            assert st == 200, (st, b)
            wait_for("the oldest deleted by size",
                     lambda: not os.path.exists(os.path.join(root, oldest)), timeout=10)

            def within_bytes():
                # The segment being written is not counted; one that has just
                # finished is, from the janitor's next pass on.
                # The janitor may delete a segment between the listing and
                # its size: then look again at the next poll.
                left = segments(root, "pat")
                try:
                    total = sum(os.path.getsize(os.path.join(root, s)) for s in left)
                    busy = os.path.getsize(os.path.join(root, left[-1]))
                except FileNotFoundError:
                    return None
                return total - busy <= 2 * size + 1 or None
            wait_for("the segments kept within the byte limit", within_bytes, timeout=10)
            assert metric(relay, "steward_recording_deletions_total",
                          '{reason="size"}') > size0
            # The state file would have it; the API shows it.
            st, b = relay.api("PATCH", "/api/inputs/pat",
                              {"record_max_bytes": 0, "record_max_age": 0})
            assert st == 200, (st, b)

        def stop_finalises():
            # Stop 2 s into a segment: it must hold those 2 s.
            wait_for("a cam segment 2 s old", lambda: (lambda pa: pa[1] is not None and
                                                        1.8 < pa[1] < 2.4)(ev.newest("cam")),
                     timeout=10, interval=0.05)
            st, b = relay.api("PATCH", "/api/inputs/cam", {"record": False})
            assert st == 200 and b["recording"]["state"] == "off", (st, b)
            t_stop = time.time()
            last = segments(root, "cam")[-1]
            started = name_time(last)
            dur, frames, _, _, _ = probe(os.path.join(root, last))
            st, lst = relay.api("GET", "/api/recordings/cam")
            s = [s for se in lst["sessions"] for s in se["segments"] if s["path"] == last][0]
            assert s["cut"] is False, s
            # Named by the second its file was opened: it holds what came
            # since, less at most a fragment and that second's fraction,
            # plus what ffmpeg had buffered (interleaving audio and video).
            assert t_stop - started - 2.2 <= dur <= t_stop - started + 1.0, \
                (last, dur, t_stop - started)
            left = [p for p in relay.children()
                    if p["zombie"] or any("/cam/" in a for a in p["cmdline"])]
            assert not left, ms.describe(left)
            print("     stop: last segment %.2f s of %.2f s" % (dur, t_stop - started),
                  flush=True)

        def churn():
            st, b = relay.api("POST", "/api/inputs",
                              {"name": "churn", "kind": "test", "width": 160, "height": 120,
                               "fps": 10})
            assert st == 201, (st, b)

            def counts():
                st, r = relay.api("GET", "/system-resources")
                kinds = {k["kind"]: k["live"] for k in r["ledger"]["kinds"]}
                return (kinds.get("fd"), kinds.get("thread"), kinds.get("process"),
                        sorted(t["name"] for t in r["threads"]))
            time.sleep(1)
            base = counts()
            most = 0
            for i in range(CHURN):
                st, b = relay.api("PATCH", "/api/inputs/churn", {"record": True})
                assert st == 200, (st, b)
                if i % 5 == 0:  # a fifth of the cycles stop a running child (a new
                    # session takes a new second), the others a recorder starting
                    wait_for("a recorder child", lambda: rec_state(relay, "churn")["pid"] > 0,
                             timeout=10, interval=0.02)
                kids = [p for p in relay.children() if any("/churn/" in a for a in p["cmdline"])]
                most = max(most, len(kids))
                st, b = relay.api("PATCH", "/api/inputs/churn", {"record": False})
                assert st == 200 and b["recording"]["state"] == "off", (st, b)
            left = [p for p in relay.children()
                    if p["zombie"] or any("/churn/" in a for a in p["cmdline"])]
            assert not left, ms.describe(left)
            assert most <= 1, "%d recorder children at once" % most
            after = wait_for("fds, threads and children back to the baseline %r" % (base,),
                             lambda: (lambda c: c if c == base else None)(counts()), timeout=10)
            # Every stopped session was finished: each segment probes.
            segs = segments(root, "churn")
            assert segs, "no segment recorded"
            for p in segs[-5:]:
                probe(os.path.join(root, p))
            print("     churn: %d start/stop cycles, %d segments, back to %r" %
                  (CHURN, len(segs), after[:3]), flush=True)
            st, b = relay.api("DELETE", "/api/inputs/churn")
            assert st == 200, (st, b)

        def delete_finalises():
            st, b = relay.api("POST", "/api/inputs",
                              {"name": "gone", "kind": "test", "width": 160, "height": 120,
                               "fps": 10, "record": True})
            assert st == 201, (st, b)
            wait_for("gone's segment 2.5 s old", lambda: (
                lambda pa: pa[1] is not None and pa[1] > 2.5)(ev.newest("gone")), timeout=15,
                interval=0.05)
            last, age = ev.newest("gone")
            st, b = relay.api("DELETE", "/api/inputs/gone")
            assert st == 200, (st, b)
            dur, frames, _, _, _ = probe(os.path.join(root, last))
            assert age - 1.3 <= dur <= age + 1.0, (last, dur, age)
            left = [p for p in relay.children()
                    if p["zombie"] or any("/gone/" in a for a in p["cmdline"])]
            assert not left, ms.describe(left)
            # Its recordings stay, listed by name.
            st, b = relay.api("GET", "/api/recordings/gone")
            assert st == 200 and b["sessions"][0]["segments"][-1]["recording"] is False, b

        for name, fn in (("record_pattern", pattern), ("record_rtsp_copy", rtsp_copy),
                         ("record_mjpeg", mjpeg),
                         ("record_events", events), ("record_burst", burst),
                         ("record_orphan", orphan),
                         ("record_kill9", kill9),
                         ("record_api", api), ("record_manual_rm", manual_rm),
                         ("record_retention", retention), ("record_churn", churn),
                         ("record_delete_finalises", delete_finalises),
                         ("record_stop_finalises", stop_finalises)):
            check(name, fn)

        def shutdown():
            ev.close()
            last = segments(root, "pat")[-1]
            t_stop = time.time()
            rc, took, err = relay.terminate()
            assert_clean_exit(rc, took, err, 15)
            dur = probe(os.path.join(root, last))[0]
            started = name_time(last)
            assert t_stop - started - 2.2 <= dur <= t_stop - started + 0.5, \
                (last, dur, t_stop - started)
            left = ms.orphans(marker)
            assert not left, ms.describe(left)
        check("record_shutdown", shutdown)
    finally:
        ev.close()
        relay.kill()
        cam.stop()
        door.stop()


def run_relay_kill(build, tmp, marker):
    """kill -9 of the relay itself mid-segment."""
    mine = ms.new_marker("stwreck")
    env = dict(os.environ, STEWARD_TEST_MARKER=mine)
    root = os.path.join(tmp, "rec-kill")
    relay = Relay(build, ["--recordings", root, "--recordings-min-free", "0"], env=env)
    ev = Events(relay)
    try:
        def relay_sigkill():
            st, b = relay.api("POST", "/api/inputs",
                              {"name": "pat", "kind": "test", "width": 320, "height": 240,
                               "fps": 10, "record": True, "record_segment": 10})
            assert st == 201, (st, b)
            cut = wait_for("a segment 3.5 s into recording", lambda: (
                lambda pa: pa[0] if pa[1] is not None and 3.3 < pa[1] < 3.8 else None)(
                ev.newest("pat")), timeout=15, interval=0.05)
            age = time.time() - ev.created(cut)
            os.kill(relay.pid, signal.SIGKILL)
            # Its recorder dies with it (PR_SET_PDEATHSIG): nothing is left.
            wait_for("no child of the killed relay left",
                     lambda: not ms.orphans(mine, exclude=(relay.proc.pid,)), timeout=5)
            dur, frames, _, _, _ = probe(os.path.join(root, cut))
            assert dur >= age - 1.3, "relay killed after %.1f s: %.2f s playable" % (age, dur)
            print("     relay kill -9 after %.1f s: %.2f s playable" % (age, dur), flush=True)
        check("record_relay_sigkill", relay_sigkill)
    finally:
        ev.close()
        relay.kill()


def run_restart(build, tmp, marker):
    """Recording is part of an input's configuration: it survives a restart."""
    env = dict(os.environ, STEWARD_TEST_MARKER=marker)
    root = os.path.join(tmp, "rec-restart")
    state = os.path.join(tmp, "state.json")

    def restart():
        relay = Relay(build, ["--recordings", root, "--state", state], env=env)
        try:
            st, b = relay.api("POST", "/api/inputs",
                              {"name": "pat", "kind": "test", "width": 160, "height": 120,
                               "fps": 10, "record": True, "record_segment": 5,
                               "record_max_age": 3600})
            assert st == 201, (st, b)
            saved = json.load(open(state))["inputs"][0]
            assert (saved["record"], saved["record_segment"], saved["record_max_age"]) == \
                (True, 5, 3600), saved
            wait_for("recording", lambda: rec_state(relay, "pat")["state"] == "recording",
                     timeout=10)
            rc, took, err = relay.terminate()
            assert_clean_exit(rc, took, err, 15)
        finally:
            relay.kill()
        relay = Relay(build, ["--recordings", root, "--state", state], env=env)
        try:
            i = relay.input("pat")
            assert (i["record"], i["record_segment"], i["record_max_age"]) == (True, 5, 3600), i
            wait_for("recording again", lambda: rec_state(relay, "pat")["state"] == "recording",
                     timeout=10)
            wait_for("one session per run", lambda: len(
                {os.path.dirname(p) for p in segments(root, "pat")}) == 2, timeout=10)
            rc, took, err = relay.terminate()
            assert_clean_exit(rc, took, err, 15)
        finally:
            relay.kill()
    check("record_state_restart", restart)


def mount_tmpfs(path, size_mb):
    os.makedirs(path, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm" % size_mb, "tmpfs", path],
                       capture_output=True)
    return r.returncode == 0


def fill(path, leave_bytes):
    """Write a junk file in @path until only @leave_bytes are free (0: to
    ENOSPC). Returns its path."""
    junk = os.path.join(path, "junk")
    st = os.statvfs(path)
    want = st.f_bavail * st.f_frsize - leave_bytes
    # Unbuffered: a buffered file's close would flush what did not fit and
    # raise ENOSPC outside the try below.
    with open(junk, "wb", buffering=0) as f:
        chunk = b"\0" * (1 << 20)
        try:
            while want > 0:
                f.write(chunk[:min(len(chunk), want)])
                want -= min(len(chunk), want)
            if leave_bytes == 0:
                while True:
                    f.write(chunk)
        except OSError:
            pass
    return junk


def run_disk(build, tmp, marker):
    if os.geteuid() != 0:
        print("skip relay/record_disk_guard, relay/record_enospc: not root, no tmpfs can be "
              "mounted", flush=True)
        return
    env = dict(os.environ, STEWARD_TEST_MARKER=marker)
    small = os.path.join(tmp, "small")
    if not mount_tmpfs(small, 48):
        report("record_disk_guard", False, "cannot mount a tmpfs at %s" % small)
        return
    try:
        def guard():
            root = os.path.join(small, "rec")
            relay = Relay(build, ["--recordings", root, "--recordings-min-free", "20M"], env=env)
            ev = Events(relay)
            try:
                st, b = relay.api("POST", "/api/inputs",
                                  {"name": "pat", "kind": "test", "width": 320, "height": 240,
                                   "fps": 10, "record": True, "record_segment": 2})
                assert st == 201, (st, b)
                # Segments the janitor may delete: untouched for longer than
                # it counts a segment as being written (RELAY_REC_BUSY_S, 5 s).
                wait_for("2 segments the janitor may delete",
                         lambda: len(finished(root, "pat", idle=6)) >= 2,
                         timeout=30, interval=0.5)
                junk = fill(small, 12 << 20)
                wait_for("every finished segment deleted for space, then disk-full",
                         lambda: rec_state(relay, "pat")["state"] == "disk-full", timeout=20)
                m = metric(relay, "steward_recording_deletions_total", '{reason="space"}')
                assert m >= 1, "deletions for space: %s; %s" % (m, relay.stderr()[-1500:])
                m = metric(relay, "steward_recording_disk_full")
                assert m == 1, "disk_full metric %s" % m
                assert "disk full" in relay.stderr() and "recording paused" in relay.stderr(), \
                    relay.stderr()[-1500:]
                wait_for("recordings-disk event", lambda: ev.find(
                    "recordings-disk", lambda d: d["disk_full"]), timeout=5)
                assert ev.find("recording-state", lambda d: d["input"] == "pat" and
                               d["recording"]["state"] == "disk-full")
                n = len(segments(root, "pat"))
                time.sleep(3)
                assert len(segments(root, "pat")) <= n, "recorded while disk-full"
                os.unlink(junk)
                wait_for("recording again", lambda: rec_state(relay, "pat")["state"] ==
                         "recording", timeout=15)
                assert metric(relay, "steward_recording_disk_full") == 0
                assert "recording resumes" in relay.stderr()
                ev.close()
                rc, took, err = relay.terminate()
                assert_clean_exit(rc, took, err, 15)
            finally:
                ev.close()
                relay.kill()
        check("record_disk_guard", guard)

        def enospc():
            root = os.path.join(small, "rec2")
            relay = Relay(build, ["--recordings", root, "--recordings-min-free", "0"], env=env)
            try:
                for name in ("pat", "other"):
                    st, b = relay.api("POST", "/api/inputs",
                                      {"name": name, "kind": "test", "width": 320,
                                       "height": 240, "fps": 10, "record": name == "pat",
                                       "record_segment": 2})
                    assert st == 201, (st, b)
                # Segments the janitor may delete: untouched for longer than
                # it counts a segment as being written (RELAY_REC_BUSY_S, 5 s).
                wait_for("2 segments the janitor may delete",
                         lambda: len(finished(root, "pat", idle=6)) >= 2,
                         timeout=30, interval=0.5)
                before = {p: open(os.path.join(root, p), "rb").read()
                          for p in finished(root, "pat")}
                junk = fill(small, 0)
                wait_for("paused for ENOSPC", lambda: rec_state(relay, "pat")["state"] ==
                         "disk-full", timeout=20)
                assert "no space left on device" in relay.stderr()
                # The cut segment still plays; nothing finished was lost.
                for p, data in before.items():
                    assert open(os.path.join(root, p), "rb").read() == data, p
                cut = segments(root, "pat")[-1]
                os.unlink(junk)
                dur = probe(os.path.join(root, cut))[0]
                assert dur > 0, (cut, dur)
                relay.healthy()
                st, b = relay.raw("/snapshot/other.jpg")
                assert st == 200 and b[:2] == b"\xff\xd8", st
                wait_for("recording again after ENOSPC", lambda: rec_state(relay, "pat")[
                    "state"] == "recording", timeout=20)
                # A recording that starts on a full disk: its child opens a
                # segment and cannot write its header. No file that holds
                # no frame is left behind (nothing could play it).
                junk = fill(small, 0)
                st, b = relay.api("PATCH", "/api/inputs/other", {"record": True})
                assert st == 200, (st, b)
                wait_for("other paused for ENOSPC", lambda: rec_state(relay, "other")[
                    "state"] == "disk-full", timeout=20)
                assert "holds no frame" in relay.stderr(), relay.stderr()[-1500:]
                wait_for("pat paused for ENOSPC", lambda: rec_state(relay, "pat")[
                    "state"] == "disk-full", timeout=20)
                for name in ("other", "pat"):
                    for p in segments(root, name):
                        assert probe(os.path.join(root, p))[0] > 0, p
                os.unlink(junk)
                rc, took, err = relay.terminate()
                assert_clean_exit(rc, took, err, 15)
            finally:
                relay.kill()
        check("record_enospc", enospc)
    finally:
        subprocess.run(["umount", "-l", small], capture_output=True)


def main():
    if len(sys.argv) != 2:
        print("usage: relay_record.py BUILD_DIR", file=sys.stderr)
        return 2
    build = sys.argv[1]
    global ONLY_FNS
    only = [c for c in os.environ.get("STEWARD_RECORD_ONLY", "").split(",") if c]
    if only:
        ONLY_FNS = [globals()["run_" + c] for c in only]
    tmp = tempfile.mkdtemp(prefix="steward-record-test-")
    marker = ms.new_marker("stwrec")
    try:
        for fn in ONLY_FNS or (run_main, run_relay_kill, run_restart, run_disk):
            try:
                fn(build, tmp, marker)
            except Exception as e:
                report(fn.__name__, False, "%s: %s" % (type(e).__name__, e))
    finally:
        for r in list(RELAYS):
            r.kill()
        ms.kill_orphans(marker, report, "record_orphans")
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if RESULTS and all(RESULTS) else 1


if __name__ == "__main__":
    sys.exit(main())
