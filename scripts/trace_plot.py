#!/usr/bin/env python3
"""Draw a timeline of a few steps from a `corun trace` folder.

  scripts/trace_plot.py DIR [--steps 3] [--start-ms T --span-ms W] [-o DIR/timeline.png]

Reads DIR/summary.json (windows, steps) and DIR/trace.*.json (the Chrome-trace files), and draws
per GPU lane two rows: compute kernels and communication (NCCL kernels, peer copies). Without
marked steps it shows --span-ms (default 20 ms) from the start of the attribution window.
"""
import argparse
import glob
import json
import os
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("--steps", type=int, default=3, help="steps to show (when the trace has steps)")
    ap.add_argument("--start-ms", type=float, help="start of the view, ms after the first GPU record")
    ap.add_argument("--span-ms", type=float, default=20.0, help="length of the view without steps")
    ap.add_argument("-o", "--out", help="PNG path (default DIR/timeline.png)")
    a = ap.parse_args()
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("trace_plot.py: matplotlib is not installed (pip install matplotlib)")
    try:
        summary = json.load(open(os.path.join(a.dir, "summary.json")))
    except OSError as e:
        sys.exit(f"trace_plot.py: {e} (run corun trace or corun trace --analyze {a.dir} first)")
    lanes = summary["lanes"]
    if not lanes:
        sys.exit("trace_plot.py: no lanes in summary.json")
    # The view: the first steps of the first lane that has steps, else a span of the window.
    first = next((l for l in lanes if l["steps"] > 0), lanes[0])
    if a.start_ms is not None:
        t0, t1 = a.start_ms, a.start_ms + a.span_ms
    elif first["steps"] > 0:
        b = first["step_bounds_ms"][: a.steps]
        t0, t1 = b[0][0], b[-1][1]
    else:
        t0 = first["window_begin_ms"]
        t1 = min(first["window_end_ms"], t0 + a.span_ms)

    # Events per (pid, device), from the Chrome traces (ts/dur in us after t0).
    rows = {}
    labels = {}
    for path in sorted(glob.glob(os.path.join(a.dir, "trace.*.json"))):
        doc = json.load(open(path))
        pname = {}
        for e in doc["traceEvents"]:
            if e.get("ph") == "M" and e.get("name") == "process_name":
                pname[e["pid"]] = e["args"]["name"].split(" ")[0]
        for e in doc["traceEvents"]:
            if e.get("ph") != "X" or e.get("cat") not in ("compute", "comm"):
                continue
            s, d = e["ts"] / 1e3, e["dur"] / 1e3
            if s + d < t0 or s > t1:
                continue
            dev = (e["tid"] - 1000000) // 100000
            key = (e["pid"], dev)
            labels[key] = f'{pname.get(e["pid"], e["pid"])} GPU{dev}'
            rows.setdefault(key, {"compute": [], "comm": []})[e["cat"]].append((s, d, e["name"]))
    if not rows:
        sys.exit(f"trace_plot.py: no GPU activity between {t0:.3f} and {t1:.3f} ms")
    keys = sorted(rows)
    fig, ax = plt.subplots(figsize=(14, 0.9 * 2 * len(keys) + 1.2))
    y, ticks, names = 0, [], []
    for k in keys:
        for cat, color in (("comm", "#d62728"), ("compute", "#1f77b4")):
            ev = rows[k][cat]
            ax.broken_barh([(s, d) for s, d, _ in ev], (y - 0.4, 0.8), facecolors=color, edgecolors="none")
            ticks.append(y)
            names.append(f"{labels[k]} {cat}")
            y += 1
        y += 0.5
    for l in lanes:  # step boundaries of the lanes that have them
        for s0, _ in l.get("step_bounds_ms", []):
            if t0 <= s0 <= t1:
                ax.axvline(s0, color="grey", lw=0.6, ls="--")
    ax.set_yticks(ticks)
    ax.set_yticklabels(names)
    ax.set_xlim(t0, t1)
    ax.set_xlabel("ms after the first GPU record")
    verdict = first.get("verdict", "")
    ax.set_title(f"corun trace: {os.path.basename(os.path.abspath(a.dir))}\n{first['label']}: {verdict}", fontsize=9)
    fig.tight_layout()
    out = a.out or os.path.join(a.dir, "timeline.png")
    fig.savefig(out, dpi=110)
    print(out)


if __name__ == "__main__":
    main()
