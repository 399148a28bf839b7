#!/usr/bin/env python3
"""Integration tests of the relay's ffmpeg inputs and push outputs against
real media servers (media_servers.py: gst-rtsp-server, nginx-rtmp, ffmpeg's
SRT and HLS, generated MP4 files), the real binary under `steward check`.

  ffmpeg_rtsp_ts          RTSP camera -> ffmpeg input -> .ts viewer: what the
                          viewer got is H.264 320x240 and decodes cleanly;
                          the API shows codec and size; a .ts viewer alone
                          starts no JPEG decoder
  ffmpeg_mjpeg_decoder    an MJPEG viewer gets JPEGs; the decoder stops about
                          5 s after the last one left
  ffmpeg_push_rtmp        RTSP -> push to nginx-rtmp, played back by ffprobe
  ffmpeg_push_srt         RTSP -> push to an ffmpeg SRT listener (if ffmpeg
                          has SRT), the received file probed
  ffmpeg_rtmp_input       publisher -> nginx -> relay pulls rtmp:// -> .ts
  ffmpeg_hls_input        live HLS playlist over HTTP -> .ts
  ffmpeg_file_loop        an MP4 file with loop: more frames than the file has
  ffmpeg_camera_restart   camera killed mid-stream: no-signal, then running
                          again; the .ts viewer and the push resume
  ffmpeg_push_late_target push target down at start: backoff, then running
  ffmpeg_ingest_killed    the ingest SIGKILLed from outside: restarted, never
                          two ingest children at a sampled moment
  ffmpeg_hung_camera      camera SIGSTOPped: ffmpeg's I/O time-out or the
                          watchdog ends the ingest, which comes back
  ffmpeg_hung_ffmpeg      the ingest ffmpeg SIGSTOPped: the watchdog kills it
  ffmpeg_silent_url       a TCP port that accepts and says nothing
  ffmpeg_passwords        camera credentials redacted in the API and stderr
  ffmpeg_shutdown_busy    (same relay) SIGTERM: exit 0, 0 leaks, no child left
  ffmpeg_missing_binary   PATH without ffmpeg: state "error", clear message
  ffmpeg_stalled_progress an "ffmpeg" that prints -progress blocks but no
                          output: the watchdog still fires
  ffmpeg_relay_sigkill    the relay SIGKILLed: no ffmpeg of it left after 2 s
  ffmpeg_churn            N create/delete cycles of a looping file input with
                          a push each (N = $STEWARD_FFMPEG_CHURN, default
                          100), plus on-demand .ts viewers coming and going,
                          under `steward check --trace-children`, beside the
                          other cases on a relay of its own: never two
                          ingest children, no zombie, fds/threads back to
                          baseline, 0 children, 0 leaks at SIGTERM
  ffmpeg_shutdown_20      10 inputs + 10 pushes running: SIGTERM, every child
                          gone, exit 0, clean report

Usage: relay_ffmpeg.py BUILD_DIR
STEWARD_FFMPEG_ONLY=name,name,... runs only those cases (with what they need).
Prints "ok   relay/NAME (S s)" or "FAIL relay/NAME: reason" per case and
exits non-zero if any failed. Every process it starts is stopped on the
way out, whatever happened.
"""
import http.client
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import media_servers as ms  # noqa: E402
from relay_basic import address_line, is_jpeg, read_parts  # noqa: E402

RESULTS = []
RELAYS = []  # every relay started, killed on the way out whatever happened
# A comma-separated list of case names runs only those (and what they need).
ONLY = [c for c in os.environ.get("STEWARD_FFMPEG_ONLY", "").split(",") if c]
CHURN = int(os.environ.get("STEWARD_FFMPEG_CHURN", "100"))


def wanted(name):
    return not ONLY or name in ONLY


def report(name, ok, why="", secs=0.0):
    RESULTS.append(ok)
    if ok:
        print("ok   relay/%s (%.1f s)" % (name, secs), flush=True)
    else:
        print("FAIL relay/%s: %s" % (name, why), flush=True)


def check(name, fn):
    t0 = time.monotonic()
    try:
        fn()
        report(name, True, secs=time.monotonic() - t0)
        return True
    except Exception as e:  # one case failing must not stop the others
        report(name, False, "%s: %s" % (type(e).__name__, e))
        return False


def wait_for(what, fn, timeout=20, interval=0.1):
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.0f s waiting for %s (last: %r)"
                                 % (timeout, what, last))
        time.sleep(interval)


