#!/usr/bin/env python3
"""Integration tests of the relay's REST API, state file and events: the
real binary, on an ephemeral port, under `steward check`, driven over HTTP.

Usage: relay_api.py BUILD_DIR
Prints "ok   relay/NAME" or "FAIL relay/NAME: reason" per test case and
exits non-zero if any failed. Every process it starts is killed (by pid)
on the way out, whatever happened, and its temporary directory removed.
"""
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from relay_basic import Relay, is_jpeg, read_parts  # noqa: E402

RESULTS = []
SMALL = {"kind": "test", "width": 64, "height": 48, "fps": 10}


def report(name, ok, why=""):
    RESULTS.append(ok)
    print(("ok   relay/%s" % name) if ok else ("FAIL relay/%s: %s" % (name, why)), flush=True)


def check(name, fn):
    try:
        fn()
        report(name, True)
    except Exception as e:  # one case failing must not stop the others
        report(name, False, "%s: %s" % (type(e).__name__, e))


def call(relay, method, path, body=None, raw=None, timeout=10):
    """(status, parsed JSON or None, headers) of one request."""
    c = relay.conn(timeout=timeout)
    try:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        headers = {"Content-Type": "application/json"} if data is not None else {}
        c.request(method, path, body=data, headers=headers)
        r = c.getresponse()
        text = r.read()
        try:
            doc = json.loads(text) if text else None
        except ValueError:
            doc = None
        return r.status, doc, dict(r.getheaders())
    finally:
        c.close()


def create(relay, name, **kw):
    spec = dict(SMALL)
    spec.update(kw)
    spec["name"] = name
    return call(relay, "POST", "/api/inputs", spec)


def inputs(relay):
    st, doc, _ = call(relay, "GET", "/api/inputs")
    assert st == 200, st
    return {i["name"]: i for i in doc["inputs"]}


def fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def tasks(pid):
    return len(os.listdir("/proc/%d/task" % pid))


def settle(fn, want, timeout=5):
    """Poll fn() until it returns @want or @timeout passes; return the last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v == want or time.monotonic() > deadline:
            return v
        time.sleep(0.05)


def stable(fn, timeout=3):
    """fn()'s value once two reads 100 ms apart agree (connections of the
    previous request may still be closing on the server side)."""
    deadline = time.monotonic() + timeout
    v = fn()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        w = fn()
        if w == v:
            return v
        v = w
    return v


def open_viewer(relay, name):
    c = relay.conn()
    c.connect()
    c.port_used = c.sock.getsockname()[1]
    c.request("GET", "/stream/" + name)
    r = c.getresponse()
    assert r.status == 200, r.status
    c.resp = r
    return c, r


def close_viewer(c):
    """Close a viewer for real: the response holds its own socket reference."""
    c.resp.close()
    c.close()


def wait_end(resp, timeout=5):
    """Read until the stream ends; fail if it does not within @timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if not resp.read1(65536):
                return
        except (ConnectionError, OSError):
            return
    raise AssertionError("stream still open %ss after the delete" % timeout)


