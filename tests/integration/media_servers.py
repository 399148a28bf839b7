#!/usr/bin/env python3
"""Real third-party media servers for the relay's tests, each started on
127.0.0.1 and an ephemeral port, and stopped (by process group) on the way
out, whatever happened.

Context managers (each yields a handle; see its class for the attributes):

  nginx_rtmp(tmpdir)          nginx + libnginx-mod-rtmp, `application live`:
                              rtmp://127.0.0.1:PORT/live/NAME can be published
                              and played                       -> NginxRtmp
  rtsp_camera(width=, height=, fps=, path="/cam", audio=, user=, password=)
                              gst-rtsp-server (rtsp_camera.py, a child python3
                              with gi) serving live H.264 (+AAC); kill() and
                              start() again on the same port    -> RtspCamera
  srt_listener(tmpdir)        ffmpeg listening for one SRT push, writing it to
                              a .ts file                        -> SrtListener
  srt_source(tmpdir)          ffmpeg serving a live test stream as an SRT
                              listener, for a caller to pull    -> SrtSource
  hls_server(tmpdir)          ffmpeg writing a live HLS playlist + an HTTP
                              server thread serving it          -> HlsServer
  rtmp_publisher(url)         ffmpeg publishing a live test stream to an
                              RTMP URL                          -> Publisher

Functions:

  mp4_file(tmpdir, seconds, with_audio)   a generated H.264 (+AAC) MP4 -> path
  ffprobe_stream(src, seconds=2)          codec, size and video frames in N s
  decode_errors(path)                     ffmpeg's decoding errors, [] if none
  redact(url)                             the URL with its password as ***
  children_of(pid)                        every descendant, with its state
  proc_info(pid)                          one process: state, ppid, comm, argv
  orphans(marker)                         processes carrying a marker string
  new_marker()                            a unique marker string
  wait_until(pred, timeout), wait_for_none(fn, timeout)   polling
  Child(name, argv), stop_all(children)   any other process, run the same way

Every handle has .pid, .alive(), .tail() (last log lines) and .stop();
the camera and nginx also .kill() (SIGKILL), .pause()/.resume()
(SIGSTOP/SIGCONT: hung with connections open) and .start() again on the
same port. STEWARD_MEDIA_KEEP_LOGS=1 keeps the servers' logs (the path is
printed on stderr); STEWARD_MEDIA_START_TIMEOUT (s, default 20) bounds
each start.

Every child runs in its own process group (start_new_session) with
PR_SET_PDEATHSIG=SIGKILL, so a test process killed outright takes its
servers along; stop() sends SIGTERM to the group, then SIGKILL, and reaps
the child; an atexit hook (and SIGTERM turned into SystemExit) stops what
is still running. Failures raise ServerError naming the server, with the
last lines of its log.

Needs Debian's ffmpeg, nginx, libnginx-mod-rtmp, python3-gi,
gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-{base,good,ugly} and
gstreamer1.0-libav (scripts/deps.sh test). Stdlib only otherwise.
"""
import atexit
import contextlib
import ctypes
import http.server
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
FFMPEG = shutil.which("ffmpeg") or "/usr/bin/ffmpeg"
FFPROBE = shutil.which("ffprobe") or "/usr/bin/ffprobe"
NGINX = "/usr/sbin/nginx"
NGINX_MODULES = "/usr/lib/nginx/modules"
CAMERA_SCRIPT = os.path.join(HERE, "rtsp_camera.py")

# Generous but bounded: a loaded 2-core machine starts an encoder slowly.
START_TIMEOUT = float(os.environ.get("STEWARD_MEDIA_START_TIMEOUT", "20"))


class ServerError(RuntimeError):
    """A server failed to start, died, or a probe failed; the message names
    it and ends with the last lines of its log."""


# ------------------------------------------------------------ child processes

_libc = ctypes.CDLL(None, use_errno=True)
_prctl = _libc.prctl
_PR_SET_PDEATHSIG = 1
_LIVE = []  # Child objects not yet stopped, oldest first
_LIVE_LOCK = threading.Lock()
_LOGDIR = None
_OUR_PID = os.getpid()


def _child_setup(parent):
    # Runs in the child between fork and exec: die with the parent (the
    # forking thread, which is why children are started from the caller's
    # thread and from long-lived threads only).
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def _logdir():
    global _LOGDIR
    if _LOGDIR is None:
        _LOGDIR = tempfile.mkdtemp(prefix="steward-media-")
        if os.environ.get("STEWARD_MEDIA_KEEP_LOGS"):
            print("media servers: logs kept in %s" % _LOGDIR, file=sys.stderr, flush=True)
        else:
            atexit.register(shutil.rmtree, _LOGDIR, True)
    return _LOGDIR


def _sigterm_to_exit(signum, frame):
    raise SystemExit(128 + signum)


