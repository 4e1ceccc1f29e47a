#!/usr/bin/env python3
"""CPU test of scripts/trace_step_parts.py on a synthetic record file whose parts are known: four
steps of 1000 us, each a mark kernel, two GEMMs with an idle gap and a copy between them, a side
kernel on another stream, a tail kernel, the optimizer. Exits non-zero on any mismatch."""
import json
import os
import subprocess
import sys
import tempfile

here = os.path.dirname(os.path.abspath(__file__))
script = os.path.join(here, "..", "..", "scripts", "trace_step_parts.py")
us = 1000  # ns
names = {1: "DistributionRandomKernel", 2: "nvjet_sm90_gemm", 3: "reduce_side", 4: "elementwise",
         5: "ForeachBinaryOpList"}
lines = [{"corun_trace": 1, "pid": 1, "rank": 0, "host": "h", "start_ns": 0, "cmd": "x"}]
lines += [{"t": "n", "i": i, "s": s} for i, s in names.items()]
c = 0
for k in range(4):
    t0 = 10_000 * us + k * 1000 * us

    def kern(n, a, b, q=7):
        global c
        c += 1
        lines.append({"t": "k", "s": t0 + a * us, "e": t0 + b * us, "d": 0, "q": q, "c": c, "n": n,
                      "g": [1, 1, 1], "b": [32, 1, 1]})
    kern(1, 0, 10)          # the mark
    kern(2, 20, 300)        # GEMM
    c += 1                  # a copy on the compute stream after 100 us of nothing
    lines.append({"t": "m", "s": t0 + 400 * us, "e": t0 + 450 * us, "d": 0, "q": 7, "c": c, "y": "dtod", "by": 8})
    kern(2, 450, 600)       # the last GEMM: the body ends here
    kern(3, 100, 200, q=9)  # beside, on another stream
    kern(4, 600, 650)       # tail
    kern(5, 700, 800)       # optimizer
kern_end = {"t": "k", "s": 10_000 * us + 4000 * us, "e": 10_000 * us + 4010 * us, "d": 0, "q": 7, "c": c + 1, "n": 1,
            "g": [1, 1, 1], "b": [32, 1, 1]}
lines.append(kern_end)  # the fifth mark closes the fourth step

with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, "corun_trace.r0.p1.jsonl")
    with open(path, "w") as f:
        f.write("\n".join(json.dumps(l) for l in lines) + "\n")
    r = subprocess.run([sys.executable, script, path, "--skip", "1"], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"FAIL: exit {r.returncode}: {r.stderr}")
    row = [l for l in r.stdout.splitlines() if not l.startswith("#")]
    if len(row) != 1:
        sys.exit(f"FAIL: expected one row, got {r.stdout!r}")
    got = [float(x) for x in row[0].split()[1:]]
    # steps, step, body, busy, idle, gemm, other, copies, tail, optimizer, side n, side ms
    want = [3, 1.00, 0.60, 0.49, 0.11, 0.43, 0.01, 0.05, 0.10, 0.10, 1, 0.10]
    bad = [(i, g, w) for i, (g, w) in enumerate(zip(got, want)) if abs(g - w) > 1e-6]
    if len(got) != len(want) or bad:
        sys.exit(f"FAIL: got {got}, want {want} (mismatches {bad})")
    # Too few marks: one line naming the file, non-zero exit.
    r = subprocess.run([sys.executable, script, path, "--skip", "9"], capture_output=True, text=True)
    if r.returncode == 0 or "marks" not in r.stderr + r.stdout:
        sys.exit(f"FAIL: --skip 9 with 5 marks: exit {r.returncode}, {r.stderr!r}")
print("ok")