class Relay:
    """`steward check [CHECK_OPTS] -- steward relay --listen 127.0.0.1:0
    --no-default-input --state none [EXTRA]` with @env; .pid is the relay
    (the launcher's child), .proc the launcher."""

    def __init__(self, build, extra=(), env=None, check_opts=()):
        steward = os.path.join(build, "src", "steward")
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [steward, "check", "--error-exitcode=9"] + list(check_opts) +
            ["--", steward, "relay", "--listen", "127.0.0.1:0", "--no-default-input",
             "--state", "none"] + list(extra),
            stdout=subprocess.PIPE, stderr=self.err, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True)
        self.pid = None
        RELAYS.append(self)
        line = address_line(self.proc, 30)
        m = re.match(rb"steward relay: serving http://127\.0\.0\.1:(\d+)/\n$", line)
        if not m:
            self.kill()
            raise RuntimeError("no address line, got %r; stderr: %s"
                               % (line, self.stderr()[-2000:]))
        self.port = int(m.group(1))
        with open("/proc/%d/task/%d/children" % (self.proc.pid, self.proc.pid)) as f:
            kids = f.read().split()
        if len(kids) != 1:
            self.kill()
            raise RuntimeError("expected one child of the launcher, got %r" % kids)
        self.pid = int(kids[0])

    def stderr(self):
        self.err.seek(0)
        return self.err.read().decode(errors="replace")

    def api(self, method, path, body=None, timeout=15):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            data = json.dumps(body).encode() if body is not None else None
            c.request(method, path, body=data,
                      headers={"Content-Type": "application/json"} if data else {})
            r = c.getresponse()
            raw = r.read()
            try:
                return r.status, json.loads(raw) if raw else None
            except ValueError:
                return r.status, raw
        finally:
            c.close()

    def raw(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def create(self, name, url, **kw):
        body = {"name": name, "kind": "ffmpeg", "url": url}
        body.update(kw)
        st, b = self.api("POST", "/api/inputs", body)
        assert st == 201, "create %s: %s %s" % (name, st, b)
        return b

    def delete(self, name):
        st, b = self.api("DELETE", "/api/inputs/" + name)
        assert st == 200, "delete %s: %s %s" % (name, st, b)

    def push(self, name, url):
        st, b = self.api("POST", "/api/inputs/%s/outputs" % name, {"type": "push", "url": url})
        assert st == 201, "push %s -> %s: %s %s" % (name, url, st, b)
        return b

    def output(self, name, oid):
        st, b = self.api("GET", "/api/inputs/%s/outputs/%s" % (name, oid))
        assert st == 200, (st, b)
        return b

    def input(self, name):
        st, b = self.api("GET", "/api/inputs/" + name)
        assert st == 200, "get %s: %s %s" % (name, st, b)
        return b

    def ingest(self, name):
        return self.input(name)["ffmpeg"]["ingest"]

    def wait_state(self, name, states, timeout=30):
        if isinstance(states, str):
            states = (states,)
        last = {}

        def ready():
            last["input"] = i = self.input(name)
            return i if i["state"] in states else None
        try:
            return wait_for("input %s in %s" % (name, states), ready, timeout)
        except AssertionError as e:
            raise AssertionError("%s; the input: %s" % (e, json.dumps(last.get("input"))[:1500]))

    def healthy(self):
        st, b = self.api("GET", "/healthz", timeout=5)
        assert st == 200 and b == {"status": "ok"}, (st, b)

    def children(self):
        return ms.children_of(self.pid)

    def terminate(self, timeout=20):
        """SIGTERM the relay; (exit code, seconds, stderr)."""
        t0 = time.monotonic()
        os.kill(self.pid, signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("still running %d s after SIGTERM" % timeout)
        return rc, time.monotonic() - t0, self.stderr()

    def kill(self):
        for pid in (self.pid, self.proc.pid):
            if pid is not None:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        if self in RELAYS:
            RELAYS.remove(self)


def assert_clean_exit(rc, took, err, limit, traced_pid=None):
    """The relay shut down clean and the checker found no leak in it. With
    @traced_pid (the relay's pid, under --trace-children) the children's
    own leaks (ffmpeg's, when it is stopped) are theirs: the launcher then
    exits 9 for them, and only the relay's report must be clean."""
    assert "shutdown: clean: exit code 0 (0 stage(s) late, 0 leaked)" in err, err[-3000:]
    if traced_pid is None:
        m = re.search(r"SUMMARY: (\d+) leaks", err)
        assert m and m.group(1) == "0", "checker: %s" % err[-3000:]
        assert rc == 0, "exit %d (9: the checker found leaks): %s" % (rc, err[-2000:])
    else:
        m = re.search(r"==%d== SUMMARY: (\d+) leaks" % traced_pid, err)
        assert m and m.group(1) == "0", "checker: %s" % err[-3000:]
        leaky = re.findall(r"^steward check: pid (\d+) ", err, re.M)
        assert str(traced_pid) not in leaky, "the relay leaked: %s" % err[-3000:]
        assert rc == 0 or (rc == 9 and leaky), "exit %d: %s" % (rc, err[-2000:])
    assert took < limit, "shutdown took %.1f s" % took


class TsViewer:
    """GET /stream/NAME.ts read on a thread into a file; mark() starts a new
    file (what came after a moment), .total bytes so far."""

    def __init__(self, relay, name, path):
        self.conn = http.client.HTTPConnection("127.0.0.1", relay.port, timeout=30)
        self.conn.request("GET", "/stream/%s.ts" % name)
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200, self.resp.status
        ct = self.resp.getheader("Content-Type")
        assert ct == "video/mp2t", ct
        self.lock = threading.Lock()
        self.path = path
        self.f = open(path, "wb")
        self.total = 0
        self.closed = False
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            while not self.closed:
                data = self.resp.read1(65536)
                if not data:
                    break
                with self.lock:
                    if self.closed:
                        break
                    self.f.write(data)
                    self.total += len(data)
        except Exception as e:  # closed under us, or a real error
            if not self.closed:
                self.error = e

    def mark(self, path):
        with self.lock:
            self.f.close()
            self.path = path
            self.f = open(path, "wb")
            start = self.total
        return start

    def close(self):
        with self.lock:
            self.closed = True
            self.f.close()
        try:
            self.conn.sock.shutdown(socket.SHUT_RDWR)
        except (OSError, AttributeError):
            pass
        self.conn.close()
        self.thread.join(10)


def read_ts_file(relay, name, path, seconds, min_bytes=1):
    v = TsViewer(relay, name, path)
    try:
        time.sleep(seconds)
        assert v.total >= min_bytes, "the .ts viewer got %d bytes in %.0f s" % (v.total, seconds)
        assert v.error is None, v.error
    finally:
        v.close()
    return path


def expect_video(r, codec, w, h, min_frames, what):
    assert (r["codec"], r["width"], r["height"]) == (codec, w, h), \
        "%s: got %s %sx%s, want %s %dx%d" % (what, r["codec"], r["width"], r["height"],
                                             codec, w, h)
    assert r["frames"] >= min_frames, "%s: %d frames, want >= %d" % (what, r["frames"], min_frames)


def probe_ts_viewer(relay, name, w, h, seconds=2, min_frames=10):
    url = "http://127.0.0.1:%d/stream/%s.ts" % (relay.port, name)
    r = ms.ffprobe_stream(url, seconds=seconds, timeout=40)
    expect_video(r, "h264", w, h, min_frames, url)
    return r


def ingest_procs(relay, needle):
    """Children of the relay whose command line holds @needle (the input's
    URL), zombies included."""
    return [p for p in relay.children() if any(needle in a for a in p["cmdline"])
            and "pipe:0" not in p["cmdline"]]


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def thread_count(pid):
    return len(os.listdir("/proc/%d/task" % pid))


def has_srt():
    try:
        out = subprocess.run([ms.FFMPEG, "-hide_banner", "-protocols"], capture_output=True,
                             timeout=20).stdout.decode()
    except (OSError, subprocess.TimeoutExpired):
        return False
    return re.search(r"^\s*srt\s*$", out, re.M) is not None


class SilentServer:
    """A TCP port on 127.0.0.1 that accepts connections and never says a
    word (held open until stop())."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping:
            r, _, _ = select.select([self.sock], [], [], 0.2)
            if r and not self.stopping:
                c, _ = self.sock.accept()
                self.conns.append(c)

    def stop(self):
        self.stopping = True
        self.thread.join()
        for c in self.conns:
            c.close()
        self.sock.close()


# ---------------------------------------------------------------- main relay


def run_main(build, tmp, marker):
    env = dict(os.environ, STEWARD_TEST_MARKER=marker)
    cam = ms.RtspCamera(width=320, height=240, fps=15, tmpdir=tmp)
    cam.start()
    nginx = ms.NginxRtmp(os.path.join(tmp, "nginx"))
    os.makedirs(nginx.dir)
    nginx.start()
    relay = Relay(build, env=env)
    secrets_seen = ["s3cret-Pw9", "wr0ng-Pw7"]
    try:
        relay.create("cam", cam.url, timeout=3)
        relay.wait_state("cam", "running")

        def rtsp_ts():
            path = read_ts_file(relay, "cam", os.path.join(tmp, "cam.ts"), 3, 10000)
            r = ms.ffprobe_stream(path, seconds=None)
            expect_video(r, "h264", 320, 240, 15, path)
            errs = ms.decode_errors(path)
            assert errs == [], "decoding what the viewer got: %s" % errs[:5]
            i = relay.input("cam")
            m = i["ffmpeg"]["media"]
            assert (m["video_codec"], m["width"], m["height"]) == ("h264", 320, 240), m
            dec = i["ffmpeg"]["decoder"]
            assert dec["state"] == "stopped" and dec["spawns"] == 0, \
                "a .ts viewer started the decoder: %s" % dec
            print("     .ts viewer: %d frames h264 320x240, decodes cleanly" % r["frames"],
                  flush=True)

        def mjpeg_decoder():
            c = http.client.HTTPConnection("127.0.0.1", relay.port, timeout=20)
            try:
                c.request("GET", "/stream/cam")
                r = c.getresponse()
                assert r.status == 200, r.status
                parts = read_parts(r, 5, timeout=20)
                assert all(is_jpeg(p) for p in parts), "not JPEGs"
                dec = relay.input("cam")["ffmpeg"]["decoder"]
                assert dec["state"] == "running" and dec["pid"] > 0, dec
                r.close()
            finally:
                c.close()
            left = time.monotonic()
            wait_for("the viewer gone", lambda: relay.input("cam")["viewers"] == 0, 10)
            wait_for("the decoder stopped",
                     lambda: relay.input("cam")["ffmpeg"]["decoder"]["state"] == "stopped", 15)
            took = time.monotonic() - left
            assert 4.0 <= took <= 9.0, "decoder stopped %.1f s after the last viewer" % took
            assert relay.input("cam")["ffmpeg"]["decoder"]["pid"] == 0
            print("     decoder stopped %.1f s after the last MJPEG viewer left" % took,
                  flush=True)

        def push_rtmp():
            out = relay.push("cam", nginx.url("cam"))
            wait_for("push running", lambda: relay.output("cam", out["id"])["state"] == "running")
            r = ms.ffprobe_stream(nginx.url("cam"), seconds=2, timeout=40)
            expect_video(r, "h264", 320, 240, 10, nginx.url("cam"))
            o = relay.output("cam", out["id"])
            assert o["bytes"] > 0 and o["pid"] > 0, o

        def push_srt():
            if not has_srt():
                print("     skip: this ffmpeg has no SRT", flush=True)
                return
            with ms.srt_listener(os.path.join(tmp, "srt")) as lst:
                out = relay.push("cam", lst.url)
                wait_for("SRT push bytes",
                         lambda: relay.output("cam", out["id"])["bytes"] > 100000, 30)
                st, _ = relay.api("DELETE", "/api/inputs/cam/outputs/%d" % out["id"])
                assert st == 200, st
                lst.wait_done(20)
                r = ms.ffprobe_stream(lst.path, seconds=None)
                expect_video(r, "h264", 320, 240, 10, lst.path)

        def rtmp_input():
            with ms.rtmp_publisher(nginx.url("pub"), width=352, height=288, fps=15):
                relay.create("rtmpin", nginx.url("pub"), timeout=5)
                relay.wait_state("rtmpin", "running")
                probe_ts_viewer(relay, "rtmpin", 352, 288)
                relay.delete("rtmpin")

        def hls_input():
            with ms.hls_server(os.path.join(tmp, "hls"), width=256, height=144, fps=15) as hls:
                relay.create("hlsin", hls.url, timeout=5)
                relay.wait_state("hlsin", "running")
                probe_ts_viewer(relay, "hlsin", 256, 144)
                relay.delete("hlsin")

        def file_loop():
            path = ms.mp4_file(os.path.join(tmp, "mp4"), seconds=1, with_audio=True,
                               width=160, height=120, fps=25)
            relay.create("file", path, loop=True)
            relay.wait_state("file", "running")
            r = probe_ts_viewer(relay, "file", 160, 120, seconds=3, min_frames=26)
            assert r["audio_codec"] == "aac", r["streams"]
            ing = relay.ingest("file")
            assert ing["restarts"] == 0 and ing["spawns"] == 1, ing
            relay.delete("file")
            print("     1 s file looped: %d frames in 3 s of viewing" % r["frames"], flush=True)

        def camera_restart():
            v = TsViewer(relay, "cam", os.path.join(tmp, "before.ts"))
            try:
                pushes = relay.api("GET", "/api/inputs/cam/outputs")[1]["outputs"]
                push = [o for o in pushes if o["type"] == "push"][0]
                wait_for("viewer bytes", lambda: v.total > 10000, 10)
                spawns = relay.ingest("cam")["spawns"]
                cam.kill()
                t0 = time.monotonic()
                relay.wait_state("cam", "no-signal", 15)
                print("     no-signal %.1f s after the camera died" % (time.monotonic() - t0),
                      flush=True)
                cam.start()
                start = v.mark(os.path.join(tmp, "after.ts"))
                relay.wait_state("cam", "running", 40)
                assert relay.ingest("cam")["spawns"] > spawns
                wait_for("viewer bytes after the restart", lambda: v.total - start > 30000, 20)
                assert v.error is None, v.error
            finally:
                v.close()
            r = ms.ffprobe_stream(os.path.join(tmp, "after.ts"), seconds=None)
            expect_video(r, "h264", 320, 240, 5, "the .ts viewer after the restart")
            wait_for("push running again",
                     lambda: relay.output("cam", push["id"])["state"] == "running", 40)
            r = ms.ffprobe_stream(nginx.url("cam"), seconds=2, timeout=40)
            expect_video(r, "h264", 320, 240, 10, "the push after the restart")

        def push_late_target():
            port = ms.free_port()
            url = "rtmp://127.0.0.1:%d/live/late" % port
            out = relay.push("cam", url)
            wait_for("push in backoff",
                     lambda: (lambda o: o["state"] == "backoff" and o["restarts"] >= 1)(
                         relay.output("cam", out["id"])), 20)
            d = os.path.join(tmp, "nginx-late")
            os.makedirs(d)
            with ms.nginx_rtmp(d, port=port):
                wait_for("push running", lambda: relay.output("cam", out["id"])["state"]
                         == "running", 40)
                r = ms.ffprobe_stream(url, seconds=2, timeout=40)
                expect_video(r, "h264", 320, 240, 10, url)
                st, _ = relay.api("DELETE", "/api/inputs/cam/outputs/%d" % out["id"])
                assert st == 200, st

        def ingest_killed():
            i0 = relay.ingest("cam")
            assert i0["state"] == "running" and i0["pid"] > 0, i0
            os.kill(i0["pid"], signal.SIGKILL)
            most = 0
            samples = 0
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                n = len(ingest_procs(relay, cam.url_without_auth))
                most = max(most, n)
                samples += 1
                i = relay.ingest("cam")
                if i["restarts"] > i0["restarts"] and i["state"] == "running" \
                        and i["pid"] not in (0, i0["pid"]):
                    break
                time.sleep(0.02)
            else:
                raise AssertionError("not running again: %s" % relay.ingest("cam"))
            for _ in range(20):
                most = max(most, len(ingest_procs(relay, cam.url_without_auth)))
                time.sleep(0.05)
            assert most <= 1, "%d ingest children at once" % most
            assert "SIGKILL" in (i["last_exit"] or ""), i
            relay.wait_state("cam", "running")
            print("     restarted (restarts %d -> %d), at most %d ingest child in %d samples"
                  % (i0["restarts"], i["restarts"], most, samples), flush=True)

        def hung_camera():
            # A camera that hangs with its connection open: ffmpeg's own I/O
            # time-out (the input's "timeout", 3 s) or else the watchdog
            # (timeout + 2 s, then the 2 s grace) ends the ingest, and a new
            # one brings the input back once the camera moves again.
            i0 = relay.ingest("cam")
            cam.pause()
            try:
                t0 = time.monotonic()
                relay.wait_state("cam", "no-signal", 30)
                took = time.monotonic() - t0
                i = relay.ingest("cam")
                assert i["last_exit"] and i["pid"] != i0["pid"], i
                assert took < 3 + 2 + 2 + 3, "the ingest ended only after %.1f s" % took
            finally:
                cam.resume()
            relay.wait_state("cam", "running", 40)
            assert relay.ingest("cam")["spawns"] > i0["spawns"]
            print("     hung camera: the ingest ended after %.1f s (%s: %s)"
                  % (took, i["last_exit"], (i["last_error"] or "")[-60:]), flush=True)

        def hung_ffmpeg():
            # ffmpeg itself hangs (SIGSTOP: no output, no exit, SIGTERM stays
            # pending): only the watchdog can end it, with SIGKILL after the
            # grace period.
            i0 = relay.ingest("cam")
            assert i0["state"] == "running" and i0["pid"] > 0, i0
            os.kill(i0["pid"], signal.SIGSTOP)
            t0 = time.monotonic()
            relay.wait_state("cam", "no-signal", 30)
            took = time.monotonic() - t0
            i = relay.ingest("cam")
            assert "watchdog" in (i["last_exit"] or ""), i
            assert "SIGKILL" in i["last_exit"], i
            assert ms.proc_info(i0["pid"]) is None or i0["pid"] not in \
                [p["pid"] for p in relay.children()], "the stopped ffmpeg is still a child"
            assert 4.5 <= took <= 11.0, "ended after %.1f s (watchdog 5 s + grace 2 s)" % took
            relay.wait_state("cam", "running", 40)
            assert relay.ingest("cam")["spawns"] > i0["spawns"]
            print("     hung ffmpeg: ended after %.1f s, last_exit %r"
                  % (took, i["last_exit"]), flush=True)

        def silent_url():
            srv = SilentServer()
            try:
                relay.create("silent", "rtsp://127.0.0.1:%d/x" % srv.port, timeout=2)
                wait_for("an error", lambda: relay.ingest("silent")["last_error"]
                         or relay.ingest("silent")["last_exit"], 30)
                t0 = time.monotonic()
                while time.monotonic() - t0 < 3:
                    i = relay.input("silent")
                    assert i["state"] != "running", i
                    relay.healthy()
                    time.sleep(0.3)
                i = relay.input("silent")
                assert i["state"] in ("starting", "no-signal"), i
                assert i["ffmpeg"]["ingest"]["last_error"], i
                print("     silent server: %s, last_exit %r, last_error %r"
                      % (i["state"], i["ffmpeg"]["ingest"]["last_exit"],
                         i["ffmpeg"]["ingest"]["last_error"][:100]), flush=True)
                relay.delete("silent")
            finally:
                srv.stop()

        def passwords():
            with ms.rtsp_camera(width=160, height=120, fps=10, user="admin",
                                password=secrets_seen[0], tmpdir=tmp) as scam:
                relay.create("secure", scam.url, timeout=3)
                relay.wait_state("secure", "running")
                wrong = scam.url.replace(secrets_seen[0], secrets_seen[1])
                relay.create("wrongpw", wrong, timeout=3)
                wait_for("a 401", lambda: "401" in (relay.ingest("wrongpw")["last_error"] or ""),
                         30)
                relay.push("secure", "srt://127.0.0.1:9/?passphrase=" + secrets_seen[0] + "x")
                for path in ("/api/inputs", "/api/inputs/secure", "/api/inputs/wrongpw",
                             "/api/inputs/secure/outputs"):
                    st, body = relay.raw(path)
                    assert st == 200, (path, st)
                    text = body.decode()
                    for s in secrets_seen:
                        assert s not in text, "%s shows a password: %s" % (path, text[:600])
                    if "outputs" not in path:
                        assert "admin:***@" in text, "%s: %s" % (path, text[:300])
                relay.delete("secure")
                relay.delete("wrongpw")
            err = relay.stderr()
            for s in secrets_seen:
                assert s not in err, "stderr shows a password: %s" % err[-2000:]

        def shutdown_busy():
            relay.create("busy", cam.url, timeout=3)
            relay.wait_state("busy", "running")
            kids = [p["pid"] for p in relay.children()]
            assert kids, "no children"
            rc, took, err = relay.terminate()
            assert_clean_exit(rc, took, err, 10)
            left = ms.wait_for_none(lambda: ms.orphans(marker), 2)
            assert not left, "left: %s" % ms.describe(left)
            for s in secrets_seen:
                assert s not in err, "stderr shows a password"

        cases = [("ffmpeg_rtsp_ts", rtsp_ts), ("ffmpeg_mjpeg_decoder", mjpeg_decoder),
                 ("ffmpeg_push_rtmp", push_rtmp), ("ffmpeg_push_srt", push_srt),
                 ("ffmpeg_rtmp_input", rtmp_input), ("ffmpeg_hls_input", hls_input),
                 ("ffmpeg_file_loop", file_loop), ("ffmpeg_camera_restart", camera_restart),
                 ("ffmpeg_push_late_target", push_late_target),
                 ("ffmpeg_ingest_killed", ingest_killed), ("ffmpeg_hung_camera", hung_camera),
                 ("ffmpeg_hung_ffmpeg", hung_ffmpeg),
                 ("ffmpeg_silent_url", silent_url), ("ffmpeg_passwords", passwords),
                 ("ffmpeg_shutdown_busy", shutdown_busy)]
        for name, fn in cases:
            if wanted(name) or name == "ffmpeg_shutdown_busy":
                check(name, fn)
    finally:
        relay.kill()
        nginx.stop()
        cam.stop()


# ---------------------------------------------------------------- other relays


def run_missing_binary(build, tmp):
    path = ms.mp4_file(os.path.join(tmp, "mp4"), seconds=1, with_audio=False,
                       width=160, height=120)
    empty = os.path.join(tmp, "empty-bin")
    os.makedirs(empty, exist_ok=True)
    relay = Relay(build, env=dict(os.environ, PATH=empty))
    try:
        def missing_binary():
            relay.create("nobin", path, loop=True)
            i = relay.wait_state("nobin", "error", 15)
            err = i["ffmpeg"]["ingest"]["last_error"] or ""
            assert "ffmpeg not found" in err, i["ffmpeg"]["ingest"]
            relay.healthy()
            assert relay.children() == [], relay.children()
            rc, took, err = relay.terminate()
            assert_clean_exit(rc, took, err, 10)

        check("ffmpeg_missing_binary", missing_binary)
    finally:
        relay.kill()


STALLED_FFMPEG = """#!/bin/sh
# An ffmpeg whose input stalled: alive, printing a -progress block every
# half second (as ffmpeg's main loop does while its demuxer waits), never a
# byte more on stdout.
echo "Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'stalled':" >&2
while :; do
    printf 'frame=10\\ntotal_size=1000\\nout_time_us=400000\\nprogress=continue\\n' >&2
    sleep 0.5
done
"""


def run_stalled_progress(build, tmp):
    path = ms.mp4_file(os.path.join(tmp, "mp4"), seconds=1, with_audio=False,
                       width=160, height=120)
    fake = os.path.join(tmp, "stalled-bin")
    os.makedirs(fake, exist_ok=True)
    with open(os.path.join(fake, "ffmpeg"), "w") as f:
        f.write(STALLED_FFMPEG)
    os.chmod(os.path.join(fake, "ffmpeg"), 0o755)
    relay = Relay(build, env=dict(os.environ, PATH=fake + ":" + os.environ.get("PATH", "")))
    try:
        def stalled_progress():
            relay.create("stalled", path, timeout=2)
            t0 = time.monotonic()
            i = wait_for("the watchdog", lambda: (lambda i: i if "watchdog" in (
                i["last_exit"] or "") else None)(relay.ingest("stalled")), 20)
            took = time.monotonic() - t0
            assert took < 12, "the watchdog fired after %.1f s (timeout 2 s + 2 s)" % took
            relay.delete("stalled")
            rc, tterm, err = relay.terminate()
            assert_clean_exit(rc, tterm, err, 10)
            print("     progress without output: %s after %.1f s" % (i["last_exit"], took),
                  flush=True)

        check("ffmpeg_stalled_progress", stalled_progress)
    finally:
        relay.kill()


def run_sigkill(build, tmp, nginx, mp4):
    marker = ms.new_marker("stwff")
    relay = Relay(build, env=dict(os.environ, STEWARD_TEST_MARKER=marker))
    try:
        def relay_sigkill():
            for k in range(3):
                relay.create("k%d" % k, mp4, loop=True)
                relay.push("k%d" % k, nginx.url("kill%d" % k))
            for k in range(3):
                relay.wait_state("k%d" % k, "running")
            # A JPEG decoder too: a snapshot asks for one.
            wait_for("a snapshot", lambda: relay.raw("/snapshot/k0.jpg")[0] == 200, 20)
            kids = relay.children()
            assert len(kids) >= 7, "only %d children: %s" % (len(kids), ms.describe(kids))
            carriers = ms.orphans(marker, exclude=(relay.proc.pid,))
            assert {p["pid"] for p in kids} <= {p["pid"] for p in carriers}, \
                "the children do not carry the marker"
            os.kill(relay.pid, signal.SIGKILL)
            t0 = time.monotonic()
            # Dead within 2 s: gone, or a zombie left for init to reap.
            left = ms.wait_for_none(lambda: [
                p for p in kids if not (ms.proc_info(p["pid"]) or {"zombie": True})["zombie"]],
                2, 0.02)
            took = time.monotonic() - t0
            assert not left, "after 2 s: %s" % ms.describe(left)
            ms.wait_for_none(lambda: [p for p in kids if ms.proc_info(p["pid"])], 5)
            # Nothing else that inherited the marker either (the launcher
            # aside, which only reports and exits).
            left = ms.orphans(marker, exclude=(relay.proc.pid,))
            assert not left, "left: %s" % ms.describe(left)
            print("     %d children gone %.2f s after the relay was killed" % (len(kids), took),
                  flush=True)

        check("ffmpeg_relay_sigkill", relay_sigkill)
    finally:
        relay.kill()
        left = ms.orphans(marker)
        for p in left:  # only what carries this run's marker
            try:
                os.kill(p["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass


def run_churn(build, tmp, nginx, mp4):
    marker = ms.new_marker("stwff")
    relay = Relay(build, env=dict(os.environ, STEWARD_TEST_MARKER=marker),
                  extra=["--on-demand-grace-ms", "300"], check_opts=["--trace-children"])
    try:
        def churn():
            time.sleep(0.5)
            base_fd, base_thr = fd_count(relay.pid), thread_count(relay.pid)
            worst = {"ingest": 0, "zombies": [], "samples": 0, "transient": 0}

            seen = {}

            def sample(names, when):
                kids = relay.children()
                worst["samples"] += 1
                for p in kids:
                    if p["cmdline"]:
                        seen[p["pid"]] = " ".join(p["cmdline"])
                # A child caught between its exit and its reaping is a zombie
                # for an instant; one still unreaped a second later (the
                # jobs look at least once a second) is a leak.
                z = [p for p in kids if p["zombie"]]
                if z:
                    worst["transient"] += 1
                    time.sleep(1.0)
                    z = [p for p in z if (ms.proc_info(p["pid"]) or {}).get("zombie")]
                if z:
                    worst["zombies"].append("%s: " % when + "; ".join("%d zombie, was: %s" % (
                        p["pid"], seen.get(p["pid"], "?")[-160:]) for p in z))
                for n in names:
                    c = sum(1 for p in kids if "pipe:0" not in p["cmdline"]
                            and any(n in a for a in p["cmdline"]))
                    worst["ingest"] = max(worst["ingest"], c)

            # An on-demand input: .ts viewers come and go on the side.
            od = os.path.join(tmp, "ondemand.mp4")
            shutil.copy(mp4, od)
            relay.create("od", od, loop=True, on_demand=True)
            stop = threading.Event()
            od_stats = {"views": 0, "bytes": 0, "errors": []}

            def viewers():
                k = 0
                while not stop.is_set():
                    try:
                        c = http.client.HTTPConnection("127.0.0.1", relay.port, timeout=20)
                        c.request("GET", "/stream/od.ts")
                        r = c.getresponse()
                        got = 0
                        t0 = time.monotonic()
                        while got < 2000 and time.monotonic() - t0 < 15:
                            d = r.read1(65536)
                            if not d:
                                break
                            got += len(d)
                        c.close()
                        od_stats["views"] += 1
                        od_stats["bytes"] += got
                        if got < 2000:
                            od_stats["errors"].append("view %d: %d bytes" % (k, got))
                    except Exception as e:
                        od_stats["errors"].append("view %d: %s" % (k, e))
                    k += 1
                    # Back within the grace period, or after it.
                    stop.wait(0.1 if k % 2 else 0.6)

            vt = threading.Thread(target=viewers, daemon=True)
            vt.start()
            t0 = time.monotonic()
            try:
                for n in range(CHURN):
                    name = "ch%d" % n
                    src = os.path.join(tmp, "churn", "%s.mp4" % name)
                    if n == 0:
                        os.makedirs(os.path.dirname(src), exist_ok=True)
                    if not os.path.exists(src):
                        os.link(mp4, src)
                    relay.create(name, src, loop=True)
                    relay.push(name, nginx.url(name))
                    if n % 10 == 0:
                        relay.wait_state(name, "running", 30)
                    sample([name + ".mp4", "od.mp4"], "%s created" % name)
                    relay.delete(name)
                    sample(["od.mp4"], "%s deleted" % name)
                    os.unlink(src)
            finally:
                stop.set()
                vt.join(30)
            took = time.monotonic() - t0
            assert worst["ingest"] <= 1, "%d ingest children for one input" % worst["ingest"]
            assert not worst["zombies"], "zombies: %s; relay: %s" % (
                worst["zombies"][:3], "\n".join(
                    l for l in relay.stderr().splitlines() if "steward relay" in l)[-3000:])
            assert od_stats["views"] >= 3 and not od_stats["errors"], od_stats
            relay.delete("od")
            left = ms.wait_for_none(relay.children, 5)
            assert not left, "children left: %s" % ms.describe(left)
            fds = wait_for("fds back to %d" % base_fd,
                           lambda: fd_count(relay.pid) <= base_fd or None, 5)
            thr = wait_for("threads back to %d" % base_thr,
                           lambda: thread_count(relay.pid) <= base_thr or None, 5)
            del fds, thr
            rc, tterm, err = relay.terminate()
            assert_clean_exit(rc, tterm, err, 10, traced_pid=relay.pid)
            late = err.count("did not stop in time")
            print("     %d cycles in %.1f s (%.0f ms each), %d .ts views of an on-demand input, "
                  "%d samples, %d zombie(s) reaped within 1 s, %d delete(s) past the deadline"
                  % (CHURN, took, 1000 * took / max(1, CHURN), od_stats["views"],
                     worst["samples"], worst["transient"], late), flush=True)

        check("ffmpeg_churn", churn)
    finally:
        relay.kill()
        for p in ms.orphans(marker):
            try:
                os.kill(p["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass


def run_shutdown_20(build, tmp, nginx, mp4):
    marker = ms.new_marker("stwff")
    relay = Relay(build, env=dict(os.environ, STEWARD_TEST_MARKER=marker))
    try:
        def shutdown_20():
            for k in range(10):
                relay.create("s%d" % k, mp4, loop=True)
                relay.push("s%d" % k, nginx.url("sd%d" % k))
            for k in range(10):
                relay.wait_state("s%d" % k, "running", 60)
            wait_for("10 pushes running", lambda: all(
                o["state"] == "running" and o["bytes"] > 0
                for k in range(10)
                for o in relay.api("GET", "/api/inputs/s%d/outputs" % k)[1]["outputs"]), 60)
            kids = relay.children()
            assert len(kids) == 20, "%d children: %s" % (len(kids), ms.describe(kids))
            rc, took, err = relay.terminate()
            gone = ms.wait_for_none(lambda: [p for p in kids if ms.proc_info(p["pid"])], 0.5)
            assert not gone, "still there: %s" % ms.describe(gone)
            assert not ms.orphans(marker), ms.describe(ms.orphans(marker))
            assert_clean_exit(rc, took, err, 10)
            print("     20 children, SIGTERM to exit in %.2f s" % took, flush=True)

        check("ffmpeg_shutdown_20", shutdown_20)
    finally:
        relay.kill()
        for p in ms.orphans(marker):
            try:
                os.kill(p["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass


def guarded(name, fn, *args):
    try:
        fn(*args)
    except Exception as e:
        report("ffmpeg_" + name, False, "could not start: %s: %s" % (type(e).__name__, e))


def main():
    if len(sys.argv) != 2:
        print("usage: relay_ffmpeg.py BUILD_DIR", file=sys.stderr)
        return 2
    build = sys.argv[1]
    tmp = tempfile.mkdtemp(prefix="steward-ffmpeg-test-")
    marker = ms.new_marker("stwff")
    main_cases = ("ffmpeg_rtsp_ts ffmpeg_mjpeg_decoder ffmpeg_push_rtmp ffmpeg_push_srt "
                  "ffmpeg_rtmp_input ffmpeg_hls_input ffmpeg_file_loop ffmpeg_camera_restart "
                  "ffmpeg_push_late_target ffmpeg_ingest_killed ffmpeg_hung_camera "
                  "ffmpeg_hung_ffmpeg ffmpeg_silent_url ffmpeg_passwords "
                  "ffmpeg_shutdown_busy").split()
    churn = None
    nginx = None
    try:
        later = [n for n in ("relay_sigkill", "churn", "shutdown_20") if wanted("ffmpeg_" + n)]
        if later:
            nginx = ms.NginxRtmp(os.path.join(tmp, "nginx2"))
            os.makedirs(nginx.dir)
            nginx.start()
            mp4 = ms.mp4_file(os.path.join(tmp, "mp4"), seconds=2, with_audio=True,
                              width=160, height=120, name="loop.mp4")
        if "churn" in later:
            # The churn waits on ffmpeg most of the time: it runs beside the
            # other cases, on a relay of its own.
            churn = threading.Thread(target=guarded, args=("churn", run_churn, build, tmp,
                                                           nginx, mp4), daemon=True)
            churn.start()
        suites = [("main", lambda: run_main(build, tmp, marker)),
                  ("missing_binary", lambda: run_missing_binary(build, tmp)),
                  ("stalled_progress", lambda: run_stalled_progress(build, tmp))]
        for name, fn in suites:
            if name == "main" and not any(wanted(c) for c in main_cases):
                continue
            if name != "main" and not wanted("ffmpeg_" + name):
                continue
            guarded(name, fn)
        for name, fn in [("relay_sigkill", run_sigkill), ("shutdown_20", run_shutdown_20)]:
            if name in later:
                guarded(name, fn, build, tmp, nginx, mp4)
        if churn is not None:
            churn.join()
    finally:
        for r in list(RELAYS):
            r.kill()
        if nginx is not None:
            nginx.stop()
        ms.kill_orphans(marker, report, "ffmpeg_orphans")
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if RESULTS and all(RESULTS) else 1


if __name__ == "__main__":
    sys.exit(main())
