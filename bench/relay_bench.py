#!/usr/bin/env python3
"""Relay benchmarks, side by side in one run (driven by bench/relay_bench.sh).

  relay_bench.py --build BUILD_DIR --bin TOOLS_DIR [--quick] [--json OUT]

Servers, all on 127.0.0.1 ephemeral ports, each started fresh for each
measurement and stopped (SIGTERM, then SIGKILL) in a finally block:

  relay      steward relay, its built-in test pattern (WxH, 25 fps, quality 80)
  gstreamer  gst-launch-1.0 videotestsrc is-live=true pattern=ball ! WxH 25 fps
             ! jpegenc quality=80 ! multipartmux boundary=stwframe
             ! tcpserversink (default settings)
  gst-slow   the same with unit-format=time units-soft-max=80000000
             recover-policy=latest (the slow-client settings; 80 ms = 2
             frames = the relay's --inflight 2)
  raw        bench/relay_rawsend: one pre-encoded JPEG (the relay's snapshot
             at that size) written 25 times a second to every connection,
             no processing: the physical limit of the loopback

Viewers are bench/relay_viewers (one epoll thread, C). Prints markdown.
"""
import argparse
import http.client
import json
import os
import re
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ARGS = None
TMP = None
RESULTS = {"fanout": [], "stall": [], "churn": {}}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- servers


class Server:
    def __init__(self, kind, proc, port, path, errfile):
        self.kind, self.proc, self.port, self.path, self.errfile = kind, proc, port, path, errfile
        self.verdict = None

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        """SIGTERM, wait (the relay shuts down in stages and prints its ledger
        verdict), SIGKILL if it does not exit. Returns the exit code."""
        p = self.proc
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                log(f"  {self.kind} pid {p.pid} did not exit on SIGTERM: SIGKILL")
                p.kill()
                p.wait()
        if self.kind == "relay":
            with open(self.errfile, errors="replace") as f:
                err = f.read()
            lines = re.findall(r"^shutdown: .*exit code.*$", err, re.M)
            self.verdict = (p.returncode, lines[-1] if lines else "no verdict line")
        return p.returncode


def read_line(proc, timeout):
    """One line of proc's stdout within timeout seconds, None otherwise."""
    fd = proc.stdout.fileno()
    buf = b""
    end = time.monotonic() + timeout
    while not buf.endswith(b"\n"):
        left = end - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return None
        c = os.read(fd, 1)
        if not c:
            return None
        buf += c
    return buf.decode(errors="replace")


def metrics(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", "/metrics")
        body = c.getresponse().read().decode()
    finally:
        c.close()
    out = {}
    for line in body.splitlines():
        m = re.match(r'(steward_relay_frames_(?:in|out|dropped)_total)\{input="test"\} (\d+)', line)
        if m:
            out[m.group(1)] = int(m.group(2))
    return out


def ignore_sigpipe():
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)


def start_relay(w, h, extra=(), sigpipe_ignored=True):
    """The relay as of this writing does not ignore SIGPIPE itself: a viewer
    that disconnects with unread data (an RST) while the loop writes to it
    kills the process (exit 141). The measurements start it with SIGPIPE
    ignored (inherited through exec); sigpipe_probe() checks the default."""
    err = os.path.join(TMP, f"relay-{time.monotonic_ns()}.err")
    cmd = [os.path.join(ARGS.build, "src", "steward"), "relay", "--listen", "127.0.0.1:0", "--state", "none",
           "--size", f"{w}x{h}", "--fps", "25", "--quality", "80",
           "--max-viewers", "2000", "--max-viewers-per-input", "2000",
           "--max-connections", "2200", "--max-connections-per-client", "2200", *extra]
    with open(err, "w") as ef:
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=ef, stdin=subprocess.DEVNULL,
                             preexec_fn=ignore_sigpipe if sigpipe_ignored else None)
    s = Server("relay", p, 0, "/stream/test", err)
    try:
        line = read_line(p, 10)
        m = re.search(r"serving http://127\.0\.0\.1:(\d+)/", line or "")
        if not m:
            raise RuntimeError(f"relay did not start: {line!r}")
        s.port = int(m.group(1))
        end = time.monotonic() + 10
        while metrics(s.port).get("steward_relay_frames_in_total", 0) < 3:
            if time.monotonic() > end:
                raise RuntimeError("relay: no frames in after 10 s")
            time.sleep(0.05)
        return s
    except BaseException:
        s.stop()
        raise


def free_port():
    with socket.socket() as so:
        so.bind(("127.0.0.1", 0))
        return so.getsockname()[1]


