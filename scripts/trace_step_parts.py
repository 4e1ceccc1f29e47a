#!/usr/bin/env python3
"""A training step's parts from a `corun trace` record file: the forward and backward up to the
last GEMM (the body), the tail from there to the optimizer's first kernel, and the optimizer.

  scripts/trace_step_parts.py RECORDS.jsonl [RECORDS.jsonl ...] [--mark DistributionRandomKernel]
                              [--skip 10] [--gemm nvjet] [--optimizer Foreach]

Steps are cut at the kernel whose name contains --mark (the first --skip steps are left out);
the compute stream is the mark's stream on the mark's GPU. Per file, medians over the steps, ms:
  body          step start to the end of the compute stream's last GEMM (--gemm: a kernel name part)
  busy / idle   within the body, time the compute stream ran something / ran nothing (idle: its
                next work was not launched yet, or waited for an event, or for SMs)
  late          the part of that idle time before the next work's launch call returned: the
                stream waited for the host thread (needs launch-call records: '-' without)
  gemm / other  the body's GEMM kernels and its other kernels on the compute stream
  copies        the body's copies and memsets on the compute stream
  tail          end of the last GEMM to the optimizer's first kernel (--optimizer)
  optimizer     the optimizer's first kernel to the step's last record on the compute stream
  side kernels  kernels on the GPU's other streams that ended within the body (count, summed
                ms), e.g. NCCL's kernels or the copy-engine path's reductions
  side alone    the part of the body where a side kernel ran and the compute stream ran nothing:
                what the side kernels cost the compute stream at least (beside its kernels they
                may slow them too, e.g. SMs a GEMM's blocks wait for)
"""
import argparse
import statistics

import trace_records


def merged(intervals):
    """The union of (start, end) intervals, as sorted disjoint intervals."""
    out = []
    for s, e in sorted(intervals):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return out


def covered(s, e, union):
    """How much of [s, e) the disjoint sorted intervals `union` cover."""
    return sum(max(0, min(b, e) - max(a, s)) for a, b in union if a < e and b > s)


def parts(path, a):
    names, recs, api = trace_records.read(path)
    api = {c["c"]: c for c in api}
    name = lambda r: names.get(r["n"], "?") if r["t"] == "k" else ""
    marks = [r for r in recs if r["t"] == "k" and a.mark in name(r)]
    if len(marks) < a.skip + 2:
        raise SystemExit(f"trace_step_parts: {path}: {len(marks)} marks '{a.mark}', need {a.skip + 2}")
    dev, q = marks[0].get("d", 0), marks[0]["q"]
    mine = lambda r: r.get("d", 0) == dev and r["q"] == q
    rows = []
    for m0, m1 in zip(marks[a.skip:], marks[a.skip + 1:]):
        s0, s1 = m0["s"], m1["s"]
        step = [r for r in recs if s0 <= r["s"] < s1 and r.get("d", 0) == dev]
        opt = [r["s"] for r in step if mine(r) and r["t"] == "k" and a.optimizer in name(r)]
        gemm_ends = [r["e"] for r in step
                     if mine(r) and r["t"] == "k" and a.gemm in name(r) and (not opt or r["s"] < min(opt))]
        if not opt or not gemm_ends:
            continue
        o0, last = min(opt), max(gemm_ends)
        busy = idle = late = gemm = other = copies = 0
        end = s0
        for r in step:
            if not mine(r) or r["e"] > last:
                continue
            if r["s"] > end:
                idle += r["s"] - end
                call = api.get(r.get("c"))
                if call:
                    late += max(0, min(r["s"], call["e"]) - end)
            if r["e"] > end:
                busy += r["e"] - max(r["s"], end)
            end = max(end, r["e"])
            d = r["e"] - r["s"]
            if r["t"] != "k":
                copies += d
            elif a.gemm in name(r):
                gemm += d
            else:
                other += d
        side = [r for r in step if r["t"] == "k" and not mine(r) and r["e"] <= last]
        comp = merged([(r["s"], r["e"]) for r in step if mine(r) and r["s"] < last])
        side_alone = sum(e - s - covered(s, e, comp) for s, e in merged([(r["s"], r["e"]) for r in side]))
        opt_end = max(r["e"] for r in step if mine(r))
        rows.append({"body": last - s0, "busy": busy, "idle": idle, "late": late, "gemm": gemm, "other": other, "copies": copies,
                     "tail": o0 - last, "optimizer": opt_end - o0, "side_n": len(side),
                     "side": sum(r["e"] - r["s"] for r in side), "side_alone": side_alone, "step": s1 - s0})
    if not rows:
        raise SystemExit(f"trace_step_parts: {path}: no step with both '{a.gemm}' and '{a.optimizer}' kernels")
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    return len(rows), med, bool(api)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("records", nargs="+")
    ap.add_argument("--mark", default="DistributionRandomKernel")
    ap.add_argument("--skip", type=int, default=10)
    ap.add_argument("--gemm", default="nvjet")
    ap.add_argument("--optimizer", default="Foreach")
    a = ap.parse_args()
    ms = lambda ns: f"{ns / 1e6:7.2f}"
    print(f"# medians per step, ms (scripts/trace_step_parts.py; marks '{a.mark}', first {a.skip} left out)")
    print(f"# {'file':40s} steps    step    body    busy    idle    late    gemm   other  copies    tail     opt"
          "  side kernels  alone")
    for path in a.records:
        n, m, has_api = parts(path, a)
        late = ms(m["late"]) if has_api else f"{'-':>7s}"
        print(f"  {path[-40:]:40s} {n:5d} {ms(m['step'])} {ms(m['body'])} {ms(m['busy'])} {ms(m['idle'])} {late} "
              f"{ms(m['gemm'])} {ms(m['other'])} {ms(m['copies'])} {ms(m['tail'])} {ms(m['optimizer'])} "
              f"{m['side_n']:5.0f} {ms(m['side'])} {ms(m['side_alone'])}")


if __name__ == "__main__":
    main()
