#!/usr/bin/env python3
"""The relay as a service, under `steward check`, with this script playing
systemd's part: a unix datagram socket as NOTIFY_SOCKET (READY=1, STATUS=,
WATCHDOG=1 at half of WATCHDOG_USEC, no pings while the relay is stopped,
STOPPING=1), SIGHUP reloads of the config file (a viewer of an unchanged
input keeps its stream; added, changed and removed inputs; a broken file
refused and the running config kept), and the log: JSON lines, the text
shape in a file rotated by size with N kept, SIGUSR1 reopening it, repeated
errors counted, syslog priority prefixes when stderr is the journal.

    tests/integration/relay_service.py BUILD_DIR
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from relay_basic import RESULTS, Relay, address_line, check, read_parts, report  # noqa: E402


class Notify:
    """A unix datagram socket where the relay's sd_notify() lands, drained
    by a thread as systemd drains it (sd_notify blocks on a full queue)."""

    def __init__(self, d):
        self.path = os.path.join(d, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.msgs = []  # (monotonic time, text), appended by the thread
        self.lock = threading.Lock()
        self.done = False
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _drain(self):
        while not self.done:
            try:
                m = self.sock.recv(4096).decode()
            except (socket.timeout, OSError):
                continue
            with self.lock:
                self.msgs.append((time.monotonic(), m))

    def count(self):
        with self.lock:
            return len(self.msgs)

    def since(self, start):
        with self.lock:
            return list(self.msgs[start:])

    def pump(self, seconds):
        time.sleep(seconds)

    def wait_for(self, pred, seconds, what, start=None):
        """The first message from index @start (default: the ones still to
        come) that @pred accepts."""
        end = time.monotonic() + seconds
        start = self.count() if start is None else start
        while True:
            for t, m in self.since(start):
                if pred(m):
                    return t, m
            if time.monotonic() > end:
                raise AssertionError("no %s within %s s; got %r"
                                     % (what, seconds, [m for _, m in self.since(0)[-8:]]))
            time.sleep(0.05)

    def close(self):
        self.done = True
        self.thread.join()
        self.sock.close()


def stop_clean(relay):
    os.kill(relay.pid, signal.SIGTERM)
    rc = relay.proc.wait(timeout=20)
    err = relay.stderr()
    assert "shutdown: clean: exit code 0 (0 stage(s) late, 0 leaked)" in err, err[-3000:]
    m = re.search(r"SUMMARY: (\d+) leaks", err)
    assert m and m.group(1) == "0", "checker: %s" % err[-3000:]
    assert rc == 0, "exit %d" % rc
    return err


def with_env(env, fn):
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return fn()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def input_names(relay):
    return sorted(i["name"] for i in json.loads(relay.get("/api/inputs")[2])["inputs"])


def open_input_stream(relay, name):
    c = relay.conn()
    c.request("GET", "/stream/" + name)
    r = c.getresponse()
    assert r.status == 200, r.status
    return c, r


def run_notify(build):
    d = tempfile.mkdtemp()
    n = Notify(d)
    # 400 ms: pings every 200 ms.
    relay = with_env({"NOTIFY_SOCKET": n.path, "WATCHDOG_USEC": "400000"},
                     lambda: Relay(build, ["--state=none", "--fps=10", "--size=64x48"]))
    conns = []
    try:
        def ready():
            t, m = n.wait_for(lambda m: "READY=1" in m, 20, "READY=1", 0)
            # Sent from the loop: the listener is bound and serving.
            assert relay.get("/healthz")[0] == 200
            assert re.search(r"STATUS=1 input \(\d running\), 0 viewers", m), m

        def status():
            start = n.count()
            c, r = open_input_stream(relay, "test")
            conns.append(c)
            read_parts(r, 1)
            n.wait_for(lambda m: re.search(r"STATUS=1 input \(1 running\), 1 viewer,", m), 5,
                       "STATUS with 1 viewer", start)

        def watchdog_rate():
            start = n.count()
            n.pump(3.0)
            pings = [t for t, m in n.since(start) if m == "WATCHDOG=1"]
            assert 11 <= len(pings) <= 19, "%d pings in 3 s, want about 15" % len(pings)
            gaps = sorted(b - a for a, b in zip(pings, pings[1:]))
            med = gaps[len(gaps) // 2]
            assert 0.15 <= med <= 0.26, "median gap %.3f s, want 0.2" % med
            print("     %d pings in 3 s, median gap %.3f s" % (len(pings), med), flush=True)

        def stopped_loop_no_pings():
            os.kill(relay.pid, signal.SIGSTOP)
            try:
                n.pump(0.3)  # what was in flight
                start = n.count()
                n.pump(1.5)
                late = [m for _, m in n.since(start) if m == "WATCHDOG=1"]
                assert not late, "%d pings from a stopped relay" % len(late)
            finally:
                os.kill(relay.pid, signal.SIGCONT)
            n.wait_for(lambda m: m == "WATCHDOG=1", 2, "a ping after SIGCONT")

        def dashboard_metrics_exist():
            # Every metric the Grafana dashboard and the scrape config's
            # alerts name is one /metrics declares (its # TYPE line).
            docs = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs")
            with open(os.path.join(docs, "grafana-steward-relay.json")) as f:
                dash = json.load(f)
            exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
            assert len(exprs) >= 15 and all(p["targets"] for p in dash["panels"]), len(exprs)
            with open(os.path.join(docs, "prometheus.yml")) as f:
                exprs.append(f.read())
            named = set(re.findall(r"\b(steward_[a-z_]+)\b", "\n".join(exprs)))
            st, _, body = relay.get("/metrics")
            assert st == 200
            have = set(re.findall(r"^# TYPE (\S+) ", body.decode(), re.M))
            missing = sorted(named - have)
            assert not missing, "named but not in /metrics: %s" % missing
            print("     %d metrics named by the dashboard, all in /metrics" % len(named), flush=True)

        def stopping():
            for c in conns:
                c.close()
            # Count before the signal: the relay may answer before
            # wait_for would take its own starting point.
            start = n.count()
            os.kill(relay.pid, signal.SIGTERM)
            n.wait_for(lambda m: "STOPPING=1" in m, 10, "STOPPING=1", start)
            rc = relay.proc.wait(timeout=20)
            err = relay.stderr()
            assert rc == 0 and "0 leaked" in err and "SUMMARY: 0 leaks" in err, (rc, err[-2000:])

        for name, fn in [("service_ready", ready), ("service_status", status),
                         ("service_watchdog_rate", watchdog_rate),
                         ("service_stopped_loop_no_pings", stopped_loop_no_pings),
                         ("dashboard_metrics_exist", dashboard_metrics_exist),
                         ("service_stopping", stopping)]:
            check(name, fn)
    finally:
        for c in conns:
            c.close()
        relay.kill()
        n.close()


CFG1 = """limits:
  max_viewers: 50
