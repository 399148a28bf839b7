#!/usr/bin/env python3
"""A fake camera for the relay's tests: an HTTP server that misbehaves on
purpose. Started in-process by the tests (FakeCamera().start()), on
127.0.0.1 and an ephemeral port.

Paths:
  /good        multipart MJPEG with Content-Length, 20 fps, forever
  /nolength    the same without Content-Length (parts end at the boundary)
  /garbage     a multipart 200 followed by random bytes, forever
  /stall       two frames, then silence with the connection held open
               until the client closes it; the next connection gets /good
  /cut         a frame and a half, then the connection is closed; the next
               connection gets /good
  /text        200 text/plain
  /missing     404
  /forbidden   403
  /redirect    302 to /redirect2, which redirects to /good
  /loop        302 to itself, forever
  /to-ftp      302 to an ftp:// URL
  /digest      /good behind HTTP Digest authentication (user "cam",
               password "secret"); anything else gets 401
  /octet       as ffmpeg's and VLC's mpjpeg serve it: Content-Type
               application/octet-stream, the boundary only in the body
  /lf          multipart with bare LF line endings
  /badlength   every other part announces a wrong Content-Length
  /frozen      two frames, then a line break every 0.2 s and no frame
  /clip        the JPEGs of FakeCamera.clip (a list the test sets), in
               turn at 20 fps, over and over
  /corrupt     20 fps of parts that look whole (SOI ... EOI, right length)
               where every other one is a real JPEG and the others have
               garbage for their data or are cut short
Every open connection is counted, in all and per path?query (a query
string only names a connection), so a test can see that the relay closed
its side.
"""
import base64
import hashlib
import http.server
import os
import select
import socketserver
import threading
import time

