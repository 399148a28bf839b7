#!/usr/bin/env python3
"""Sum up a `meson test` run (its meson-logs/LOGBASE.json) the way
tests/run.sh always has, ending with "N passed, N failed":

- unit (cmocka binaries): each "[       OK ]" case passes; each case that
  ran and did not pass fails; a binary that failed before any case counts
  one failure.
- leaks, real, relay, media, browser: one case per "ok   X/NAME" or
  "FAIL X/NAME" line; a script that printed none counts one failure (it did
  not run), and so does one that failed or timed out with no FAIL line.
- cli and anything else: one case per test, by its result.

    tests/summarize.py TESTLOG.json
"""
import json
import re
import sys

CASE = re.compile(r"^(ok  |FAIL) ([a-z]+/\S+?)(:|\s|$)")


def main():
    passed = failed = 0
    with open(sys.argv[1]) as f:
        runs = [json.loads(line) for line in f if line.strip()]
    for t in runs:
        name = t["name"].split(":", 1)[-1].strip()
        suite = name.split(" / ")[0]
        out = (t.get("stdout") or "") + (t.get("stderr") or "")
        ok = t["result"] in ("OK", "EXPECTEDFAIL")
        if suite == "unit":
            good = len(re.findall(r"^\[       OK \]", out, re.M))
            bad = len(re.findall(r"^\[ RUN      \]", out, re.M)) - good
            if not ok and bad == 0:
                bad = 1
            passed += good
            failed += bad
            if bad:
                print("FAIL %s (%s):" % (name, t["result"]))
                print("\n".join("    " + l for l in out.splitlines()[-60:]))
            else:
                print("ok   %s (%d)" % (name, good))
        elif suite in ("leaks", "real", "relay", "media", "browser"):
            lines = [l for l in out.splitlines() if CASE.match(l) or l.startswith("skip ")]
            good = sum(1 for l in lines if l.startswith("ok   "))
            bad = sum(1 for l in lines if l.startswith("FAIL "))
            for l in out.splitlines():
                if CASE.match(l) or l.startswith("skip ") or (l.startswith("    ") and bad):
                    print(l)
            if good + bad == 0 or (not ok and bad == 0):
                bad += 1
                print("FAIL %s: %s, no failing case named; its last lines:" % (name, t["result"]))
                print("\n".join("    " + l for l in out.splitlines()[-40:]))
            passed += good
            failed += bad
        else:
            if ok:
                passed += 1
                print("ok   %s" % name)
            else:
                failed += 1
                print("FAIL %s (%s):" % (name, t["result"]))
                print("\n".join("    " + l for l in out.splitlines()[-40:]))
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
