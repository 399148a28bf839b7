#!/usr/bin/python3
"""An RTSP camera for the tests: gst-rtsp-server serving a live H.264 test
pattern (and optionally AAC audio) on 127.0.0.1.

  rtsp_camera.py --port PORT [--path /cam] [--width 640] [--height 360]
                 [--fps 25] [--bitrate KBPS] [--audio] [--user U --password P]

Needs Debian's python3-gi and gir1.2-gst-rtsp-server-1.0 (run it with
/usr/bin/python3), plus gstreamer1.0-plugins-{good,ugly} (rtph264pay,
x264enc) and gstreamer1.0-libav (avenc_aac) for audio.

The media is shared: one pipeline (one encoder) whatever the number of
clients, so many clients cost the camera little. With --user/--password
the server demands RTSP Basic authentication.

The media is prepared before the camera says it is ready (an always-on
camera), so clients that connect at once do not race to prepare it.
Prints "ready PORT" on stdout once it listens; exits 3 if it cannot bind,
4 if the pipeline cannot be prepared.
SIGTERM or SIGINT stops it; SIGKILL is fine too (nothing to clean up).
"""
import argparse
import signal
import sys
import threading

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402


def launch_line(a):
    video = (
        "videotestsrc is-live=true pattern=ball "
        "! video/x-raw,width={w},height={h},framerate={f}/1 "
        # Nobody playing: the encoder waits, the camera drops old pictures
        # (no backlog burst when a client starts playing).
        "! queue leaky=downstream max-size-buffers=1 max-size-bytes=0 max-size-time=0 "
        "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={f} bitrate={b} "
        "! video/x-h264,profile=constrained-baseline "
        "! rtph264pay name=pay0 pt=96 config-interval=1"
    ).format(w=a.width, h=a.height, f=a.fps, b=a.bitrate)
    audio = ""
    if a.audio:
        audio = (
            " audiotestsrc is-live=true wave=sine volume=0.3 "
            "! audio/x-raw,rate=48000,channels=2 "
            "! queue leaky=downstream max-size-buffers=1 max-size-bytes=0 max-size-time=0 "
            "! audioconvert "
            "! avenc_aac ! rtpmp4gpay name=pay1 pt=97"
        )
    return "( " + video + audio + " )"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", default="/cam")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=360)
    p.add_argument("--fps", type=int, default=25)
    p.add_argument("--bitrate", type=int, default=800, help="kbit/s")
    p.add_argument("--audio", action="store_true")
    p.add_argument("--user")
    p.add_argument("--password")
    a = p.parse_args()
    if not a.path.startswith("/"):
        a.path = "/" + a.path

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(a.port))
    server.set_backlog(256)  # many clients may connect at once (benchmarks)

    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch_line(a))
    factory.set_shared(True)
    # A client that goes away must not stop the camera for the others, and
    # the shared pipeline is torn down only when the last one leaves.
    factory.set_eos_shutdown(False)

    if a.user is not None:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "viewer")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(a.user, a.password or ""), token)
        server.set_auth(auth)
        factory.add_role_from_structure(Gst.Structure.new_from_string(
            "viewer, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"))

    server.get_mount_points().add_factory(a.path, factory)
    if server.attach(None) == 0:
        print("rtsp_camera: cannot listen on 127.0.0.1:%d" % a.port, file=sys.stderr, flush=True)
        return 3

    # Prepare the shared media now, as a camera that is always on: clients
    # find it in the factory's cache. Left to the first clients, several
    # connecting at once can race in its preparation and all hang.
    # Our own preparation is never undone, so it stays prepared whatever
    # the clients do. The media's bus is served by a thread of its own.
    res, url = GstRtsp.RTSPUrl.parse("rtsp://127.0.0.1:%d%s" % (a.port, a.path))
    media = factory.construct(url) if res == GstRtsp.RTSPResult.OK else None
    media_thread = GstRtspServer.RTSPThread.new(GstRtspServer.RTSPThreadType.MEDIA)
    threading.Thread(target=media_thread.loop.run, name="media", daemon=True).start()
    if media is None or not media.prepare(media_thread):
        print("rtsp_camera: cannot prepare the media: %s" % launch_line(a),
              file=sys.stderr, flush=True)
        return 4

    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, sig, loop.quit)
    print("ready %d" % a.port, flush=True)
    loop.run()
    media.unprepare()
    media_thread.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
