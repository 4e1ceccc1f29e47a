#!/usr/bin/env python3
"""GPU test: corun trace -o DIR -- trace_two_streams, then the summary must hold both kinds of work
with plausible numbers. Usage: trace_check.py CORUN PROGRAM DIR"""
import json
import subprocess
import sys

corun, prog, out = sys.argv[1:4]
r = subprocess.run([corun, "trace", "-o", out, "--steps", "nvtx:step", "--", prog], capture_output=True, text=True)
sys.stderr.write(r.stderr)
print(r.stdout, end="")
if r.returncode != 0:
    sys.exit(f"FAIL: corun trace exited {r.returncode}")
s = json.load(open(f"{out}/summary.json"))
peer = "peer copy" in r.stdout
fails = []
lanes = [l for l in s["lanes"] if l["device"] == 0]
if len(lanes) != 1:
    fails.append(f"expected one lane on GPU 0, got {[l['label'] for l in s['lanes']]}")
else:
    l = lanes[0]
    names = [k["name"] for k in l["kernels"]]
    if not any("Spin" in n for n in names):
        fails.append(f"no Spin kernel in {names}")
    bd = l["breakdown_ms"]
    busy = bd["compute_only"] + bd["both"]
    if busy <= 0:
        fails.append(f"no compute time: {bd}")
    if l["steps"] < 8:
        fails.append(f"expected >= 8 NVTX steps after the skipped one, got {l['steps']}")
    total = sum(bd.values())
    if abs(total - l["window_ms"]) > 1e-3 * max(1.0, l["window_ms"]):
        fails.append(f"breakdown {total} ms != window {l['window_ms']} ms")
    if peer:
        if bd["both"] + bd["comm_only"] <= 0 or l["coll_launches"] < 8:
            fails.append(f"peer copies not counted as communication: {bd}, {l['coll_launches']} launches")
        if bd["both"] <= 0:
            fails.append(f"kernel and peer copy never overlapped: {bd}")
api = sum(f["api_records"] for f in s["files"])
if api <= 0:
    fails.append("no launch-call records in the default mode")

# --no-api: the GPU's work only; the analysis must still find the program's kernels.
r2 = subprocess.run([corun, "trace", "--no-api", "-o", out + "_noapi", "--steps", "nvtx:step", "--", prog],
                    capture_output=True, text=True)
sys.stderr.write(r2.stderr)
if r2.returncode != 0:
    fails.append(f"corun trace --no-api exited {r2.returncode}")
else:
    s2 = json.load(open(f"{out}_noapi/summary.json"))
    api2 = sum(f["api_records"] for f in s2["files"])
    gpu2 = sum(f["gpu_records"] for f in s2["files"])
    if api2 != 0:
        fails.append(f"--no-api still recorded {api2} launch calls")
    if gpu2 <= 0:
        fails.append("--no-api recorded no GPU work")
    l2 = [l for l in s2["lanes"] if l["device"] == 0]
    if len(l2) != 1 or not any("Spin" in k["name"] for k in l2[0]["kernels"]):
        fails.append(f"--no-api: no Spin kernel on GPU 0's lane: {[l['label'] for l in s2['lanes']]}")
if fails:
    sys.exit("FAIL: " + "; ".join(fails))
print("ok:", json.dumps(s["lanes"][0]["breakdown_ms"]), f"({api} launch calls recorded; none with --no-api)")