def _install_sigterm():
    # `timeout` and the test runner stop us with SIGTERM: turn it into
    # SystemExit so finally blocks and atexit stop the servers.
    try:
        if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _sigterm_to_exit)
    except ValueError:  # not the main thread
        pass


def _stop_all():
    with _LIVE_LOCK:
        live = list(_LIVE)
    stop_all(live, timeout=3)


atexit.register(_stop_all)
_install_sigterm()  # from the start: temporary directories go too


def tail_file(path, n=15):
    """The last @n lines of a text file ('' if it cannot be read)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 16384))
            data = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-n:])


class Child:
    """One server process: its own process group, stdout+stderr into a log
    file, stopped by group and reaped. @name says which server it is in
    errors."""

    def __init__(self, name, argv, log_path=None, env=None, cwd=None):
        self.name = name
        self.argv = [str(a) for a in argv]
        if log_path is None:
            fd, log_path = tempfile.mkstemp(prefix=re.sub(r"\W", "_", name) + "-",
                                            suffix=".log", dir=_logdir())
            os.close(fd)
        self.log_path = log_path
        _install_sigterm()
        with open(log_path, "ab") as log:
            try:
                self.proc = subprocess.Popen(
                    self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                    env=env, cwd=cwd, start_new_session=True,
                    preexec_fn=lambda parent=os.getpid(): _child_setup(parent))
            except OSError as e:
                raise ServerError("%s: cannot run %s: %s" % (name, self.argv[0], e))
        self.pid = self.proc.pid
        self.returncode = None
        with _LIVE_LOCK:
            _LIVE.append(self)

    def exited(self):
        """True once the process has exited (it is reaped by stop())."""
        if self.returncode is not None:
            return True
        try:
            info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return info is not None and info.si_pid == self.pid

    def alive(self):
        return not self.exited()

    def tail(self, n=15):
        return tail_file(self.log_path, n)

    def fail(self, what):
        """A ServerError for @what, with the exit status and the log's tail."""
        status = "running"
        if self.exited():
            self._reap(0)
            status = "exited with %s" % self.returncode
        return ServerError("%s (pid %d, %s): %s; last log lines:\n%s"
                           % (self.name, self.pid, status, what, self.tail() or "(empty log)"))

    def _killpg(self, sig):
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _reap(self, timeout):
        if self.returncode is not None:
            return True
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def send_signal(self, sig):
        """Send @sig to the whole process group."""
        if self.returncode is None:
            self._killpg(sig)

    def stop(self, timeout=5, sig=signal.SIGTERM):
        """@sig to the group, up to @timeout s for the leader to exit, then
        SIGKILL to the group (stragglers included) and reap. Idempotent.
        Returns the exit code."""
        if self.returncode is None:
            self._killpg(sig)
            if sig != signal.SIGKILL:
                self._killpg(signal.SIGCONT)  # a paused server must see it
            deadline = time.monotonic() + timeout
            while not self.exited() and time.monotonic() < deadline:
                time.sleep(0.02)
            # The leader is at most a zombie here, so its pid (the group id)
            # cannot have been reused: SIGKILL whatever is left of the group.
            self._killpg(signal.SIGKILL)
            self._reap(None)
        with _LIVE_LOCK:
            if self in _LIVE:
                _LIVE.remove(self)
        return self.returncode

    def kill(self):
        """SIGKILL the group at once (a crash, as far as clients can tell)."""
        return self.stop(timeout=0, sig=signal.SIGKILL)

    def pause(self):
        """SIGSTOP the group: connections stay open, nothing moves (a hung
        server). resume() (SIGCONT) lets it go on."""
        self.send_signal(signal.SIGSTOP)

    def resume(self):
        self.send_signal(signal.SIGCONT)


