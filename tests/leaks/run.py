#!/usr/bin/env python3
"""Run the leak corpus: every tests/leaks/*.c (and *.cc) program is built,
run natively and under `steward check --json`, and what the checker found
is compared with the program's own statement of what it plants.

Header of each program (see tests/leaks/README.md):
    /* leak-test: what is planted
     * cflags: extra compiler flags            (optional)
     * args: program arguments                 (optional)
     * expect: KIND COUNT FUNC [class=..] [state=..] [bytes=N] [label~TEXT]
     * expect: none                            (a clean program)
     * bad-frees: N                            (invalid/double frees, default 0)
     * native: aborts                          (no native run to compare with)
     * shared: plugins/x.c                     (built as {tmp}/x.so for the program to dlopen)
     * checker-args: --opt ...                 (extra steward check options)
     * growth: FUNC growing|levelled           (a site the growth analysis must flag)
     * log: TEXT                               (text the checker's log must contain)
     * exit: N                                 (expected exit status, default 0)
     * repeat: N                               (run under the checker N times, each must pass)
     * timeout: S                              (seconds a run may take, default 120)
     * child-expect: KIND COUNT FUNC ...       (what forked children that did not exec
                                               report, all together; none given: they
                                               must report nothing)
     * fork-site: FUNC                         (in the fork stack of every child report)
     * scanned-block-bytes: N/block + M        (the pointer scan read at most N bytes per
                                               classified block plus M from blocks)
     */

Usage: run.py BUILD_DIR [NAME...]   prints "ok   leaks/NAME" or "FAIL leaks/NAME"
per program, with the reason, and exits non-zero if any failed.
"""
import glob
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
BASE_CFLAGS = ["-g", "-O1", "-fno-omit-frame-pointer", "-pthread"]
TIMEOUT = 120


def parse_header(path):
    spec = {"cflags": [], "args": [], "expect": [], "none": False, "exit": 0, "bad_frees": 0,
            "native": True, "shared": [], "checker_args": [], "growth": [], "log": [],
            "repeat": 1, "timeout": TIMEOUT, "child_expect": [], "fork_site": None,
            "scan_block_bytes": None}
    with open(path) as f:
        text = f.read(8192)
    m = re.search(r"/\*(.*?)\*/", text, re.S)
    if not m or "leak-test:" not in m.group(1):
        raise ValueError("no leak-test header")
    for raw in m.group(1).splitlines():
        line = raw.strip().lstrip("*").strip()
        if line.startswith("cflags:"):
            spec["cflags"] += shlex.split(line[7:])
        elif line.startswith("args:"):
            spec["args"] += shlex.split(line[5:])
        elif line.startswith("exit:"):
            spec["exit"] = int(line[5:])
        elif line.startswith("timeout:"):
            spec["timeout"] = int(line[8:])
        elif line.startswith("repeat:"):
            spec["repeat"] = int(line[7:])
        elif line.startswith("checker-args:"):
            spec["checker_args"] += shlex.split(line[13:])
        elif line.startswith("growth:"):
            func, trend = line[7:].split()
            spec["growth"].append((func, trend))
        elif line.startswith("log:"):
            spec["log"].append(line[4:].strip())
        elif line.startswith("shared:"):
            spec["shared"] += line[7:].split()
        elif line.startswith("native:"):
            # "native: aborts": glibc kills the program natively (a double
            # free), so there is no native run to compare with.
            spec["native"] = line[7:].strip() != "aborts"
        elif line.startswith("bad-frees:"):
            spec["bad_frees"] = int(line[10:])
        elif line.startswith("scanned-block-bytes:"):
            m2 = re.fullmatch(r"\s*(\d+)/block\s*\+\s*(\d+)\s*", line[20:])
            if not m2:
                raise ValueError("scanned-block-bytes: wants 'N/block + M'")
            spec["scan_block_bytes"] = (int(m2.group(1)), int(m2.group(2)))
        elif line.startswith("fork-site:"):
            spec["fork_site"] = line[10:].strip()
        elif line.startswith("child-expect:"):
            spec["child_expect"].append(parse_expect(line[13:].split()))
        elif line.startswith("expect:"):
            words = line[7:].split()
            if words == ["none"]:
                spec["none"] = True
                continue
            spec["expect"].append(parse_expect(words))
    return spec


