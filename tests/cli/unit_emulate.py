#!/usr/bin/env python3
"""Start the relay as its systemd unit says, without systemd: ExecStart
from the unit (its binary and config under ROOT, ${STATE_DIRECTORY} a
fresh directory, --listen 127.0.0.1:0 added so that no fixed port is
needed), NOTIFY_SOCKET a datagram socket this script reads, WATCHDOG_USEC
from WatchdogSec= (or --watchdog-sec), then ExecReload with $MAINPID, then
SIGTERM as `systemctl stop` sends it. Checks READY=1, watchdog pings at
half the period, RELOADING=1 and READY=1 around the reload, STOPPING=1 and
exit 0.

    unit_emulate.py UNIT_FILE ROOT [--watchdog-sec S]
"""
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time


def service_section(path):
    keys = {}
    section = None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("["):
                section = line
            elif section == "[Service]" and "=" in line and not line.startswith("#"):
                k, v = line.split("=", 1)
                keys[k] = v
    return keys


def main():
    unit, root = sys.argv[1], sys.argv[2]
    wd_override = float(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[3] == "--watchdog-sec" else None
    svc = service_section(unit)
    assert svc.get("Type") == "notify", svc.get("Type")
    wd = wd_override if wd_override is not None else float(svc["WatchdogSec"])
    d = tempfile.mkdtemp()
    state = os.path.join(d, "state")
    os.mkdir(state)
    argv = shlex.split(svc["ExecStart"].replace("${STATE_DIRECTORY}", state))
    # The unit's absolute paths, inside ROOT.
    argv = [os.path.join(root, a.lstrip("/")) if a.startswith(("/usr/", "/etc/")) else a
            for a in argv]
    argv += ["--listen", "127.0.0.1:0"]
    sock_path = os.path.join(d, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    env = dict(os.environ, NOTIFY_SOCKET=sock_path, WATCHDOG_USEC=str(int(wd * 1e6)),
               STATE_DIRECTORY=state)
    p = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL)
    msgs = []

    def until(pred, seconds, what):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            sock.settimeout(max(0.01, end - time.monotonic()))
            try:
                m = sock.recv(4096).decode()
            except socket.timeout:
                break
            msgs.append((time.monotonic(), m))
            if pred(m):
                return
        raise AssertionError("no %s within %s s; got %r" % (what, seconds, [m for _, m in msgs[-6:]]))

    try:
        until(lambda m: "READY=1" in m, 20, "READY=1")
        t0 = len(msgs)
        until(lambda m: False if sum(1 for _, x in msgs[t0:] if x == "WATCHDOG=1") < 4 else True,
              wd * 2 + 2, "4 watchdog pings")
        pings = [t for t, x in msgs[t0:] if x == "WATCHDOG=1"]
        gap = (pings[-1] - pings[0]) / (len(pings) - 1)
        assert abs(gap - wd / 2) < wd / 4, "pings every %.2f s, want %.2f" % (gap, wd / 2)
        reload = shlex.split(svc["ExecReload"].replace("$MAINPID", str(p.pid)))
        subprocess.run(reload, check=True)
        until(lambda m: "RELOADING=1" in m, 5, "RELOADING=1")
        until(lambda m: m.startswith("READY=1"), 5, "READY=1 after the reload")
        p.send_signal(signal.SIGTERM)
        until(lambda m: "STOPPING=1" in m, 10, "STOPPING=1")
        rc = p.wait(timeout=30)
        err = p.stderr.read().decode(errors="replace")
        assert rc == 0, "exit %d: %s" % (rc, err[-1500:])
        assert re.search(r"reload: applied", err), err[-1500:]
        print("unit: READY, pings every %.2f s, reload, STOPPING, exit 0" % gap)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
