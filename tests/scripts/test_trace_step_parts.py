#!/usr/bin/env python3
"""CPU test of scripts/trace_step_parts.py on synthetic record files whose parts are known: four
steps of 1000 us, each a mark kernel, two GEMMs with an idle gap and a copy between them (launched
50 us into the gap), side kernels on other streams (40 us of them with nothing on the compute
stream), a tail kernel, the optimizer, and a GEMM of another GPU on a stream of the same number (to
be left out); once without launch-call records and once with the copy's. Exits non-zero on any
mismatch."""
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


def records(with_api):
    lines = [{"corun_trace": 1, "pid": 1, "rank": 0, "host": "h", "start_ns": 0, "cmd": "x"}]
    lines += [{"t": "n", "i": i, "s": s} for i, s in names.items()]
    corr = [0]

    def rec(t0, kind, n, a, b, q=7, dev=0):
        corr[0] += 1
        r = {"t": kind, "s": t0 + a * us, "e": t0 + b * us, "d": dev, "q": q, "c": corr[0]}
        if kind == "k":
            r.update({"n": n, "g": [1, 1, 1], "b": [32, 1, 1]})
        else:
            r.update({"y": "dtod", "by": 8})
        lines.append(r)
        return corr[0]

    for k in range(4):
        t0 = 10_000 * us + k * 1000 * us
        rec(t0, "k", 1, 0, 10)            # the mark
        rec(t0, "k", 2, 20, 300)          # GEMM
        c = rec(t0, "m", 0, 400, 450)     # a copy after 100 us of nothing on the compute stream
        if with_api:                      # ... whose launch call returned 50 us into that gap
            lines.append({"t": "a", "s": t0 + 340 * us, "e": t0 + 350 * us, "c": c, "n": 9, "h": 1})
        rec(t0, "k", 2, 450, 600)         # the last GEMM: the body ends here
        rec(t0, "k", 3, 100, 200, q=9)    # beside, on another stream, while the GEMM runs
        rec(t0, "k", 3, 280, 330, q=9)    # ... 30 us of it while the compute stream runs nothing
        rec(t0, "k", 3, 320, 340, q=11)   # ... and another stream's, 10 us more of that
        rec(t0, "k", 4, 600, 650)         # tail
        rec(t0, "k", 5, 700, 800)         # optimizer
        rec(t0, "k", 2, 620, 690, dev=1)  # another GPU's stream 7: not this lane's
    rec(10_000 * us + 4000 * us, "k", 1, 0, 10)  # the fifth mark closes the fourth step
    return lines


def row(path, skip="1"):
    r = subprocess.run([sys.executable, script, path, "--skip", skip], capture_output=True, text=True)
    return r, [l for l in r.stdout.splitlines() if not l.startswith("#")]


fails = []
with tempfile.TemporaryDirectory() as d:
    for with_api in (False, True):
        path = os.path.join(d, f"corun_trace.r0.p{int(with_api)}.jsonl")
        with open(path, "w") as f:
            f.write("\n".join(json.dumps(l) for l in records(with_api)) + "\n")
        r, rows = row(path)
        if r.returncode != 0 or len(rows) != 1:
            fails.append(f"api={with_api}: exit {r.returncode}, rows {rows!r}, {r.stderr}")
            continue
        cells = rows[0].split()[1:]
        # steps, step, body, busy, idle, late, gemm, other, copies, tail, optimizer, side n, side ms,
        # side alone
        want = [3, 1.00, 0.60, 0.49, 0.11, 0.05 if with_api else "-", 0.43, 0.01, 0.05, 0.10, 0.10, 3, 0.17, 0.04]
        if len(cells) != len(want):
            fails.append(f"api={with_api}: {len(cells)} cells, want {len(want)}: {rows[0]}")
            continue
        for i, (g, w) in enumerate(zip(cells, want)):
            ok = g == w if isinstance(w, str) else abs(float(g) - w) <= 1e-6
            if not ok:
                fails.append(f"api={with_api}: column {i}: got {g}, want {w}")
    # Too few marks: one line naming the file, non-zero exit.
    r, _ = row(path, skip="9")
    if r.returncode == 0 or "marks" not in r.stderr + r.stdout:
        fails.append(f"--skip 9 with 5 marks: exit {r.returncode}, {r.stderr!r}")
if fails:
    sys.exit("FAIL: " + "; ".join(fails))
print("ok")