class Events:
    """A raw /api/events client collecting what it reads."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.s.sendall(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        self.buf = b""
        self.closed = False

    def wait_for(self, text, timeout=5):
        deadline = time.monotonic() + timeout
        while text.encode() not in self.buf:
            if time.monotonic() > deadline:
                raise AssertionError("no %r in events: %r" % (text, self.buf[-600:]))
            self.s.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = self.s.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                self.closed = True
                raise AssertionError("event stream closed while waiting for %r" % text)
            self.buf += chunk

    def wait_closed(self, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.s.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = self.s.recv(65536)
            except socket.timeout:
                continue
            except ConnectionError:
                return
            if not chunk:
                return
            self.buf += chunk
        raise AssertionError("event stream still open")

    def close(self):
        self.s.close()


def stop(relay, name="shutdown"):
    """SIGTERM: exit 0, the relay's verdict clean, the checker's 0 leaks."""
    os.kill(relay.pid, signal.SIGTERM)
    try:
        rc = relay.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        raise AssertionError("still running 15 s after SIGTERM")
    err = relay.stderr()
    assert "shutdown: clean: exit code 0 (0 stage(s) late, 0 leaked)" in err, err[-3000:]
    m = re.search(r"SUMMARY: (\d+) leaks", err)
    assert m and m.group(1) == "0", "checker: %s" % err[-3000:]
    assert rc == 0, "exit %d (9: the checker found leaks)" % rc
    return err


def run_main(build, tmp):
    state = os.path.join(tmp, "state", "relay.json")
    relay = Relay(build, ["--state", state, "--on-demand-grace-ms", "300", "--max-inputs", "6",
                          "--size", "64x48", "--fps", "10"])
    keep = []
    try:
        events = Events(relay.port)
        keep.append(events)
        events.wait_for("steward relay events")

        def crud():
            assert list(inputs(relay)) == ["test"], inputs(relay)
            st, doc, hdr = create(relay, "cam1", quality=50)
            assert st == 201, (st, doc)
            assert hdr.get("Location") == "/api/inputs/cam1", hdr
            assert doc["name"] == "cam1" and doc["kind"] == "test" and doc["quality"] == 50, doc
            assert doc["on_demand"] is False and doc["outputs"] == 0, doc
            assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", doc["created"]), doc
            assert list(inputs(relay)) == ["test", "cam1"], inputs(relay)
            st, doc, _ = call(relay, "GET", "/api/inputs/cam1")
            assert st == 200 and doc["name"] == "cam1" and doc["width"] == 64, (st, doc)
            with open(state) as f:
                saved = json.load(f)
            assert [i["name"] for i in saved["inputs"]] == ["test", "cam1"], saved
            assert not glob.glob(state + ".tmp*"), glob.glob(state + ".tmp*")
            deadline = time.monotonic() + 5
            while inputs(relay)["cam1"]["state"] != "running":
                assert time.monotonic() < deadline, inputs(relay)["cam1"]
                time.sleep(0.05)
            st, _, _ = call(relay, "GET", "/snapshot/cam1.jpg")
            assert st == 200, st
            st, doc, _ = call(relay, "DELETE", "/api/inputs/cam1")
            assert st == 200 and doc == {"deleted": "cam1", "outputs_closed": 0}, (st, doc)
            assert list(inputs(relay)) == ["test"], inputs(relay)
            st, doc, _ = call(relay, "GET", "/api/inputs/cam1")
            assert st == 404 and "error" in doc, (st, doc)
            with open(state) as f:
                assert [i["name"] for i in json.load(f)["inputs"]] == ["test"]

        def events_created_deleted():
            st, _, _ = create(relay, "evt")
            assert st == 201, st
            events.wait_for('event: input-created\ndata: {"name":"evt"')
            events.wait_for('event: input-state\ndata: {"name":"evt","state":"running"}')
            c, r = open_viewer(relay, "evt")
            try:
                events.wait_for('event: output-created\ndata: {"input":"evt"')
            finally:
                close_viewer(c)
            events.wait_for('event: output-deleted\ndata: {"input":"evt"')
            st, _, _ = call(relay, "DELETE", "/api/inputs/evt")
            assert st == 200, st
            events.wait_for('event: input-deleted\ndata: {"name":"evt"}')

        def validation():
            def bad(status, body=None, raw=None, path="/api/inputs", method="POST", what=""):
                st, doc, hdr = call(relay, method, path, body=body, raw=raw)
                assert st == status, "%s: status %d, want %d: %r" % (what, st, status, doc)
                assert hdr.get("Content-Type") == "application/json", (what, hdr)
                assert isinstance(doc, dict) and doc.get("error"), (what, doc)
                return doc["error"]

            msg = bad(400, raw=b'{"name": "x",', what="bad JSON")
            assert "invalid JSON" in msg and "line 1" in msg, msg
            bad(400, raw=b"[1,2]", what="not an object")
            bad(400, raw=b"", what="empty body")
            bad(422, {"kind": "test"}, what="no name")
            for name in ("", "a b", "x" * 32, "../etc", "caf\u00e9", "a/b"):
                bad(422, dict(SMALL, name=name), what="name %r" % name)
            bad(400, dict(SMALL, name=7), what="name not a string")
            bad(422, {"name": "k", "kind": "rtsp"}, what="bad kind")
            bad(422, {"name": "k"}, what="no kind")
            for url in ("file:///etc/passwd", "ftp://cam/x", "javascript:alert(1)", "gopher://x",
                        "http://", "http://cam/a b", "http://cam/\x01", "//cam/x",
                        "http://cam/" + "a" * 2040):
                msg = bad(422, {"name": "m", "kind": "mjpeg", "url": url}, what="url %r" % url[:30])
                assert "url" in msg, msg
            bad(422, {"name": "m", "kind": "mjpeg"}, what="mjpeg without url")
            bad(400, {"name": "m", "kind": "mjpeg", "url": 5}, what="url not a string")
            bad(422, dict(SMALL, name="t", url="http://cam/"), what="url on a test input")
            bad(422, {"name": "m", "kind": "mjpeg", "url": "http://cam/", "width": 64},
                what="width on an mjpeg input")
            for field, value in (("width", 8), ("height", 5000), ("fps", 0), ("fps", 121),
                                 ("quality", 0), ("quality", 101), ("width", -1)):
                bad(422, dict(SMALL, name="t", **{field: value}), what="%s=%r" % (field, value))
            bad(400, dict(SMALL, name="t", width="big"), what="width not a number")
            bad(400, dict(SMALL, name="t", on_demand="yes"), what="on_demand not a bool")
            bad(422, dict(SMALL, name="t", colour="red"), what="unknown field")
            bad(409, dict(SMALL, name="test"), what="duplicate")
            bad(404, path="/api/inputs/nope", method="GET", what="unknown input")
            bad(404, path="/api/inputs/nope", method="DELETE", what="delete unknown input")
            bad(404, path="/api/inputs/test/outputs/999", method="DELETE", what="unknown output")
            bad(404, path="/api/inputs/nope/outputs", method="GET", what="outputs of unknown")
            bad(405, path="/api/inputs/test", method="PUT", what="PUT input")
            bad(405, path="/api/inputs", method="DELETE", what="DELETE the collection")
            msg = bad(413, raw=b'{"name":"' + b"a" * 70000 + b'"}', what="oversize body")
            assert "larger than" in msg, msg
            # The cap: 6 inputs; "test" is one.
            made = []
            try:
                for i in range(5):
                    st, doc, _ = create(relay, "cap%d" % i)
                    assert st == 201, (st, doc)
                    made.append("cap%d" % i)
                msg = bad(507, dict(SMALL, name="cap9"), what="too many inputs")
                assert "too many inputs" in msg, msg
            finally:
                for n in made:
                    call(relay, "DELETE", "/api/inputs/" + n)
            assert list(inputs(relay)) == ["test"], inputs(relay)

        def churn():
            pid = relay.pid
            st, _, _ = create(relay, "warm")
            assert st == 201, st
            assert call(relay, "DELETE", "/api/inputs/warm")[0] == 200
            fd0, th0 = stable(lambda: fds(pid)), stable(lambda: tasks(pid))
            t0 = time.monotonic()
            peak_th = 0
            for i in range(200):
                st, doc, _ = create(relay, "churn")
                assert st == 201, (i, st, doc)
                if i % 20 == 0:
                    peak_th = max(peak_th, tasks(pid))
                st, doc, _ = call(relay, "DELETE", "/api/inputs/churn")
                assert st == 200, (i, st, doc)
            took = time.monotonic() - t0
            fd1 = settle(lambda: fds(pid), fd0)
            th1 = settle(lambda: tasks(pid), th0)
            assert fd1 == fd0, "fds %d before, %d after 200 cycles" % (fd0, fd1)
            assert th1 == th0, "threads %d before, %d after 200 cycles" % (th0, th1)
            assert list(inputs(relay)) == ["test"], inputs(relay)
            print("     200 create/delete cycles in %.1f s: fds %d -> %d, threads %d -> %d "
                  "(%d while an input existed)" % (took, fd0, fd1, th0, th1, peak_th), flush=True)

        def delete_input_ends_viewers():
            pid = relay.pid
            fd0 = stable(lambda: fds(pid))
            st, _, _ = create(relay, "gone")
            assert st == 201, st
            viewers = [open_viewer(relay, "gone") for _ in range(3)]
            try:
                for _, r in viewers:
                    assert all(is_jpeg(p) for p in read_parts(r, 2))
                st, doc, _ = call(relay, "GET", "/api/inputs/gone/outputs")
                assert st == 200 and len(doc["outputs"]) == 3, doc
                st, doc, _ = call(relay, "DELETE", "/api/inputs/gone")
                assert st == 200 and doc["outputs_closed"] == 3, (st, doc)
                for _, r in viewers:
                    wait_end(r)
            finally:
                for c, _ in viewers:
                    close_viewer(c)
            assert inputs(relay)["test"]["viewers"] == 0
            fd1 = settle(lambda: fds(pid), fd0)
            assert fd1 == fd0, "fds %d before, %d after" % (fd0, fd1)

        def delete_output():
            st, _, _ = create(relay, "outs")
            assert st == 201, st
            (c1, r1), (c2, r2) = open_viewer(relay, "outs"), open_viewer(relay, "outs")
            try:
                read_parts(r1, 1)
                read_parts(r2, 1)
                st, doc, _ = call(relay, "GET", "/api/inputs/outs/outputs")
                assert st == 200, st
                outs = doc["outputs"]
                assert len(outs) == 2, outs
                for o in outs:
                    assert o["type"] == "viewer" and o["peer"].startswith("127.0.0.1:"), o
                    assert o["frames"] >= 1 and "dropped" in o and "started" in o, o
                # Which output is which connection: match the peer port.
                port1 = c1.port_used
                mine = [o for o in outs if o["peer"] == "127.0.0.1:%d" % port1]
                assert len(mine) == 1, (port1, outs)
                st, one, _ = call(relay, "GET", "/api/inputs/outs/outputs/%d" % mine[0]["id"])
                assert st == 200 and one["id"] == mine[0]["id"], one
                st, doc, _ = call(relay, "DELETE", "/api/inputs/outs/outputs/%d" % mine[0]["id"])
                assert st == 200 and doc["deleted"] == mine[0]["id"] and doc["outputs"] == 1, doc
                wait_end(r1)
                assert len(read_parts(r2, 5)) == 5  # the other viewer keeps streaming
                assert inputs(relay)["outs"]["outputs"] == 1
            finally:
                close_viewer(c1)
                close_viewer(c2)
            assert settle(lambda: inputs(relay)["outs"]["outputs"], 0) == 0
            assert call(relay, "DELETE", "/api/inputs/outs")[0] == 200

        def on_demand():
            pid = relay.pid
            th0 = tasks(pid)
            st, doc, _ = create(relay, "lazy", on_demand=True)
            assert st == 201 and doc["on_demand"] is True and doc["state"] == "idle", doc
            time.sleep(0.3)
            assert inputs(relay)["lazy"]["frames_in"] == 0, "an idle input produced frames"
            assert tasks(pid) == th0, "an idle input has a thread"
            for round_ in range(2):
                c, r = open_viewer(relay, "lazy")
                try:
                    assert len(read_parts(r, 3)) == 3
                    assert inputs(relay)["lazy"]["state"] == "running"
                    assert tasks(pid) == th0 + 1
                finally:
                    close_viewer(c)
                # The grace period is 300 ms: still running just after, idle soon.
                assert settle(lambda: inputs(relay)["lazy"]["state"], "idle") == "idle", round_
                assert settle(lambda: tasks(pid), th0) == th0
                events.wait_for('{"name":"lazy","state":"idle"}')
            # A viewer coming back within the grace period keeps the source.
            c, r = open_viewer(relay, "lazy")
            close_viewer(c)
            time.sleep(0.1)
            c, r = open_viewer(relay, "lazy")
            try:
                time.sleep(0.5)
                assert inputs(relay)["lazy"]["state"] == "running"
                read_parts(r, 2)
            finally:
                close_viewer(c)
            assert settle(lambda: inputs(relay)["lazy"]["state"], "idle") == "idle"
            assert call(relay, "DELETE", "/api/inputs/lazy")[0] == 200

        def cleanup_resources():
            st, doc, _ = call(relay, "POST", "/cleanup-resources")
            assert st == 200, st
            for k in ("pools", "freed_bytes", "freed_buffers", "rss_kb", "ledger"):
                assert k in doc, (k, doc)
            assert doc["ledger"]["before"]["thread"]["live"] >= 2, doc["ledger"]
            assert set(doc["ledger"]["after"]) == set(doc["ledger"]["before"])
            assert call(relay, "GET", "/cleanup-resources")[0] == 405

        def debug_threads():
            st, doc, _ = call(relay, "GET", "/debug/threads")
            assert st == 200, st
            assert doc["stack_kind"] == "creation", doc
            names = sorted(t["name"] for t in doc["threads"])
            assert names == ["http-loop", "rec-janitor", "src-test"], names
            assert doc["os_threads"] >= len(names), doc
            for t in doc["threads"]:
                funcs = [f.get("func", "") for f in t["stack"]]
                assert "stw_scope_spawn" in funcs, (t["name"], funcs)

        def state_written():
            st, _, _ = create(relay, "keep1", quality=33)
            assert st == 201, st
            st, _, _ = create(relay, "keep2", on_demand=True)
            assert st == 201, st
            with open(state) as f:
                saved = json.load(f)
            assert saved["schema"] == "steward.relay.state/1", saved
            assert [i["name"] for i in saved["inputs"]] == ["test", "keep1", "keep2"], saved

        def shutdown():
            err = stop(relay)
            events.wait_closed()
            assert "shutdown: clean" in err

        for name, fn in [("api_crud", crud), ("api_events", events_created_deleted),
                         ("api_validation", validation), ("api_churn", churn),
                         ("api_delete_input_ends_viewers", delete_input_ends_viewers),
                         ("api_delete_output", delete_output), ("api_on_demand", on_demand),
                         ("api_cleanup_resources", cleanup_resources),
                         ("api_debug_threads", debug_threads), ("api_state_written", state_written),
                         ("api_shutdown_closes_events", shutdown)]:
            check(name, fn)
    finally:
        for k in keep:
            k.close()
        relay.kill()
    return state


def run_restart(build, tmp, state):
    """The inputs come back from the state file after a restart."""
    relay = Relay(build, ["--state", state, "--on-demand-grace-ms", "300"])
    try:
        def restart():
            got = inputs(relay)
            assert list(got) == ["test", "keep1", "keep2"], list(got)
            assert got["keep1"]["quality"] == 33 and got["keep1"]["width"] == 64, got["keep1"]
            assert got["keep2"]["on_demand"] is True and got["keep2"]["state"] == "idle", got
            c, r = open_viewer(relay, "keep1")
            try:
                read_parts(r, 2)
            finally:
                close_viewer(c)
            stop(relay)

        check("api_state_restart", restart)
    finally:
        relay.kill()


def run_corrupt(build, tmp):
    """A corrupt state file is reported, kept aside, and the default input used."""
    for label, content in (("json", b'{"schema": "steward.relay.state/1", "inputs": [}'),
                           ("entry", json.dumps({"schema": "steward.relay.state/1", "inputs": [
                               {"name": "ok", "kind": "test"},
                               {"name": "bad", "kind": "mjpeg", "url": "file:///etc/passwd"}]})
                            .encode())):
        d = tempfile.mkdtemp(dir=tmp)
        state = os.path.join(d, "relay.json")
        with open(state, "wb") as f:
            f.write(content)
        relay = None
        try:
            def corrupt():
                nonlocal relay
                relay = Relay(build, ["--state", state])
                assert list(inputs(relay)) == ["test"], inputs(relay)
                aside = glob.glob(state + ".corrupt-*")
                assert len(aside) == 1, os.listdir(d)
                with open(aside[0], "rb") as f:
                    assert f.read() == content
                assert not os.path.exists(state), "the corrupt file is still in place"
                err = relay.stderr()
                assert "is corrupt" in err and aside[0] in err, err[-1000:]
                if label == "entry":
                    assert "url scheme" in err, err[-1000:]
                stop(relay)

            check("api_state_corrupt_" + label, corrupt)
        finally:
            if relay is not None:
                relay.kill()


def main():
    if len(sys.argv) != 2:
        print("usage: relay_api.py BUILD_DIR", file=sys.stderr)
        return 2
    build = sys.argv[1]
    tmp = tempfile.mkdtemp(prefix="relay-api-")
    try:
        state = None
        try:
            state = run_main(build, tmp)
        except Exception as e:
            report("api_main", False, "could not start the relay: %s" % e)
        for suite, args in ((run_restart, (build, tmp, state)), (run_corrupt, (build, tmp))):
            if suite is run_restart and state is None:
                continue
            try:
                suite(*args)
            except Exception as e:
                report(suite.__name__, False, "could not start the relay: %s" % e)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if all(RESULTS) else 1


if __name__ == "__main__":
    sys.exit(main())
