#!/usr/bin/env python3
"""Integration tests of the relay's motion processor: the real binary, on an
ephemeral port, under `steward check`, driven over HTTP.

  motion_start_event       the test pattern's moving ball raises motion-start on
                           /api/events with a box the size of the ball, and the
                           input's JSON shows it
  motion_rate_capped       frames analysed stay at the cap (2 fps) while the source
                           runs at 25 fps; the others are counted as dropped
  motion_still_pattern     the pattern without motion (a clock still runs) raises
                           nothing
  motion_validation        bad options are refused (400/422) and change nothing
  motion_disable_thread    disabling through the API ends motion ("stopped") and
                           joins the thread (ledger and /proc); enabling starts it
  motion_state_file        the options are in the state file
  motion_on_demand         motion detection keeps an on-demand source running
  motion_ffmpeg_input      an ffmpeg input (a looping file of a moving square) is
                           decoded for the processor without any viewer and raises
                           motion-start with the square's box
  motion_corrupt_jpegs     a camera whose parts look whole but do not decode: decode
                           errors counted (API, /metrics), nothing else happens
  motion_delete_input      deleting an input joins its processor
  motion_shutdown          SIGTERM: clean verdict, 0 leaks from the checker
  motion_restart           the options come back from the state file, the processor
                           runs again
  motion_config_file       motion options of an input the YAML config declares
                           (decimals, a list of rectangles); the API may not change them

Usage: relay_motion.py BUILD_DIR
Prints "ok   relay/NAME" or "FAIL relay/NAME: reason" per test case. Every
process it starts is killed (by pid) on the way out.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from relay_basic import Relay, check, main_for, metric  # noqa: E402
from relay_api import Events, call, settle, stop, tasks  # noqa: E402
from fake_camera import FakeCamera  # noqa: E402


def events_of(ev, kind, name):
    """The data objects of the @kind events for input @name read so far."""
    out = []
    # The stream is chunked: chunk sizes stand between the events.
    for block in ev.buf.decode(errors="replace").split("\n\n"):
        m = re.search(r"event: (\S+)\ndata: ([^\n]*)", block)
        if m and m.group(1) == kind:
            d = json.loads(m.group(2))
            if d.get("input") == name:
                out.append(d)
    return out


def wait_event(ev, kind, name, timeout):
    deadline = time.monotonic() + timeout
    while True:
        found = events_of(ev, kind, name)
        if found:
            return found[0]
        if time.monotonic() > deadline:
            raise AssertionError("no %s for %s within %ss: %r" % (kind, name, timeout, ev.buf[-800:]))
        # Read what comes next (Events.wait_for would return at once on an
        # event of another input already read).
        ev.s.settimeout(0.5)
        try:
            chunk = ev.s.recv(65536)
        except socket.timeout:
            continue
        if not chunk:
            raise AssertionError("event stream closed")
        ev.buf += chunk


def motion(relay, name):
    st, doc, _ = call(relay, "GET", "/api/inputs/%s/motion" % name)
    assert st == 200, (st, doc)
    return doc


def motion_threads(relay):
    st, doc, _ = call(relay, "GET", "/debug/threads")
    assert st == 200, st
    return sorted(t["name"] for t in doc["threads"] if t["name"].startswith("mot-"))


def run(build):
    tmp = tempfile.mkdtemp(prefix="steward-motion-")
    state = os.path.join(tmp, "relay.json")
    relay = Relay(build, ["--state", state, "--no-default-input", "--on-demand-grace-ms", "300"])
    keep = []
    try:
        ev = Events(relay.port)
        keep.append(ev)
        ev.wait_for("steward relay events")
        # Both patterns start together, so their warm-ups overlap. The
        # pattern's clock and counter (the top 68 rows) are left out, as a
        # camera's timestamp overlay would be.
        band = [{"x": 0, "y": 0, "w": 320, "h": 72}]
        st, doc, _ = call(relay, "POST", "/api/inputs",
                          {"name": "ball", "kind": "test", "width": 320, "height": 240, "fps": 25,
                           "motion": {"enabled": True, "ignore": band}})
        assert st == 201, (st, doc)
        assert doc["motion"]["enabled"] is True and doc["motion"]["fps"] == 2, doc
        assert doc["motion"]["ignore"] == band, doc
        st, doc, _ = call(relay, "POST", "/api/inputs",
                          {"name": "still", "kind": "test", "width": 320, "height": 240,
                           "fps": 25, "pattern": "still",
                           "motion": {"enabled": True, "fps": 4, "ignore": band}})
        assert st == 201, (st, doc)
        assert doc["pattern"] == "still", doc

        def motion_start_event():
            d = wait_event(ev, "motion-start", "ball", 15)
            assert d["width"] == 320 and d["height"] == 240, d
            b = d["box"]
            assert b is not None, d
            # The ball is 49 pixels across at 320 x 240 (part of it may be
            # hidden in luma: orange on cyan).
            assert 0 <= b["x"] and b["x"] + b["w"] <= 320, d
            assert 0 <= b["y"] and b["y"] + b["h"] <= 240, d
            assert 12 <= b["w"] <= 110 and 12 <= b["h"] <= 110, "box %r is not the ball's" % b
            assert d["score"] >= 0.5, d
            assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", d["time"]), d
            m = motion(relay, "ball")
            assert m["active"] is True and m["running"] is True, m
            assert m["last_event"] == "motion-start" and m["since"] is not None, m
            assert m["box"] is not None and m["width"] == 320, m
            print("     motion-start: score %.2f %% box %r" % (d["score"], b), flush=True)

        def motion_rate_capped():
            def sample():
                _, _, body = relay.get("/metrics")
                text = body.decode()
                lab = '{input="ball"}'
                return (time.monotonic(), metric(text, "steward_relay_motion_frames_analysed_total", lab),
                        metric(text, "steward_relay_motion_frames_dropped_total", lab),
                        metric(text, "steward_relay_frames_in_total", lab))
            def window():  # a second of samples
                out, end = [], time.monotonic() + 1
                while time.monotonic() < end:
                    out.append(sample())
                    time.sleep(0.05)
                return out
            first = window()
            time.sleep(2)
            last = window()
            (t0, a0, d0, f0), (t1, a1, d1, f1) = first[0], last[-1]
            dt = t1 - t0
            rate, src = (a1 - a0) / dt, (f1 - f0) / dt
            print("     analysed %.2f fps (cap 2), source %.1f fps, dropped %d in %.1f s"
                  % (rate, src, d1 - d0, dt), flush=True)
            assert 1.5 <= rate <= 2.5, "analysed %.2f fps, cap 2" % rate
            assert src >= 10, "the source ran at %.1f fps only" % src
            # What was not analysed was dropped, not queued: frames in minus
            # analysed minus dropped is what the processor has not looked at
            # yet, and a queue would make it grow. Taken where it is least
            # in each window (the processor caught up; on a loaded machine
            # it may lag a sample by several frames).
            lag0 = min(f - a - d for _, a, d, f in first)
            lag1 = min(f - a - d for _, a, d, f in last)
            assert abs(lag1 - lag0) <= 3, (lag0, lag1, d1 - d0, f1 - f0, a1 - a0)

        def motion_still_pattern():
            m = motion(relay, "still")
            assert m["frames_analysed"] >= 16, m
            assert m["starts"] == 0 and m["active"] is False, m
            assert not events_of(ev, "motion-start", "still"), ev.buf[-800:]

        def motion_validation():
            before = motion(relay, "ball")
            for body, status in (({"fps": 0}, 422), ({"fps": 31}, 422), ({"fps": "2"}, 400),
                                 ({"enabled": "yes"}, 400), ({"min_area": 0}, 422),
                                 ({"threshold": 300}, 422), ({"sensitivity": 5}, 422),
                                 ([1], 400)):
                st, doc, _ = call(relay, "PATCH", "/api/inputs/ball/motion", body)
                assert st == status and doc.get("error"), (body, st, doc)
            st, doc, _ = call(relay, "PATCH", "/api/inputs/ball/motion", raw=b"{not json")
            assert st == 400, (st, doc)
            st, doc, _ = call(relay, "DELETE", "/api/inputs/ball/motion")
            assert st == 405, (st, doc)
            st, doc, _ = call(relay, "GET", "/api/inputs/nope/motion")
            assert st == 404, (st, doc)
            st, doc, _ = call(relay, "POST", "/api/inputs",
                              {"name": "bad", "kind": "test", "motion": {"fps": 99}})
            assert st == 422 and "motion.fps" in doc["error"], (st, doc)
            after = motion(relay, "ball")
            for k in ("enabled", "fps", "threshold", "min_area", "start_frames", "end_after"):
                assert after[k] == before[k], (k, before, after)
            assert after["running"] is True, after

        def motion_disable_thread():
            assert motion_threads(relay) == ["mot-ball", "mot-still"], motion_threads(relay)
            n = tasks(relay.pid)
            st, doc, _ = call(relay, "PATCH", "/api/inputs/ball/motion", {"enabled": False})
            assert st == 200 and doc["enabled"] is False and doc["running"] is False, (st, doc)
            assert doc["active"] is False, doc
            end = wait_event(ev, "motion-end", "ball", 5)
            assert end["reason"] == "stopped", end
            assert motion_threads(relay) == ["mot-still"], motion_threads(relay)
            assert settle(lambda: tasks(relay.pid), n - 1) == n - 1, (n, tasks(relay.pid))
            # The source goes on without it; its metrics stay.
            _, _, body = relay.get("/metrics")
            assert 'steward_relay_motion_frames_analysed_total{input="ball"}' in body.decode()
            st, doc, _ = call(relay, "PATCH", "/api/inputs/ball/motion", {"enabled": True, "fps": 4})
            assert st == 200 and doc["running"] is True and doc["fps"] == 4, (st, doc)
            assert motion_threads(relay) == ["mot-ball", "mot-still"], motion_threads(relay)
            # PUT sets what it does not name back to the defaults.
            st, doc, _ = call(relay, "PUT", "/api/inputs/ball/motion", {"enabled": True, "threshold": 30})
            assert st == 200 and doc["fps"] == 2 and doc["threshold"] == 30, (st, doc)

        def motion_state_file():
            with open(state) as f:
                saved = {i["name"]: i for i in json.load(f)["inputs"]}
            assert saved["ball"]["motion"]["enabled"] is True, saved["ball"]
            assert saved["ball"]["motion"]["threshold"] == 30, saved["ball"]
            assert saved["still"]["pattern"] == "still", saved["still"]
            assert saved["still"]["motion"]["fps"] == 4, saved["still"]

        def motion_on_demand():
            st, doc, _ = call(relay, "POST", "/api/inputs",
                              {"name": "od", "kind": "test", "width": 160, "height": 120,
                               "on_demand": True, "motion": {"enabled": True}})
            assert st == 201, (st, doc)
            state_of = lambda: call(relay, "GET", "/api/inputs/od")[1]["state"]  # noqa: E731
            assert settle(state_of, "running") == "running", state_of()
            st, doc, _ = call(relay, "PATCH", "/api/inputs/od/motion", {"enabled": False})
            assert st == 200, (st, doc)
            assert settle(state_of, "idle") == "idle", state_of()
            st, doc, _ = call(relay, "PATCH", "/api/inputs/od/motion", {"enabled": True})
            assert st == 200, (st, doc)
            assert settle(state_of, "running") == "running", state_of()
            st, _, _ = call(relay, "DELETE", "/api/inputs/od")
            assert st == 200, st

        def motion_ffmpeg_input():
            if shutil.which("ffmpeg") is None:
                raise AssertionError("ffmpeg is not installed")
            clip = os.path.join(tmp, "clip.mp4")
            # A white 60 x 60 square crossing a black picture at 80 px/s,
            # its top at row 80; H.264, looped by the relay's ffmpeg.
            subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
                            "-f", "lavfi", "-i", "color=c=black:s=320x240:r=25",
                            "-f", "lavfi", "-i", "color=c=white:s=60x60:r=25",
                            "-filter_complex", "[0][1]overlay=x='mod(t*80,260)':y=80:shortest=1",
                            "-t", "6", "-c:v", "libx264", "-preset", "ultrafast",
                            "-pix_fmt", "yuv420p", "-g", "25", clip], check=True, timeout=60)
            st, doc, _ = call(relay, "POST", "/api/inputs",
                              {"name": "ff", "kind": "ffmpeg", "url": clip, "loop": True,
                               "motion": {"enabled": True}})
            assert st == 201, (st, doc)
            try:
                d = wait_event(ev, "motion-start", "ff", 20)
            except AssertionError:
                raise AssertionError("no motion-start: %r" % call(relay, "GET", "/api/inputs/ff")[1])
            assert d["width"] == 320 and d["box"] is not None, d
            b = d["box"]
            assert abs(b["y"] - 80) <= 8 and abs(b["h"] - 60) <= 12 and 0 < b["w"] <= 110, d
            print("     ffmpeg input: motion-start box %r" % b, flush=True)
            st, doc, _ = call(relay, "GET", "/api/inputs/ff")
            assert doc["viewers"] == 0, doc
            assert doc["ffmpeg"]["decoder"]["state"] == "running", doc["ffmpeg"]["decoder"]
            assert doc["motion"]["frames_analysed"] > 0, doc["motion"]
            st, _, _ = call(relay, "DELETE", "/api/inputs/ff")
            assert st == 200, st
            assert "mot-ff" not in motion_threads(relay), motion_threads(relay)

        def motion_corrupt_jpegs():
            # Parts that pass the stream parser (SOI ... EOI) but do not
            # decode: counted, skipped, nothing else happens.
            cam = FakeCamera().start()
            keep.append(cam)
            st, doc, _ = call(relay, "POST", "/api/inputs",
                              {"name": "bad", "kind": "mjpeg", "url": cam.url("/corrupt"),
                               "motion": {"enabled": True, "fps": 10}})
            assert st == 201, (st, doc)
            deadline = time.monotonic() + 10
            while True:
                m = motion(relay, "bad")
                if m["decode_errors"] >= 5 and m["frames_analysed"] >= 2:
                    break
                assert time.monotonic() < deadline, m
                time.sleep(0.2)
            assert m["running"] is True and m["width"] == 32, m
            _, _, body = relay.get("/metrics")
            assert metric(body.decode(), "steward_relay_motion_decode_errors_total",
                          '{input="bad"}') >= 5
            print("     corrupt camera: %d analysed, %d decode errors"
                  % (m["frames_analysed"], m["decode_errors"]), flush=True)
            st, _, _ = call(relay, "DELETE", "/api/inputs/bad")
            assert st == 200, st
            cam.stop()
            keep.remove(cam)

        def motion_delete_input():
            st, _, _ = call(relay, "DELETE", "/api/inputs/still")
            assert st == 200, st
            assert motion_threads(relay) == ["mot-ball"], motion_threads(relay)

        def motion_shutdown():
            ev.close()
            keep.remove(ev)
            stop(relay)

        def motion_restart():
            # The options come back from the state file and the processor
            # runs again.
            again = Relay(build, ["--state", state, "--no-default-input"])
            try:
                m = motion(again, "ball")
                assert m["enabled"] is True and m["threshold"] == 30, m
                assert m["running"] is True, m
                assert motion_threads(again) == ["mot-ball"], motion_threads(again)
                stop(again)
            finally:
                again.kill()

        def motion_config_file():
            # Declared in YAML: a decimal min_area and a list of rectangles;
            # changed only there.
            conf = os.path.join(tmp, "relay.yaml")
            with open(conf, "w") as f:
                f.write("inputs:\n  yard:\n    kind: test\n    width: 160\n    height: 120\n"
                        "    pattern: still\n    motion:\n      enabled: true\n"
                        "      min_area: 0.75\n      ignore:\n"
                        "        - {x: 0, y: 0, w: 160, h: 40}\n")
            os.chmod(conf, 0o600)
            other = Relay(build, ["--config", conf, "--state", "none"])
            try:
                m = motion(other, "yard")
                assert m["enabled"] is True and m["running"] is True, m
                assert m["min_area"] == 0.75, m
                assert m["ignore"] == [{"x": 0, "y": 0, "w": 160, "h": 40}], m
                st, doc, _ = call(other, "PATCH", "/api/inputs/yard/motion", {"enabled": False})
                assert st == 409 and "config file" in doc["error"], (st, doc)
                assert motion(other, "yard")["running"] is True
                stop(other)
            finally:
                other.kill()

        for name, fn in [("motion_start_event", motion_start_event),
                         ("motion_rate_capped", motion_rate_capped),
                         ("motion_still_pattern", motion_still_pattern),
                         ("motion_validation", motion_validation),
                         ("motion_disable_thread", motion_disable_thread),
                         ("motion_state_file", motion_state_file),
                         ("motion_on_demand", motion_on_demand),
                         ("motion_ffmpeg_input", motion_ffmpeg_input),
                         ("motion_corrupt_jpegs", motion_corrupt_jpegs),
                         ("motion_delete_input", motion_delete_input),
                         ("motion_shutdown", motion_shutdown),
                         ("motion_restart", motion_restart),
                         ("motion_config_file", motion_config_file)]:
            check(name, fn)
    finally:
        for k in keep:
            if isinstance(k, FakeCamera):
                k.stop()
            else:
                k.close()
        relay.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main_for("motion", run))
