#!/usr/bin/env python3
"""Integration tests of the relay's MJPEG pull source: the real binary under
`steward check`, pulling from a fake camera (fake_camera.py) that behaves,
sends garbage, stalls, cuts frames short, answers with text, 403 or 404,
redirects, asks for Digest authentication, serves application/octet-stream
or LF-only parts or wrong lengths, and from a real `ffmpeg -f mpjpeg
-listen 1` server.

Usage: relay_mjpeg.py BUILD_DIR
Prints "ok   relay/NAME" or "FAIL relay/NAME: reason" per case.
"""
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_camera import FRAMES, FakeCamera  # noqa: E402
from relay_basic import Relay, check, main_for, is_jpeg, read_parts, report  # noqa: E402


def wait_for(what, fn, timeout=15):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


def api(relay, method, path, body=None):
    c = relay.conn()
    try:
        data = json.dumps(body).encode() if body is not None else None
        c.request(method, path, body=data, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        raw = r.read()
        return r.status, json.loads(raw) if raw else None
    finally:
        c.close()


def state(relay, name):
    st, body = api(relay, "GET", "/api/inputs/" + name)
    return body.get("state") if st == 200 else None


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def get_input(relay, name):
    st, body = api(relay, "GET", "/api/inputs/" + name)
    assert st == 200, (st, body)
    return body


def jpeg_size(b):
    """(width, height) from a JPEG's start-of-frame marker."""
    i = 2
    while i + 9 <= len(b):
        m, ln = b[i + 1], struct.unpack(">H", b[i + 2:i + 4])[0]
        if 0xC0 <= m <= 0xCF and m not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", b[i + 5:i + 9])
            return w, h
        i += 2 + ln
    return None


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run(build):
    cam = FakeCamera().start()
    relay = Relay(build, ["--no-default-input", "--state", "none", "--camera-stall", "1",
                          "--camera-frame-timeout", "2"])
    try:
        def create(name, path):
            st, body = api(relay, "POST", "/api/inputs",
                           {"name": name, "kind": "mjpeg", "url": cam.url(path)})
            assert st == 201, (st, body)

        def delete(name):
            st, body = api(relay, "DELETE", "/api/inputs/" + name)
            assert st in (200, 204), (st, body)

        def good():
            create("good", "/good")
            wait_for("running", lambda: state(relay, "good") == "running")
            st, _, snap = relay.get("/snapshot/good.jpg")
            assert st == 200 and snap in FRAMES, (st, snap[:8])
            c = relay.conn()
            c.request("GET", "/stream/good")
            parts = read_parts(c.getresponse(), 6)
            c.close()
            # Relayed byte for byte, and more than one distinct frame.
            assert all(p in FRAMES for p in parts), [p[:4] for p in parts]
            assert len(set(parts)) > 1, "the stream does not move"

        def no_length():
            create("nolen", "/nolength")
            wait_for("running", lambda: state(relay, "nolen") == "running")
            st, _, snap = relay.get("/snapshot/nolen.jpg")
            assert st == 200 and snap in FRAMES

        def garbage_no_signal():
            create("junk", "/garbage")
            wait_for("a card", lambda: get_input(relay, "junk")["cards"] > 0)
            st, _, snap = relay.get("/snapshot/junk.jpg")
            # The NO SIGNAL card: a real JPEG the camera never sent.
            assert st == 200 and is_jpeg(snap) and snap not in FRAMES, (st, snap[:8])
            # The stream cannot be parsed: the input says so, and counts
            # what it dropped; cards are not camera frames.
            wait_for("error", lambda: state(relay, "junk") == "error")
            got = get_input(relay, "junk")
            assert re.match(r'no frame for 2 s: \d+ bytes without the boundary "fakecam"$',
                            got["last_error"] or ""), got
            assert got["camera"]["garbage_bytes"] > 10000, got
            assert got["frames_in"] == 0 and got["cards"] > 0, got

        def stall_then_recover():
            create("stall", "/stall")
            wait_for("no-signal after the stall",
                     lambda: state(relay, "stall") == "no-signal" or cam.hits.get("/stall", 0) > 1)
            wait_for("running again", lambda: cam.hits.get("/stall", 0) > 1 and
                     state(relay, "stall") == "running")

        def cut_then_recover():
            create("cut", "/cut")
            wait_for("a second connection", lambda: cam.hits.get("/cut", 0) > 1)
            wait_for("running again", lambda: state(relay, "cut") == "running")
            st, _, snap = relay.get("/snapshot/cut.jpg")
            assert snap in FRAMES

        def not_a_camera():
            create("text", "/text")
            create("gone", "/missing")
            # The camera refused: "error", not "no-signal".
            wait_for("error", lambda: state(relay, "text") == "error" and
                     state(relay, "gone") == "error")
            err = relay.stderr()
            assert "not a multipart stream" in err, err[-2000:]
            assert "camera answered 404 Not Found" in err, err[-2000:]
            assert get_input(relay, "gone")["last_error"] == "camera answered 404 Not Found"
            assert get_input(relay, "text")["last_error"] == \
                "not a multipart stream (Content-Type: text/plain)"

        def create_url(name, url):
            st, body = api(relay, "POST", "/api/inputs", {"name": name, "kind": "mjpeg",
                                                          "url": url})
            assert st == 201, (st, body)

        def refused(name, url, msg):
            """The camera refuses: state "error", last_error says how."""
            def case():
                create_url(name, url)
                try:
                    wait_for("error", lambda: state(relay, name) == "error")
                    got = get_input(relay, name)
                    assert (got["last_error"] or "").startswith(msg), (got["last_error"], msg)
                    assert got["frames_in"] == 0 and got["camera"]["connects"] >= 1, got
                finally:
                    delete(name)
            return case

        def streams(name, url, check_input=None):
            """The camera's frames arrive byte for byte."""
            def case():
                create_url(name, url)
                try:
                    wait_for("running", lambda: state(relay, name) == "running")
                    c = relay.conn()
                    c.request("GET", "/stream/" + name)
                    parts = read_parts(c.getresponse(), 4)
                    c.close()
                    assert all(p in FRAMES for p in parts), [p[:4] for p in parts]
                    got = get_input(relay, name)
                    assert got["frames_in"] >= 4 and got["cards"] == 0, got
                    if check_input:
                        check_input(got)
                finally:
                    delete(name)
            return case

        def lengths_fixed(got):
            c = got["camera"]
            assert c["length_mismatch"] > 0 and c["bad_parts"] == 0, got

        def empty_host_rejected():
            for url in ("http://:80/", "http://:80", "http://user@:8080/x", "http://u:p@/x",
                        "HTTP://", "https://?x"):
                st, body = api(relay, "POST", "/api/inputs",
                               {"name": "nohost", "kind": "mjpeg", "url": url})
                assert st == 422 and "no host" in body["error"], (url, st, body)

        def frozen_not_running():
            # Frames, then line breaks and no frame: the input must leave
            # "running" once --camera-frame-timeout (2 s) has passed.
            create("frozen", "/frozen")
            wait_for("running", lambda: state(relay, "frozen") == "running")
            t0 = time.monotonic()
            wait_for("not running", lambda: state(relay, "frozen") != "running", timeout=6)
            took = time.monotonic() - t0
            got = get_input(relay, "frozen")
            assert took < 3.5, "still running %.1f s after the last frame" % took
            assert got["state"] == "no-signal", got
            assert got["last_error"] == "no frame for 2 s", got
            # The card replaces the camera's picture at the camera's size,
            # and is not counted as a camera frame.
            frames_in = got["frames_in"]
            wait_for("a card", lambda: get_input(relay, "frozen")["cards"] > 0)
            st, _, snap = relay.get("/snapshot/frozen.jpg")
            assert st == 200 and is_jpeg(snap) and snap not in FRAMES
            assert jpeg_size(snap) == jpeg_size(FRAMES[0]), (jpeg_size(snap), jpeg_size(FRAMES[0]))
            assert get_input(relay, "frozen")["frames_in"] == frames_in
            delete("frozen")

        def delete_closes_camera():
            create("del", "/good?del")
            wait_for("running", lambda: state(relay, "del") == "running")
            assert cam.open_connections("/good?del") == 1
            delete("del")
            wait_for("the camera connection closed",
                     lambda: cam.open_connections("/good?del") == 0, timeout=3)
            st, _ = api(relay, "GET", "/api/inputs/del")
            assert st == 404

        def churn():
            for n in ("good", "nolen", "junk", "stall", "cut", "text", "gone"):
                delete(n)
            wait_for("every camera connection closed", lambda: cam.open_connections() == 0)
            time.sleep(0.5)
            fds = fd_count(relay.pid)
            for i in range(30):
                create("churn", "/good?churn")
                if i % 3 == 0:
                    wait_for("running", lambda: state(relay, "churn") == "running")
                delete("churn")
            wait_for("every camera connection closed", lambda: cam.open_connections() == 0)
            after = wait_for("fds back to baseline", lambda: fd_count(relay.pid) <= fds and
                             fd_count(relay.pid), timeout=10)
            print("     30 create/delete cycles: fds %d -> %d, camera connections open: %d"
                  % (fds, after, cam.open_connections()), flush=True)

        def shutdown_with_cameras():
            create("last", "/good")
            wait_for("running", lambda: state(relay, "last") == "running")
            os.kill(relay.pid, signal.SIGTERM)
            rc = relay.proc.wait(timeout=15)
            err = relay.stderr()
            assert "shutdown: clean: exit code 0" in err, err[-3000:]
            m = re.search(r"SUMMARY: (\d+) leaks", err)
            assert m and m.group(1) == "0", "checker: %s" % err[-3000:]
            assert rc == 0, "exit %d (9: the checker found leaks)" % rc
            wait_for("the camera connection closed", lambda: cam.open_connections() == 0)

        for name, fn in [("mjpeg_good", good), ("mjpeg_no_length", no_length),
                         ("mjpeg_garbage_no_signal", garbage_no_signal),
                         ("mjpeg_stall_recover", stall_then_recover),
                         ("mjpeg_cut_recover", cut_then_recover),
                         ("mjpeg_not_a_camera", not_a_camera),
                         ("mjpeg_403", refused("forbidden", cam.url("/forbidden"),
                                                "camera answered 403 Forbidden")),
                         ("mjpeg_401_wrong_password",
                          refused("wrongpw", "http://cam:wrong@127.0.0.1:%d/digest" % cam.port,
                                  "camera answered 401 Unauthorized")),
                         ("mjpeg_redirect_loop", refused("loop", cam.url("/loop"),
                                                         "too many redirects (more than 5)")),
                         ("mjpeg_redirect_to_ftp",
                          refused("ftp", cam.url("/to-ftp"),
                                  "redirected to a URL that is not http(s): ftp://")),
                         ("mjpeg_redirect", streams("redirect", cam.url("/redirect"))),
                         ("mjpeg_digest", streams("digest", "http://cam:secret@127.0.0.1:%d/digest"
                                                  % cam.port)),
                         ("mjpeg_octet_stream", streams("octet", cam.url("/octet"))),
                         ("mjpeg_lf_only", streams("lf", cam.url("/lf"))),
                         ("mjpeg_wrong_length", streams("badlen", cam.url("/badlength"),
                                                        lengths_fixed)),
                         ("mjpeg_scheme_capitals",
                          streams("caps", "HTTP://127.0.0.1:%d/good" % cam.port)),
                         ("mjpeg_empty_host_rejected", empty_host_rejected),
                         ("mjpeg_frozen_not_running", frozen_not_running),
                         ("mjpeg_delete_closes_camera", delete_closes_camera),
                         ("mjpeg_churn", churn), ("mjpeg_shutdown", shutdown_with_cameras)]:
            check(name, fn)
    finally:
        relay.kill()
        cam.stop()


def run_stall(build):
    """--camera-stall N means N seconds (libcurl's low-speed limit made 2
    mean 8), with a frame timeout far away."""
    cam = FakeCamera().start()
    relay = Relay(build, ["--no-default-input", "--state", "none", "--camera-stall", "2",
                          "--camera-frame-timeout", "60"])
    try:
        def stall_seconds():
            st, body = api(relay, "POST", "/api/inputs",
                           {"name": "stall", "kind": "mjpeg", "url": cam.url("/stall")})
            assert st == 201, (st, body)
            wait_for("running", lambda: state(relay, "stall") == "running")
            # Two frames 50 ms apart, then silence.
            t0 = time.monotonic()
            wait_for("no-signal", lambda: state(relay, "stall") == "no-signal", timeout=15)
            took = time.monotonic() - t0
            got = get_input(relay, "stall")
            print("     --camera-stall 2: no-signal %.2f s after the first frame" % took,
                  flush=True)
            assert 1.5 <= took <= 3.0, "took %.2f s" % took
            assert got["last_error"] == "no data for 2 s", got

        def ffmpeg_mpjpeg():
            if shutil.which("ffmpeg") is None:
                raise AssertionError("ffmpeg is not installed")
            port = free_port()
            ff = subprocess.Popen(
                ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi",
                 "-i", "testsrc=size=160x120:rate=10", "-f", "mpjpeg", "-listen", "1",
                 "http://127.0.0.1:%d/cam.mjpg" % port],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                # ffmpeg listens once it has started; the relay retries.
                st, body = api(relay, "POST", "/api/inputs", {
                    "name": "ffmpeg", "kind": "mjpeg",
                    "url": "http://127.0.0.1:%d/cam.mjpg" % port})
                assert st == 201, (st, body)
                wait_for("running", lambda: state(relay, "ffmpeg") == "running")
                wait_for("10 frames", lambda: get_input(relay, "ffmpeg")["frames_in"] >= 10)
                st, _, snap = relay.get("/snapshot/ffmpeg.jpg")
                assert st == 200 and is_jpeg(snap) and jpeg_size(snap) == (160, 120), snap[:8]
                got = get_input(relay, "ffmpeg")
                assert got["camera"]["bad_parts"] == 0, got
                api(relay, "DELETE", "/api/inputs/ffmpeg")
            finally:
                ff.kill()
                ff.wait(timeout=10)

        for name, fn in [("mjpeg_stall_seconds", stall_seconds),
                         ("mjpeg_ffmpeg_mpjpeg", ffmpeg_mpjpeg)]:
            check(name, fn)
    finally:
        relay.kill()
        cam.stop()


def run_all(build):
    for suite in (run, run_stall):
        try:
            suite(build)
        except Exception as e:
            report(suite.__name__, False, "could not start: %s" % e)


if __name__ == "__main__":
    sys.exit(main_for("mjpeg", run_all))
