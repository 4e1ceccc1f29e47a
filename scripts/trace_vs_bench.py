#!/usr/bin/env python3
"""Check a `corun trace` of `corun bench` against the bench's own CUDA-event timings.

  scripts/trace_vs_bench.py TRACE_DIR BENCH.json

Every bench repetition runs compute alone, communication alone, then both together. From the
records, per GPU and per policy: T_c = median duration of the GEMM kernel with no collective
beside it, T_m = median duration of the workload's collective kernel with no GEMM beside it,
T = median length of the busy periods that hold both (a together-step: first kernel start to last
kernel end). Policies are told apart by the collective's stream (priority uses its own
high-priority stream) and, for the GEMM, by the time span of that policy's together-steps. All
sustained and timed cycles count (the bench runs the same cycle in both). The bench reports the
rank maximum per repetition; the trace side takes the maximum over GPUs of the medians.
"""
import json
import statistics
import sys
from collections import defaultdict


def load(path):
    names, acts = {}, []
    for line in open(path):
        try:
            j = json.loads(line)
        except ValueError:
            break
        t = j.get("t")
        if t == "n":
            names[j["i"]] = j["s"]
        elif t == "k":
            acts.append((j["s"], j["e"], j["d"], j["q"], names.get(j["n"], "?")))
    return acts


def main():
    tdir, bench_json = sys.argv[1:3]
    import glob
    acts = []
    for p in glob.glob(f"{tdir}/corun_trace.*.jsonl"):
        acts += load(p)
    bench = json.load(open(bench_json))
    runs = [r for r in bench["runs"] if r["status"] == "ok"]
    coll = runs[0]["workload"]["collective"]
    dt = runs[0]["workload"].get("dtype", "bf16")
    # NCCL kernel of the workload: e.g. ncclDevKernel_AllReduce_Sum_bf16_* (the barrier is Max_i32).
    want = {"allreduce": "AllReduce_Sum_", "allgather": "AllGather", "reducescatter": "ReduceScatter_Sum_",
            "alltoall": "SendRecv"}[coll]
    is_coll = lambda n: "ncclDevKernel" in n and want in n and (coll in ("allgather", "alltoall") or dt in n)
    is_gemm = lambda n: "nccl" not in n and ("Gemm" in n or "gemm" in n) and "Fill" not in n and "Gather" not in n
    out = {"policies": []}
    per_dev = defaultdict(list)
    for a in sorted(acts):
        per_dev[a[2]].append(a)
    rows = defaultdict(dict)
    for dev, v in per_dev.items():
        G = [a for a in v if is_gemm(a[4])]
        M = [a for a in v if is_coll(a[4])]
        def overl(a, others):
            return any(o[0] < a[1] and o[1] > a[0] for o in others)
        # Together-steps: a GEMM and a collective overlapping; period = union of the pair.
        by_stream = defaultdict(list)
        gi = 0
        for m in M:
            g = [x for x in G if x[0] < m[1] and x[1] > m[0]]
            if g:
                s = min([m[0]] + [x[0] for x in g]); e = max([m[1]] + [x[1] for x in g])
                by_stream[m[3]].append(("T", s, e))
            else:
                by_stream[m[3]].append(("M", m[0], m[1]))
        # Policies in the order the bench ran them = streams by first appearance of a together-step.
        streams = sorted(by_stream, key=lambda q: min(x[1] for x in by_stream[q]))
        for i, q in enumerate(streams):
            T = [e - s for k, s, e in by_stream[q] if k == "T"]
            Mt = [e - s for k, s, e in by_stream[q] if k == "M"]
            lo = min(x[1] for x in by_stream[q]); hi = max(x[2] for x in by_stream[q])
            C = [a[1] - a[0] for a in G if lo <= a[0] <= hi and not overl(a, M)]
            rows[i][dev] = {"stream": q, "T_c": statistics.median(C) / 1e6 if C else None,
                            "T_m": statistics.median(Mt) / 1e6 if Mt else None,
                            "T": statistics.median(T) / 1e6 if T else None, "n_T": len(T)}
    ok = True
    print(f"# {'policy':<12} {'':>3} {'bench ms':>9} {'trace ms':>9} {'diff %':>7}")
    for i, r in enumerate(runs):
        if i not in rows:
            print(f"# {r['policy']}: no together-steps found in the trace"); ok = False; continue
        ent = {"policy": r["policy"], "per_gpu": rows[i]}
        for key, bk in (("T_c", "t_comp"), ("T_m", "t_comm"), ("T", "t_total")):
            vals = [d[key] for d in rows[i].values() if d[key] is not None]
            tr = max(vals) if vals else float("nan")
            b = r[bk]["median"]
            diff = 100 * (tr - b) / b
            ent[key] = {"bench_ms": b, "trace_ms": tr, "diff_pct": diff}
            ok &= abs(diff) <= 5
            print(f"  {r['policy']:<12} {key:>3} {b:9.3f} {tr:9.3f} {diff:+7.2f}")
        out["policies"].append(ent)
    out["within_5pct"] = ok
    print(json.dumps(out))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