def stop_all(children, timeout=5, sig=signal.SIGTERM):
    """Stop many children at once: @sig to every group, then up to @timeout
    s in all for them to exit, then SIGKILL and reap (Child.stop one by one
    would wait up to @timeout for each: ffmpeg blocked in a read after its
    start-up only gives up on a second signal)."""
    for c in children:
        c.send_signal(sig)
        if sig != signal.SIGKILL:
            c.send_signal(signal.SIGCONT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not all(c.exited() for c in children):
        time.sleep(0.05)
    for c in children:
        c.stop(timeout=0, sig=signal.SIGKILL)


def live_children():
    """The Child objects started here and not yet stopped."""
    with _LIVE_LOCK:
        return list(_LIVE)


# ------------------------------------------------------------ ports, waiting


def free_port(udp=False):
    """A port that was free on 127.0.0.1 a moment ago (the servers that
    cannot bind port 0 themselves are retried on another one if it is taken
    by the time they start)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def tcp_accepts(port, host="127.0.0.1", timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def udp_bound(port):
    """True if some socket is bound to UDP @port (/proc/net/udp{,6})."""
    hexport = ":%04X" % port
    for path in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    if line.split()[1].endswith(hexport):
                        return True
        except (OSError, StopIteration, IndexError):
            pass
    return False


def wait_until(pred, timeout, child=None, what="not ready", interval=0.1):
    """Poll @pred until it returns something true (returned) or @timeout s
    pass; if @child exits meanwhile, fail at once with its log."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if child is not None and child.exited():
            raise child.fail(what + " (the process exited)")
        if time.monotonic() >= deadline:
            if child is not None:
                raise child.fail("%s after %.0f s" % (what, timeout))
            raise ServerError("%s after %.0f s" % (what, timeout))
        time.sleep(interval)


def wait_for_none(fn, timeout=10, interval=0.1):
    """Poll fn() until it returns something empty; return its last value
    ([] or what is still there after @timeout s)."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if not v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def _tmp(tmpdir, prefix):
    if tmpdir is None:
        return tempfile.mkdtemp(prefix=prefix, dir=_logdir())
    os.makedirs(tmpdir, exist_ok=True)
    return tmpdir


def _testsrc_args(width, height, fps, audio, realtime=True):
    """ffmpeg input and encoder arguments for a live test pattern (+ a sine)."""
    a = ["-re"] if realtime else []
    a += ["-f", "lavfi", "-i", "testsrc2=size=%dx%d:rate=%d" % (width, height, fps)]
    if audio:
        a += (["-re"] if realtime else []) + [
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
    a += ["-map", "0:v"] + (["-map", "1:a"] if audio else [])
    a += ["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
          "-pix_fmt", "yuv420p", "-g", str(fps), "-keyint_min", str(fps),
          "-sc_threshold", "0", "-b:v", "600k"]
    if audio:
        a += ["-c:a", "aac", "-b:a", "64k", "-ac", "2"]
    return a


def _ffmpeg(*args):
    return [FFMPEG, "-nostdin", "-hide_banner", "-nostats", "-loglevel", "info"] + list(args)


def _progress_frames(path):
    """The last frame= count an ffmpeg -progress file reports (0 if none)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            data = f.read().decode(errors="replace")
    except OSError:
        return 0
    m = re.findall(r"^frame=(\d+)", data, re.M)
    return int(m[-1]) if m else 0


# ------------------------------------------------------------ nginx-rtmp

NGINX_CONF = """\
# nginx-rtmp for steward's tests: one process, everything in this directory.
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
load_module {modules}/ngx_rtmp_module.so;
events {{ worker_connections 4096; }}
rtmp {{
    access_log {dir}/access.log;
    server {{
        listen 127.0.0.1:{port};
        chunk_size 4096;
        application live {{
            live on;
            record off;
        }}
    }}
}}
"""


class NginxRtmp:
    """nginx with the RTMP module. rtmp://127.0.0.1:PORT/live/NAME can be
    published and played (players of a stream not yet published wait).

    .port, .url(name), .dir, .conf, .error_log, .pid, .alive(), .tail(),
    .stop(), .kill(), .pause()/.resume() (SIGSTOP/SIGCONT), .start()
    (again, on the same port)."""

    def __init__(self, tmpdir, port=None):
        self.dir = tmpdir
        self.port = port
        self.error_log = os.path.join(tmpdir, "error.log")
        self.conf = os.path.join(tmpdir, "nginx.conf")
        self.child = None

    def url(self, name):
        return "rtmp://127.0.0.1:%d/live/%s" % (self.port, name)

    @property
    def pid(self):
        return self.child.pid if self.child else None

    def alive(self):
        return self.child is not None and self.child.alive()

    def tail(self, n=15):
        return tail_file(self.error_log, n)

    def start(self, timeout=START_TIMEOUT):
        if not os.path.exists(os.path.join(NGINX_MODULES, "ngx_rtmp_module.so")):
            raise ServerError("nginx-rtmp: %s/ngx_rtmp_module.so missing "
                              "(install nginx libnginx-mod-rtmp)" % NGINX_MODULES)
        fixed = self.port is not None
        for attempt in range(1 if fixed else 4):
            if not fixed:
                self.port = free_port()
            with open(self.conf, "w") as f:
                f.write(NGINX_CONF.format(dir=self.dir, modules=NGINX_MODULES, port=self.port))
            self.child = Child("nginx-rtmp :%d" % self.port,
                               [NGINX, "-p", self.dir + "/", "-c", self.conf,
                                "-e", self.error_log, "-g", "daemon off;"],
                               log_path=os.path.join(self.dir, "stderr.log"))
            try:
                wait_until(lambda: tcp_accepts(self.port), timeout, self.child,
                           "not accepting on 127.0.0.1:%d" % self.port)
                return self
            except ServerError as e:
                self.child.stop()
                taken = "Address already in use" in self.tail(50) + self.child.tail(50)
                if fixed or not taken or attempt == 3:
                    raise ServerError("%s\nerror.log:\n%s" % (e, self.tail()))
        return self

    def stop(self, timeout=5):
        if self.child:
            self.child.stop(timeout)

    def kill(self):
        if self.child:
            self.child.kill()

    def pause(self):
        """SIGSTOP: nginx hangs with its connections open (a stalled push
        target)."""
        self.child.pause()

    def resume(self):
        self.child.resume()


@contextlib.contextmanager
def nginx_rtmp(tmpdir=None, port=None):
    """nginx-rtmp on 127.0.0.1:@port (free port if None), its config, pid
    and logs in @tmpdir; yields a NginxRtmp once it accepts."""
    s = NginxRtmp(_tmp(tmpdir, "nginx-"), port)
    try:
        s.start()
        yield s
    finally:
        s.stop()


# ------------------------------------------------------------ RTSP camera

_GI_PYTHON = None


def gi_python():
    """A python3 that can import gi with GstRtspServer (sys.executable, or
    Debian's /usr/bin/python3 when the tests run under another python)."""
    global _GI_PYTHON
    if _GI_PYTHON:
        return _GI_PYTHON
    probe = ("import gi; gi.require_version('GstRtspServer', '1.0'); "
             "from gi.repository import GstRtspServer")
    for py in (sys.executable, "/usr/bin/python3"):
        try:
            if subprocess.run([py, "-c", probe], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=30).returncode == 0:
                _GI_PYTHON = py
                return py
        except (OSError, subprocess.TimeoutExpired):
            pass
    raise ServerError("rtsp-camera: no python3 can import gi's GstRtspServer "
                      "(install python3-gi gir1.2-gst-rtsp-server-1.0)")


def rtsp_options_ok(port, path, timeout=1.0):
    """True if an RTSP OPTIONS request on 127.0.0.1:@port gets RTSP/1.0 200."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(("OPTIONS rtsp://127.0.0.1:%d%s RTSP/1.0\r\nCSeq: 1\r\n"
                       "User-Agent: steward-tests\r\n\r\n" % (port, path)).encode())
            data = b""
            while b"\r\n\r\n" not in data and len(data) < 8192:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            return data.startswith(b"RTSP/1.0 200")
    except OSError:
        return False


class RtspCamera:
    """gst-rtsp-server in a child python3 (rtsp_camera.py): live H.264
    (videotestsrc is-live, x264enc tune=zerolatency key-int-max=fps,
    rtph264pay), AAC too with audio=True; one shared pipeline for all
    clients.

    .url (with credentials when user is set), .url_without_auth, .port,
    .path, .pid, .alive(), .tail(), .kill() (SIGKILL: the camera vanishes
    mid-stream), .pause()/.resume() (SIGSTOP/SIGCONT: it hangs with its
    connections open), .stop(), .start() or .restart() (again, on the same
    port)."""

    def __init__(self, width=640, height=360, fps=25, path="/cam", audio=False,
                 user=None, password=None, port=None, bitrate=800, tmpdir=None):
        self.width, self.height, self.fps = width, height, fps
        self.path = path if path.startswith("/") else "/" + path
        self.audio, self.user, self.password = audio, user, password
        self.port, self.bitrate = port, bitrate
        self.dir = tmpdir
        self.child = None
        self.starts = 0

    @property
    def url_without_auth(self):
        return "rtsp://127.0.0.1:%d%s" % (self.port, self.path)

    @property
    def url(self):
        if self.user is None:
            return self.url_without_auth
        q = lambda s: urllib.parse.quote(s or "", safe="")  # noqa: E731
        return "rtsp://%s:%s@127.0.0.1:%d%s" % (q(self.user), q(self.password),
                                                self.port, self.path)

    @property
    def pid(self):
        return self.child.pid if self.child else None

    def alive(self):
        return self.child is not None and self.child.alive()

    def tail(self, n=15):
        return self.child.tail(n) if self.child else ""

    def _argv(self):
        a = [gi_python(), CAMERA_SCRIPT, "--port", self.port, "--path", self.path,
             "--width", self.width, "--height", self.height, "--fps", self.fps,
             "--bitrate", self.bitrate]
        if self.audio:
            a.append("--audio")
        if self.user is not None:
            a += ["--user", self.user, "--password", self.password or ""]
        return a

    def start(self, timeout=START_TIMEOUT):
        """Start (or start again) the camera; on the same port once it has
        one. Returns when it answers RTSP OPTIONS."""
        if self.alive():
            raise ServerError("rtsp-camera :%d: already running (pid %d)" % (self.port, self.pid))
        fixed = self.port is not None
        deadline = time.monotonic() + timeout
        while True:
            if not fixed:
                self.port = free_port()
            self.starts += 1
            log = None
            if self.dir:
                log = os.path.join(self.dir, "rtsp-camera-%d-%d.log" % (self.port, self.starts))
            self.child = Child("rtsp-camera :%d%s" % (self.port, self.path), self._argv(), log)
            try:
                wait_until(lambda: rtsp_options_ok(self.port, self.path),
                           max(1.0, deadline - time.monotonic()), self.child,
                           "no RTSP answer on 127.0.0.1:%d" % self.port)
                return self
            except ServerError:
                cannot_bind = self.child.exited() and self.child.stop() == 3
                self.child.stop()
                # The port may still be held a moment after a kill: retry
                # it (a fixed port) or another one, until the deadline.
                if not cannot_bind or time.monotonic() >= deadline:
                    raise
                time.sleep(0.2)

    def stop(self, timeout=5):
        if self.child:
            self.child.stop(timeout)

    def kill(self):
        if self.child:
            self.child.kill()

    def restart(self, timeout=START_TIMEOUT):
        self.stop()
        return self.start(timeout)

    def pause(self):
        """SIGSTOP: the camera hangs with its connections open."""
        self.child.pause()

    def resume(self):
        self.child.resume()


@contextlib.contextmanager
def rtsp_camera(width=640, height=360, fps=25, path="/cam", audio=False,
                user=None, password=None, port=None, bitrate=800, tmpdir=None):
    """A live RTSP camera on 127.0.0.1 (free port unless @port); yields an
    RtspCamera once it answers OPTIONS; .url is what a client opens."""
    cam = RtspCamera(width, height, fps, path, audio, user, password, port, bitrate, tmpdir)
    try:
        cam.start()
        yield cam
    finally:
        cam.stop()


# ------------------------------------------------------------ SRT


class SrtListener:
    """ffmpeg listening on srt://127.0.0.1:PORT?mode=listener for one push,
    copying what it receives into .path (MPEG-TS). It exits when the caller
    goes away.

    .url (what a pusher opens, caller mode), .port, .path, .pid, .alive(),
    .tail(), .wait_done(timeout) (until ffmpeg has written the file), .stop()."""

    def __init__(self, tmpdir, name="srt-received"):
        self.dir = tmpdir
        self.path = os.path.join(tmpdir, name + ".ts")
        self.port = None
        self.child = None

    @property
    def url(self):
        return "srt://127.0.0.1:%d" % self.port

    @property
    def pid(self):
        return self.child.pid if self.child else None

    def alive(self):
        return self.child is not None and self.child.alive()

    def tail(self, n=15):
        return self.child.tail(n) if self.child else ""

    def start(self, timeout=START_TIMEOUT):
        self.port = free_port(udp=True)
        self.child = Child("srt-listener :%d" % self.port, _ffmpeg(
            "-y", "-i", "srt://127.0.0.1:%d?mode=listener" % self.port,
            "-map", "0", "-c", "copy", "-f", "mpegts", self.path))
        wait_until(lambda: udp_bound(self.port), timeout, self.child,
                   "not listening on udp 127.0.0.1:%d" % self.port)
        return self

    def wait_done(self, timeout=20):
        """Wait for ffmpeg to finish (the push ended); return its exit code."""
        wait_until(lambda: self.child.exited(), timeout, None,
                   "srt-listener :%d: still running" % self.port)
        return self.child.stop()

    def stop(self, timeout=5):
        if self.child:
            self.child.stop(timeout, sig=signal.SIGINT)  # ffmpeg finishes the file


@contextlib.contextmanager
def srt_listener(tmpdir=None, name="srt-received"):
    """ffmpeg receiving one SRT push into @tmpdir/@name.ts; yields an
    SrtListener once its UDP port is bound."""
    s = SrtListener(_tmp(tmpdir, "srt-"), name)
    try:
        s.start()
        yield s
    finally:
        s.stop()


class SrtSource:
    """A live test stream (H.264 in MPEG-TS, AAC with audio=True) served by
    ffmpeg as an SRT listener: a caller pulls it from .url. ffmpeg serves
    one caller and exits when it leaves; a watcher thread starts it again
    on the same port (respawn=True), so the source stays pullable.

    .url, .port, .pid, .alive(), .tail(), .starts, .stop()."""

    def __init__(self, width=320, height=240, fps=25, audio=False, respawn=True):
        self.width, self.height, self.fps, self.audio = width, height, fps, audio
        self.respawn = respawn
        self.port = free_port(udp=True)
        self.child = None
        self.starts = 0
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread = None

    @property
    def url(self):
        return "srt://127.0.0.1:%d" % self.port

    @property
    def pid(self):
        return self.child.pid if self.child else None

    def alive(self):
        return self.child is not None and self.child.alive()

    def tail(self, n=15):
        return self.child.tail(n) if self.child else ""

    def _spawn(self):
        self.starts += 1
        self.child = Child("srt-source :%d" % self.port, _ffmpeg(
            *_testsrc_args(self.width, self.height, self.fps, self.audio),
            "-f", "mpegts", "srt://127.0.0.1:%d?mode=listener" % self.port))

    def _watch(self):
        while not self._stopping.wait(0.1):
            with self._lock:
                if self._stopping.is_set():
                    break
                if self.child.exited():
                    self.child.stop()
                    # The port is free again once the old socket is gone.
                    self._spawn()

    def start(self, timeout=START_TIMEOUT):
        self._spawn()
        wait_until(lambda: udp_bound(self.port), timeout, self.child,
                   "not listening on udp 127.0.0.1:%d" % self.port)
        if self.respawn:
            # The watcher starts the children from then on: they die with
            # it (PDEATHSIG follows the forking thread), which is at stop().
            self._thread = threading.Thread(target=self._watch, name="srt-source", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout=5):
        self._stopping.set()
        if self._thread:
            self._thread.join()
        with self._lock:
            if self.child:
                self.child.stop(timeout)


@contextlib.contextmanager
def srt_source(width=320, height=240, fps=25, audio=False, respawn=True):
    """A live test stream served over SRT (listener) on a free UDP port;
    yields an SrtSource: pull .url in caller mode."""
    s = SrtSource(width, height, fps, audio, respawn)
    try:
        s.start()
        yield s
    finally:
        s.stop()


# ------------------------------------------------------------ HLS


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def end_headers(self):
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()


class HlsServer:
    """ffmpeg writing a live HLS playlist (testsrc2, libx264, 1 s segments,
    a sliding list of @list_size, old segments deleted) into .dir, served
    by a ThreadingHTTPServer thread on 127.0.0.1.

    .url (the .m3u8), .port, .dir, .playlist, .pid, .alive(), .tail(),
    .segments() (names in the playlist now), .stop()."""

    def __init__(self, tmpdir, width=320, height=240, fps=25, audio=False,
                 segment=1, list_size=6, name="live"):
        self.dir = tmpdir
        self.width, self.height, self.fps, self.audio = width, height, fps, audio
        self.segment, self.list_size, self.name = segment, list_size, name
        self.playlist = os.path.join(tmpdir, name + ".m3u8")
        self.child = None
        self.httpd = None
        self.thread = None
        self.port = None

    @property
    def url(self):
        return "http://127.0.0.1:%d/%s.m3u8" % (self.port, self.name)

    @property
    def pid(self):
        return self.child.pid if self.child else None

    def alive(self):
        return self.child is not None and self.child.alive()

    def tail(self, n=15):
        return self.child.tail(n) if self.child else ""

    def segments(self):
        try:
            with open(self.playlist) as f:
                return [l.strip() for l in f if l.strip() and not l.startswith("#")]
        except OSError:
            return []

    def start(self, timeout=START_TIMEOUT):
        handler = lambda *a, **kw: _QuietHandler(*a, directory=self.dir, **kw)  # noqa: E731
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.1}, name="hls-http", daemon=True)
        self.thread.start()
        self.child = Child("hls-ffmpeg :%d" % self.port, _ffmpeg(
            *_testsrc_args(self.width, self.height, self.fps, self.audio),
            "-f", "hls", "-hls_time", str(self.segment), "-hls_list_size", str(self.list_size),
            "-hls_flags", "delete_segments+temp_file+omit_endlist",
            "-hls_segment_filename", os.path.join(self.dir, self.name + "-%05d.ts"),
            self.playlist))
        # Two segments listed: a player can start and keep up.
        wait_until(lambda: len(self.segments()) >= 2, timeout + 10, self.child,
                   "no HLS playlist with 2 segments in %s" % self.dir)
        return self

    def stop(self, timeout=5):
        if self.child:
            self.child.stop(timeout)
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join()
            self.httpd = None


@contextlib.contextmanager
def hls_server(tmpdir=None, width=320, height=240, fps=25, audio=False,
               segment=1, list_size=6):
    """A live HLS stream over HTTP on 127.0.0.1; yields an HlsServer once
    its playlist lists two segments; .url is the playlist's URL."""
    s = HlsServer(_tmp(tmpdir, "hls-"), width, height, fps, audio, segment, list_size)
    try:
        s.start()
        yield s
    finally:
        s.stop()


# ------------------------------------------------------------ files, publishers


def mp4_file(tmpdir, seconds=3, with_audio=True, width=320, height=240, fps=25,
             name=None, timeout=120):
    """Generate an H.264 (+AAC) MP4 of @seconds in @tmpdir (as fast as the
    encoder goes); return its path."""
    os.makedirs(tmpdir, exist_ok=True)
    path = os.path.join(tmpdir, name or "test-%dx%d-%ds%s.mp4"
                        % (width, height, seconds, "-aac" if with_audio else ""))
    c = Child("mp4-file %s" % os.path.basename(path), _ffmpeg(
        "-y", *_testsrc_args(width, height, fps, with_audio, realtime=False),
        "-t", str(seconds), "-movflags", "+faststart", path))
    try:
        wait_until(c.exited, timeout, None, "mp4-file: ffmpeg still running")
    except ServerError:
        raise c.fail("did not finish in %d s" % timeout)
    finally:
        rc = c.stop()
    if rc != 0 or not os.path.exists(path):
        raise c.fail("failed to write %s" % path)
    return path


class Publisher:
    """ffmpeg publishing a live test stream (H.264, AAC with audio=True) to
    an RTMP URL (FLV), or to any URL with @fmt.

    .url, .pid, .alive(), .tail(), .frames() (sent so far), .stop()."""

    def __init__(self, url, width=320, height=240, fps=25, audio=False, fmt="flv"):
        self.url, self.fmt = url, fmt
        self.width, self.height, self.fps, self.audio = width, height, fps, audio
        self.child = None
        self.progress = None

    @property
    def pid(self):
        return self.child.pid if self.child else None

    def alive(self):
        return self.child is not None and self.child.alive()

    def tail(self, n=15):
        return self.child.tail(n) if self.child else ""

    def frames(self):
        return _progress_frames(self.progress)

    def start(self, timeout=START_TIMEOUT):
        fd, self.progress = tempfile.mkstemp(prefix="publisher-", suffix=".progress", dir=_logdir())
        os.close(fd)
        self.child = Child("publisher %s" % self.url, _ffmpeg(
            "-progress", self.progress,
            *_testsrc_args(self.width, self.height, self.fps, self.audio),
            "-f", self.fmt, self.url))
        # ffmpeg connects (and publishes) before it writes the first frame.
        wait_until(lambda: self.frames() >= 1, timeout, self.child, "not publishing")
        return self

    def stop(self, timeout=5):
        if self.child:
            self.child.stop(timeout)


@contextlib.contextmanager
def rtmp_publisher(url, width=320, height=240, fps=25, audio=False, fmt="flv"):
    """ffmpeg publishing a live test stream to @url; yields a Publisher once
    frames are going out."""
    p = Publisher(url, width, height, fps, audio, fmt)
    try:
        p.start()
        yield p
    finally:
        p.stop()


# ------------------------------------------------------------ probing


def _run_bounded(name, argv, timeout):
    """Run argv in its own group with a hard @timeout; (rc, stdout, stderr).
    rc is None on timeout (the group was killed)."""
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, start_new_session=True,
                         preexec_fn=lambda parent=os.getpid(): _child_setup(parent))
    try:
        out, err = p.communicate(timeout=timeout)
        return p.returncode, out.decode(errors="replace"), err.decode(errors="replace")
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = p.communicate()
        return None, out.decode(errors="replace"), err.decode(errors="replace")
    finally:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()


