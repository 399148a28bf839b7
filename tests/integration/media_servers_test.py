#!/usr/bin/env python3
"""The real media servers of media_servers.py, proven with plain ffmpeg and
ffprobe (no relay): an RTSP camera (with audio, with credentials, killed
and started again on its port), nginx-rtmp (publish and play), an SRT
listener receiving a push, an SRT source, a live HLS playlist over HTTP, a
generated MP4, and the process accounting the relay's tests rely on.

Usage: media_servers_test.py [BUILD_DIR]   (BUILD_DIR is not used)
Prints "ok   media/NAME" or "FAIL media/NAME: reason" per test case and
exits non-zero if any failed. Every process it starts is stopped by
process group on the way out, whatever happened.
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import media_servers as ms  # noqa: E402

RESULTS = []
# Every process started from here inherits it: at the end, nothing that
# carries it may be left on the machine.
MARKER = ms.new_marker("stwmedia")
os.environ["STEWARD_TEST_MARKER"] = MARKER


def report(name, ok, why="", secs=0.0):
    RESULTS.append(ok)
    if ok:
        print("ok   media/%s (%.1f s)" % (name, secs), flush=True)
    else:
        print("FAIL media/%s: %s" % (name, why), flush=True)


def check(name, fn):
    t0 = time.monotonic()
    try:
        fn()
        report(name, True, secs=time.monotonic() - t0)
    except Exception as e:  # one case failing must not stop the others
        report(name, False, "%s: %s" % (type(e).__name__, e))


def expect_video(r, codec, w, h, min_frames, what):
    assert (r["codec"], r["width"], r["height"]) == (codec, w, h), \
        "%s: got %s %sx%s, want %s %dx%d" % (what, r["codec"], r["width"], r["height"], codec, w, h)
    # Half the nominal rate: a loaded 2-core machine still gets there.
    assert r["frames"] >= min_frames, "%s: %d frames, want >= %d" % (what, r["frames"], min_frames)


# Sources with audio too: as many video frames as the others.
WITH_AUDIO_MIN_FRAMES = 25


def run_ffmpeg(args, timeout=60):
    rc, _, err = ms._run_bounded("ffmpeg", [ms.FFMPEG, "-nostdin", "-hide_banner",
                                            "-v", "error"] + args, timeout)
    assert rc == 0, "ffmpeg %s: exit %s: %s" % (" ".join(args[-1:]), rc, err[-800:])


def main():
    tmp = tempfile.mkdtemp(prefix="steward-media-test-")
    try:
        run(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if RESULTS and all(RESULTS) else 1


def run(tmp):
    def rtsp_camera():
        with ms.rtsp_camera(width=640, height=360, fps=25) as cam:
            r = ms.ffprobe_stream(cam.url, seconds=2)
            expect_video(r, "h264", 640, 360, 25, cam.url)
            assert r["audio_codec"] is None, r["streams"]

    def rtsp_auth_audio():
        with ms.rtsp_camera(width=320, height=240, audio=True,
                            user="viewer", password="s3cr:t@/x") as cam:
            shown = ms.redact(cam.url)
            assert "s3cr" not in shown and "***" in shown, shown
            try:
                ms.ffprobe_stream(cam.url_without_auth, seconds=1, timeout=15)
                raise AssertionError("the camera served a client without credentials")
            except ms.ServerError as e:
                assert "401" in str(e), e
                assert "s3cr" not in str(e), "password in an error: %s" % e
            # Counted as they arrive: this camera's timestamps may jump (see
            # ffprobe_stream), its frames do not.
            r = ms.ffprobe_stream(cam.url, seconds=2, wallclock=True)
            expect_video(r, "h264", 320, 240, WITH_AUDIO_MIN_FRAMES, ms.redact(cam.url))
            assert r["audio_codec"] == "aac", r["streams"]

    def rtsp_restart():
        with ms.rtsp_camera(width=320, height=240) as cam:
            port, first = cam.port, cam.pid
            # A reader in the middle of the stream when the camera dies.
            reader = ms.Child("rtsp reader", [
                ms.FFMPEG, "-nostdin", "-v", "error", "-rtsp_transport", "tcp",
                "-i", cam.url, "-c", "copy", "-f", "null", "-"])
            try:
                time.sleep(1.5)
                assert reader.alive(), "reader died early: %s" % reader.tail()
                cam.kill()
                assert not cam.alive() and ms.proc_info(first) is None, \
                    "camera pid %d survived" % first
                assert not ms.tcp_accepts(port), "port %d still accepts" % port
                ms.wait_until(reader.exited, 15, None, "the reader did not notice the camera died")
            finally:
                reader.stop()
            cam.start()
            assert cam.port == port and cam.pid != first, (cam.port, port, cam.pid, first)
            r = ms.ffprobe_stream(cam.url, seconds=2)
            expect_video(r, "h264", 320, 240, 25, "camera after restart")
            cam.kill()
            cam.start()  # and once more, right away
            expect_video(ms.ffprobe_stream(cam.url, seconds=1), "h264", 320, 240, 12,
                         "camera after second restart")

    def nginx_rtmp():
        with ms.nginx_rtmp(os.path.join(tmp, "nginx")) as ng:
            with ms.rtmp_publisher(ng.url("pub"), width=320, height=240, audio=True) as pub:
                r = ms.ffprobe_stream(ng.url("pub"), seconds=2)
                expect_video(r, "h264", 320, 240, WITH_AUDIO_MIN_FRAMES, ng.url("pub"))
                assert r["audio_codec"] == "aac", r["streams"]
                assert pub.frames() > 25, pub.frames()
            assert "rtmp" in open(ng.conf).read() and ng.alive(), ng.tail()

    def rtsp_to_rtmp():
        # What a push output does: copy the camera's H.264 into FLV on nginx.
        with ms.rtsp_camera(width=640, height=360) as cam, \
                ms.nginx_rtmp(os.path.join(tmp, "nginx2")) as ng:
            pusher = ms.Child("rtsp->rtmp", [
                ms.FFMPEG, "-nostdin", "-v", "error", "-rtsp_transport", "tcp",
                "-i", cam.url, "-c", "copy", "-f", "flv", ng.url("cam")])
            try:
                r = ms.ffprobe_stream(ng.url("cam"), seconds=2)
                expect_video(r, "h264", 640, 360, 25, ng.url("cam"))
                assert pusher.alive(), pusher.tail()
            finally:
                pusher.stop()

    def srt_push():
        with ms.srt_listener(os.path.join(tmp, "srt")) as rx:
            # Live mode closes without waiting for what is still in flight
            # (linger 0): a loaded pusher then lost its last frames, cut one in
            # half and the file did not decode cleanly. It lingers instead.
            run_ffmpeg(["-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-t", "3",
                        "-c:v", "libx264", "-preset", "ultrafast", "-g", "25",
                        "-f", "mpegts", rx.url + "?linger=5"])
            rc = rx.wait_done(20)
            assert rc == 0, "listener exit %s: %s" % (rc, rx.tail())
            r = ms.ffprobe_stream(rx.path, seconds=None)
            expect_video(r, "h264", 320, 240, 75, rx.path)  # every frame pushed
            errs = ms.decode_errors(rx.path)
            assert not errs, errs[:5]

    def srt_source():
        with ms.srt_source(width=320, height=240, audio=True) as src:
            r = ms.ffprobe_stream(src.url, seconds=2)
            expect_video(r, "h264", 320, 240, WITH_AUDIO_MIN_FRAMES, src.url)
            assert r["audio_codec"] == "aac", r["streams"]
            # The caller left: the source serves the next one.
            expect_video(ms.ffprobe_stream(src.url, seconds=1), "h264", 320, 240, 12,
                         "second caller")
            assert src.starts >= 2, src.starts

    def hls():
        with ms.hls_server(os.path.join(tmp, "hls"), width=320, height=240) as h:
            r = ms.ffprobe_stream(h.url, seconds=2)
            expect_video(r, "h264", 320, 240, 25, h.url)
            assert len(h.segments()) <= 6, h.segments()

    def mp4():
        path = ms.mp4_file(os.path.join(tmp, "mp4"), seconds=2, with_audio=True)
        r = ms.ffprobe_stream(path, seconds=None)
        expect_video(r, "h264", 320, 240, 50, path)
        assert r["frames"] == 50, r["frames"]
        assert r["audio_codec"] == "aac", r["streams"]
        assert ms.decode_errors(path) == [], ms.decode_errors(path)
        bad = os.path.join(tmp, "mp4", "cut.mp4")
        with open(path, "rb") as f, open(bad, "wb") as g:
            g.write(f.read()[: os.path.getsize(path) // 2])
        assert ms.decode_errors(bad), "a truncated MP4 decoded cleanly"

    def process_accounting():
        mark = ms.new_marker()
        env = dict(os.environ, STEWARD_OTHER_MARKER=mark)
        p = subprocess.Popen(["sleep", "60"], env=env, start_new_session=True)
        q = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", mark],
                             start_new_session=True)
        z = subprocess.Popen(["true"])
        try:
            found = {o["pid"]: o["where"] for o in ms.orphans(mark)}
            assert found == {p.pid: "environ", q.pid: "cmdline"}, found
            ms.wait_until(lambda: (ms.proc_info(z.pid) or {}).get("zombie"), 10, None,
                          "`true` never became a zombie")
            kids = {c["pid"]: c for c in ms.children_of(os.getpid())}
            assert {p.pid, q.pid, z.pid} <= set(kids), kids
            assert kids[z.pid]["zombie"] and not kids[p.pid]["zombie"], kids
        finally:
            for x in (p, q):
                x.send_signal(signal.SIGKILL)
                x.wait()
            z.wait()
        left = ms.wait_for_none(lambda: ms.orphans(mark), 5)
        assert not left, ms.describe(left)

    check("rtsp_camera", rtsp_camera)
    check("rtsp_auth_audio", rtsp_auth_audio)
    check("rtsp_restart", rtsp_restart)
    check("nginx_rtmp", nginx_rtmp)
    check("rtsp_to_rtmp", rtsp_to_rtmp)
    check("srt_push", srt_push)
    check("srt_source", srt_source)
    check("hls", hls)
    check("mp4", mp4)
    check("process_accounting", process_accounting)

    def nothing_left():
        assert not ms.live_children(), [c.name for c in ms.live_children()]
        kids = ms.wait_for_none(lambda: ms.children_of(os.getpid()), 5)
        assert not kids, "children left: " + ms.describe(kids)
        left = ms.wait_for_none(lambda: ms.orphans(MARKER), 5)
        assert not left, "processes left: " + ms.describe(left)

    check("nothing_left", nothing_left)


if __name__ == "__main__":
    if len(sys.argv) > 2:
        print("usage: media_servers_test.py [BUILD_DIR]", file=sys.stderr)
        sys.exit(2)
    sys.exit(main())