inputs:
  keep: {kind: test, width: 64, height: 48, fps: 10}
  gone: {kind: test, width: 64, height: 48, fps: 10}
  chg: {kind: test, width: 64, height: 48, fps: 5}
"""
CFG2 = """limits:
  max_viewers: 40
inputs:
  keep: {kind: test, width: 64, height: 48, fps: 10}
  chg: {kind: test, width: 64, height: 48, fps: 6}
  added: {kind: test, width: 32, height: 32, fps: 5}
"""


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


def json_lines(err):
    out = []
    for line in err.splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def run_reload(build):
    d = tempfile.mkdtemp()
    n = Notify(d)
    cfg = os.path.join(d, "relay.yaml")
    write(cfg, CFG1)
    relay = with_env({"NOTIFY_SOCKET": n.path},
                     lambda: Relay(build, ["--config=" + cfg, "--state", os.path.join(d, "state.json"),
                                           "--log-format=json", "--log-repeat-interval=0"]))
    conns = []
    try:
        n.wait_for(lambda m: "READY=1" in m, 20, "READY=1", 0)
        c, r = relay.conn(), None
        c.request("POST", "/api/inputs", body=json.dumps({"name": "api1", "kind": "test", "width": 32,
                                                          "height": 32, "fps": 5}),
                  headers={"Content-Type": "application/json"})
        assert c.getresponse().status == 201
        c.close()
        keep_c, keep_r = open_input_stream(relay, "keep")
        chg_c, chg_r = open_input_stream(relay, "chg")
        conns += [keep_c, chg_c]
        read_parts(keep_r, 2)
        read_parts(chg_r, 1)

        def reload_applies():
            assert input_names(relay) == ["api1", "chg", "gone", "keep"], input_names(relay)
            write(cfg, CFG2)
            start = n.count()
            os.kill(relay.pid, signal.SIGHUP)
            t1, _ = n.wait_for(lambda m: "RELOADING=1" in m, 5, "RELOADING=1", start)
            t2, _ = n.wait_for(lambda m: m.startswith("READY=1"), 5, "READY=1 after the reload",
                               start + 1)
            assert t2 >= t1
            names = input_names(relay)
            assert names == ["added", "api1", "chg", "keep"], names
            body = json.loads(relay.get("/api/inputs")[2])
            assert body["max_viewers"] == 40, body["max_viewers"]
            chg = [i for i in body["inputs"] if i["name"] == "chg"][0]
            assert chg["fps"] == 6, chg
            logs = json_lines(relay.stderr())
            applied = [l for l in logs if l["component"] == "reload" and l["msg"].startswith("applied")]
            assert applied and "1 input(s) kept, 1 changed, 1 added, 1 removed" in applied[-1]["msg"], applied

        def unchanged_viewer_keeps_stream():
            # The same connection goes on with new frames after the reload.
            parts = read_parts(keep_r, 5, timeout=10)
            assert len(parts) == 5
            assert json.loads(relay.get("/api/inputs/keep")[2])["viewers"] == 1

        def changed_viewer_ended():
            end = time.monotonic() + 5
            while time.monotonic() < end:
                if not chg_r.read1(65536):
                    return
            raise AssertionError("the changed input's viewer still streams")

        def broken_config_refused():
            for text, want in [("inputs: [unclosed\n", "relay.yaml"),
                               ("bogus_key: 1\n", "bogus_key"),
                               ("users:\n  u:\n    token_hashes: [\"blake2b256:" + "ab" * 32 + "\"]\n"
                                "    permissions: [read]\n", "adding users needs a restart")]:
                write(cfg, text)
                before = len(json_lines(relay.stderr()))
                os.kill(relay.pid, signal.SIGHUP)
                end = time.monotonic() + 5
                refused = []
                while time.monotonic() < end and not refused:
                    time.sleep(0.1)
                    refused = [l for l in json_lines(relay.stderr())[before:]
                               if l["level"] == "error" and "refused" in l["msg"]]
                assert refused, "no refusal logged for %r: %s" % (text, relay.stderr()[-1500:])
                assert want in refused[0]["msg"], (want, refused[0])
                assert input_names(relay) == ["added", "api1", "chg", "keep"], input_names(relay)
            assert len(read_parts(keep_r, 3)) == 3
            # Back to a good file: it applies again.
            write(cfg, CFG2)
            os.kill(relay.pid, signal.SIGHUP)
            time.sleep(0.5)
            assert input_names(relay) == ["added", "api1", "chg", "keep"]

        def json_log_lines():
            logs = json_lines(relay.stderr())
            assert logs, "no JSON lines"
            for l in logs:
                assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", l["ts"]), l
                assert l["level"] in ("error", "warning", "notice", "info", "debug"), l
                assert l["component"] and l["msg"], l
            assert any(l.get("input") == "gone" for l in logs), "no line names an input"

        def shutdown():
            for c in conns:
                c.close()
            stop_clean(relay)

        for name, fn in [("reload_applies", reload_applies),
                         ("reload_unchanged_viewer_keeps_stream", unchanged_viewer_keeps_stream),
                         ("reload_changed_viewer_ended", changed_viewer_ended),
                         ("reload_broken_config_refused", broken_config_refused),
                         ("log_json_lines", json_log_lines),
                         ("reload_shutdown", shutdown)]:
            check(name, fn)
    finally:
        for c in conns:
            c.close()
        relay.kill()
        n.close()


def new_token(build):
    out = subprocess.run([os.path.join(build, "src", "steward"), "relay", "--new-token"],
                         capture_output=True, text=True, check=True).stdout
    token = re.search(r"^token: (\S+)$", out, re.M).group(1)
    digest = re.search(r'token_hashes: \["(\S+)"\]', out).group(1)
    return token, digest


def run_reload_users(build):
    """Users replaced by a reload: the old token stops working, the new one
    works, at once; removing every user is refused."""
    d = tempfile.mkdtemp()
    cfg = os.path.join(d, "relay.yaml")
    t1, h1 = new_token(build)
    t2, h2 = new_token(build)

    def users(h):
        return "users:\n  wall:\n    token_hashes: [\"%s\"]\n    permissions: [read]\n" % h
    write(cfg, users(h1))
    relay = Relay(build, ["--config", cfg, "--state=none", "--size=64x48"])

    def status(token):
        return relay.get("/api/inputs", headers={"Authorization": "Bearer " + token}
                         if token else {})[0]

    def hup_and_wait(what):
        before = relay.stderr().count("reload:")
        os.kill(relay.pid, signal.SIGHUP)
        end = time.monotonic() + 5
        while time.monotonic() < end:
            err = relay.stderr()
            if err.count("reload:") >= before + 2 and ("applied" in err.split("SIGHUP")[-1] or
                                                       "refused" in err.split("SIGHUP")[-1]):
                return err.split("SIGHUP")[-1]
            time.sleep(0.05)
        raise AssertionError("no reload outcome for %s: %s" % (what, relay.stderr()[-1000:]))

    try:
        def users_replaced():
            assert status(None) == 401 and status(t1) == 200 and status(t2) == 401
            write(cfg, users(h2))
            tail = hup_and_wait("new token")
            assert "applied" in tail, tail
            assert status(t1) == 401 and status(t2) == 200, (status(t1), status(t2))

        def removing_users_refused():
            write(cfg, "inputs:\n  x: {kind: test, width: 32, height: 32}\n")
            tail = hup_and_wait("no users")
            assert "removing all users needs a restart" in tail, tail
            assert status(None) == 401 and status(t2) == 200
            assert "x" not in [i["name"] for i in json.loads(
                relay.get("/api/inputs", headers={"Authorization": "Bearer " + t2})[2])["inputs"]]

        def shutdown():
            stop_clean(relay)

        for name, fn in [("reload_users_replaced", users_replaced),
                         ("reload_removing_users_refused", removing_users_refused),
                         ("reload_users_shutdown", shutdown)]:
            check(name, fn)
    finally:
        relay.kill()


TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (error|warning|notice|info|debug) "
                       r"[a-z_-]+( input=[A-Za-z0-9_-]+)?: .+$")


def run_log_file(build):
    d = tempfile.mkdtemp()
    cfg = os.path.join(d, "relay.yaml")
    log = os.path.join(d, "relay.log")
    write(cfg, "inputs:\n  a: {kind: test, width: 32, height: 32, fps: 2}\n")
    relay = Relay(build, ["--config", cfg, "--state=none", "--log-file", log, "--log-max-size=4k",
                          "--log-keep", "2", "--log-repeat-interval=2"])

    def all_text():
        text = ""
        for suffix in (".2", ".1", ""):
            try:
                with open(log + suffix) as f:
                    text += f.read()
            except FileNotFoundError:
                pass
        return text

    try:
        def rotation():
            for _ in range(120):
                os.kill(relay.pid, signal.SIGHUP)
                time.sleep(0.02)
            time.sleep(0.5)
            for suffix in ("", ".1", ".2"):
                size = os.path.getsize(log + suffix)
                assert 0 < size <= 4096, "%s%s: %d bytes" % (log, suffix, size)
            assert not os.path.exists(log + ".3"), "more than 2 rotated files kept"
            lines = all_text().splitlines()
            bad = [l for l in lines if not TEXT_LINE.match(l)]
            assert not bad, bad[:3]
            print("     %d lines in 3 files of at most 4096 bytes" % len(lines), flush=True)

        def repeated_errors_counted():
            write(cfg, "inputs: [unclosed\n")
            for _ in range(6):
                os.kill(relay.pid, signal.SIGHUP)
                time.sleep(0.15)
            time.sleep(3.2)  # the 2 s interval, then the loop's 1 s flush
            text = all_text()
            refused = [l for l in text.splitlines() if " error reload: refused" in l]
            assert refused, text[-1500:]
            assert len(refused) == 2, refused
            m = re.search(r"\(repeated (\d+) times in 2 s\)$", refused[1])
            assert m and 1 <= int(m.group(1)) <= 5, refused

        def reopen_on_usr1():
            os.rename(log, log + ".moved")
            os.kill(relay.pid, signal.SIGUSR1)
            end = time.monotonic() + 5
            while time.monotonic() < end and not os.path.exists(log):
                time.sleep(0.05)
            time.sleep(0.2)
            with open(log) as f:
                text = f.read()
            assert "log file reopened" in text, text
            with open(log + ".moved") as f:
                assert "log file reopened" not in f.read()

        def shutdown():
            err = stop_clean(relay)
            # The log's own lines ("TIME LEVEL reload: ..."), not the
            # checker's report, which may name relay_http__reload in a stack.
            assert not re.search(r"^\S+Z \w+ reload: ", err, re.M), \
                "log lines went to stderr: %s" % err[-1500:]
            with open(log) as f:
                assert "shutting down" in f.read()

        for name, fn in [("log_file_rotation", rotation),
                         ("log_repeated_errors_counted", repeated_errors_counted),
                         ("log_reopen_on_usr1", reopen_on_usr1), ("log_file_shutdown", shutdown)]:
            check(name, fn)
    finally:
        relay.kill()


def run_journal(build):
    """stderr is the journal's stream (JOURNAL_STREAM = its device:inode):
    syslog priority prefixes, no timestamps."""
    def journal():
        steward = os.path.join(build, "src", "steward")
        with tempfile.TemporaryFile() as err:
            st = os.fstat(err.fileno())
            env = dict(os.environ, JOURNAL_STREAM="%d:%d" % (st.st_dev, st.st_ino))
            p = subprocess.Popen([steward, "relay", "--listen=127.0.0.1:0", "--state=none",
                                  "--log-level=debug"], stdout=subprocess.PIPE, stderr=err,
                                 stdin=subprocess.DEVNULL, env=env)
            try:
                assert address_line(p, 20).startswith(b"steward relay: serving"), "no address"
                time.sleep(0.3)
                p.send_signal(signal.SIGTERM)
                assert p.wait(timeout=20) == 0
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            err.seek(0)
            text = err.read().decode()
        assert re.search(r"^<5>relay: Terminated, shutting down$", text, re.M), text[-1500:]
        assert not re.search(r"^\d{4}-", text, re.M), text[-1500:]

    check("log_journal_prefixes", journal)


def syscall_groups():
    """{"@group": set of names and "@subgroups"} from systemd-analyze."""
    out = subprocess.run(["systemd-analyze", "syscall-filter"], capture_output=True, text=True,
                         check=True).stdout
    groups, cur = {}, None
    for line in out.splitlines():
        if line.startswith("@"):
            cur = groups.setdefault(line.strip(), set())
        elif cur is not None and line.strip() and not line.strip().startswith("#"):
            cur.add(line.strip())
    return groups


def expand(groups, name, seen=None):
    seen = set() if seen is None else seen
    if name in seen:
        return set()
    seen.add(name)
    out = set()
    for item in groups.get(name, ()):
        out |= expand(groups, item, seen) if item.startswith("@") else {item}
    return out


def run_syscalls(build):
    """Every system call the relay and its ffmpeg children make while
    serving (test pattern, an ffmpeg file input with MJPEG and .ts viewers,
    a snapshot, a reload, SIGTERM) is allowed by the unit's
    SystemCallFilter=, which would kill the relay with SIGSYS otherwise."""
    def syscalls_allowed():
        import shutil
        if not shutil.which("strace") or not shutil.which("systemd-analyze"):
            print("skip relay/unit_syscall_filter: strace or systemd-analyze missing", flush=True)
            return
        here = os.path.dirname(os.path.abspath(__file__))
        unit = os.path.join(here, "..", "..", "packaging", "steward-relay.service.in")
        with open(unit) as f:
            filt = [l.split("=", 1)[1].split() for l in f if l.startswith("SystemCallFilter=")]
        assert filt, "the unit has no SystemCallFilter="
        groups = syscall_groups()
        allowed = expand(groups, "@default")
        for word in sum(filt, []):
            allowed |= expand(groups, word) if word.startswith("@") else {word}
        d = tempfile.mkdtemp()
        clip = os.path.join(d, "clip.mp4")
        subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
                        "testsrc=size=160x120:rate=10", "-t", "1", "-c:v", "libx264", "-pix_fmt",
                        "yuv420p", "-y", clip], check=True)
        cfg = os.path.join(d, "relay.yaml")
        write(cfg, "inputs:\n  test: {kind: test, width: 64, height: 48}\n"
                   "  clip: {kind: ffmpeg, url: \"%s\", loop: true}\n" % clip)
        trace = os.path.join(d, "trace")
        steward = os.path.join(build, "src", "steward")
        p = subprocess.Popen(["strace", "-f", "-qq", "-o", trace, steward, "relay",
                              "--listen=127.0.0.1:0", "--state=none", "--config", cfg],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        try:
            m = re.match(rb"steward relay: serving http://127\.0\.0\.1:(\d+)/", address_line(p, 30))
            assert m, "no address line"
            port = int(m.group(1))
            import http.client
            for path, n in (("/stream/test", 3), ("/stream/clip", 2)):
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                c.request("GET", path)
                r = c.getresponse()
                assert r.status == 200, (path, r.status)
                read_parts(r, n, timeout=30)
                c.close()
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            c.request("GET", "/stream/clip.ts")
            r = c.getresponse()
            assert r.status == 200 and len(r.read1(65536)) > 0
            c.close()
            for path in ("/snapshot/test.jpg", "/metrics", "/system-resources"):
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                c.request("GET", path)
                assert c.getresponse().status == 200, path
                c.close()
            # The strace'd process is strace: signal the relay it runs.
            with open("/proc/%d/task/%d/children" % (p.pid, p.pid)) as f:
                relay_pid = int(f.read().split()[0])
            os.kill(relay_pid, signal.SIGHUP)
            time.sleep(0.5)
            os.kill(relay_pid, signal.SIGTERM)
            p.wait(timeout=30)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        used = set()
        with open(trace) as f:
            for line in f:
                m = re.match(r"^\d+\s+(?:<\.\.\. )?([a-z_0-9]+)[( ]", line)
                if m and m.group(1) not in ("exit", "resumed"):
                    used.add(m.group(1))
        assert len(used) > 40, sorted(used)
        missing = sorted(used - allowed)
        assert not missing, "system calls outside SystemCallFilter=: %s" % missing
        print("     %d distinct system calls, all allowed" % len(used), flush=True)

    check("unit_syscall_filter", syscalls_allowed)


def main():
    if len(sys.argv) != 2:
        print("usage: relay_service.py BUILD_DIR", file=sys.stderr)
        return 2
    only = os.environ.get("STEWARD_SERVICE_ONLY")
    for suite in (run_notify, run_reload, run_reload_users, run_log_file, run_journal,
                  run_syscalls):
        if only and suite.__name__ not in only.split(","):
            continue
        try:
            suite(sys.argv[1])
        except Exception as e:
            report(suite.__name__, False, "could not start the relay: %s" % e)
    return 0 if all(RESULTS) else 1


if __name__ == "__main__":
    sys.exit(main())
