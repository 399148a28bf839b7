#!/usr/bin/env python3
"""Integration tests of the relay's MJPEG pull source: the real binary under
`steward check`, pulling from a fake camera (fake_camera.py) that behaves,
sends garbage, stalls, cuts frames short, answers with text or 404.

Usage: relay_mjpeg.py BUILD_DIR
Prints "ok   relay/NAME" or "FAIL relay/NAME: reason" per case.
"""
import json
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_camera import FRAMES, FakeCamera  # noqa: E402
from relay_basic import Relay, check, main_for, is_jpeg, read_parts  # noqa: E402


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
            wait_for("no-signal", lambda: state(relay, "junk") == "no-signal")
            st, _, snap = relay.get("/snapshot/junk.jpg")
            # The NO SIGNAL card: a real JPEG the camera never sent.
            assert st == 200 and is_jpeg(snap) and snap not in FRAMES, (st, snap[:8])

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
            wait_for("no-signal", lambda: state(relay, "text") == "no-signal" and
                     state(relay, "gone") == "no-signal")
            err = relay.stderr()
            assert "not a multipart stream" in err, err[-2000:]
            assert "HTTP status 404" in err, err[-2000:]

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
                         ("mjpeg_delete_closes_camera", delete_closes_camera),
                         ("mjpeg_churn", churn), ("mjpeg_shutdown", shutdown_with_cameras)]:
            check(name, fn)
    finally:
        relay.kill()
        cam.stop()


if __name__ == "__main__":
    sys.exit(main_for("mjpeg", run))