def wait_connectable(s, timeout=10):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if s.proc.poll() is not None:
            raise RuntimeError(f"{s.kind} exited with {s.proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", s.port), timeout=1) as so:
                so.settimeout(3)
                if so.recv(1):  # streaming started
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{s.kind} not streaming on port {s.port}")


def gst_pipeline(w, h, port, slow):
    sink = ["tcpserversink", "host=127.0.0.1", f"port={port}"]
    if slow:
        # 80 ms = 2 frames at 25 fps, the relay's --inflight 2. Counted in
        # buffers (units-soft-max=2) it starves even a fast reader (13 fps at
        # 1920x1080): multipartmux pushes more than one buffer per frame.
        sink += ["unit-format=time", "units-soft-max=80000000", "recover-policy=latest"]
    return ["gst-launch-1.0", "-q", "videotestsrc", "is-live=true", "pattern=ball", "!",
            f"video/x-raw,width={w},height={h},framerate=25/1", "!", "jpegenc", "quality=80", "!",
            "multipartmux", "boundary=stwframe", "!", *sink]


def start_gst(w, h, slow=False):
    port = free_port()
    err = os.path.join(TMP, f"gst-{time.monotonic_ns()}.err")
    with open(err, "w") as ef:
        p = subprocess.Popen(gst_pipeline(w, h, port, slow), stdout=subprocess.DEVNULL, stderr=ef,
                             stdin=subprocess.DEVNULL)
    s = Server("gst-slow" if slow else "gstreamer", p, port, None, err)
    try:
        wait_connectable(s)
        return s
    except BaseException:
        s.stop()
        raise


def start_raw(jpeg):
    err = os.path.join(TMP, f"raw-{time.monotonic_ns()}.err")
    with open(err, "w") as ef:
        p = subprocess.Popen([os.path.join(ARGS.bin, "relay_rawsend"), jpeg, "25"], stdout=subprocess.PIPE,
                             stderr=ef, stdin=subprocess.DEVNULL)
    s = Server("raw", p, 0, None, err)
    try:
        m = re.match(r"port (\d+)", read_line(p, 10) or "")
        if not m:
            raise RuntimeError("relay_rawsend did not start")
        s.port = int(m.group(1))
        wait_connectable(s)
        return s
    except BaseException:
        s.stop()
        raise


def start(kind, w, h, jpeg):
    if kind == "relay":
        return start_relay(w, h)
    if kind == "gstreamer":
        return start_gst(w, h)
    if kind == "gst-slow":
        return start_gst(w, h, slow=True)
    return start_raw(jpeg)


def viewers(s, n, stall=0, secs=5.0, warmup=1.0):
    cmd = [os.path.join(ARGS.bin, "relay_viewers"), "127.0.0.1", str(s.port), "-n", str(n), "--stall", str(stall),
           "-t", str(secs), "--warmup", str(warmup), "--pid", str(s.pid)]
    if s.path:
        cmd += ["--path", s.path]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, timeout=secs + warmup + 60, check=True).stdout
    return json.loads(out)


def snapshot(s, path):
    c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
    try:
        c.request("GET", "/snapshot/test.jpg")
        r = c.getresponse()
        data = r.read()
        if r.status != 200:
            raise RuntimeError(f"snapshot: {r.status}")
    finally:
        c.close()
    with open(path, "wb") as f:
        f.write(data)


def proc_counts(pid):
    st = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            st[k] = v.strip()
    return {
        "rss_kb": int(st["VmRSS"].split()[0]),
        "hwm_kb": int(st["VmHWM"].split()[0]),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "threads": len(os.listdir(f"/proc/{pid}/task")),
    }


# ---------------------------------------------------------------- benchmarks

SERVERS = ["relay", "gstreamer", "raw"]


def fanout(sizes, counts, secs, warmup):
    for (w, h) in sizes:
        jpeg = os.path.join(TMP, f"relay-{w}x{h}.jpg")
        s = start_relay(w, h)
        try:
            time.sleep(0.2)
            snapshot(s, jpeg)
        finally:
            s.stop()
        for n in counts:
            for kind in SERVERS:
                log(f"fan-out {w}x{h} {n} viewers: {kind}")
                s = start(kind, w, h, jpeg)
                try:
                    m0 = metrics(s.port) if kind == "relay" else None
                    t0 = time.monotonic()
                    r = viewers(s, n, secs=secs, warmup=warmup)
                    if kind == "relay":
                        m1 = metrics(s.port)
                        dt = time.monotonic() - t0
                        r["source_fps"] = (m1["steward_relay_frames_in_total"] -
                                           m0["steward_relay_frames_in_total"]) / dt
                        r["relay_dropped"] = (m1["steward_relay_frames_dropped_total"] -
                                              m0["steward_relay_frames_dropped_total"])
                finally:
                    s.stop()
                r.update(size=f"{w}x{h}", server=kind, n=n)
                if kind == "relay":
                    r["exit"] = s.verdict
                    if s.verdict[0] != 0:
                        log(f"  relay exit {s.verdict}")
                RESULTS["fanout"].append(r)