def _input_opts(src, rtsp_transport):
    a = []
    if src.startswith(("rtsp://", "rtsps://")) and rtsp_transport:
        a += ["-rtsp_transport", rtsp_transport]
    return a


_VIDEO_RE = re.compile(r"Stream #0:(\d+)[^:\n]*: Video: (\w+)[^,\n]*, (\w+)[^\n]*?, (\d+)x(\d+)")
_AUDIO_RE = re.compile(r"Stream #0:(\d+)[^:\n]*: Audio: (\w+)")


def ffprobe_stream(src, seconds=2, timeout=30, rtsp_transport="tcp", analyzeduration=1.5,
                   wallclock=False):
    """Read @src (URL or path) and decode its first video stream for
    @seconds of its timestamps (None: all of a file), with `ffmpeg -map
    0:v:0 -t SECONDS -f null` (video only, so an audio stream that leads
    the video, as RTSP's may before RTCP has synchronised them, cannot
    shorten the count). With @wallclock the timestamps are the packets'
    arrival times (-use_wallclock_as_timestamps): for a live RTSP source
    with several streams, whose timestamps ffmpeg moves onto the camera's
    first RTCP sender report. A camera starved of CPU sends reports up to
    2 s off, and 2 s of its timestamps then held as few as 5 of the 50
    frames that arrived. Returns a dict:
      codec, width, height, pix_fmt, frames (video frames decoded),
      fps (frames / seconds), audio_codec (None without audio),
      streams (the input's stream lines), elapsed (wall seconds), stderr.
    Raises ServerError with ffmpeg's last lines if it fails, finds no
    video stream or does not finish within @timeout s."""
    argv = [FFMPEG, "-hide_banner", "-nostdin", "-nostats", "-v", "info"]
    argv += _input_opts(src, rtsp_transport)
    if wallclock:
        argv += ["-use_wallclock_as_timestamps", "1"]
    argv += ["-analyzeduration", str(int(analyzeduration * 1e6)), "-i", src, "-map", "0:v:0"]
    if seconds is not None:
        argv += ["-t", "%g" % seconds]
    argv += ["-f", "null", "-progress", "pipe:1", "-"]
    t0 = time.monotonic()
    rc, out, err = _run_bounded("ffprobe", argv, timeout)
    elapsed = time.monotonic() - t0
    where = "probe %s" % redact(src)
    tail = "\n".join(err.splitlines()[-12:])
    if rc is None:
        raise ServerError("%s: no answer in %d s; stderr:\n%s" % (where, timeout, tail))
    if rc != 0:
        raise ServerError("%s: exit %d; stderr:\n%s" % (where, rc, tail))
    head = err.split("\nOutput #0", 1)[0]  # the input's streams, not the output's
    v = _VIDEO_RE.search(head)
    a = _AUDIO_RE.search(head)
    if not v:
        raise ServerError("%s: no video stream; stderr:\n%s" % (where, tail))
    m = re.findall(r"^frame=(\d+)", out, re.M)
    frames = int(m[-1]) if m else 0
    return {
        "codec": v.group(2),
        "width": int(v.group(4)),
        "height": int(v.group(5)),
        "pix_fmt": v.group(3),
        "frames": frames,
        "fps": frames / seconds if seconds else None,
        "audio_codec": a.group(2) if a else None,
        "streams": [l.strip() for l in head.splitlines() if "Stream #0:" in l and "->" not in l],
        "elapsed": elapsed,
        "stderr": err,
    }


