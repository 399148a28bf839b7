#!/usr/bin/env python3
"""Integration tests of recording mode "motion" (record only around motion,
with a pre-roll and a post-roll): the real relay under `steward check`, real
ffmpeg recorder children, the motion processor on the test pattern and on
an ffmpeg input, ffprobe on what was written.

  motionrec_validation   record_mode / record_pre_roll / record_post_roll
                         checked (400/422 JSON), mode "motion" refused
                         without motion detection (422 at creation, 409 on
                         PATCH), motion detection not turned off under it
                         (409), a config file with it refused at start
  motionrec_armed        inputs in mode "motion" wait "armed" (no child, no
                         session) until motion
  motionrec_child_killed the recorder child SIGKILLed mid-session: a new one
                         goes on in the same session; only the first
                         segment (which holds the pre-roll) is renamed, both
                         play
  motionrec_still        the still pattern (no motion) records nothing at
                         all: no session, no child, no file
  motionrec_pattern      the moving ball starts a session; motion that ends
                         and comes back within the post-roll keeps the same
                         session; after the last motion-end the session
                         ends post_roll seconds later; its one segment is
                         finished, named for where its pre-roll starts and
                         lasts pre-roll + motion + post-roll (ffprobe), at
                         the pattern's frame rate
  motionrec_ring_bounded the pre-roll ring (API and /metrics) holds the
                         pre-roll and a second, never more than its bounds
  motionrec_ffmpeg       an ffmpeg input (a clip: still, a square moving for
                         6 s, still) copied (-c copy): the session's segment
                         starts at a keyframe before the motion-start, within
                         the pre-roll, and ends post_roll after motion-end
  motionrec_mjpeg        an MJPEG camera (fake_camera.py /clip, 20 fps: still,
                         a square moving for 4 s, still): the session holds
                         the pre-roll, at the camera's measured rate
  motionrec_state_restart the mode and the rolls are in the state file: after
                         a restart the input is armed again in mode motion;
                         the JPEG pre-roll ring counts in --max-input-memory
                         (507 at creation and on PATCH)
  motionrec_cleanup      inputs deleted: no recorder child or zombie left,
                         descriptors, threads and children back to the
                         baseline
  motionrec_shutdown     SIGTERM: clean, 0 leaks under `steward check`

Usage: relay_motionrec.py BUILD_DIR
Prints "ok   relay/NAME (S s)" or "FAIL relay/NAME: reason" per case and
exits non-zero if any failed.
"""
import calendar
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import media_servers as ms  # noqa: E402
from fake_camera import FakeCamera  # noqa: E402
from relay_ffmpeg import RELAYS, RESULTS, Relay, assert_clean_exit, check, report, wait_for  # noqa: E402,E501
from relay_record import Events, metric, name_time, probe, segments  # noqa: E402

BAND = [{"x": 0, "y": 0, "w": 320, "h": 72}]  # the pattern's clock and counter
ALL = [{"x": 0, "y": 0, "w": 320, "h": 240}]  # nothing counts: motion ends


def iso_ms(s):
    """Seconds since the epoch of the API's "YYYY-MM-DDTHH:MM:SS.mmmZ"."""
    return calendar.timegm(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S")) + int(s[20:23]) / 1000


def session_time(path):
    """The UTC time a segment's session folder is named for."""
    day, hms = path.split("/")[1:3]
    return calendar.timegm(time.strptime(day + hms, "%Y-%m-%d%H-%M-%S"))


def make_clip(path):
    """A 320x240 H.264 clip, a keyframe a second: a white square still for
    6 s, moving for 6 s, then still for 40 s."""
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", "color=c=black:s=320x240:r=25",
                    "-f", "lavfi", "-i", "color=c=white:s=60x60:r=25",
                    "-filter_complex",
                    "[0][1]overlay=x='if(lt(t,6),20,if(lt(t,12),20+(t-6)*40,260))':y=80:"
                    "shortest=1",
                    "-t", "52", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                    "-g", "25", path], check=True, timeout=120)


