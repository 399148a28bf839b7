#!/usr/bin/env python3
"""Integration tests of `steward relay`: the real binary, on an ephemeral
port, under `steward check`, driven over HTTP.

Usage: relay_basic.py BUILD_DIR
Prints "ok   relay/NAME" or "FAIL relay/NAME: reason" per test case and
exits non-zero if any failed. Every process it starts is killed (by pid)
on the way out, whatever happened.
"""
import http.client
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time

BOUNDARY = b"--stwframe\r\n"
RESULTS = []


def report(name, ok, why=""):
    RESULTS.append(ok)
    print(("ok   relay/%s" % name) if ok else ("FAIL relay/%s: %s" % (name, why)), flush=True)


def check(name, fn):
    try:
        fn()
        report(name, True)
    except Exception as e:  # one case failing must not stop the others
        report(name, False, "%s: %s" % (type(e).__name__, e))


def main_for(suite_name, run):
    """The main() of a suite with one run(build) function: usage check, a
    failed start counted as one failure, exit status from all cases."""
    if len(sys.argv) != 2:
        print("usage: relay_%s.py BUILD_DIR" % suite_name, file=sys.stderr)
        return 2
    try:
        run(sys.argv[1])
    except Exception as e:
        report(suite_name, False, "could not start: %s" % e)
    return 0 if all(RESULTS) else 1


def is_jpeg(b):
    return len(b) > 4 and b[:2] == b"\xff\xd8" and b[-2:] == b"\xff\xd9"


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def address_line(proc, timeout):
    """The first line @proc writes on stdout ("steward relay: serving ..."),
    read byte by byte so nothing after it is consumed; b"" or a partial
    line if none comes within @timeout seconds."""
    line = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not line.endswith(b"\n"):
        r, _, _ = select.select([proc.stdout], [], [], 0.5)
        if r:
            c = os.read(proc.stdout.fileno(), 1)
            if not c:
                break
            line += c
    return line


class Relay:
    """`steward check --error-exitcode=9 -- steward relay --listen 127.0.0.1:0`."""

    def __init__(self, build, extra=()):
        steward = os.path.join(build, "src", "steward")
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [steward, "check", "--error-exitcode=9", "--", steward, "relay",
             "--listen", "127.0.0.1:0"] + list(extra),
            stdout=subprocess.PIPE, stderr=self.err, stdin=subprocess.DEVNULL)
        self.port = None
        self.pid = None
        line = address_line(self.proc, 20)
        m = re.match(rb"steward relay: serving http://127\.0\.0\.1:(\d+)/\n$", line)
        if not m:
            raise RuntimeError("no address line, got %r; stderr: %s" % (line, self.stderr()[-2000:]))
        self.port = int(m.group(1))
        # The relay is the launcher's child: signals and RSS go to it.
        with open("/proc/%d/task/%d/children" % (self.proc.pid, self.proc.pid)) as f:
            kids = f.read().split()
        if len(kids) != 1:
            raise RuntimeError("expected one child of the launcher, got %r" % kids)
        self.pid = int(kids[0])

    def stderr(self):
        self.err.seek(0)
        return self.err.read().decode(errors="replace")

    def conn(self, timeout=10):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def get(self, path, method="GET", headers=None):
        c = self.conn()
        try:
            c.request(method, path, headers=headers or {})
            r = c.getresponse()
            return r.status, r.getheader("Content-Type"), r.read()
        finally:
            c.close()

    def kill(self):
        for pid in (self.pid, self.proc.pid):
            if pid is not None:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


def read_parts(resp, n, timeout=10):
    """Read @n multipart parts from an http.client response; return the bodies."""
    buf = b""
    parts = []
    deadline = time.monotonic() + timeout
    while len(parts) < n:
        if time.monotonic() > deadline:
            raise AssertionError("only %d of %d parts within %ss" % (len(parts), n, timeout))
        chunk = resp.read1(65536)
        if not chunk:
            raise AssertionError("stream ended after %d parts" % len(parts))
        buf += chunk
        while True:
            i = buf.find(BOUNDARY)
            if i < 0:
                break
            h = buf.find(b"\r\n\r\n", i)
            if h < 0:
                break
            headers = buf[i + len(BOUNDARY):h].decode()
            m = re.search(r"Content-Length: (\d+)", headers)
            assert m, "part without Content-Length: %r" % headers
            assert "Content-Type: image/jpeg" in headers, headers
            size = int(m.group(1))
            end = h + 4 + size
            if len(buf) < end + 2:
                break
            assert buf[end:end + 2] == b"\r\n", "part not followed by CRLF"
            parts.append(buf[h + 4:end])
            buf = buf[end + 2:]
    return parts