def decode_errors(path, timeout=120):
    """Decode all of @path with ffmpeg (-v error, -f null) and return the
    error lines it printed ([] for a clean file). A file ffmpeg cannot
    open gives one line saying so."""
    rc, _, err = _run_bounded("ffmpeg", [FFMPEG, "-nostdin", "-hide_banner", "-v", "error",
                                         "-i", path, "-f", "null", "-"], timeout)
    lines = [l for l in err.splitlines() if l.strip()]
    if rc is None:
        lines.append("ffmpeg: decoding %s took more than %d s" % (path, timeout))
    elif rc != 0 and not lines:
        lines.append("ffmpeg: exit %d decoding %s" % (rc, path))
    return lines


def redact(url):
    """@url with its password replaced by ***."""
    try:
        u = urllib.parse.urlsplit(url)
    except ValueError:
        return url
    if u.password is None:
        return url
    netloc = "%s:***@%s" % (u.username, u.hostname + (":%d" % u.port if u.port else ""))
    return urllib.parse.urlunsplit((u.scheme, netloc, u.path, u.query, u.fragment))


# ------------------------------------------------------------ process accounting


def proc_info(pid):
    """{pid, ppid, pgid, state, zombie, comm, cmdline (list)} of @pid from
    /proc, or None if it is gone."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            stat = f.read().decode(errors="replace")
    except OSError:
        return None
    # comm may hold spaces and parentheses: it ends at the last ')'.
    lpar, rpar = stat.find("("), stat.rfind(")")
    fields = stat[rpar + 2:].split()
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            cmdline = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        cmdline = []
    return {"pid": pid, "ppid": int(fields[1]), "pgid": int(fields[2]), "state": fields[0],
            "zombie": fields[0] == "Z", "comm": stat[lpar + 1:rpar], "cmdline": cmdline}


def all_procs():
    """proc_info() of every process on the machine."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            i = proc_info(int(d))
            if i:
                out.append(i)
    return out


