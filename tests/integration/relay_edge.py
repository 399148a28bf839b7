#!/usr/bin/env python3
"""Two relays on loopback, both under `steward check`: an origin with the
test pattern and an edge whose on-demand mjpeg input pulls the origin's
/stream/test. The edge pulls only while watched; a viewer of the edge gets
the origin's frames; the origin killed (SIGKILL) and started again on the
same port: the edge shows its NO SIGNAL card meanwhile and recovers on its
own; a ring of inputs across the two relays, and one across three relays,
is refused (508) instead of feeding on itself; all shut down clean.

    tests/integration/relay_edge.py BUILD_DIR
"""
import json
import re
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_camera import FakeCamera  # noqa: E402
from relay_basic import RESULTS, Relay, check, is_jpeg, read_parts, report  # noqa: E402


def post(relay, body):
    c = relay.conn()
    try:
        c.request("POST", "/api/inputs", body=json.dumps(body),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def get_input(relay, name):
    return json.loads(relay.get("/api/inputs/" + name)[2])


def wait_until(pred, seconds, what):
    end = time.monotonic() + seconds
    last = None
    while time.monotonic() < end:
        last = pred()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError("not within %s s: %s (last: %r)" % (seconds, what, last))


def stop_clean(relay):
    os.kill(relay.pid, signal.SIGTERM)
    rc = relay.proc.wait(timeout=20)
    err = relay.stderr()
    assert rc == 0 and "shutdown: clean: exit code 0" in err and "SUMMARY: 0 leaks" in err, \
        (rc, err[-2000:])


def run(build):
    origin = Relay(build, ["--state=none", "--fps=10", "--size=160x120"])
    edge = None
    conns = []
    try:
        edge = Relay(build, ["--state=none", "--no-default-input", "--on-demand-grace-ms=1000",
                             "--camera-stall=2", "--camera-frame-timeout=3"])
        port = origin.port
        st, body = post(edge, {"name": "cam", "kind": "mjpeg", "on_demand": True,
                               "url": "http://127.0.0.1:%d/stream/test" % port})
        assert st == 201, body

        def idle_until_watched():
            time.sleep(1)
            assert get_input(edge, "cam")["state"] == "idle"
            assert get_input(origin, "test")["viewers"] == 0

        def view_through_edge():
            c = edge.conn()
            c.request("GET", "/stream/cam")
            r = c.getresponse()
            assert r.status == 200
            conns.append(c)
            parts = read_parts(r, 5)
            assert all(is_jpeg(p) for p in parts)
            assert len(set(parts)) > 1, "frames do not change"
            wait_until(lambda: get_input(origin, "test")["viewers"] == 1, 5, "origin sees the edge")
            c.close()
            conns.remove(c)

        def edge_stops_pulling():
            wait_until(lambda: get_input(origin, "test")["viewers"] == 0, 6,
                       "the edge stops pulling after its grace period")
            wait_until(lambda: get_input(edge, "cam")["state"] == "idle", 3, "edge input idle")

        def ts_through_edge():
            # The edge's ffmpeg input pulls the origin's MPEG-TS as it came.
            d = tempfile.mkdtemp()
            clip = os.path.join(d, "clip.mp4")
            subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
                            "testsrc=size=160x120:rate=10", "-t", "2", "-c:v", "libx264",
                            "-pix_fmt", "yuv420p", "-g", "10", "-y", clip], check=True)
            st, body = post(origin, {"name": "clip", "kind": "ffmpeg", "url": clip, "loop": True})
            assert st == 201, body
            st, body = post(edge, {"name": "tscam", "kind": "ffmpeg", "on_demand": True,
                                   "url": "http://127.0.0.1:%d/stream/clip.ts" % port})
            assert st == 201, body
            c = edge.conn(timeout=30)
            c.request("GET", "/stream/tscam.ts")
            r = c.getresponse()
            assert r.status == 200 and r.getheader("Content-Type") == "video/mp2t"
            data = b""
            end = time.monotonic() + 30
            while len(data) < 188 * 200 and time.monotonic() < end:
                data += r.read1(65536)
            r.close()
            c.close()
            assert len(data) >= 188 * 200, "only %d bytes" % len(data)
            assert all(data[i] == 0x47 for i in range(0, 188 * 200, 188)), "not MPEG-TS packets"
            end = time.monotonic() + 15
            now = None
            while time.monotonic() < end:
                now = (get_input(origin, "clip")["viewers"], get_input(edge, "tscam")["state"])
                if now == (0, "idle"):
                    break
                time.sleep(0.2)
            assert now == (0, "idle"), "edge still pulling the .ts: origin viewers, edge state %r" % (now,)

        def origin_restart_recovers():
            nonlocal origin
            c = edge.conn(timeout=20)
            c.request("GET", "/stream/cam")
            r = c.getresponse()
            conns.append(c)
            read_parts(r, 3)
            origin.kill()
            wait_until(lambda: get_input(edge, "cam")["state"] in ("no-signal", "error"), 10,
                       "edge notices the origin is gone")
            # The viewer keeps getting frames: the NO SIGNAL card.
            assert len(read_parts(r, 2, timeout=15)) == 2
            t0 = time.monotonic()
            origin = Relay(build, ["--state=none", "--fps=10", "--size=160x120",
                                   "--listen", "127.0.0.1:%d" % port])
            wait_until(lambda: get_input(edge, "cam")["state"] == "running", 20, "edge recovers")
            before = get_input(edge, "cam")["frames_in"]
            wait_until(lambda: get_input(edge, "cam")["frames_in"] >= before + 5, 10,
                       "frames from the new origin")
            assert len(read_parts(r, 5)) == 5
            assert get_input(origin, "test")["viewers"] == 1
            print("     edge running again %.1f s after the origin restarted"
                  % (time.monotonic() - t0), flush=True)
            c.close()
            conns.remove(c)

        def chain_untrusted():
            """A camera (or a relay upstream) that sends junk in its relay
            chain: only well-formed ids reach the relays downstream."""
            cam = FakeCamera().start()
            try:
                st, body = post(edge, {"name": "junk", "kind": "mjpeg",
                                       "url": cam.url("/chainjunk")})
                assert st == 201, body
                c = edge.conn()
                try:
                    c.request("GET", "/stream/junk", headers={"X-Steward-Relay": "abcdefabcdefabcd"})
                    r = c.getresponse()
                    assert r.status == 200
                    head = r.getheader("X-Steward-Relay-Chain") or ""
                    raw = b""
                    end = time.monotonic() + 10
                    while raw.count(b"X-Steward-Relay-Chain") < 4 and time.monotonic() < end:
                        raw += r.read1(65536)
                finally:
                    c.close()
                ids = re.compile(r"^[0-9a-f]{16}(,[0-9a-f]{16})*$")
                assert ids.match(head), "response chain %r" % head
                parts = re.findall(rb"X-Steward-Relay-Chain: ([^\r\n]*)", raw)
                assert len(parts) >= 3, raw[:300]
                for v in parts[1:]:
                    assert ids.match(v.decode()), "part chain %r" % v
                assert parts[-1].decode().split(",")[1:] == ["0123456789abcdef", "2222222222222222"], \
                    parts[-1]
                assert b"X-Evil" not in raw and b"<b>" not in raw
            finally:
                cam.stop()
                st = edge.get("/api/inputs/junk", method="DELETE")[0]
                assert st in (200, 204), st

        def ring_refused():
            st, body = post(origin, {"name": "ring", "kind": "mjpeg",
                                     "url": "http://127.0.0.1:%d/stream/back" % edge.port})
            assert st == 201, body
            st, body = post(edge, {"name": "back", "kind": "mjpeg",
                                   "url": "http://127.0.0.1:%d/stream/ring" % origin.port})
            assert st == 201, body

            def refused():
                errs = [get_input(origin, "ring").get("last_error") or "",
                        get_input(edge, "back").get("last_error") or ""]
                return [e for e in errs if "508" in e]
            wait_until(refused, 10, "a 508 somewhere in the ring")

        def ring_of_three():
            """Three relays, each pulling the next one's input: one pull of
            the ring is refused, whatever order the links came up in, and
            the three are never all running."""
            rs = [Relay(build, ["--state=none", "--no-default-input", "--camera-stall=1"])
                  for _ in range(3)]
            try:
                for i, r in enumerate(rs):
                    st, body = post(r, {"name": "n%d" % i, "kind": "mjpeg",
                                        "url": "http://127.0.0.1:%d/stream/n%d"
                                        % (rs[(i + 1) % 3].port, (i + 1) % 3)})
                    assert st == 201, body
                    time.sleep(1.5)

                def refused():
                    return [i for i, r in enumerate(rs)
                            if re.search("508|relay loop",
                                         get_input(r, "n%d" % i).get("last_error") or "")]
                wait_until(refused, 30, "a 508 somewhere in the ring of three")
                for _ in range(4):
                    time.sleep(0.5)
                    states = [get_input(r, "n%d" % i)["state"] for i, r in enumerate(rs)]
                    assert states.count("running") < 3, "the ring runs: %r" % states
                for r in rs:
                    stop_clean(r)
            finally:
                for r in rs:
                    r.kill()

        def both_clean():
            for c in conns:
                c.close()
            stop_clean(edge)
            stop_clean(origin)

        for name, fn in [("edge_idle_until_watched", idle_until_watched),
                         ("edge_view_through", view_through_edge),
                         ("edge_stops_pulling", edge_stops_pulling),
                         ("edge_ts_through", ts_through_edge),
                         ("edge_origin_restart_recovers", origin_restart_recovers),
                         ("edge_chain_untrusted", chain_untrusted),
                         ("edge_ring_refused", ring_refused),
                         ("edge_ring_of_three", ring_of_three),
                         ("edge_both_clean", both_clean)]:
            check(name, fn)
    finally:
        for c in conns:
            c.close()
        if edge is not None:
            edge.kill()
        origin.kill()


def main():
    if len(sys.argv) != 2:
        print("usage: relay_edge.py BUILD_DIR", file=sys.stderr)
        return 2
    try:
        run(sys.argv[1])
    except Exception as e:
        report("edge", False, "could not start: %s" % e)
    return 0 if all(RESULTS) else 1


if __name__ == "__main__":
    sys.exit(main())
