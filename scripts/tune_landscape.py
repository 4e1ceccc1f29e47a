#!/usr/bin/env python3
"""Turns a `corun tune --sweep` JSON into a landscape fixture for the search's replay test
(tests/cpu/test_tune_replay.cpp): per workload, the facts the search space is built from and every
measured step time of every policy (search and sweep runs pooled, so the spread between separate
runs of one policy is in the data).

usage: scripts/tune_landscape.py TUNE_JSON [TUNE_JSON ...] > tests/fixtures/tune_landscapes_X.json
"""
import collections
import json
import sys


def main(paths):
    out = {"sources": [], "workloads": []}
    for path in paths:
        d = json.load(open(path))
        m = d["meta"]
        out["sources"].append({"file": path, "card": m["card"], "gpus": m["gpus"], "nccl": m["nccl"],
                               "cuda": m["cuda"], "date": m["date"], "sustain_s": m["sustain_s"]})
        by = collections.OrderedDict()
        for r in d["runs"]:
            w = r["workload"]
            key = f'{w["compute"]} {"x".join(map(str, w["gemm"]))} + {w["collective"]} {w["bytes"]} B'
            wl = by.setdefault(key, {"name": key, "card": m["card"], "gpus": m["gpus"],
                                     "own_gemm": w["compute"] != "cublaslt", "num_sms": m["sms"],
                                     "natural_blocks": 0, "nccl_ctas": 0, "policies": {}})
            if r["status"] != "ok":
                continue
            if r["policy"] == "overlap":
                wl["natural_blocks"] = r["blocks_per_sm"]
                wl["nccl_ctas"] = r["comm_ctas"]
            wl["policies"].setdefault(r["policy"], []).extend(round(x, 4) for x in r["t_total_samples"])
        out["workloads"].extend(by.values())
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
