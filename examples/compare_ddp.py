#!/usr/bin/env python3
"""Compares DDP runs (examples/ddp_gpt.py JSON): step time against stock and the loss trajectory
against stock. Exit 1 if a run's loss leaves the tolerance.

  compare_ddp.py RUN.json... [--rtol 0.02]
"""
import argparse
import json
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--rtol", type=float, default=0.02,
                    help="largest relative loss difference from stock at any step (bf16 training; "
                         "a different GEMM algorithm or reduction order changes rounding)")
    args = ap.parse_args()
    runs = [json.load(open(p)) for p in args.runs]
    base = next((r for r in runs if r["variant"] == "stock" and r.get("mode", "stock") == "stock"), None)
    if not base:
        sys.exit("compare_ddp.py: no 'stock' run among the inputs")
    bad = 0
    print(f"# {base['world']} x {base['card']}, torch {base['torch']}, NCCL {base['nccl']}, "
          f"d={base['model']['d']} layers={base['model']['layers']} seq={base['model']['seq']} "
          f"batch={base['model']['batch']}, median of {base['steps'] - base['warmup']} steps")
    print(f"# {'variant':<24} {'step ms':>8} {'min':>8} {'max':>8} {'vs stock':>9} {'max loss rel diff':>18}")
    for r in sorted(runs, key=lambda r: r["step_ms"]["median"]):
        s = r["step_ms"]
        change = (s["median"] - base["step_ms"]["median"]) / base["step_ms"]["median"] * 100
        if r.get("mode", "stock") != "stock":
            # no_sync / noop_hook train on unreduced gradients: another trajectory by design.
            print(f"  {r['variant']:<24} {s['median']:8.2f} {s['min']:8.2f} {s['max']:8.2f} {change:+8.1f}% "
                  f"{'(mode ' + r['mode'] + ')':>18}")
            continue
        rel = max(abs(a - b) / abs(b) for a, b in zip(r["loss"], base["loss"]))
        ok = rel <= args.rtol and len(r["loss"]) == len(base["loss"])
        bad += not ok
        print(f"  {r['variant']:<24} {s['median']:8.2f} {s['min']:8.2f} {s['max']:8.2f} {change:+8.1f}% "
              f"{rel:18.2e}{'' if ok else '  LOSS MISMATCH'}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
