#!/usr/bin/env python3
"""Hostile clients against `steward relay` (under `steward check`, which
must report zero leaks at the end of every run): input floods on a stream,
the event stream and a kept-alive connection; slowloris; connection caps;
the descriptor limit; an event client that never reads; malformed and
cross-site requests; a state file that cannot be written. Each case
asserts a bound (RSS, descriptors, time, /healthz latency) or an answer.

Usage: relay_attack.py BUILD_DIR
Prints "ok   relay/NAME" or "FAIL relay/NAME: reason" per case.
"""
import http.client
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from relay_basic import RESULTS, Relay, check, metric, report, rss_kb  # noqa: E402

HOST = b"Host: 127.0.0.1\r\n"


def fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def healthz_latency(relay, timeout=5):
    t = time.monotonic()
    st, _, _ = relay.get("/healthz")
    assert st == 200, st
    return time.monotonic() - t


def flood(sock, seconds, chunk=1 << 16):
    """Send as much as the relay takes for @seconds; return the bytes sent."""
    sock.setblocking(False)
    data = b"x" * chunk
    sent = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            sent += sock.send(data)
        except BlockingIOError:
            time.sleep(0.005)
        except OSError:
            break
    return sent


def raw(port, data, timeout=5, src="127.0.0.1"):
    """Send @data on a new connection, return everything read until EOF."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(src, 0))
    out = b""
    try:
        s.sendall(data)
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
    except (socket.timeout, ConnectionResetError):
        pass
    finally:
        s.close()
    return out


def status_and_json(resp):
    head, _, body = resp.partition(b"\r\n\r\n")
    m = re.match(rb"HTTP/1\.[01] (\d{3}) ", head)
    assert m, "no status line: %r" % resp[:200]
    hdr = head.decode(errors="replace").lower()
    return int(m.group(1)), hdr, body


def run_floods(build):
    relay = Relay(build, ["--state", "none", "--size", "64x48", "--fps", "10",
                          "--header-timeout", "2"])
    try:
        base = rss_kb(relay.pid)

        def attack(first, name):
            s = socket.create_connection(("127.0.0.1", relay.port), timeout=10)
            try:
                s.sendall(first)
                sent = flood(s, 2.0)
                grown = rss_kb(relay.pid) - base
                lat = healthz_latency(relay)
                print("     %s: %.1f MB sent in 2 s, relay RSS +%.1f MB, /healthz %.0f ms"
                      % (name, sent / 1e6, grown / 1024, lat * 1000), flush=True)
                assert grown < 24 * 1024, "RSS grew by %d KiB" % grown
                assert lat < 1.0, "/healthz took %.2f s" % lat
            finally:
                s.close()

        check("flood_after_stream", lambda: attack(
            b"GET /stream/test HTTP/1.1\r\n" + HOST + b"\r\n", "stream"))
        check("flood_after_events", lambda: attack(
            b"GET /api/events HTTP/1.1\r\n" + HOST + b"\r\n", "events"))
        check("flood_pipelined", lambda: attack(
            (b"GET /healthz HTTP/1.1\r\n" + HOST + b"\r\n") * 50, "pipeline"))

        def slowloris():
            s = socket.create_connection(("127.0.0.1", relay.port), timeout=10)
            start = time.monotonic()
            got = b""
            try:
                s.sendall(b"GET /healthz HTTP/1.1\r\n")
                s.settimeout(0.5)
                while time.monotonic() - start < 8:
                    try:
                        s.send(b"X")
                    except OSError:
                        break
                    try:
                        d = s.recv(4096)
                        if not d:
                            break
                        got += d
                    except socket.timeout:
                        pass
            finally:
                s.close()
            held = time.monotonic() - start
            assert held < 4.5, "a one-byte-per-0.5-s client held the connection %.1f s" % held
            assert not got or b" 408 " in got.split(b"\r\n")[0], got[:100]
            text = relay.get("/metrics")[2].decode()
            assert metric(text, "steward_relay_header_timeouts_total") >= 1

        check("slowloris_head_deadline", slowloris)

        def idle_then_healthz():
            # The deadline does not cut a request that completes in time.
            s = socket.create_connection(("127.0.0.1", relay.port), timeout=10)
            try:
                s.sendall(b"GET /healthz HTTP/1.1\r\n")
                time.sleep(1.0)
                s.sendall(HOST + b"Connection: close\r\n\r\n")
                out = b""
                while True:
                    d = s.recv(4096)
                    if not d:
                        break
                    out += d
            finally:
                s.close()
            assert out.startswith(b"HTTP/1.1 200 "), out[:100]

        check("head_deadline_spares_slow_but_honest", idle_then_healthz)

        os.kill(relay.pid, signal.SIGTERM)
        rc = relay.proc.wait(timeout=20)
        err = relay.stderr()
        assert rc == 0 and "0 leaked" in err, "exit %d: %s" % (rc, err[-1500:])
        report("floods_no_leak", True)
    except AssertionError as e:
        report("floods_no_leak", False, str(e))
    finally:
        relay.kill()


def run_caps(build):
    relay = Relay(build, ["--state", "none", "--size", "64x48", "--fps", "5",
                          "--max-connections", "12", "--max-connections-per-client", "4"])
    held = []
    try:
        def per_client():
            for _ in range(4):
                held.append(socket.create_connection(("127.0.0.1", relay.port), timeout=5,
                                                     source_address=("127.0.0.1", 0)))
            time.sleep(0.2)
            out = raw(relay.port, b"GET /healthz HTTP/1.1\r\n" + HOST + b"\r\n")
            assert not out or b" 503 " in out.split(b"\r\n")[0], out[:200]
            # Another address is served.
            out = raw(relay.port, b"GET /healthz HTTP/1.1\r\n" + HOST +
                      b"Connection: close\r\n\r\n", src="127.0.0.2")
            assert out.startswith(b"HTTP/1.1 200 "), out[:200]

        def total():
            for i in range(8):
                held.append(socket.create_connection(("127.0.0.1", relay.port), timeout=5,
                                                     source_address=("127.0.0.%d" % (3 + i // 4), 0)))
            time.sleep(0.2)
            out = raw(relay.port, b"GET /healthz HTTP/1.1\r\n" + HOST + b"\r\n",
                      src="127.0.0.9")
            st, _, body = status_and_json(out)
            assert st == 503 and b"too many connections" in body, out[:200]
            for s in held:
                s.close()
            held.clear()
            time.sleep(0.3)
            st, _, body = relay.get("/metrics")
            text = body.decode()
            assert metric(text, "steward_relay_connections_refused_total",
                          '{reason="per_client"}') >= 1
            assert metric(text, "steward_relay_connections_refused_total",
                          '{reason="limit"}') >= 1
            assert metric(text, "steward_relay_connections_max") == 12
            assert metric(text, "steward_relay_connections") <= 2

        check("conn_cap_per_client", per_client)
        check("conn_cap_total", total)
    finally:
        for s in held:
            s.close()
        relay.kill()


def run_fd_limit(build):
    limit = 96

    def low_nofile():
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    steward = os.path.join(build, "src", "steward")
    # The Relay helper with a preexec hook: the launcher and the relay
    # inherit the limit.
    relay = Relay.__new__(Relay)
    relay.err = tempfile.TemporaryFile()
    relay.proc = subprocess.Popen(
        [steward, "check", "--error-exitcode=9", "--", steward, "relay", "--listen",
         "127.0.0.1:0", "--state", "none", "--size", "64x48", "--fps", "5",
         "--max-connections", "1000", "--max-connections-per-client", "1000"],
        stdout=subprocess.PIPE, stderr=relay.err, stdin=subprocess.DEVNULL,
        preexec_fn=low_nofile)
    relay.pid = None
    held = []
    try:
        line = relay.proc.stdout.readline()
        m = re.match(rb"steward relay: serving http://127\.0\.0\.1:(\d+)/\n$", line)
        assert m, line
        relay.port = int(m.group(1))
        with open("/proc/%d/task/%d/children" % (relay.proc.pid, relay.proc.pid)) as f:
            relay.pid = int(f.read().split()[0])

        def at_the_limit():
            for i in range(limit + 20):
                try:
                    held.append(socket.create_connection(
                        ("127.0.0.1", relay.port), timeout=2,
                        source_address=("127.0.0.%d" % (10 + i % 200), 0)))
                except OSError:
                    break
            time.sleep(0.5)
            err0 = relay.stderr().count("\n")
            cpu0 = cpu_s(relay.pid)
            time.sleep(2.0)
            lines = relay.stderr().count("\n") - err0
            cpu = cpu_s(relay.pid) - cpu0
            print("     at %d descriptors: %d stderr lines and %.2f s CPU in 2 s" % (
                limit, lines, cpu), flush=True)
            assert fds(relay.pid) <= limit
            assert lines <= 6, "%d lines on stderr in 2 s" % lines
            assert cpu < 0.5, "%.2f s CPU in 2 s" % cpu
            # More than wait unaccepted in the backlog (limit + 20 minus what
            # the relay accepted), or those take the freed descriptors
            # before /healthz is reached.
            for s in held[:60]:
                s.close()
            del held[:60]
            time.sleep(0.6)
            lat = healthz_latency(relay)
            print("     /healthz after freeing descriptors: %.0f ms" % (lat * 1000), flush=True)
            assert lat < 1.0, "/healthz took %.2f s" % lat
            text = relay.get("/metrics")[2].decode()
            assert metric(text, "steward_relay_accept_errors_total") >= 1

        check("fd_limit_backoff", at_the_limit)
        for s in held:
            s.close()
        held.clear()
        time.sleep(0.5)
        os.kill(relay.pid, signal.SIGTERM)
        rc = relay.proc.wait(timeout=20)
        err = relay.stderr()
        assert rc == 0 and "0 leaked" in err, "exit %d: %s" % (rc, err[-1500:])
        report("fd_limit_no_leak", True)
    except AssertionError as e:
        report("fd_limit_no_leak", False, str(e))
    finally:
        for s in held:
            s.close()
        relay.kill()


def run_stalled_sse(build):
    relay = Relay(build, ["--state", "none", "--no-default-input", "--timeout", "2",
                          "--viewer-sndbuf", "4096"])
    try:
        def stalled_events():
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(("127.0.0.1", relay.port))
            s.sendall(b"GET /api/events HTTP/1.1\r\n" + HOST + b"\r\n")
            time.sleep(0.3)
            # The relay's end of this connection: its send buffer is the
            # viewers' (4096, doubled by Linux), not the kernel's default
            # that autotuning grows to megabytes.
            me = s.getsockname()[1]
            ss = subprocess.run(["ss", "-tmnH", "state", "established", "( sport = :%d and dport = :%d )"
                                 % (relay.port, me)], capture_output=True, text=True).stdout
            m = re.search(r"\btb(\d+)", ss)
            assert m, ss
            assert int(m.group(1)) <= 2 * 4096 + 512, "event socket send buffer %s" % m.group(1)
            url = "http://127.0.0.1:9/" + "a" * 1900
            for i in range(60):
                c = relay.conn()
                c.request("POST", "/api/inputs", json.dumps(
                    {"name": "e%d" % i, "kind": "mjpeg", "url": url, "on_demand": True}),
                    {"Content-Type": "application/json"})
                assert c.getresponse().status == 201
                c.close()
                st, _, _ = relay.get("/api/inputs/e%d" % i, method="DELETE")
                assert st == 200, st
            start = time.monotonic()
            s.settimeout(10)
            closed = False
            while time.monotonic() - start < 8:
                try:
                    if not s.recv(65536):
                        closed = True
                        break
                except (ConnectionResetError, socket.timeout):
                    closed = True
                    break
            s.close()
            assert closed, "a stalled event client was not closed"
            assert rss_kb(relay.pid) < 64 * 1024

        check("stalled_event_client_closed", stalled_events)
    finally:
        relay.kill()


def run_protocol(build):
    relay = Relay(build, ["--state", "none", "--size", "64x48", "--fps", "5",
                          "--allow-host", "relay.example", "--cors-origin",
                          "https://nvr.example"])
    p = relay.port
    try:
        def libevent_errors_are_json():
            for req, want in ((b"GARBAGE\r\n\r\n", 400),
                              (b"FOO / HTTP/1.1\r\n" + HOST + b"\r\n", 501),
                              (b"GET / HTTP/1.1\r\nBroken header\r\n\r\n", 400),
                              (b"GET /healthz HTTP/1.1\r\n" + HOST + b"X: " + b"a" * 20000 +
                               b"\r\n\r\n", 400),
                              (b"POST /api/inputs HTTP/1.1\r\n" + HOST +
                               b"Content-Type: application/json\r\nContent-Length: 70000\r\n\r\n"
                               + b"a" * 70000, 413)):
                st, hdr, body = status_and_json(raw(p, req))
                assert st == want, (req[:30], st, want)
                assert "content-type: application/json" in hdr, hdr
                assert json.loads(body)["error"], body

        def head_keeps_connection_usable():
            c = relay.conn()
            try:
                for path in ("/healthz", "/api/inputs", "/", "/snapshot/test.jpg", "/metrics"):
                    c.request("HEAD", path, headers={})
                    r = c.getresponse()
                    assert r.read() == b"", path
                    if r.status == 200:
                        assert int(r.getheader("Content-Length")) > 0, path
                    c.request("GET", "/healthz")
                    r = c.getresponse()
                    assert r.status == 200 and json.loads(r.read()) == {"status": "ok"}, path
            finally:
                c.close()
            st, ct, body = relay.get("/stream/test", method="HEAD")
            assert st == 200 and ct.startswith("multipart/x-mixed-replace") and body == b""
            st, ct, body = relay.get("/api/events", method="HEAD")
            assert st == 200 and ct == "text/event-stream" and body == b""

        def paths():
            st, _, body = relay.get("/api/inputs/te%73t")
            assert st == 200 and json.loads(body)["name"] == "test", (st, body)
            st, _, body = relay.get("/api/inputs/test/")
            assert st == 200 and json.loads(body)["name"] == "test", (st, body)
            st, _, body = relay.get("/api/inputs/")
            assert st == 200 and "inputs" in json.loads(body), (st, body)
            st, _, body = relay.get("/healthz/")
            assert st == 200, st
            st, _, body = relay.get("/snapshot/te%73t.jpg")
            assert st in (200, 503), st
            for bad in ("/api/inputs/te%00st", "/api/inputs/%zz"):
                st, _, body = relay.get(bad)
                assert st == 400 and json.loads(body)["error"], (bad, st, body)

        def duplicate_keys():
            c = relay.conn()
            try:
                c.request("POST", "/api/inputs", b'{"name":"a","name":"b","kind":"test"}',
                          {"Content-Type": "application/json"})
                r = c.getresponse()
                doc = json.loads(r.read())
                assert r.status == 400 and "duplicate" in doc["error"], (r.status, doc)
            finally:
                c.close()

        def mutations_need_json_and_same_origin():
            def call(method, path, body=None, headers=None):
                c = relay.conn()
                try:
                    c.request(method, path, body, headers or {})
                    r = c.getresponse()
                    return r.status, dict(r.getheaders()), r.read()
                finally:
                    c.close()
            spec = json.dumps({"name": "f1", "kind": "test", "width": 64, "height": 48})
            st, _, _ = call("POST", "/api/inputs", spec, {"Content-Type": "text/plain"})
            assert st == 415, st
            st, _, _ = call("POST", "/api/inputs", spec,
                            {"Content-Type": "application/x-www-form-urlencoded"})
            assert st == 415, st
            st, _, _ = call("POST", "/api/inputs", spec, {
                "Content-Type": "application/json", "Origin": "http://evil.example"})
            assert st == 403, st
            st, _, _ = call("POST", "/api/inputs", spec, {
                "Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"})
            assert st == 403, st
            st, _, _ = call("DELETE", "/api/inputs/test", None, {"Origin": "null"})
            assert st == 403, st
            st, _, _ = call("POST", "/cleanup-resources", "", {"Content-Type": "text/plain"})
            assert st == 415, st
            st, h, _ = call("OPTIONS", "/api/inputs", None, {
                "Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
            assert st == 403, st
            st, h, _ = call("OPTIONS", "/api/inputs", None, {
                "Origin": "https://nvr.example", "Access-Control-Request-Method": "POST"})
            assert st == 204 and h.get("Access-Control-Allow-Origin") == "https://nvr.example", h
            assert "POST" in h.get("Access-Control-Allow-Methods", ""), h
            st, h, _ = call("POST", "/api/inputs", spec, {
                "Content-Type": "application/json", "Origin": "https://nvr.example"})
            assert st == 201 and h.get("Access-Control-Allow-Origin") == "https://nvr.example"
            st, _, _ = call("DELETE", "/api/inputs/f1", None, {
                "Origin": "http://127.0.0.1:%d" % p, "Sec-Fetch-Site": "same-origin"})
            assert st == 200, st
            st, _, _ = call("GET", "/api/inputs/f1")
            assert st == 404, st

        def host_header():
            for host, want in ((b"evil.example", 403), (b"evil.example:%d" % p, 403),
                               (b"relay.example:%d" % p, 200), (b"localhost", 200),
                               (b"[::1]:%d" % p, 200), (b"127.0.0.1:%d" % p, 200)):
                out = raw(p, b"GET /healthz HTTP/1.1\r\nHost: " + host +
                          b"\r\nConnection: close\r\n\r\n")
                st, _, body = status_and_json(out)
                assert st == want, (host, st, body)
            text = relay.get("/metrics")[2].decode()
            assert metric(text, "steward_relay_requests_rejected_total", '{reason="host"}') >= 2

        check("libevent_errors_are_json", libevent_errors_are_json)
        check("head_keeps_connection_usable", head_keeps_connection_usable)
        check("paths_decoded_trailing_slash", paths)
        check("duplicate_json_keys", duplicate_keys)
        check("mutations_json_same_origin_cors", mutations_need_json_and_same_origin)
        check("host_header_allow_list", host_header)
    finally:
        relay.kill()


def state_call(relay, method, path, body=None):
    c = relay.conn()
    try:
        c.request(method, path, json.dumps(body) if body is not None else None,
                  {"Content-Type": "application/json"} if body is not None else {})
        r = c.getresponse()
        return r.status, json.loads(r.read() or b"null")
    finally:
        c.close()


def names(relay):
    return sorted(i["name"] for i in state_call(relay, "GET", "/api/inputs")[1]["inputs"])


def run_state(build):
    tmp = tempfile.mkdtemp(prefix="steward-state-")
    mnt = os.path.join(tmp, "mnt")
    os.mkdir(mnt)
    mounted = False
    if os.geteuid() == 0:
        mounted = subprocess.call(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", mnt],
                                  stderr=subprocess.DEVNULL) == 0
    state = os.path.join(mnt, "relay.json")
    relay = None
    try:
        # A temporary file an interrupted save left behind.
        leftover = state + ".tmpAbC123"
        with open(leftover, "w") as f:
            f.write("{")
        relay = Relay(build, ["--state", state, "--size", "64x48", "--fps", "5"])

        def temps_removed():
            assert not os.path.exists(leftover), os.listdir(mnt)

        def unsaved_changes_refused():
            spec = {"name": "keep", "kind": "test", "width": 64, "height": 48, "on_demand": True}
            st, _ = state_call(relay, "POST", "/api/inputs", spec)
            assert st == 201, st
            if mounted:
                # Full: a file fills what is left of the tmpfs.
                fd = os.open(os.path.join(mnt, "fill"), os.O_WRONLY | os.O_CREAT, 0o600)
                try:
                    while True:
                        os.write(fd, b"\0" * 4096)
                except OSError:
                    pass
                finally:
                    os.close(fd)
                want = 507
            else:
                os.chmod(mnt, 0o500)
                want = 500
            spec2 = dict(spec, name="lost")
            st, doc = state_call(relay, "POST", "/api/inputs", spec2)
            assert st == want and "not saved" in doc["error"], (st, doc)
            st, doc = state_call(relay, "DELETE", "/api/inputs/keep")
            assert st == want, (st, doc)
            assert names(relay) == ["keep", "test"], names(relay)
            if mounted:
                # Read-only now: another errno, the same refusal.
                os.unlink(os.path.join(mnt, "fill"))
                subprocess.check_call(["mount", "-o", "remount,ro", mnt])
                st, doc = state_call(relay, "POST", "/api/inputs", spec2)
                assert st == 500 and "Read-only" in doc["error"], (st, doc)
                subprocess.check_call(["mount", "-o", "remount,rw", mnt])
            else:
                os.chmod(mnt, 0o700)
            text = relay.get("/metrics")[2].decode()
            assert metric(text, "steward_relay_state_save_failures_total") >= 2

        check("state_temps_removed_at_start", temps_removed)
        check("state_unsaved_changes_refused", unsaved_changes_refused)
        os.kill(relay.pid, signal.SIGTERM)
        relay.proc.wait(timeout=20)
        relay = Relay(build, ["--state", state, "--size", "64x48", "--fps", "5"])
        check("state_restart_matches_acknowledged",
              lambda: (lambda n: (_ for _ in ()).throw(AssertionError(n))
                       if n != ["keep", "test"] else None)(names(relay)))
        if not mounted:
            print("     (no tmpfs: a read-only directory stood in for a full disk)", flush=True)
    finally:
        if relay is not None:
            relay.kill()
        if mounted:
            subprocess.call(["umount", mnt])
        else:
            os.chmod(mnt, 0o700)
        shutil.rmtree(tmp, ignore_errors=True)


def run_self(build):
    """An input pointed at the relay's own stream, and inputs too big for the budget."""
    relay = Relay(build, ["--state", "none", "--size", "64x48", "--fps", "25",
                          "--max-input-memory", "200"])
    try:
        def post(body):
            c = relay.conn()
            try:
                c.request("POST", "/api/inputs", body=json.dumps(body),
                          headers={"Content-Type": "application/json"})
                r = c.getresponse()
                return r.status, json.loads(r.read() or b"null")
            finally:
                c.close()

        def self_loop():
            url = "http://127.0.0.1:%d/stream/test" % relay.port
            st, body = post({"name": "loop", "kind": "mjpeg", "url": url})
            assert st == 201, (st, body)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                _, _, raw_body = relay.get("/api/inputs/loop")
                got = json.loads(raw_body)
                if got.get("last_error") and "508" in got["last_error"]:
                    break
                time.sleep(0.2)
            assert "508" in (got.get("last_error") or ""), got
            assert got["state"] == "error" and got["frames_in"] == 0, got
            c0 = cpu_s(relay.pid)
            time.sleep(2)
            # Refused at once and retried with backoff: no spinning.
            assert cpu_s(relay.pid) - c0 < 0.5, cpu_s(relay.pid) - c0

        def budget():
            # 200 MiB: a 4096x4096 pattern claims 128 MiB, the test input
            # almost nothing, a camera 16 MiB.
            st, body = post({"name": "big1", "kind": "test", "width": 4096, "height": 4096,
                             "on_demand": True})
            assert st == 201, (st, body)
            st, body = post({"name": "big2", "kind": "test", "width": 4096, "height": 4096,
                             "on_demand": True})
            assert st == 507 and "--max-input-memory" in body["error"], (st, body)
            st, body = post({"name": "cam2", "kind": "mjpeg", "url": "http://127.0.0.1:9/x"})
            assert st == 201, (st, body)

        check("input_self_loop", self_loop)
        check("input_memory_budget", budget)
    finally:
        relay.kill()


def main():
    if len(sys.argv) != 2:
        print("usage: relay_attack.py BUILD_DIR", file=sys.stderr)
        return 2
    only = os.environ.get("RELAY_ATTACK_ONLY")
    for suite in (run_floods, run_caps, run_fd_limit, run_stalled_sse, run_protocol, run_state,
                  run_self):
        if only and only not in suite.__name__:
            continue
        try:
            suite(sys.argv[1])
        except Exception as e:
            report(suite.__name__, False, "could not run: %s: %s" % (type(e).__name__, e))
    return 0 if all(RESULTS) else 1


if __name__ == "__main__":
    sys.exit(main())