# Three real 32x24 JPEGs (red, green, blue), made with ffmpeg's lavfi color source.
FRAMES = [base64.b64decode(f) for f in (
    "/9j/4AAQSkZJRgABAgAAAQABAAD//gAQTGF2YzU5LjM3LjEwMAD/2wBDAAgKCgsKCw0NDQ0NDRAPEBAQEBAQEBAQEBASEhIVFRUSEhIQEBISFBQVFRcXFxUVFRUXFxkZGR4eHBwjIyQrKzP/xABNAAEBAAAAAAAAAAAAAAAAAAAABgEBAQEAAAAAAAAAAAAAAAAAAAYHEAEAAAAAAAAAAAAAAAAAAAAAEQEAAAAAAAAAAAAAAAAAAAAA/8AAEQgAGAAgAwEiAAIRAAMRAP/aAAwDAQACEQMRAD8AiwEo38AAAAAB/9k=",
    "/9j/4AAQSkZJRgABAgAAAQABAAD//gAQTGF2YzU5LjM3LjEwMAD/2wBDAAgKCgsKCw0NDQ0NDRAPEBAQEBAQEBAQEBASEhIVFRUSEhIQEBISFBQVFRcXFxUVFRUXFxkZGR4eHBwjIyQrKzP/xABMAAEBAAAAAAAAAAAAAAAAAAAABgEBAQAAAAAAAAAAAAAAAAAAAAYQAQAAAAAAAAAAAAAAAAAAAAARAQAAAAAAAAAAAAAAAAAAAAD/wAARCAAYACADASIAAhEAAxEA/9oADAMBAAIRAxEAPwCLASqJAAAAAAf/2Q==",
    "/9j/4AAQSkZJRgABAgAAAQABAAD//gAQTGF2YzU5LjM3LjEwMAD/2wBDAAgKCgsKCw0NDQ0NDRAPEBAQEBAQEBAQEBASEhIVFRUSEhIQEBISFBQVFRcXFxUVFRUXFxkZGR4eHBwjIyQrKzP/xABNAAEBAAAAAAAAAAAAAAAAAAAABwEBAQEAAAAAAAAAAAAAAAAAAAUHEAEAAAAAAAAAAAAAAAAAAAAAEQEAAAAAAAAAAAAAAAAAAAAA/8AAEQgAGAAgAwEiAAIRAAMRAP/aAAwDAQACEQMRAD8AjgDf0sAAAAAB/9k="
)]
BOUNDARY = "fakecam"
DIGEST_REALM = "fake camera"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *args):
        pass

    def send_multipart_head(self):
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()

    def part(self, jpeg, with_length=True):
        head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
        if with_length:
            head += f"Content-Length: {len(jpeg)}\r\n"
        self.wfile.write(head.encode() + b"\r\n" + jpeg + b"\r\n")
        self.wfile.flush()

    def stream(self, with_length=True, count=None, content_type=None, eol="\r\n",
               length_error=0, frames=FRAMES):
        self.send_response(200)
        self.send_header("Content-Type", content_type or
                         f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        n = 0
        while not self.server.cam.stopping.is_set() and (count is None or n < count):
            jpeg = frames[n % len(frames)]
            head = f"--{BOUNDARY}{eol}Content-Type: image/jpeg{eol}"
            if with_length:
                head += f"Content-Length: {len(jpeg) + (length_error if n % 2 else 0)}{eol}"
            self.wfile.write((head + eol).encode() + jpeg + eol.encode())
            self.wfile.flush()
            n += 1
            time.sleep(0.05)

    def digest_ok(self):
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Digest "):
            return False
        f = dict((k.strip(), v.strip().strip('"')) for k, v in
                 (kv.split("=", 1) for kv in auth[7:].split(",") if "=" in kv))

        def md5(x):
            return hashlib.md5(x.encode()).hexdigest()
        ha1 = md5(f"cam:{DIGEST_REALM}:secret")
        ha2 = md5(f"GET:{f.get('uri', '')}")
        want = md5(f"{ha1}:{f.get('nonce')}:{f.get('nc')}:{f.get('cnonce')}:auth:{ha2}")
        return f.get("username") == "cam" and f.get("response") == want

    def redirect(self, to):
        self.send_response(302)
        self.send_header("Location", to)
        self.send_header("Content-Length", "9")
        self.end_headers()
        self.wfile.write(b"redirect\n")

    def wait_for_client_close(self, limit):
        """Hold the connection, sending nothing, until the client closes it."""
        deadline = time.monotonic() + limit
        while not self.server.cam.stopping.is_set() and time.monotonic() < deadline:
            r, _, _ = select.select([self.connection], [], [], 0.2)
            if r and not self.connection.recv(4096):
                return

    def do_GET(self):
        cam = self.server.cam
        # The query string names a connection for tests that count them;
        # the path alone picks the behaviour.
        path = self.path.split("?")[0]
        with cam.lock:
            cam.open += 1
            cam.open_by_url[self.path] = cam.open_by_url.get(self.path, 0) + 1
            cam.hits[path] = cam.hits.get(path, 0) + 1
            first = cam.hits[path] == 1
        try:
            if path == "/good" or (path in ("/stall", "/cut") and not first):
                self.stream()
            elif path == "/clip" and cam.clip:
                self.stream(frames=cam.clip)
            elif path == "/nolength":
                self.stream(with_length=False)
            elif path == "/garbage":
                self.send_multipart_head()
                while not cam.stopping.is_set():
                    self.wfile.write(os.urandom(4096).replace(b"--", b"-_"))
                    time.sleep(0.02)
            elif path == "/stall":
                self.stream(count=2)
                self.wait_for_client_close(60)
            elif path == "/cut":
                self.send_multipart_head()
                self.part(FRAMES[0])
                self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n\r\n".encode()
                                 + FRAMES[1][: len(FRAMES[1]) // 2])
                self.wfile.flush()
            elif path == "/forbidden":
                self.send_error(403)
            elif path == "/redirect":
                self.redirect("/redirect2")
            elif path == "/redirect2":
                self.redirect("/good")
            elif path == "/loop":
                self.redirect("/loop")
            elif path == "/to-ftp":
                self.redirect("ftp://127.0.0.1:1/cam.mjpg")
            elif path == "/digest":
                if self.digest_ok():
                    self.stream()
                else:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", f'Digest realm="{DIGEST_REALM}", '
                                     'qop="auth", nonce="%s"' % os.urandom(8).hex())
                    self.send_header("Content-Length", "13")
                    self.end_headers()
                    self.wfile.write(b"unauthorized\n")
            elif path == "/octet":
                self.stream(content_type="application/octet-stream")
            elif path == "/lf":
                self.stream(eol="\n")
            elif path == "/badlength":
                self.stream(length_error=-7 if cam.hits[path] % 2 else 11)
            elif path == "/frozen":
                self.stream(count=2)
                while not cam.stopping.is_set():
                    self.wfile.write(b"\r\n")
                    self.wfile.flush()
                    time.sleep(0.2)
            elif path == "/corrupt":
                self.send_multipart_head()
                n = 0
                while not cam.stopping.is_set():
                    jpeg = FRAMES[n % len(FRAMES)]
                    if n % 4 == 1:
                        jpeg = jpeg[:20] + os.urandom(len(jpeg) - 22).replace(b"--", b"-_") + jpeg[-2:]
                    elif n % 4 == 3:
                        jpeg = jpeg[: len(jpeg) // 2] + b"\xff\xd9"
                    self.part(jpeg)
                    n += 1
                    time.sleep(0.05)
            elif path == "/chainjunk":
                # A relay chain header with ids, junk and markup, in the
                # response and in every part: only the well-formed ids may
                # reach the relays downstream.
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.send_header("X-Steward-Relay-Chain",
                                 "0123456789abcdef,<b>x</b>,1111111111111111")
                self.end_headers()
                n = 0
                while not cam.stopping.is_set():
                    jpeg = FRAMES[n % len(FRAMES)]
                    self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                                     f"Content-Length: {len(jpeg)}\r\n"
                                     "X-Steward-Relay-Chain: 0123456789abcdef, "
                                     "X-Evil: 1;0123456789ABCDEF,2222222222222222\r\n\r\n"
                                     .encode() + jpeg + b"\r\n")
                    self.wfile.flush()
                    n += 1
                    time.sleep(0.05)
            elif path == "/text":
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"hello, I am not a camera\n")
            else:
                self.send_error(404)
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            with cam.lock:
                cam.open -= 1
                cam.open_by_url[self.path] -= 1


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class FakeCamera:
    def __init__(self):
        self.lock = threading.Lock()
        self.open = 0
        self.open_by_url = {}
        self.hits = {}
        self.stopping = threading.Event()
        self.clip = []  # the frames of /clip
        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.cam = self
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def open_connections(self, url=None):
        """Connections open now, to every path or to one path?query."""
        with self.lock:
            return self.open if url is None else self.open_by_url.get(url, 0)

    def stop(self):
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