def parse_expect(words):
    e = {"kind": words[0], "count": int(words[1]), "func": words[2]}
    for w in words[3:]:
        if w.startswith("label~"):
            e["label"] = w[6:]
        else:
            k, v = w.split("=", 1)
            e[k] = int(v) if k == "bytes" else v
    return e


def match_findings(leaks, expect, problems, who=""):
    """Every expectation found with its count, and nothing else."""
    used = set()
    for e in expect:
        hits = [i for i, g in enumerate(leaks) if i not in used and group_matches(g, e)]
        count = sum(leaks[i]["count"] for i in hits)
        nbytes = sum(leaks[i]["bytes"] for i in hits)
        used.update(hits)
        want = f'{who}{e["count"]} {e["kind"]} from {e["func"]}'
        if count != e["count"]:
            problems.append(f"expected {want}, found {count}")
        elif "bytes" in e and nbytes != e["bytes"]:
            problems.append(f"expected {want} of {e['bytes']} bytes, found {nbytes} bytes")
    for i, g in enumerate(leaks):
        if i not in used:
            problems.append(f"unexpected {who}finding: " + describe(g))


def func_names(g):
    # GCC's local clones (f.constprop.0, f.isra.0, f.part.0, f.cold) are f.
    return [(fr.get("func") or "").split(".")[0] for fr in g["stack"]]


def group_matches(g, e):
    if g["kind"] != e["kind"]:
        return False
    if e["func"] == "-":
        # Made by a call the checker does not see: no stack by design.
        if g["stack"]:
            return False
    elif e["func"] not in func_names(g):
        return False
    if "class" in e and not (g.get("class") or "").startswith(e["class"]):
        return False
    if "state" in e and not (g.get("state") or "").startswith(e["state"]):
        return False
    if "label" in e and not any(e["label"] in (r.get("label") or "") for r in g["records"]):
        return False
    return True


def describe(g):
    funcs = [fr.get("func") or "??" for fr in g["stack"]][:4]
    what = g.get("class") or g.get("state") or ""
    labels = sorted({r.get("label") for r in g["records"] if r.get("label")})[:2]
    return f'{g["count"]} {g["kind"]} {what} at {" < ".join(funcs)} {labels or ""}'.strip()


def run_group(argv, timeout=TIMEOUT):
    """Run @argv in a process group of its own with @timeout; on time-out the
    whole group is killed, so a hung program under the checker (the
    launcher's child) is not left running, then TimeoutExpired is raised."""
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        raise
    return subprocess.CompletedProcess(argv, p.returncode, out, err)