def open_stream(relay):
    c = relay.conn()
    c.request("GET", "/stream/test")
    r = c.getresponse()
    assert r.status == 200, r.status
    ctype = r.getheader("Content-Type")
    assert ctype == "multipart/x-mixed-replace; boundary=stwframe", ctype
    return c, r


def raw_viewer(port, rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /stream/test HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    return s


def metric(text, name, labels=""):
    m = re.search(r"^%s%s (\d+)$" % (re.escape(name), re.escape(labels)), text, re.M)
    assert m, "no metric %s%s" % (name, labels)
    return int(m.group(1))


def run(build):
    relay = Relay(build)
    sockets = []
    try:
        def healthz():
            st, ct, body = relay.get("/healthz")
            assert st == 200, st
            assert ct == "application/json", ct
            assert json.loads(body) == {"status": "ok"}, body

        def index_page():
            st, ct, body = relay.get("/")
            assert st == 200, st
            assert ct.startswith("text/html"), ct
            assert b"steward relay" in body and b"/api/inputs" in body, body[:200]

        def api_inputs():
            st, _, body = relay.get("/api/inputs")
            assert st == 200, st
            inputs = json.loads(body)["inputs"]
            assert [i["name"] for i in inputs] == ["test"], inputs
            assert inputs[0]["kind"] == "test" and inputs[0]["state"] in ("running", "starting")
            assert inputs[0]["viewers"] == 0, inputs

        def snapshot():
            deadline = time.monotonic() + 5
            while True:
                st, ct, body = relay.get("/snapshot/test.jpg")
                if st == 200 or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert st == 200, st
            assert ct == "image/jpeg", ct
            assert is_jpeg(body), body[:4]
            st, _, _ = relay.get("/snapshot/nope.jpg")
            assert st == 404, st

        def stream_frames():
            c, r = open_stream(relay)
            try:
                parts = read_parts(r, 6)
            finally:
                c.close()
            for p in parts:
                assert is_jpeg(p), "not a JPEG: %r..%r" % (p[:4], p[-2:])
            assert len(set(parts)) >= 5, "frames do not change: %d distinct of 6" % len(set(parts))

        def many_viewers():
            # Five stalled viewers: tiny receive buffers, never read.
            for _ in range(5):
                sockets.append(raw_viewer(relay.port, rcvbuf=4096))
            readers = [raw_viewer(relay.port) for _ in range(50)]
            sockets.extend(readers)
            seen = {s: b"" for s in readers}
            counts = {s: 0 for s in readers}
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and min(counts.values()) < 5:
                r, _, _ = select.select(readers, [], [], 0.5)
                for s in r:
                    data = s.recv(262144)
                    assert data, "a viewer was disconnected"
                    buf = seen[s] + data
                    counts[s] += buf.count(BOUNDARY)
                    seen[s] = buf[-len(BOUNDARY):]
            assert min(counts.values()) >= 5, "slowest viewer got %d frames" % min(counts.values())
            st, _, body = relay.get("/metrics")
            assert st == 200, st
            text = body.decode()
            assert metric(text, "steward_relay_viewers", '{input="test"}') == 55, text[:800]
            # The stalled viewers cannot take every frame: they skip, counted.
            time.sleep(1.5)
            text = relay.get("/metrics")[2].decode()
            dropped = metric(text, "steward_relay_frames_dropped_total", '{input="test"}')
            assert dropped > 0, "no frame dropped for the stalled viewers"
            bufs = metric(text, "steward_live_resources", '{kind="buf"}')
            # Per queued frame a view and its pool buffer; 55 viewers with
            # at most 2 frames queued each, the hub's and the encoder's.
            assert bufs <= 2 * (55 * 2 + 2), "%d buffers alive" % bufs
            rss = rss_kb(relay.pid)
            assert 0 < rss < 100 * 1024, "RSS %d kB" % rss
            print("     55 viewers: slowest got %d frames, %d dropped, %d buffers, RSS %d kB"
                  % (min(counts.values()), dropped, bufs, rss), flush=True)
            st, _, body = relay.get("/api/inputs")
            assert json.loads(body)["inputs"][0]["viewers"] == 55, body
            for s in readers:
                s.close()
                sockets.remove(s)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                n = json.loads(relay.get("/api/inputs")[2])["inputs"][0]["viewers"]
                if n == 5:
                    break
                time.sleep(0.1)
            assert n == 5, "%d viewers after 50 left, want the 5 stalled ones" % n

        def metrics():
            st, ct, body = relay.get("/metrics")
            assert st == 200, st
            assert ct.startswith("text/plain; version=0.0.4"), ct
            text = body.decode()
            assert metric(text, "steward_relay_frames_in_total", '{input="test"}') > 0
            assert metric(text, "steward_relay_frames_out_total", '{input="test"}') > 0
            assert 'steward_live_resources{kind="thread"}' in text, text[-800:]

        def system_resources():
            st, ct, body = relay.get("/system-resources")
            assert st == 200, st
            d = json.loads(body)
            names = sorted(t["name"] for t in d["threads"])
            assert names == ["http-loop", "rec-janitor", "src-test"], names
            assert d["ledger"]["schema"] == "steward.ledger/1", d["ledger"]["schema"]
            kinds = {k["kind"]: k["live"] for k in d["ledger"]["kinds"]}
            assert kinds.get("scope", 0) >= 4 and kinds.get("frame", 0) >= 1, kinds

        def not_found():
            st, ct, body = relay.get("/no/such/path")
            assert st == 404, st
            assert ct == "application/json", ct
            assert "error" in json.loads(body), body
            st, _, _ = relay.get("/stream/nope")
            assert st == 404, st

        def method_not_allowed():
            st, ct, body = relay.get("/healthz", method="POST")
            assert st == 405, st
            assert ct == "application/json" and "error" in json.loads(body), body
            st, _, _ = relay.get("/stream/test", method="DELETE")
            assert st == 405, st

        def oversize_header():
            s = socket.create_connection(("127.0.0.1", relay.port), timeout=10)
            try:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
                data = b""
                while True:
                    try:
                        chunk = s.recv(65536)
                    except ConnectionResetError:
                        break
                    if not chunk:
                        break
                    data += chunk
            finally:
                s.close()
            m = re.match(rb"HTTP/1\.[01] (\d+)", data)
            assert m and 400 <= int(m.group(1)) < 500, "answer %r" % data[:80]
            healthz()

        def shutdown():
            os.kill(relay.pid, signal.SIGTERM)
            t0 = time.monotonic()
            try:
                rc = relay.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                raise AssertionError("still running 15 s after SIGTERM")
            took = time.monotonic() - t0
            err = relay.stderr()
            assert "shutdown: clean: exit code 0 (0 stage(s) late, 0 leaked)" in err, err[-3000:]
            m = re.search(r"SUMMARY: (\d+) leaks", err)
            assert m and m.group(1) == "0", "checker: %s" % err[-3000:]
            assert rc == 0, "exit %d (9: the checker found leaks)" % rc
            assert took < 5, "shutdown took %.1f s" % took
            print("     shutdown in %.2f s, ledger and checker: 0 leaked" % took, flush=True)

        for name, fn in [("healthz", healthz), ("index_page", index_page), ("api_inputs", api_inputs),
                         ("snapshot", snapshot), ("stream_frames", stream_frames),
                         ("many_viewers", many_viewers), ("metrics", metrics),
                         ("system_resources", system_resources), ("not_found", not_found),
                         ("method_not_allowed", method_not_allowed),
                         ("oversize_header", oversize_header), ("shutdown", shutdown)]:
            check(name, fn)
    finally:
        for s in sockets:
            s.close()
        relay.kill()


def run_stalled_timeout(build):
    """A stalled viewer is closed after --timeout; a watching one is not."""
    relay = Relay(build, ["--timeout", "2", "--fps", "30"])
    sockets = []
    try:
        def stalled_timeout():
            stalled = raw_viewer(relay.port, rcvbuf=4096)
            sockets.append(stalled)
            c, r = open_stream(relay)
            try:
                # The watcher reads for twice the timeout without sending
                # anything and keeps getting frames; the stalled viewer,
                # whose socket took nothing for the timeout, was cut.
                t0 = time.monotonic()
                while time.monotonic() - t0 < 4.5:
                    read_parts(r, 1)
                n = json.loads(relay.get("/api/inputs")[2])["inputs"][0]["viewers"]
                assert n == 1, "%d viewers, want only the watching one" % n
            finally:
                c.close()
            os.kill(relay.pid, signal.SIGTERM)
            rc = relay.proc.wait(timeout=15)
            err = relay.stderr()
            assert rc == 0, "exit %d: %s" % (rc, err[-2000:])
            assert "0 leaked" in err, err[-2000:]

        check("stalled_timeout", stalled_timeout)
    finally:
        for s in sockets:
            s.close()
        relay.kill()


def main():
    if len(sys.argv) != 2:
        print("usage: relay_basic.py BUILD_DIR", file=sys.stderr)
        return 2
    for suite in (run, run_stalled_timeout):
        try:
            suite(sys.argv[1])
        except Exception as e:
            report(suite.__name__, False, "could not start the relay: %s" % e)
    return 0 if all(RESULTS) else 1


if __name__ == "__main__":
    sys.exit(main())
