#!/usr/bin/env python3
"""The host side of a `corun trace` record file: how long the launch calls took, and how long
before its kernel ran the host launched it, per tenth of a step.

  scripts/trace_host_side.py RECORDS.jsonl [--mark DistributionRandomKernel] [--steps 5]

Steps are cut at the kernel whose name contains --mark; the last --steps whole steps are read.
Prints, for the runtime/driver calls that launched work, the median duration per (call, kernel)
pair (the 8 most frequent), and per tenth of a step the median time from a compute-stream launch
call's start to its kernel's start (a small lag means the GPU ran each kernel as soon as the host
issued it: the host set the pace there). The compute stream is the stream with the most kernels.
"""
import argparse
import collections
import statistics

import trace_records


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("records")
    ap.add_argument("--mark", default="DistributionRandomKernel")
    ap.add_argument("--steps", type=int, default=5)
    a = ap.parse_args()
    names, recs, api = trace_records.read(a.records)
    gpu = {g["c"]: g for g in recs}
    marks = sorted(g["s"] for g in gpu.values() if g["t"] == "k" and a.mark in names.get(g["n"], ""))
    if len(marks) < a.steps + 1:
        raise SystemExit(f"trace_host_side: {len(marks)} marks '{a.mark}', need {a.steps + 1}")
    lo, hi = marks[-a.steps - 1], marks[-1]

    def what(g):
        if g is None:
            return "?"
        if g["t"] == "k":
            return names.get(g["n"], "?")[:48]
        return f"{g['t']}{g.get('y', '')}:{g.get('by')}"

    dur = collections.defaultdict(list)
    for r in api:
        if lo <= r["s"] < hi:
            dur[(names.get(r["n"], "?")[:24], what(gpu.get(r["c"])))].append((r["e"] - r["s"]) / 1e3)
    print(f"# {a.steps} steps, launch calls: count, median us")
    for k, v in sorted(dur.items(), key=lambda kv: -len(kv[1]))[:8]:
        print(f"{len(v):6d} {statistics.median(v):7.1f}  {k[0]} -> {k[1]}")

    by_api = {r["c"]: r for r in api}
    streams = collections.Counter(g["q"] for g in gpu.values() if g["t"] == "k" and lo <= g["s"] < hi)
    compute = streams.most_common(1)[0][0]
    print(f"# launch to kernel start on stream {compute}, median us per tenth of a step (all {a.steps} steps)")
    tenth = collections.defaultdict(list)
    for i in range(len(marks) - a.steps - 1, len(marks) - 1):
        s0, s1 = marks[i], marks[i + 1]
        for g in gpu.values():
            r = by_api.get(g["c"])
            if g["t"] == "k" and g["q"] == compute and r and s0 <= g["s"] < s1:
                tenth[int((g["s"] - s0) / (s1 - s0) * 10)].append((g["s"] - r["s"]) / 1e3)
    print(" ".join(f"{d}:{statistics.median(tenth[d]):.0f}" for d in sorted(tenth)))


if __name__ == "__main__":
    main()