def clip_frames(tmp):
    """JPEGs of a 320x240 picture at 20 fps: a white square still for 6 s,
    moving for 4 s, still for 20 s."""
    d = os.path.join(tmp, "frames")
    os.makedirs(d, exist_ok=True)
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", "color=c=black:s=320x240:r=20",
                    "-f", "lavfi", "-i", "color=c=white:s=60x60:r=20",
                    "-filter_complex",
                    "[0][1]overlay=x='if(lt(t,6),20,if(lt(t,10),20+(t-6)*60,260))':y=80:"
                    "shortest=1",
                    "-t", "30", "-q:v", "5", os.path.join(d, "f%04d.jpg")],
                   check=True, timeout=120)
    out = []
    for name in sorted(os.listdir(d)):
        with open(os.path.join(d, name), "rb") as f:
            out.append(f.read())
    return out


def run(build, tmp, marker):
    env = dict(os.environ, STEWARD_TEST_MARKER=marker)
    root = os.path.join(tmp, "rec")
    clip = os.path.join(tmp, "clip.mp4")
    make_clip(clip)
    relay = Relay(build, ["--recordings", root, "--recordings-min-free", "0"], env=env)
    ev = Events(relay)
    t0 = {}
    try:
        def counts():
            st, r = relay.api("GET", "/system-resources")
            kinds = {k["kind"]: k["live"] for k in r["ledger"]["kinds"]}
            return (kinds.get("fd", 0), kinds.get("thread", 0), kinds.get("process", 0),
                    sorted(t["name"] for t in r["threads"]))
        base = counts()

        def state(name):
            return relay.input(name)["recording"]

        def kids(name):
            return [p for p in relay.children()
                    if p["zombie"] or any("/%s/" % name in a for a in p["cmdline"])]

        def validation():
            bad = [({"record_mode": "sometimes"}, 422, "record_mode"),
                   ({"record_mode": 1}, 400, "record_mode"),
                   ({"record_pre_roll": 31}, 422, "record_pre_roll"),
                   ({"record_pre_roll": -1}, 422, "record_pre_roll"),
                   ({"record_pre_roll": "5"}, 400, "record_pre_roll"),
                   ({"record_post_roll": 3601}, 422, "record_post_roll"),
                   ({"record_post_roll": 2.5}, 400, "record_post_roll")]
            base_in = {"name": "v", "kind": "test", "width": 160, "height": 120, "fps": 5}
            for extra, code, word in bad:
                st, b = relay.api("POST", "/api/inputs", dict(base_in, **extra))
                assert st == code and word in b["error"], (extra, st, b)
            # Mode "motion" needs motion detection.
            st, b = relay.api("POST", "/api/inputs",
                              dict(base_in, record=True, record_mode="motion"))
            assert st == 422 and "motion.enabled" in b["error"], (st, b)
            st, b = relay.api("POST", "/api/inputs", dict(base_in, record_mode="motion",
                                                          record_pre_roll=2))
            assert st == 201, (st, b)  # not recording: nothing to refuse yet
            assert (b["record_mode"], b["record_pre_roll"], b["record_post_roll"]) == \
                ("motion", 2, 10), b
            st, b = relay.api("PATCH", "/api/inputs/v", {"record": True})
            assert st == 409 and "motion" in b["error"], (st, b)
            assert relay.input("v")["record"] is False
            for extra, code, word in bad:
                st, b = relay.api("PATCH", "/api/inputs/v", extra)
                assert st == code and word in b["error"], (extra, st, b)
            st, b = relay.api("PATCH", "/api/inputs/v/motion", {"enabled": True})
            assert st == 200, (st, b)
            st, b = relay.api("PATCH", "/api/inputs/v", {"record": True})
            assert st == 200 and b["recording"]["mode"] == "motion", (st, b)
            # Motion detection cannot be turned off under it.
            st, b = relay.api("PATCH", "/api/inputs/v/motion", {"enabled": False})
            assert st == 409 and "record_mode" in b["error"], (st, b)
            assert relay.api("GET", "/api/inputs/v/motion")[1]["enabled"] is True
            # Back to continuous, then it can.
            st, b = relay.api("PATCH", "/api/inputs/v", {"record_mode": "continuous",
                                                         "record": False})
            assert st == 200 and b["record_mode"] == "continuous", (st, b)
            st, b = relay.api("PATCH", "/api/inputs/v/motion", {"enabled": False})
            assert st == 200, (st, b)
            relay.delete("v")
            # A config file: refused at start with the reason.
            conf = os.path.join(tmp, "bad.yaml")
            with open(conf, "w") as f:
                f.write("inputs:\n  yard:\n    kind: test\n    record: true\n"
                        "    record_mode: motion\n")
            os.chmod(conf, 0o600)
            steward = os.path.join(build, "src", "steward")
            r = subprocess.run([steward, "relay", "--config", conf, "--listen", "127.0.0.1:0",
                                "--state", "none", "--recordings", root],
                               capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
            err = r.stderr.decode(errors="replace")
            assert r.returncode != 0 and "motion.enabled" in err, (r.returncode, err[-800:])
            with open(conf, "w") as f:
                f.write("inputs:\n  yard:\n    kind: test\n    motion: {enabled: true}\n"
                        "    record: true\n    record_mode: motion\n"
                        "    record_post_roll: 4000\n")
            r = subprocess.run([steward, "relay", "--config", conf, "--listen", "127.0.0.1:0",
                                "--state", "none", "--recordings", root],
                               capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
            err = r.stderr.decode(errors="replace")
            assert r.returncode != 0 and "record_post_roll" in err, (r.returncode, err[-800:])

        check("motionrec_validation", validation)

        # The inputs of the cases below, created together so that the
        # processors' warm-ups overlap.
        t0["created"] = time.time()
        st, b = relay.api("POST", "/api/inputs",
                          {"name": "ball", "kind": "test", "width": 320, "height": 240,
                           "fps": 10, "motion": {"enabled": True, "ignore": BAND},
                           "record": True, "record_mode": "motion", "record_segment": 120,
                           "record_pre_roll": 3, "record_post_roll": 8})
        assert st == 201, (st, b)
        st, b = relay.api("POST", "/api/inputs",
                          {"name": "still", "kind": "test", "width": 320, "height": 240,
                           "fps": 10, "pattern": "still",
                           "motion": {"enabled": True, "ignore": BAND},
                           "record": True, "record_mode": "motion", "record_pre_roll": 5,
                           "record_post_roll": 2})
        assert st == 201, (st, b)

        def armed():
            for name in ("ball", "still"):
                r = wait_for("%s armed" % name,
                             lambda: (lambda r: r if r["state"] == "armed" else None)(
                                 state(name)), timeout=10, interval=0.05)
                assert r["pid"] == 0 and r["sessions"] == 0 and r["session"] is None, r
                assert r["mode"] == "motion" and r["pre_roll"] in (3, 5), r
                assert not kids(name), ms.describe(kids(name))
            wait_for("a recording-state event: still armed",
                     lambda: ev.find("recording-state", lambda d: d.get("input") == "still" and
                                     d["recording"]["state"] == "armed"), timeout=5)

        check("motionrec_armed", armed)

        def pattern():
            wait_for("ball recording", lambda: state("ball")["state"] == "recording",
                     timeout=30, interval=0.05)
            starts = ev.find("motion-start", lambda d: d.get("input") == "ball")
            assert starts, "recording without a motion-start event"
            since = iso_ms(starts[0]["time"])
            r = state("ball")
            assert r["sessions"] == 1 and r["pid"] > 0 and r["post_roll_until_ms"] == -1, r
            session = r["session"]
            time.sleep(2)
            # Motion ends (nothing counts) and comes back within the
            # post-roll (8 s; the processor's warm-up and start take ~4 s).
            st, b = relay.api("PATCH", "/api/inputs/ball/motion", {"ignore": ALL})
            assert st == 200, (st, b)
            wait_for("a post-roll deadline",
                     lambda: state("ball").get("post_roll_until_ms", 0) > 0, timeout=5,
                     interval=0.05)
            st, b = relay.api("PATCH", "/api/inputs/ball/motion", {"ignore": BAND})
            assert st == 200, (st, b)
            wait_for("a second motion-start",
                     lambda: len(ev.find("motion-start", lambda d: d.get("input") == "ball"))
                     >= 2, timeout=15, interval=0.05)
            r = state("ball")
            assert r["state"] == "recording" and r["session"] == session and \
                r["sessions"] == 1, ("a new session for motion within the post-roll", r)
            time.sleep(1)
            # The last motion-end: the session ends 8 s later.
            st, b = relay.api("PATCH", "/api/inputs/ball/motion", {"ignore": ALL})
            assert st == 200, (st, b)
            t_end = time.time()
            until = wait_for("a post-roll deadline",
                             lambda: (lambda u: u if u > 0 else None)(
                                 state("ball").get("post_roll_until_ms", 0)), timeout=5,
                             interval=0.05)
            assert t_end + 6.5 <= until / 1000 <= t_end + 9.5, (until / 1000 - t_end)
            r = wait_for("ball armed again",
                         lambda: (lambda r: r if r["state"] == "armed" else None)(state("ball")),
                         timeout=20, interval=0.05)
            t_armed = time.time()
            assert 6.5 <= t_armed - t_end <= 11, "the post-roll lasted %.1f s" % (t_armed - t_end)
            assert r["sessions"] == 1 and r["pid"] == 0, r
            states = [d["recording"]["state"] for d in ev.find("recording-state",
                                                  lambda d: d.get("input") == "ball")]
            first = states.index("recording")
            assert "armed" not in states[first:-1], states  # one session, not two
            preroll = r["pre_roll_recorded_ms"] / 1000
            assert 2.7 <= preroll <= 3.3, r
            assert not kids("ball"), ms.describe(kids("ball"))
            # One segment, finished, named for where its pre-roll starts.
            segs = segments(root, "ball")
            assert len(segs) == 1, segs
            seg = segs[0]
            assert os.path.dirname(seg) == "ball/" + session, (seg, session)
            assert abs(name_time(seg) - (since - preroll)) <= 1.2, (seg, since, preroll)
            assert session_time(seg) == name_time(seg), seg
            dur, frames, codec, w, h = probe(os.path.join(root, seg))
            assert (codec, w, h) == ("h264", 320, 240), (codec, w, h)
            want = t_armed - since + preroll
            assert want - 1.5 <= dur <= want + 0.6, "segment %.2f s, want %.2f s " \
                "(pre-roll %.1f s + %.1f s from motion-start to the end)" % (
                    dur, want, preroll, t_armed - since)
            assert dur >= t_end - since + preroll + 6, (dur, t_end - since)
            # The pattern's 10 fps throughout (the pre-roll burst kept its time).
            assert abs(frames - 10 * dur) <= 12, (frames, dur)
            fin = ev.find("segment-finished", lambda d: d.get("path") == seg)
            assert fin, ("no segment-finished for", seg)
            st, lst = relay.api("GET", "/api/recordings/ball")
            s = [s for se in lst["sessions"] for s in se["segments"] if s["path"] == seg]
            assert s and s[0]["recording"] is False and abs(s[0]["duration_ms"] / 1000 - dur) \
                < 0.3, s
            print("     pattern: session %s, segment %.2f s = pre-roll %.2f s + %.2f s; "
                  "post-roll %.1f s, %d frames" % (session, dur, preroll, t_armed - since,
                                                    t_armed - t_end, frames), flush=True)

        check("motionrec_pattern", pattern)

        def child_killed():
            before = set(segments(root, "ball"))
            st, b = relay.api("PATCH", "/api/inputs/ball", {"record_post_roll": 2})
            assert st == 200 and b["recording"]["post_roll"] == 2, (st, b)
            st, b = relay.api("PATCH", "/api/inputs/ball/motion", {"ignore": BAND})
            assert st == 200, (st, b)
            r = wait_for("ball recording", lambda: (lambda r: r if r["state"] == "recording"
                                                    and r["pid"] > 0 else None)(state("ball")),
                         timeout=30, interval=0.05)
            t_rec = time.time()
            session, pid = r["session"], r["pid"]
            wait_for("the first segment", lambda: [p for p in segments(root, "ball")
                                                   if p not in before], timeout=10)
            time.sleep(2)
            os.kill(pid, signal.SIGKILL)
            r = wait_for("a new recorder child", lambda: (lambda r: r if r["pid"] not in (0, pid)
                                                          and r["state"] == "recording"
                                                          else None)(state("ball")),
                         timeout=15, interval=0.05)
            assert r["session"] == session and r["sessions"] == 1, r
            time.sleep(2.5)
            st, b = relay.api("PATCH", "/api/inputs/ball/motion", {"ignore": ALL})
            assert st == 200, (st, b)
            r = wait_for("ball armed again",
                         lambda: (lambda r: r if r["state"] == "armed" else None)(state("ball")),
                         timeout=20, interval=0.05)
            segs = [p for p in segments(root, "ball") if p not in before]
            assert len(segs) == 2 and all(os.path.dirname(p) == "ball/" + session
                                          for p in segs), (segs, session)
            preroll = r["pre_roll_recorded_ms"] / 1000
            assert 2.7 <= preroll <= 3.3, r
            # The first was renamed for its pre-roll, the second was not.
            assert name_time(segs[0]) == session_time(segs[0]), segs
            assert t_rec - name_time(segs[0]) >= 2.0, (segs, t_rec)
            gap = name_time(segs[1]) - name_time(segs[0])
            d0 = probe(os.path.join(root, segs[0]))[0]
            d1 = probe(os.path.join(root, segs[1]))[0]
            # The second starts after the first ended and within a few
            # seconds (the restart's backoff): names have a second's
            # resolution, so their difference is within a second of the
            # real one, and the restart can take under a second (5.0 s
            # recorded, names 5 s apart, in a loaded run).
            assert d0 - 1.0 <= gap <= d0 + 5, (segs, d0, gap)
            assert d0 >= preroll + 1.0 and d1 >= 4.0, (d0, d1)
            print("     child killed: %.2f s (pre-roll %.2f s) + %.2f s, %d s apart"
                  % (d0, preroll, d1, gap), flush=True)

        check("motionrec_child_killed", child_killed)

        def still():
            # By now the still pattern has run as long as the ball's session.
            assert time.time() - t0["created"] > 15, time.time() - t0["created"]
            r = state("still")
            assert r["state"] == "armed" and r["sessions"] == 0 and r["session"] is None, r
            assert r["pre_roll_recorded_ms"] == 0 and "post_roll_until_ms" not in r, r
            assert not ev.find("motion-start", lambda d: d.get("input") == "still")
            assert not segments(root, "still"), segments(root, "still")
            assert not os.path.exists(os.path.join(root, "still")), os.listdir(root)
            assert not kids("still"), ms.describe(kids("still"))

        check("motionrec_still", still)

        def ring_bounded():
            # 10 fps, pre-roll 5 s: the ring keeps 6 s, about 60 frames.
            most = {"frames": 0, "bytes": 0, "ms": 0}
            for _ in range(20):
                ring = state("still")["ring"]
                for k in most:
                    most[k] = max(most[k], ring[k])
                assert ring["bytes"] <= ring["max_bytes"] and ring["frames"] <= \
                    ring["max_frames"], ring
                time.sleep(0.1)
            assert 4500 <= most["ms"] <= 6500, most
            assert 40 <= most["frames"] <= 66, most
            b = metric(relay, "steward_recording_preroll_bytes", '{input="still"}')
            f = metric(relay, "steward_recording_preroll_frames", '{input="still"}')
            assert b is not None and 0 < b <= 2 * most["bytes"] and 40 <= f <= 66, (b, f)
            print("     ring: at most %d frames, %d bytes, %d ms (pre-roll 5 s)"
                  % (most["frames"], most["bytes"], most["ms"]), flush=True)

        check("motionrec_ring_bounded", ring_bounded)

        def ffmpeg_input():
            # The clip: motion from 6 s to 12 s of each 52 s pass (the
            # processor's warm-up of 3 s falls in the first still part).
            relay.create("ff", clip, loop=True, motion={"enabled": True, "end_after": 1},
                         record=True, record_mode="motion", record_segment=120,
                         record_pre_roll=3, record_post_roll=2)
            wait_for("ff armed", lambda: state("ff")["state"] == "armed", timeout=20,
                     interval=0.05)
            r = wait_for("ff armed, then recording", lambda: state("ff")["state"] == "recording",
                         timeout=40, interval=0.05)
            starts = ev.find("motion-start", lambda d: d.get("input") == "ff")
            assert starts, "recording without a motion-start event"
            since = iso_ms(starts[0]["time"])
            r = wait_for("ff armed again",
                         lambda: (lambda r: r if r["state"] == "armed" else None)(state("ff")),
                         timeout=30, interval=0.05)
            t_armed = time.time()
            ends = ev.find("motion-end", lambda d: d.get("input") == "ff")
            assert ends, "no motion-end"
            t_end = iso_ms(ends[0]["time"])
            assert 1.0 <= t_armed - t_end <= 4.5, "post-roll %.1f s" % (t_armed - t_end)
            assert r["sessions"] == 1, r
            preroll = r["pre_roll_recorded_ms"] / 1000
            # A keyframe a second: the newest at or before 3 s back.
            assert 2.9 <= preroll <= 4.3, r
            segs = segments(root, "ff")
            assert len(segs) == 1, segs
            seg = segs[0]
            dur, frames, codec, w, h = probe(os.path.join(root, seg))
            assert (codec, w, h) == ("h264", 320, 240), (codec, w, h)
            want = t_armed - since + preroll
            assert want - 1.5 <= dur <= want + 0.6, "segment %.2f s, want %.2f s" % (dur, want)
            assert abs(frames - 25 * dur) <= 30, (frames, dur)
            assert abs(name_time(seg) - (since - preroll)) <= 1.2, (seg, since, preroll)
            assert not kids("ff"), ms.describe(kids("ff"))
            # The ring of an ffmpeg input: the MPEG-TS the input retains
            # anyway, bounded by bytes.
            ring = state("ff")["ring"]
            assert 0 < ring["bytes"] <= ring["max_bytes"] and ring["ms"] > 10000, ring
            print("     ffmpeg: segment %.2f s = pre-roll %.2f s + %.2f s, post-roll %.1f s"
                  % (dur, preroll, t_armed - since, t_armed - t_end), flush=True)

        check("motionrec_ffmpeg", ffmpeg_input)

        def cleanup():
            for name in ("ball", "still", "ff", "door"):
                if relay.api("GET", "/api/inputs/" + name)[0] == 200:
                    relay.delete(name)
            left = [p for p in relay.children()]
            assert not left, ms.describe(left)
            last = {}

            def back():
                last["c"] = c = counts()
                return c if c == base else None
            try:
                after = wait_for("the baseline", back, timeout=15)
            except AssertionError:
                raise AssertionError("fds, threads, children, thread names %r, not back to "
                                     "the baseline %r" % (last["c"], base))
            print("     back to %r" % (after[:3],), flush=True)

        def mjpeg():
            cam = FakeCamera()
            cam.clip = clip_frames(tmp)
            cam.start()
            try:
                st, b = relay.api("POST", "/api/inputs",
                                  {"name": "door", "kind": "mjpeg", "url": cam.url("/clip"),
                                   "motion": {"enabled": True, "end_after": 1},
                                   "record": True, "record_mode": "motion",
                                   "record_segment": 120, "record_pre_roll": 2,
                                   "record_post_roll": 2})
                assert st == 201, (st, b)
                wait_for("door armed", lambda: state("door")["state"] == "armed", timeout=20,
                         interval=0.05)
                wait_for("door recording", lambda: state("door")["state"] == "recording",
                         timeout=30, interval=0.05)
                starts = ev.find("motion-start", lambda d: d.get("input") == "door")
                assert starts, "recording without a motion-start event"
                since = iso_ms(starts[0]["time"])
                r = wait_for("door armed again",
                             lambda: (lambda r: r if r["state"] == "armed" else None)(
                                 state("door")), timeout=30, interval=0.05)
                t_armed = time.time()
                assert r["sessions"] == 1, r
                preroll = r["pre_roll_recorded_ms"] / 1000
                assert 1.8 <= preroll <= 2.2, r
                segs = segments(root, "door")
                assert len(segs) == 1, segs
                dur, frames, codec, w, h = probe(os.path.join(root, segs[0]))
                assert (codec, w, h) == ("h264", 320, 240), (codec, w, h)
                want = t_armed - since + preroll
                assert want - 1.5 <= dur <= want + 0.6, "segment %.2f s, want %.2f s" % (
                    dur, want)
                # The camera's rate, measured (a Python camera on a busy machine
                # sends a little under 20 fps).
                assert 14 * dur <= frames <= 21 * dur, (frames, dur)
                assert abs(name_time(segs[0]) - (since - preroll)) <= 1.2, (segs[0], since)
                print("     mjpeg: segment %.2f s = pre-roll %.2f s + %.2f s, %.1f fps"
                      % (dur, preroll, t_armed - since, frames / dur), flush=True)
            finally:
                cam.stop()

        check("motionrec_mjpeg", mjpeg)

        check("motionrec_cleanup", cleanup)

        def shutdown():
            ev.close()
            rc, took, err = relay.terminate()
            assert_clean_exit(rc, took, err, 15)
            left = ms.orphans(marker)
            assert not left, ms.describe(left)

        check("motionrec_shutdown", shutdown)
    finally:
        ev.close()
        relay.kill()


def run_restart(build, tmp, marker):
    env = dict(os.environ, STEWARD_TEST_MARKER=marker)
    root = os.path.join(tmp, "rec-restart")
    state = os.path.join(tmp, "state.json")

    def restart():
        fields = ("record", "record_mode", "record_pre_roll", "record_post_roll")
        relay = Relay(build, ["--recordings", root, "--state", state,
                              "--max-input-memory", "20"], env=env)
        try:
            yard = {"name": "yard", "kind": "test", "width": 160, "height": 120,
                    "fps": 5, "pattern": "still", "motion": {"enabled": True},
                    "record": True, "record_mode": "motion", "record_pre_roll": 7,
                    "record_post_roll": 20}
            st, b = relay.api("POST", "/api/inputs", yard)
            assert st == 201, (st, b)
            # A second pre-roll ring (16 MiB) does not fit in 20 MiB.
            st, b = relay.api("POST", "/api/inputs", dict(yard, name="lane"))
            assert st == 507 and "max-input-memory" in b["error"], (st, b)
            st, b = relay.api("POST", "/api/inputs", dict(yard, name="lane", record=False))
            assert st == 201, (st, b)
            st, b = relay.api("PATCH", "/api/inputs/lane", {"record": True})
            assert st == 507 and "pre-roll" in b["error"], (st, b)
            assert relay.input("lane")["record"] is False
            st, b = relay.api("PATCH", "/api/inputs/lane", {"record": True,
                                                            "record_mode": "continuous"})
            assert st == 200, (st, b)
            relay.delete("lane")
            saved = json.load(open(state))["inputs"][0]
            assert tuple(saved[k] for k in fields) == (True, "motion", 7, 20), saved
            rc, took, err = relay.terminate()
            assert_clean_exit(rc, took, err, 15)
        finally:
            relay.kill()
        relay = Relay(build, ["--recordings", root, "--state", state], env=env)
        try:
            i = relay.input("yard")
            assert tuple(i[k] for k in fields) == (True, "motion", 7, 20), i
            r = wait_for("armed again", lambda: (lambda r: r if r["state"] == "armed" else None)(
                relay.input("yard")["recording"]), timeout=10)
            assert (r["mode"], r["pre_roll"], r["post_roll"]) == ("motion", 7, 20), r
            rc, took, err = relay.terminate()
            assert_clean_exit(rc, took, err, 15)
        finally:
            relay.kill()
    check("motionrec_state_restart", restart)


def main():
    if len(sys.argv) != 2:
        print("usage: relay_motionrec.py BUILD_DIR", file=sys.stderr)
        return 2
    build = sys.argv[1]
    if shutil.which("ffmpeg") is None:
        report("motionrec", False, "ffmpeg is not installed")
        return 1
    tmp = tempfile.mkdtemp(prefix="steward-motionrec-test-")
    marker = ms.new_marker("stwmrec")
    try:
        run(build, tmp, marker)
        run_restart(build, tmp, marker)
    except Exception as e:
        report("motionrec", False, "%s: %s" % (type(e).__name__, e))
    finally:
        for r in list(RELAYS):
            r.kill()
        ms.kill_orphans(marker, report, "motionrec_orphans")
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if RESULTS and all(RESULTS) else 1


if __name__ == "__main__":
    sys.exit(main())
