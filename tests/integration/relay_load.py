#!/usr/bin/env python3
"""SIGTERM under load: the relay streams to many viewers (some stalled),
pulls a camera and serves an event stream when SIGTERM arrives; it must
stop within its stage deadlines, close every connection, leave no child or
thread behind, and both its own verdict and `steward check` must report
zero leaks.

Usage: relay_load.py BUILD_DIR
"""
import json
import os
import re
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_camera import FakeCamera  # noqa: E402
from relay_basic import Relay, check, main_for  # noqa: E402

READERS = 40
STALLED = 10


def api(relay, method, path, body=None):
    c = relay.conn()
    try:
        c.request(method, path, body=json.dumps(body).encode() if body else None,
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def run(build):
    cam = FakeCamera().start()
    relay = Relay(build, ["--state", "none", "--size", "320x240", "--fps", "25"])
    stop = threading.Event()
    received = [0] * READERS
    socks = []
    threads = []
    try:
        def setup_load():
            st, body = api(relay, "POST", "/api/inputs",
                           {"name": "cam", "kind": "mjpeg", "url": cam.url("/good?load")})
            assert st == 201, (st, body)

            def reader(i, path):
                s = socket.create_connection(("127.0.0.1", relay.port), timeout=10)
                socks.append(s)
                s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % path).encode())
                while not stop.is_set():
                    try:
                        b = s.recv(65536)
                    except OSError:
                        return
                    if not b:
                        return
                    received[i] += len(b)

            for i in range(READERS):
                t = threading.Thread(target=reader, args=(i, "/stream/test" if i % 2 else
                                                          "/stream/cam"), daemon=True)
                t.start()
                threads.append(t)
            for _ in range(STALLED):
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                s.connect(("127.0.0.1", relay.port))
                s.sendall(b"GET /stream/test HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                socks.append(s)
            ev = socket.create_connection(("127.0.0.1", relay.port), timeout=10)
            ev.sendall(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            socks.append(ev)
            time.sleep(2)
            assert all(n > 0 for n in received), "a reader got nothing: %r" % received
            assert cam.open_connections("/good?load") == 1

        def hangups_with_unread_frames():
            # Large frames, viewers that read a little and hang up with data
            # unread: the relay's next writes fail with EPIPE/ECONNRESET,
            # which must cost those viewers, not the process (SIGPIPE).
            st, body = api(relay, "POST", "/api/inputs",
                           {"name": "big", "kind": "test", "width": 1920, "height": 1080,
                            "fps": 25})
            assert st == 201, (st, body)
            for _ in range(3):
                batch = []
                for _ in range(20):
                    s = socket.create_connection(("127.0.0.1", relay.port), timeout=10)
                    s.sendall(b"GET /stream/big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                    s.recv(1000)
                    batch.append(s)
                time.sleep(0.3)
                for s in batch:
                    # Drain what arrived, so the close sends FIN rather than
                    # RST: the relay's next write succeeds, the one after it
                    # fails with EPIPE — the signal case.
                    s.setblocking(False)
                    try:
                        while s.recv(1 << 20):
                            pass
                    except BlockingIOError:
                        pass
                    s.close()
                time.sleep(0.3)
            assert relay.proc.poll() is None, "the relay died (exit %r)" % relay.proc.returncode
            st, _, _ = relay.get("/healthz")
            assert st == 200, st
            st, body = api(relay, "DELETE", "/api/inputs/big")
            assert st == 200, (st, body)

        def sigterm_under_load():
            kids_before = os.listdir("/proc/%d/task" % relay.pid)
            t0 = time.monotonic()
            os.kill(relay.pid, signal.SIGTERM)
            rc = relay.proc.wait(timeout=20)
            took = time.monotonic() - t0
            err = relay.stderr()
            assert "shutdown: clean: exit code 0" in err, err[-3000:]
            m = re.search(r"SUMMARY: (\d+) leaks", err)
            assert m and m.group(1) == "0", "checker: %s" % err[-3000:]
            assert rc == 0, "exit %d (9: the checker found leaks)" % rc
            assert took < 10, "shutdown took %.1f s" % took
            # Every viewer saw its connection end, and the camera was let go.
            deadline = time.monotonic() + 5
            while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not any(t.is_alive() for t in threads), "a viewer connection stayed open"
            # The fake camera notices the closed socket at its next write.
            while cam.open_connections() != 0 and time.monotonic() < deadline + 3:
                time.sleep(0.05)
            assert cam.open_connections() == 0, "the camera connection stayed open"
            print("     %d readers + %d stalled viewers + a camera + SSE: stopped in %.2f s "
                  "(%d threads before), 0 leaked" % (READERS, STALLED, took, len(kids_before)),
                  flush=True)

        for name, fn in [("load_setup", setup_load),
                         ("hangups_with_unread_frames", hangups_with_unread_frames),
                         ("sigterm_under_load", sigterm_under_load)]:
            check(name, fn)
    finally:
        stop.set()
        for s in socks:
            s.close()
        relay.kill()
        cam.stop()


if __name__ == "__main__":
    sys.exit(main_for("load", run))
