#!/usr/bin/env python3
"""Runs a command under the interposer and checks its report: the counts against conditions and
against what the program itself saw arrive at the driver.

  check_report.py --report FILE [--observed FILE --equal k1,k2] [--expect EXPR]... [--summary]
                  [--env K=V]... -- CMD...

The report's keys are names in EXPR (skipped reasons as skipped_<reason>, ce_fallback's as
ce_fallback_<reason>), the observed file's
keys are seen_<key>. --summary requires exactly one summary line on stderr whose counts equal the
report's. --env sets a variable for CMD only (LD_PRELOAD: the checker itself stays unwrapped).
Exit 0 when all hold, 77 when CMD reports itself skipped, 1 otherwise."""
import argparse
import json
import os
import re
import subprocess
import sys

ap = argparse.ArgumentParser()
ap.add_argument("--report", required=True)
ap.add_argument("--observed")
ap.add_argument("--equal", default="")
ap.add_argument("--expect", action="append", default=[])
ap.add_argument("--summary", action="store_true")
ap.add_argument("--env", action="append", default=[])
ap.add_argument("cmd", nargs=argparse.REMAINDER)
a = ap.parse_args()
cmd = a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd
if not cmd:
    sys.exit("check_report: no command")

for path in (a.report, a.observed):
    if path and os.path.exists(path):
        os.remove(path)
env = dict(os.environ)
env.update(kv.split("=", 1) for kv in a.env)
p = subprocess.run(cmd, stderr=subprocess.PIPE, text=True, env=env)
sys.stderr.write(p.stderr)
if p.returncode == 77:
    sys.exit(77)
errors = []
if p.returncode != 0:
    errors.append(f"command exited {p.returncode}")
if not os.path.exists(a.report):
    print(f"check_report: FAIL: no report at {a.report}")
    sys.exit(1)
report = json.load(open(a.report))
names = {k: v for k, v in report.items() if not isinstance(v, dict)}
for key in ("skipped", "ce_fallback"):
    names.update({f"{key}_{k}": v for k, v in report.get(key, {}).items()})
if a.observed:
    seen = json.load(open(a.observed))
    names.update({f"seen_{k}": v for k, v in seen.items()})
    for k in filter(None, a.equal.split(",")):
        if report.get(k) != seen.get(k):
            errors.append(f"report {k} = {report.get(k)}, the program saw {seen.get(k)}")
for e in a.expect:
    try:
        ok = eval(e, {"__builtins__": {}}, names)
    except Exception as x:  # a name the report lacks is a failure too
        ok, e = False, f"{e} ({x})"
    if not ok:
        errors.append(f"expected {e}")
if a.summary:
    lines = [l for l in p.stderr.splitlines() if re.match(r"corun: pid \d+ policy ", l)]
    if len(lines) != 1:
        errors.append(f"{len(lines)} summary lines on stderr, want 1")
    else:
        m = re.search(r": (\d+) launches, (\d+) shaped, (\d+) not shaped .*?, (\d+) communication \((\d+) prioritised"
                      r"(?:, (\d+) without priority)?\), (\d+) failed", lines[0])
        if not m:
            errors.append(f"summary line not understood: {lines[0]}")
        else:
            got = dict(zip(["launches", "shaped", "not_shaped", "communication", "prioritised", "priority_dropped",
                            "failed"], [int(x) if x else 0 for x in m.groups()]))
            want = dict(report)
            want["not_shaped"] = sum(report.get("skipped", {}).values())
            for k, v in got.items():
                if want.get(k) != v:
                    errors.append(f"summary {k} = {v}, report {want.get(k)}")
print("check_report:", json.dumps(report))
for e in errors:
    print("check_report: FAIL:", e)
sys.exit(1 if errors else 0)