def children_of(pid):
    """Every descendant of @pid (children, their children, ...) as
    proc_info() dicts, zombies included (state "Z", zombie True), parents
    before children."""
    procs = all_procs()
    kids = {}
    for p in procs:
        kids.setdefault(p["ppid"], []).append(p)
    out, todo = [], [pid]
    while todo:
        for p in sorted(kids.get(todo.pop(0), []), key=lambda p: p["pid"]):
            out.append(p)
            todo.append(p["pid"])
    return out


def new_marker(prefix="stwtest"):
    """A unique string to put in a test's argv, URLs or environment, so that
    orphans() finds every process that carries it."""
    return "%s-%d-%s" % (prefix, os.getpid(), secrets.token_hex(6))


def orphans(marker, exclude=()):
    """Processes (other than this one and @exclude) whose command line or
    environment contains @marker: what survived of a process tree the test
    tagged, e.g. the ffmpeg children of a relay killed with SIGKILL. Their
    proc_info() dicts, with "where" = "cmdline" or "environ"."""
    me = os.getpid()
    skip = set(exclude) | {me}
    needle = marker.encode()
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) in skip:
            continue
        pid = int(d)
        where = None
        for what in ("cmdline", "environ"):
            try:
                with open("/proc/%d/%s" % (pid, what), "rb") as f:
                    if needle in f.read():
                        where = what
                        break
            except OSError:
                pass
        if where:
            i = proc_info(pid)
            if i:
                i["where"] = where
                out.append(i)
    return out


def kill_orphans(marker, report, name):
    """At a test's end: fail @name (through @report(name, ok, why)) if any
    process tagged with @marker is still alive, and kill what is left."""
    left = orphans(marker)
    if left:
        report(name, False, "left on the machine: %s" % describe(left))
        for p in left:
            try:
                os.kill(p["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass


def describe(procs):
    """One line per proc_info() dict, for assertion messages."""
    return "; ".join("%d %s [%s] %s" % (p["pid"], p["comm"], p["state"],
                                        " ".join(p["cmdline"])[:120]) for p in procs)