def check_one(build, src, tmp):
    name = os.path.splitext(os.path.basename(src))[0]
    spec = parse_header(src)
    exe = os.path.join(tmp, name)
    cc = "g++" if src.endswith(".cc") else "gcc"
    for lib in spec["shared"]:
        so = os.path.join(tmp, os.path.splitext(os.path.basename(lib))[0] + ".so")
        r = subprocess.run([cc, *BASE_CFLAGS, "-shared", "-fPIC", os.path.join(HERE, lib),
                            "-o", so], capture_output=True, text=True)
        if r.returncode != 0:
            return f"{lib} does not compile:\n{r.stderr}"
    spec["args"] = [a.replace("{tmp}", tmp) for a in spec["args"]]
    r = subprocess.run([cc, *BASE_CFLAGS, src, "-o", exe, *spec["cflags"], "-lrt"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return f"does not compile:\n{r.stderr}"
    native = run_group([exe, *spec["args"]], spec["timeout"])
    for run in range(spec["repeat"]):
        err = check_run(build, spec, exe, name, native, tmp)
        if err:
            return err if spec["repeat"] == 1 else f"run {run + 1} of {spec['repeat']}: {err}"
    return ""


def check_run(build, spec, exe, name, native, tmp):
    js = os.path.join(tmp, name + ".json")
    for old in glob.glob(js + ".*"):
        os.unlink(old)
    log = os.path.join(tmp, name + ".log")
    steward = os.path.join(build, "src", "steward")
    checked = run_group([steward, "check", f"--json={js}", f"--log-file={log}",
                         *spec["checker_args"], "--", exe, *spec["args"]], spec["timeout"])
    problems = []
    if checked.returncode != spec["exit"]:
        problems.append(f"exit status {checked.returncode}, want {spec['exit']}")
    # Python reports death by signal N as -N; the shell convention is 128+N.
    native_rc = native.returncode if native.returncode >= 0 else 128 - native.returncode
    if spec["native"] and native_rc != spec["exit"]:
        problems.append(f"native exit status {native_rc}, want {spec['exit']}")
    if spec["native"] and checked.stdout != native.stdout:
        problems.append("stdout under the checker differs from the native run")
    try:
        with open(js) as f:
            report = json.load(f)
    except (OSError, ValueError) as err:
        problems.append(f"no JSON report: {err}")
        return "\n".join(problems)
    match_findings(report["leaks"], spec["expect"], problems)
    # Forked children that did not exec write NAME.json.PID.
    kids = []
    for path in sorted(glob.glob(js + ".*")):
        try:
            with open(path) as f:
                kids.append(json.load(f))
        except (OSError, ValueError) as err:
            problems.append(f"unreadable child report {path}: {err}")
    match_findings([g for k in kids for g in k["leaks"]], spec["child_expect"], problems,
                   "forked child's ")
    for k in kids:
        site = [fr.get("func") for fr in (k.get("forked_from") or {}).get("stack", [])]
        if spec["fork_site"] and spec["fork_site"] not in [(f or "").split(".")[0] for f in site]:
            problems.append(f"child {k['pid']}'s fork stack {site} lacks {spec['fork_site']}")
    for func, trend in spec["growth"]:
        if not any(g["trend"] == trend and func in func_names(g)
                   for g in report.get("growth", [])):
            seen = [(g["trend"], [fr.get("func") for fr in g["stack"]][:2])
                    for g in report.get("growth", [])]
            problems.append(f"expected a {trend} site at {func}; growth report: {seen}")
    with open(log) as f:
        log_text = f.read()
    for text in spec["log"]:
        if text not in log_text:
            problems.append(f"the checker's log does not say '{text}'")
    if spec["scan_block_bytes"]:
        per, extra = spec["scan_block_bytes"]
        scan = report.get("scan") or {}
        limit = per * scan.get("blocks", 0) + extra
        if "block_bytes" not in scan:
            problems.append("the JSON report has no scan figure")
        elif scan["block_bytes"] > limit:
            problems.append(f'the scan read {scan["block_bytes"]} bytes of {scan["blocks"]} '
                            f'blocks, more than their extents can hold ({limit})')
    if report["summary"]["bad_frees"] != spec["bad_frees"]:
        problems.append(f'{report["summary"]["bad_frees"]} bad frees, want {spec["bad_frees"]}')
    if spec["none"] and report["summary"]["leaks"] != 0:
        problems.append(f'clean program, but {report["summary"]["leaks"]} leaks reported')
    if problems:
        with open(log) as f:
            problems.append("checker log:\n" + f.read()[-3000:])
    return "\n".join(problems)


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    build = sys.argv[1]
    names = sys.argv[2:]
    sources = sorted(os.path.join(HERE, f) for f in os.listdir(HERE)
                     if f.endswith((".c", ".cc")))
    if names:
        sources = [s for s in sources if os.path.splitext(os.path.basename(s))[0] in names]
    failed = 0
    with tempfile.TemporaryDirectory(prefix="steward-leaks.") as tmp:
        for src in sources:
            name = os.path.splitext(os.path.basename(src))[0]
            try:
                err = check_one(build, src, tmp)
            except subprocess.TimeoutExpired:
                err = "timed out"
            except ValueError as ex:
                err = str(ex)
            if err:
                failed += 1
                print(f"FAIL leaks/{name}")
                print("    " + err.replace("\n", "\n    "))
            else:
                print(f"ok   leaks/{name}")
            sys.stdout.flush()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