def stall(sizes, nstall, secs):
    for (w, h) in sizes:
        jpeg = os.path.join(TMP, f"relay-{w}x{h}.jpg")
        if not os.path.exists(jpeg):
            s = start_relay(w, h)
            try:
                time.sleep(0.2)
                snapshot(s, jpeg)
            finally:
                s.stop()
        for kind in ["relay", "gstreamer", "gst-slow", "raw"]:
            log(f"stall {w}x{h} {nstall} stalled + 1 watching: {kind}")
            s = start(kind, w, h, jpeg)
            try:
                time.sleep(0.5)
                base = proc_counts(s.pid)
                r = viewers(s, 1, stall=nstall, secs=secs, warmup=0)
                time.sleep(1)  # the viewers are gone: let the server close them
                r["after"] = proc_counts(s.pid)
            finally:
                s.stop()
            r.update(size=f"{w}x{h}", server=kind, base=base)
            if kind == "relay":
                r["exit"] = s.verdict
            RESULTS["stall"].append(r)


def sigpipe_probe(rounds):
    """The relay as users start it (SIGPIPE at its default): 100 viewers of a
    1920x1080 stream that read for two seconds and close with data unread."""
    log(f"sigpipe probe: {rounds} x 100 viewers leaving a 1920x1080 stream, SIGPIPE default")
    s = start_relay(1920, 1080, sigpipe_ignored=False)
    survived = 0
    try:
        for _ in range(rounds):
            viewers(s, 100, secs=2, warmup=0.5)
            time.sleep(0.3)
            if s.proc.poll() is not None:
                break
            survived += 1
    finally:
        s.stop()
    if s.verdict[0] == -signal.SIGPIPE:
        log("  the relay was killed by SIGPIPE")
    RESULTS["sigpipe"] = {"rounds": rounds, "survived": survived, "exit": s.verdict}


def churn(cycles):
    log(f"churn: {cycles} create/delete cycles")
    s = start_relay(640, 480)
    try:
        time.sleep(1)
        rec = {"before": proc_counts(s.pid)}
        c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
        body = json.dumps({"name": "churn", "kind": "test", "width": 64, "height": 48, "fps": 25, "quality": 80})
        errors = 0
        t0 = time.monotonic()
        for i in range(cycles):
            c.request("POST", "/api/inputs", body=body, headers={"Content-Type": "application/json"})
            r = c.getresponse()
            r.read()
            errors += r.status != 201
            c.request("DELETE", "/api/inputs/churn")
            r = c.getresponse()
            r.read()
            errors += r.status != 200
            if i + 1 == 100 and cycles > 100:
                time.sleep(1)
                rec["after_100"] = proc_counts(s.pid)
        rec["seconds"] = time.monotonic() - t0
        c.close()
        time.sleep(1)
        rec["after"] = proc_counts(s.pid)
        rec["errors"] = errors
        rec["cycles"] = cycles
    finally:
        s.stop()
    rec["exit"] = s.verdict
    RESULTS["churn"] = rec


# ---------------------------------------------------------------- report


def mib(kb):
    return f"{kb / 1024:.1f}"


