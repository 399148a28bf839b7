#!/usr/bin/env python3
"""Integration tests of who may do what on `steward relay`: camera
passwords never shown, the config file, users and permissions, TLS. The
real binary, on an ephemeral port, under `steward check`.

Usage: relay_auth.py BUILD_DIR
Prints "ok   relay/NAME" or "FAIL relay/NAME: reason" per test case and
exits non-zero if any failed. Every process it starts is killed (by pid)
on the way out, whatever happened, and its temporary directory removed.
"""
import base64
import http.client
import json
import os
import re
import select
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from relay_basic import address_line  # noqa: E402

RESULTS = []
SECRET = "s3cr3t-pw"


def report(name, ok, why=""):
    RESULTS.append(ok)
    print(("ok   relay/%s" % name) if ok else ("FAIL relay/%s: %s" % (name, why)), flush=True)


def check(name, fn):
    try:
        fn()
        report(name, True)
    except Exception as e:  # one case failing must not stop the others
        report(name, False, "%s: %s" % (type(e).__name__, e))


class Relay:
    """`steward check --error-exitcode=9 -- steward relay --listen ADDR ARGS`."""

    def __init__(self, build, extra=(), listen="127.0.0.1:0", cafile=None):
        steward = os.path.join(build, "src", "steward")
        self.err = tempfile.TemporaryFile()
        self.cafile = cafile
        self.proc = subprocess.Popen(
            [steward, "check", "--error-exitcode=9", "--", steward, "relay",
             "--listen", listen] + list(extra),
            stdout=subprocess.PIPE, stderr=self.err, stdin=subprocess.DEVNULL)
        self.pid = None
        line = address_line(self.proc, 30)
        m = re.match(rb"steward relay: serving (https?)://127\.0\.0\.1:(\d+)/\n$", line)
        if not m:
            self.kill()
            raise RuntimeError("no address line, got %r; stderr: %s" % (line, self.stderr()[-2000:]))
        self.scheme = m.group(1).decode()
        self.port = int(m.group(2))
        with open("/proc/%d/task/%d/children" % (self.proc.pid, self.proc.pid)) as f:
            kids = f.read().split()
        if len(kids) != 1:
            self.kill()
            raise RuntimeError("expected one child of the launcher, got %r" % kids)
        self.pid = int(kids[0])

    def stderr(self):
        self.err.seek(0)
        return self.err.read().decode(errors="replace")

    def conn(self, timeout=20):
        if self.scheme == "https":
            ctx = ssl.create_default_context(cafile=self.cafile)
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout, context=ctx)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def call(self, method, path, body=None, user=None, token=None, headers=None, timeout=20):
        """(status, body bytes, headers) of one request."""
        c = self.conn(timeout=timeout)
        try:
            h = dict(headers or {})
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                h["Content-Type"] = "application/json"
            if user is not None:
                h["Authorization"] = "Basic " + base64.b64encode(
                    ("%s:%s" % user).encode()).decode()
            if token is not None:
                h["Authorization"] = "Bearer " + token
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
            return r.status, r.read(), dict(r.getheaders())
        finally:
            c.close()

    def json(self, method, path, body=None, **kw):
        st, text, hdr = self.call(method, path, body, **kw)
        try:
            doc = json.loads(text) if text else None
        except ValueError:
            doc = None
        return st, doc, hdr

    def stop(self):
        """SIGTERM: exit 0, the relay's verdict clean, the checker's 0 leaks."""
        os.kill(self.pid, signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            raise AssertionError("still running 20 s after SIGTERM")
        err = self.stderr()
        assert "shutdown: clean: exit code 0 (0 stage(s) late, 0 leaked)" in err, err[-3000:]
        m = re.search(r"SUMMARY: (\d+) leaks", err)
        assert m and m.group(1) == "0", "checker: %s" % err[-3000:]
        assert rc == 0, "exit %d (9: the checker found leaks)" % rc
        return err

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


def sse_read(port, seconds, until=None):
    """What /api/events sends within @seconds (or until @until appears)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    buf = b""
    try:
        s.sendall(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            s.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                break
            buf += chunk
            if until is not None and until.encode() in buf:
                break
    finally:
        s.close()
    return buf.decode(errors="replace")


class Events:
    """An /api/events client reading in the background of a test."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.s.sendall(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        self.buf = b""

    def read_until(self, text, timeout=5):
        deadline = time.monotonic() + timeout
        while text.encode() not in self.buf and time.monotonic() < deadline:
            self.s.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = self.s.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                break
            self.buf += chunk
        return self.buf.decode(errors="replace")

    def close(self):
        self.s.close()


def run_redact(build, tmp):
    """Step 1: a camera password appears nowhere the relay shows things."""
    state = os.path.join(tmp, "redact", "relay.json")
    relay = Relay(build, ["--state", state, "--size", "64x48", "--fps", "5"])
    try:
        def hidden():
            ev = Events(relay.port)
            try:
                ev.read_until("steward relay events")
                url = "http://viewer:%s@127.0.0.1:1/x?token=tok-%s" % (SECRET, SECRET)
                st, doc, _ = relay.json("POST", "/api/inputs",
                                        {"name": "cam", "kind": "mjpeg", "url": url})
                assert st == 201, (st, doc)
                assert doc["url"] == "http://viewer:***@127.0.0.1:1/x?token=***", doc["url"]
                events = ev.read_until('"state":"no-signal"', timeout=8)
            finally:
                ev.close()
            assert "input-created" in events and "viewer:***@" in events, events[-800:]
            # The camera's refusals have reached the log and last_error by now.
            deadline = time.monotonic() + 8
            while True:
                st, doc, _ = relay.json("GET", "/api/inputs/cam")
                if doc.get("last_error") or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert doc.get("last_error"), doc
            answers = []
            for path in ("/api/inputs", "/api/inputs/cam", "/api/inputs/cam/outputs", "/metrics",
                         "/system-resources", "/debug/threads", "/"):
                st, text, _ = relay.call("GET", path)
                assert st == 200, (path, st)
                answers.append((path, text.decode(errors="replace")))
            answers.append(("events", events))
            answers.append(("stderr", relay.stderr()))
            for where, text in answers:
                assert SECRET not in text, "%s shows the password: %s" % (
                    where, text[max(0, text.find(SECRET) - 200):][:400])
            # Only the state file keeps it, readable by the owner alone.
            with open(state) as f:
                saved = json.load(f)
            assert [i["url"] for i in saved["inputs"] if i["name"] == "cam"] == [url], saved
            mode = stat.S_IMODE(os.stat(state).st_mode)
            assert mode == 0o600, oct(mode)
            mode = stat.S_IMODE(os.stat(os.path.dirname(state)).st_mode)
            assert mode == 0o700, oct(mode)

        check("auth_password_hidden", hidden)
        check("auth_password_hidden_shutdown", lambda: relay.stop())
    finally:
        relay.kill()


def steward(build, args, stdin=None, timeout=30):
    """(exit code, stdout, stderr) of `steward relay ARGS` (not a server)."""
    p = subprocess.run([os.path.join(build, "src", "steward"), "relay"] + args, input=stdin,
                       capture_output=True, timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return path


CONFIG = """# a config file as an operator writes it
listen: 127.0.0.1:9
limits:
  max_viewers: 50
  max_inputs: 8
  on_demand_grace_ms: 500
test_pattern:
  size: 64x48
  fps: 5
allow_hosts: [nvr.example]
inputs:
  door:
    kind: mjpeg
    url: "http://door:%s@127.0.0.1:1/video"
  pattern:
    kind: test
    fps: 2
    on_demand: true
"""


def run_config(build, tmp):
    """Step 2: the config file."""
    d = os.path.join(tmp, "config")
    conf = write(os.path.join(d, "relay.yaml"), CONFIG % SECRET)
    state = os.path.join(d, "state", "relay.json")

    def print_config():
        os.chmod(conf, 0o644)
        rc, out, err = steward(build, ["--config", conf, "--print-config"])
        assert rc == 0 and "is readable by others (mode 0644): chmod 600" in err, (rc, err)
        os.chmod(conf, 0o600)
        rc, out, err = steward(build, ["--config", conf, "--print-config", "--max-viewers", "7"])
        assert rc == 0 and err == "", (rc, err)
        assert SECRET not in out, out
        assert 'url: "http://door:***@127.0.0.1:1/video"' in out, out
        # The command line wins over the file; the rest is the file's.
        assert "  max_viewers: 7\n" in out and "  max_inputs: 8\n" in out, out
        assert "  on_demand_grace_ms: 500\n" in out and 'allow_hosts: ["nvr.example"]' in out, out
        assert 'listen: "127.0.0.1:9"' in out and "  pattern:\n    kind: test\n" in out, out

    def bad_files():
        cases = [
            ("limits:\n  max_viewers: 10\n  max_viewerz: 3\n", ":3: max_viewerz: unknown key"),
            ("listen: 127.0.0.1:1\nbogus: 1\n", ":2: bogus: unknown key"),
            ("limits:\n  inflight: 99\n", ":2: inflight: bad value '99'"),
            ("inputs:\n  a:\n    kind: mjpeg\n    url: ftp://x/\n",
             ":2: a: input a: url scheme must be http or https"),
            ("inputs:\n  a:\n    kind: test\n    colour: red\n", ":4: colour: input a: unknown key"),
            ("users:\n  bob:\n    password_hash: hunter2\n    permissions: [read]\n",
             ":3: password_hash: user bob: not an argon2id hash"),
            ("users:\n  bob:\n    token_hashes: [\"blake2b256:%s\"]\n    permissions: [root]\n"
             % ("0" * 64), ":4: permissions: user bob: unknown permission 'root'"),
            ("tls:\n  cert: /x.pem\n", ":1: tls: needs both cert and key"),
            ("limits: [1, 2\n", "relay.yaml:"),
            ("listen: a\nlisten: b\n", "relay.yaml:2"),
        ]
        for i, (text, want) in enumerate(cases):
            bad = write(os.path.join(d, "bad%d" % i, "relay.yaml"), text)
            rc, out, err = steward(build, ["--config", bad, "--print-config"])
            assert rc == 2, (text, rc, out)
            assert out == "", out
            assert err.startswith("steward relay: config: " + bad), (text, err)
            assert want in err, (text, want, err)
        rc, out, err = steward(build, ["--config", os.path.join(d, "missing.yaml")])
        assert rc == 2 and "missing.yaml: No such file" in err, (rc, err)

    def print_ffmpeg():
        ff = write(os.path.join(d, "ff", "relay.yaml"), """inputs:
  gate:
    kind: ffmpeg
    url: "rtsp://admin:%s@10.0.0.9/s1"
    rtsp_transport: udp
    outputs:
      - {type: push, url: "rtmp://live.example/app/k?key=%s"}
      - type: push
        url: "srt://push.example:9000?passphrase=%s"
""" % (SECRET, SECRET, SECRET))
        os.chmod(ff, 0o600)
        rc, out, err = steward(build, ["--config", ff, "--print-config"])
        assert rc == 0 and err == "", (rc, err)
        assert SECRET not in out, out
        assert 'url: "rtsp://admin:***@10.0.0.9/s1"' in out and "rtsp_transport: udp" in out, out
        assert out.count("      - type: push\n") == 2 and "key=***" in out, out
        bad = write(os.path.join(d, "ff2", "relay.yaml"),
                    "inputs:\n  g:\n    kind: ffmpeg\n    url: rtsp://h/s\n"
                    "    outputs: [{type: push, id: 3, url: rtmp://x/a}]\n")
        rc, out, err = steward(build, ["--config", bad, "--print-config"])
        assert rc == 2 and ":2: g: input g: an output's id is given by the relay" in err, (rc, err)

    check("auth_config_print", print_config)
    check("auth_config_print_ffmpeg", print_ffmpeg)
    check("auth_config_errors", bad_files)

    relay = Relay(build, ["--config", conf, "--state", state])
    try:
        def declared():
            st, doc, _ = relay.json("GET", "/api/inputs")
            assert st == 200, st
            names = [i["name"] for i in doc["inputs"]]
            # Declared inputs replace the default one.
            assert names == ["door", "pattern"], names
            assert doc["max_viewers"] == 50, doc
            pattern = doc["inputs"][1]
            assert pattern["state"] == "idle" and pattern["width"] == 64, pattern
            assert pattern["fps"] == 2, pattern
            for name in ("door", "pattern"):
                st, doc, _ = relay.json("DELETE", "/api/inputs/" + name)
                assert st == 409, (name, st, doc)
                assert "declared by the config file " + conf in doc["error"], doc
            st, doc, _ = relay.json("POST", "/api/inputs", {"name": "pattern", "kind": "test"})
            assert st == 409, (st, doc)
            st, doc, _ = relay.json("POST", "/api/inputs",
                                    {"name": "extra", "kind": "test", "width": 32, "height": 32})
            assert st == 201, (st, doc)
            with open(state) as f:
                saved = [i["name"] for i in json.load(f)["inputs"]]
            assert saved == ["extra"], saved

        check("auth_config_inputs", declared)
        check("auth_config_shutdown", lambda: relay.stop())
    finally:
        relay.kill()

    relay = Relay(build, ["--config", conf, "--state", state])
    try:
        def restart():
            st, doc, _ = relay.json("GET", "/api/inputs")
            assert [i["name"] for i in doc["inputs"]] == ["door", "pattern", "extra"], doc
            st, doc, _ = relay.json("DELETE", "/api/inputs/extra")
            assert st == 200, (st, doc)
            relay.stop()

        check("auth_config_restart", restart)
    finally:
        relay.kill()


def hash_password(build, pw):
    rc, out, err = steward(build, ["--hash-password"], stdin=(pw + "\n").encode())
    assert rc == 0, (rc, err)
    return out.strip()


def new_token(build):
    rc, out, err = steward(build, ["--new-token"])
    assert rc == 0, (rc, err)
    token = re.search(r"^token: ([0-9a-f]{64})$", out, re.M).group(1)
    line = re.search(r'^token_hashes: \["(blake2b256:[0-9a-f]{64})"\]$', out, re.M).group(1)
    return token, line


def users_config(build, d, extra=""):
    """A config with alice (admin), bob (read), carol (publish, by token)."""
    token, token_hash = new_token(build)
    text = """listen: 127.0.0.1:0
state: none
test_pattern: {size: 64x48, fps: 5}
cors_origins: ["https://dash.example"]
users:
  alice:
    password_hash: "%s"
    permissions: [admin]
  bob:
    password_hash: "%s"
    permissions: [read]
  carol:
    token_hashes: ["%s"]
    permissions: [publish]
%s""" % (hash_password(build, "alice-pw"), hash_password(build, "bob-pw"), token_hash, extra)
    return write(os.path.join(d, "relay.yaml"), text), token


ALICE = ("alice", "alice-pw")
BOB = ("bob", "bob-pw")


def first_line(build, args, timeout=20):
    """(first stdout line, exit code or None if still running) of a relay; killed after."""
    p = subprocess.Popen([os.path.join(build, "src", "steward"), "relay"] + args,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        line = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not line.endswith(b"\n"):
            r, _, _ = select.select([p.stdout], [], [], 0.2)
            if r:
                c = os.read(p.stdout.fileno(), 1)
                if not c:
                    break
                line += c
        rc = p.poll()
        if rc is None:
            time.sleep(0.2)
            rc = p.poll()
        err = b""
        if rc is not None:
            err = p.stderr.read()
        return line.decode(), rc, err.decode(errors="replace")
    finally:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=10)


def run_users(build, tmp):
    """Step 3: users and permissions."""
    d = os.path.join(tmp, "users")

    def helpers():
        h = hash_password(build, "correct horse")
        assert h.startswith("$argon2id$v=19$m=65536,t=2,p=1$"), h
        assert h != hash_password(build, "correct horse"), "unsalted"
        rc, out, err = steward(build, ["--hash-password"], stdin=b"")
        assert rc != 0 and out == "" and "stdin" in err, (rc, out, err)
        rc, out, err = steward(build, ["--hash-password"], stdin=b"x" * 513 + b"\n")
        assert rc != 0 and out == "" and "at most 512 bytes" in err, (rc, out, err)
        assert hash_password(build, "y" * 512).startswith("$argon2id$")
        token, line = new_token(build)
        assert token != new_token(build)[0]

    check("auth_hash_helpers", helpers)

    def listen_rules():
        line, rc, err = first_line(build, ["--listen", "0.0.0.0:0", "--state", "none"])
        assert rc == 2 and line == "", (line, rc, err)
        assert "without users" in err and "--insecure-no-auth" in err, err
        line, rc, err = first_line(build, ["--listen", "0.0.0.0:0", "--state", "none",
                                           "--insecure-no-auth", "--no-default-input"])
        assert rc is None and line.startswith("steward relay: serving http://0.0.0.0:"), (line, rc,
                                                                                         err)
        conf, _ = users_config(build, os.path.join(d, "listen"))
        line, rc, err = first_line(build, ["--config", conf, "--listen", "0.0.0.0:0",
                                           "--no-default-input"])
        assert rc is None and line.startswith("steward relay: serving http://0.0.0.0:"), (line, rc,
                                                                                         err)

    check("auth_listen_needs_users", listen_rules)

    conf, token = users_config(build, d)
    relay = Relay(build, ["--config", conf])
    try:
        def anonymous():
            for path in ("/", "/api/inputs", "/stream/test", "/snapshot/test.jpg", "/api/events",
                         "/metrics", "/system-resources", "/debug/threads", "/nope"):
                st, doc, hdr = relay.json("GET", path)
                assert st == 401, (path, st)
                assert hdr.get("WWW-Authenticate") == 'Basic realm="steward"', (path, hdr)
                assert hdr.get("Content-Type") == "application/json", (path, hdr)
                assert doc == {"error": "authentication required"}, (path, doc)
            st, doc, _ = relay.json("POST", "/api/inputs", {"name": "x", "kind": "test"})
            assert st == 401, st
            st, doc, _ = relay.json("GET", "/healthz")
            assert st == 200 and doc == {"status": "ok"}, (st, doc)

        def reader():
            for path in ("/", "/ui/app.js", "/api/inputs", "/api/inputs/test", "/metrics",
                         "/api/inputs/test/outputs"):
                st, _, _ = relay.call("GET", path, user=BOB)
                assert st == 200, (path, st)
            deadline = time.monotonic() + 5
            while relay.call("GET", "/snapshot/test.jpg", user=BOB)[0] != 200:
                assert time.monotonic() < deadline, "no snapshot"
                time.sleep(0.1)
            c = relay.conn()
            c.request("GET", "/stream/test", headers={
                "Authorization": "Basic " + base64.b64encode(b"bob:bob-pw").decode()})
            r = c.getresponse()
            assert r.status == 200 and r.read1(100), r.status
            c.close()
            for method, path, body in (("POST", "/api/inputs", {"name": "x", "kind": "test"}),
                                       ("DELETE", "/api/inputs/test", None),
                                       ("GET", "/system-resources", None),
                                       ("GET", "/debug/threads", None),
                                       ("POST", "/cleanup-resources", None)):
                st, doc, _ = relay.json(method, path, body, user=BOB)
                assert st == 403, (method, path, st)
                assert "user bob lacks the" in doc["error"], doc

        def publisher():
            st, doc, _ = relay.json("POST", "/api/inputs",
                                    {"name": "cam2", "kind": "test", "width": 32, "height": 32},
                                    token=token)
            assert st == 201, (st, doc)
            st, doc, _ = relay.json("GET", "/api/inputs", token=token)
            assert st == 403 and "lacks the read permission" in doc["error"], (st, doc)
            st, doc, _ = relay.json("DELETE", "/api/inputs/cam2", token=token)
            assert st == 200, (st, doc)

        def admin():
            for method, path in (("GET", "/system-resources"), ("GET", "/debug/threads"),
                                 ("POST", "/cleanup-resources"), ("GET", "/api/inputs"),
                                 ("GET", "/metrics")):
                st, _, _ = relay.call(method, path, user=ALICE)
                assert st == 200, (method, path, st)
            st, doc, _ = relay.json("POST", "/api/inputs", {"name": "a2", "kind": "test"},
                                    user=ALICE)
            assert st == 201, (st, doc)
            st, doc, _ = relay.json("DELETE", "/api/inputs/a2", user=ALICE)
            assert st == 200, (st, doc)

        def events():
            s = socket.create_connection(("127.0.0.1", relay.port), timeout=5)
            try:
                s.sendall(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic "
                          + base64.b64encode(b"bob:bob-pw") + b"\r\n\r\n")
                buf = b""
                while b"steward relay events" not in buf:
                    chunk = s.recv(4096)
                    assert chunk, buf
                    buf += chunk
                assert buf.startswith(b"HTTP/1.1 200"), buf[:100]
            finally:
                s.close()

        def cors():
            # A listed origin's preflight needs no user and allows the
            # Authorization header; its requests then need one as any other.
            st, _, hdr = relay.call("OPTIONS", "/api/inputs", headers={
                "Origin": "https://dash.example", "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type"})
            assert st == 204, st
            assert "Authorization" in hdr.get("Access-Control-Allow-Headers", ""), hdr
            st, _, hdr = relay.call("GET", "/api/inputs", headers={"Origin": "https://dash.example"})
            assert st == 401, st
            st, _, hdr = relay.call("GET", "/api/inputs", user=BOB,
                                    headers={"Origin": "https://dash.example"})
            assert st == 200 and hdr.get("Access-Control-Allow-Origin") == "https://dash.example", (
                st, hdr)

        def failures():
            for cred in (dict(user=("alice", "wrong")), dict(user=("mallory", "x")),
                         dict(token="0" * 64), dict(headers={"Authorization": "Basic !!!"}),
                         dict(headers={"Authorization": "Digest x"})):
                t0 = time.monotonic()
                st, doc, hdr = relay.json("GET", "/api/inputs", **cred)
                took = time.monotonic() - t0
                assert st == 401, (cred, st)
                assert hdr.get("WWW-Authenticate") == 'Basic realm="steward"', hdr
                assert doc == {"error": "wrong user name, password or token"}, doc
                assert took >= 0.19, (cred, took)
            # A client that leaves during the delay costs nothing (checked at
            # shutdown: no leak).
            for _ in range(3):
                s = socket.create_connection(("127.0.0.1", relay.port), timeout=5)
                s.sendall(b"GET /api/inputs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          b"Authorization: Bearer nope\r\n\r\n")
                s.close()
            time.sleep(0.4)
            st, _, _ = relay.call("GET", "/api/inputs", user=BOB)
            assert st == 200, st
            assert "alice-pw" not in relay.stderr() and "bob-pw" not in relay.stderr()

        def lockout():
            # bob's success above cleared this address's failures; 10 lock
            # it out, then even a right password is refused.
            for i in range(10):
                st, _, _ = relay.call("GET", "/api/inputs", user=("alice", "wrong%d" % i))
                assert st == 401, (i, st)
            st, doc, hdr = relay.json("GET", "/api/inputs", user=ALICE)
            assert st == 429, (st, doc)
            assert 0 < int(hdr.get("Retry-After", "0")) <= 60, hdr
            assert "too many failed logins" in doc["error"], doc
            st, _, _ = relay.call("GET", "/healthz")
            assert st == 200, st
            # Another address is not locked out; the counters show it all.
            c = http.client.HTTPConnection("127.0.0.1", relay.port, timeout=20,
                                           source_address=("127.0.0.2", 0))
            try:
                c.request("GET", "/metrics", headers={
                    "Authorization": "Basic " + base64.b64encode(b"alice:alice-pw").decode()})
                r = c.getresponse()
                text = r.read().decode()
                assert r.status == 200, r.status
            finally:
                c.close()
            failed = int(re.search(r'^steward_relay_auth_refused_total\{reason="credentials"\} '
                                   r'(\d+)$', text, re.M).group(1))
            locked = int(re.search(r'^steward_relay_auth_refused_total\{reason="locked"\} '
                                   r'(\d+)$', text, re.M).group(1))
            assert failed >= 20 and locked == 1, (failed, locked)

        def loop_not_blocked():
            # Five new passwords to check (argon2id, a few hundred ms each):
            # the verifier thread runs them, the loop keeps answering.
            import threading
            results = []

            took = []

            def login(i):
                t0 = time.monotonic()
                results.append(relay.call("GET", "/api/inputs", user=("alice", "guess%d" % i))[0])
                took.append(time.monotonic() - t0)

            threads = [threading.Thread(target=login, args=(i,)) for i in range(5)]
            for t in threads:
                t.start()
            worst = 0.0
            time.sleep(0.05)
            while any(t.is_alive() for t in threads):
                t0 = time.monotonic()
                st, _, _ = relay.call("GET", "/healthz")
                worst = max(worst, time.monotonic() - t0)
                assert st == 200, st
                time.sleep(0.02)
            for t in threads:
                t.join()
            assert results == [401] * 5, results
            # A loop that verified passwords itself would hold a request
            # for a whole verification; a loaded machine only slows it a
            # little. So the bound is half the quickest login's time (at
            # least 150 ms), not a fixed figure that load can reach.
            bound = max(0.15, 0.5 * min(took))
            assert worst < bound, "the loop stalled %.3f s (a login took %.3f s at the quickest)" % (
                worst, min(took))
            # A client that leaves while its password is checked.
            s = socket.create_connection(("127.0.0.1", relay.port), timeout=5)
            s.sendall(b"GET /api/inputs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic "
                      + base64.b64encode(b"alice:left-early") + b"\r\n\r\n")
            s.close()
            # A success clears the address's failures.
            st, _, _ = relay.call("GET", "/api/inputs", user=BOB)
            assert st == 200, st

        check("auth_loop_not_blocked", loop_not_blocked)
        check("auth_anonymous_401", anonymous)
        check("auth_read_permission", reader)
        check("auth_publish_token", publisher)
        check("auth_admin_permission", admin)
        check("auth_events_with_user", events)
        check("auth_cors_preflight", cors)
        check("auth_failure_delay", failures)
        check("auth_lockout_429", lockout)
        check("auth_users_shutdown", lambda: relay.stop())
    finally:
        relay.kill()


def curl(args, timeout=20):
    p = subprocess.run(["curl", "-s", "-S", "--max-time", "10"] + args, capture_output=True,
                       timeout=timeout)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def run_queue(build, tmp):
    """More new passwords at once than the verifier queue holds: 503 for
    the rest, never a stall or a leak."""
    import threading
    conf, _ = users_config(build, os.path.join(tmp, "queue"))
    relay = Relay(build, ["--config", conf])
    try:
        def flood():
            results = []

            def login(i):
                results.append(relay.call("GET", "/metrics", user=("bob", "no%d" % i),
                                          timeout=60)[0])

            threads = [threading.Thread(target=login, args=(i,)) for i in range(24)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert len(results) == 24, results
            assert set(results) <= {401, 503, 429} and 503 in results, results
            assert results.count(401) <= 8, results

        check("auth_verify_queue_full", flood)
        check("auth_verify_queue_shutdown", lambda: relay.stop())
    finally:
        relay.kill()


def run_tls(build, tmp):
    """Step 4: HTTPS on the listener, checked with curl --cacert."""
    d = os.path.join(tmp, "tls")
    os.makedirs(d)
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=127.0.0.1", "-addext",
                    "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=30)
    conf, _ = users_config(build, d, "tls:\n  cert: %s\n  key: %s\n" % (cert, key))

    def bad_files():
        other = write(os.path.join(d, "bad", "relay.yaml"),
                      "state: none\ntls:\n  cert: %s\n  key: %s\n" % (os.path.join(d, "nope.pem"),
                                                                      key))
        line, rc, err = first_line(build, ["--config", other])
        assert rc not in (None, 0) and line == "", (line, rc, err)
        assert "tls: certificate " + os.path.join(d, "nope.pem") in err, err
        wrong = write(os.path.join(d, "bad2", "relay.yaml"),
                      "state: none\ntls:\n  cert: %s\n  key: %s\n" % (cert, cert))
        line, rc, err = first_line(build, ["--config", wrong])
        assert rc not in (None, 0) and "tls: key " + cert in err, (line, rc, err)

    check("auth_tls_bad_files", bad_files)

    relay = Relay(build, ["--config", conf], cafile=cert)
    try:
        base = "https://127.0.0.1:%d" % relay.port

        def with_curl():
            assert relay.scheme == "https", relay.scheme
            rc, out, err = curl(["--cacert", cert, base + "/healthz"])
            assert rc == 0 and json.loads(out) == {"status": "ok"}, (rc, out, err)
            rc, out, err = curl(["--cacert", cert, "-o", "/dev/null", "-w", "%{http_code}",
                                 base + "/api/inputs"])
            assert rc == 0 and out == b"401", (rc, out, err)
            rc, out, err = curl(["--cacert", cert, "-u", "bob:bob-pw", base + "/api/inputs"])
            assert rc == 0 and json.loads(out)["inputs"][0]["name"] == "test", (rc, out, err)
            # The browser's same-origin POST carries an https:// Origin.
            rc, out, err = curl(["--cacert", cert, "-u", "alice:alice-pw", "-X", "POST",
                                 "-H", "Content-Type: application/json",
                                 "-H", "Origin: " + base, "-d",
                                 '{"name":"tlsin","kind":"test","width":32,"height":32}',
                                 base + "/api/inputs"])
            assert rc == 0 and json.loads(out).get("name") == "tlsin", (rc, out, err)
            rc, out, err = curl(["--cacert", cert, "-u", "alice:alice-pw", "-X", "POST",
                                 "-H", "Content-Type: application/json",
                                 "-H", "Origin: http://127.0.0.1:%d" % relay.port, "-d", "{}",
                                 base + "/api/inputs"])
            assert rc == 0 and b"error" in out, (rc, out, err)
            deadline = time.monotonic() + 5
            while True:
                rc, out, err = curl(["--cacert", cert, "-u", "bob:bob-pw",
                                     base + "/snapshot/test.jpg"])
                if (rc == 0 and out[:2] == b"\xff\xd8") or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert rc == 0 and out[:2] == b"\xff\xd8" and out[-2:] == b"\xff\xd9", (rc, out[:40])
            rc, out, err = curl(["--cacert", cert, "-u", "bob:bob-pw", "--max-time", "2",
                                 base + "/stream/test"])
            assert rc == 28 and out.count(b"--stwframe") >= 2, (rc, len(out), err)
            # No certificate to trust, or plain HTTP: no answer.
            rc, out, err = curl([base + "/healthz"])
            assert rc == 60, (rc, out, err)
            rc, out, err = curl(["http://127.0.0.1:%d/healthz" % relay.port])
            assert rc != 0 and b"ok" not in out, (rc, out, err)

        def python_client():
            st, doc, _ = relay.json("GET", "/api/inputs", user=ALICE)
            assert st == 200 and [i["name"] for i in doc["inputs"]] == ["test", "tlsin"], doc
            st, doc, _ = relay.json("DELETE", "/api/inputs/tlsin", user=ALICE)
            assert st == 200, (st, doc)

        def rude_clients():
            # Leaving mid-handshake, garbage instead of a ClientHello, a
            # handshake and nothing else: each is just closed.
            for data in (b"", b"\x16\x03\x01\x00", b"GET / HTTP/1.1\r\n\r\n" * 10):
                s = socket.create_connection(("127.0.0.1", relay.port), timeout=5)
                if data:
                    s.sendall(data)
                s.close()
            ctx = ssl.create_default_context(cafile=cert)
            s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", relay.port), timeout=5),
                                server_hostname="127.0.0.1")
            s.close()
            time.sleep(0.3)
            rc, out, err = curl(["--cacert", cert, base + "/healthz"])
            assert rc == 0, (rc, err)

        check("auth_tls_curl", with_curl)
        check("auth_tls_python", python_client)
        check("auth_tls_rude_clients", rude_clients)
        check("auth_tls_shutdown", lambda: relay.stop())
    finally:
        relay.kill()


def main():
    if len(sys.argv) != 2:
        print("usage: relay_auth.py BUILD_DIR", file=sys.stderr)
        return 2
    build = sys.argv[1]
    tmp = tempfile.mkdtemp(prefix="relay-auth-")
    try:
        for suite in (run_redact, run_config, run_users, run_queue, run_tls):
            try:
                suite(build, tmp)
            except Exception as e:
                report(suite.__name__, False, "could not run: %s" % e)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if all(RESULTS) else 1


if __name__ == "__main__":
    sys.exit(main())