def report():
    print("### Fan-out: delivered frames/s, CPU per delivered GB, peak RSS")
    print()
    print("| size | viewers | server | frames/s delivered (ideal) | per viewer min / median | MB/s | "
          "KB/frame | server CPU s | CPU s per GB | peak RSS MiB |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in RESULTS["fanout"]:
        fps = r["frames"] / r["seconds"]
        gb = r["bytes"] / 1e9
        kbf = r["bytes"] / r["frames"] / 1024 if r["frames"] else 0
        cpu = r["server_cpu_s"]
        per_gb = f"{cpu / gb:.1f}" if gb > 0 else "-"
        notes = ""
        if r.get("failed") or r.get("closed"):
            notes = f" ({r['failed']} failed, {r['closed']} closed)"
        print(f"| {r['size']} | {r['n']} | {r['server']}{notes} | {fps:.0f} ({25 * r['n']}) | "
              f"{r['fps_viewer_min']:.1f} / {r['fps_viewer_median']:.1f} | {r['bytes'] / r['seconds'] / 1e6:.1f} | "
              f"{kbf:.1f} | {cpu:.2f} | {per_gb} | {mib(r['server_hwm_kb'])} |")
    relay = [r for r in RESULTS["fanout"] if r["server"] == "relay"]
    if relay:
        print()
        print("Relay source and exit during the runs above (frames in per second from `/metrics`, frames "
              "skipped for busy viewers, exit code and verdict at SIGTERM):")
        print()
        print("| size | viewers | source frames/s | frames skipped | exit |")
        print("|---|---:|---:|---:|---|")
        for r in relay:
            print(f"| {r['size']} | {r['n']} | {r['source_fps']:.1f} | {r['relay_dropped']} | "
                  f"{r['exit'][0]}: {r['exit'][1]} |")

    if RESULTS["stall"]:
        n = RESULTS["stall"][0]["stalled"]
        print()
        print(f"### {n} stalled viewers (+1 watching) for {RESULTS['stall'][0]['seconds']:.0f} s")
        print()
        print("| size | server | RSS MiB before | peak RSS MiB | kernel TCP mem MiB before / peak | "
              "watching viewer fps | fds / threads before → after |")
        print("|---|---|---:|---:|---:|---:|---|")
        for r in RESULTS["stall"]:
            pg = os.sysconf("SC_PAGE_SIZE") / 1024
            print(f"| {r['size']} | {r['server']} | {mib(r['base']['rss_kb'])} | {mib(r['server_hwm_kb'])} | "
                  f"{mib(r['tcp_mem_pages_before'] * pg)} / {mib(r['tcp_mem_pages_peak'] * pg)} | "
                  f"{r['fps_viewer_median']:.1f} | {r['base']['fds']} / {r['base']['threads']} → "
                  f"{r['after']['fds']} / {r['after']['threads']} |")

    sp = RESULTS.get("sigpipe")
    if sp:
        print()
        print(f"SIGPIPE probe (relay with SIGPIPE at its default, {sp['rounds']} rounds of 100 viewers leaving a "
              f"1920x1080 stream): survived {sp['survived']} of {sp['rounds']}; exit {sp['exit'][0]}: {sp['exit'][1]}")

    c = RESULTS["churn"]
    if c:
        print()
        print(f"### Churn: {c['cycles']} create/delete cycles of a 64x48 test input "
              f"({c['seconds']:.1f} s, {c['seconds'] / c['cycles'] * 1000:.1f} ms per cycle, "
              f"{c['errors']} errors)")
        print()
        print("| | RSS MiB | peak RSS MiB | fds | threads |")
        print("|---|---:|---:|---:|---:|")
        for k, label in [("before", "before"), ("after_100", "after 100 cycles"), ("after", f"after {c['cycles']}")]:
            if k in c:
                v = c[k]
                print(f"| {label} | {mib(v['rss_kb'])} | {mib(v['hwm_kb'])} | {v['fds']} | {v['threads']} |")
        print()
        print(f"Relay exit after churn: {c['exit'][0]}: {c['exit'][1]}")


def main():
    global ARGS, TMP
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json")
    ap.add_argument("--only", choices=["fanout", "stall", "churn", "sigpipe"], action="append")
    ARGS = ap.parse_args()
    only = ARGS.only or ["fanout", "stall", "churn", "sigpipe"]
    if ARGS.quick:
        sizes, counts, secs, warmup, stall_secs, cycles = [(640, 480), (1920, 1080)], [1, 100], 2, 0.5, 3, 100
    else:
        sizes, counts, secs, warmup, stall_secs, cycles = [(640, 480), (1920, 1080)], [1, 10, 100, 1000], 5, 1, 10, 1000
    with tempfile.TemporaryDirectory(prefix="relay-bench-") as TMP:
        t0 = time.monotonic()
        if "fanout" in only:
            fanout(sizes, counts, secs, warmup)
        if "stall" in only:
            stall(sizes, 100, stall_secs)
        if "churn" in only:
            churn(cycles)
        if "sigpipe" in only:
            sigpipe_probe(5)
        log(f"relay bench: {time.monotonic() - t0:.0f} s")
        if ARGS.json:
            with open(ARGS.json, "w") as f:
                json.dump(RESULTS, f, indent=1)
        report()


if __name__ == "__main__":
    main()
