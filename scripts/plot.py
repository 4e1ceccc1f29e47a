#!/usr/bin/env python3
"""Turn `corun bench --json` output into PNGs.

  scripts/plot.py RESULT.json [-o OUTDIR]

Writes, per input file:
  <stem>_total.png     bars of the total step time per policy, one panel per workload, with the
                       min-max spread of the repetitions and the sequential / ideal lines;
  <stem>_timeline.png  per-stream finish times inside the overlapped step (compute and
                       communication bars from the common start), one panel per workload.
"""
import argparse
import json
import math
import os
import sys


def workload_key(r):
    w = r["workload"]
    g = "x".join(str(v) for v in w["gemm"])
    size = w["bytes"] / 2**20
    return f'{w["compute"]} {g} + {w["collective"]} {w.get("dtype", "")} {size:.0f} MiB'


def load(path):
    with open(path) as f:
        doc = json.load(f)
    groups = {}
    for r in doc["runs"]:
        if r.get("status") not in ("ok", "wrong"):
            continue
        groups.setdefault(workload_key(r), []).append(r)
    return doc["meta"], groups


def title(meta):
    return (f'{meta["gpus"]} x {meta["card"]}, NCCL {meta["nccl"]}, CUDA {meta["cuda"]}, '
            f'{meta.get("process_model", "")}, {meta["date"][:10]}')


def panels(plt, n):
    """One panel per workload, two columns."""
    cols = 2 if n > 1 else 1
    rows = math.ceil(n / cols)
    return plt.subplots(rows, cols, figsize=(8 * cols, 0.32 * 18 * rows + 1.5), squeeze=False)


def plot_totals(plt, meta, groups, out):
    fig, axes = panels(plt, len(groups))
    for ax, (key, runs) in zip(axes.flat, groups.items()):
        names = [r["policy"] for r in runs]
        med = [r["t_total"]["median"] for r in runs]
        lo = [r["t_total"]["median"] - r["t_total"]["min"] for r in runs]
        hi = [r["t_total"]["max"] - r["t_total"]["median"] for r in runs]
        seq = next((r["t_total"]["median"] for r in runs if r["policy"] == "sequential"), None)
        colors = ["#888888" if p in ("sequential", "overlap") else
                  "#d95f02" if "shape" in p and "priority" in p else
                  "#1b9e77" if "priority" in p else "#7570b3" for p in names]
        ax.barh(range(len(names)), med, xerr=[lo, hi], color=colors, capsize=2)
        ax.set_yticks(range(len(names)))
        ax.set_yticklabels(names, fontsize=8)
        ax.invert_yaxis()
        if seq:
            ax.axvline(seq, color="k", lw=0.8, ls="--", label="sequential")
        ideal = next((max(r["t_comp"]["median"], r["t_comm"]["median"]) for r in runs if r["policy"] == "overlap"), None)
        if ideal:
            ax.axvline(ideal, color="g", lw=0.8, ls=":", label="max(T_c, T_m) of overlap")
        ax.set_xlabel("step time, median of repetitions (ms); whiskers: min-max")
        ax.set_title(key, fontsize=9)
        ax.legend(fontsize=7, loc="lower right")
    for ax in list(axes.flat)[len(groups):]:
        ax.axis("off")
    fig.suptitle(title(meta), fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_timelines(plt, meta, groups, out):
    fig, axes = panels(plt, len(groups))
    for ax, (key, runs) in zip(axes.flat, groups.items()):
        for i, r in enumerate(runs):
            ce = r["t_comp_end"]["median"]
            me = r["t_comm_end"]["median"]
            if r["policy"] == "sequential":
                ax.barh(i - 0.18, ce, height=0.34, color="#4477aa")
                ax.barh(i + 0.18, me - ce, left=ce, height=0.34, color="#ee6677")
            else:
                ax.barh(i - 0.18, ce, height=0.34, color="#4477aa")
                ax.barh(i + 0.18, me, height=0.34, color="#ee6677")
        ax.set_yticks(range(len(runs)))
        ax.set_yticklabels([r["policy"] for r in runs], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("ms from the step's start: compute (blue) and communication (red) finish")
        ax.set_title(key, fontsize=9)
    for ax in list(axes.flat)[len(groups):]:
        ax.axis("off")
    fig.suptitle("per-stream timelines: " + title(meta), fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", nargs="+", help="files written by corun bench --json")
    ap.add_argument("-o", "--outdir", help="folder for the PNGs (default: beside each input)")
    args = ap.parse_args()
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("plot.py: matplotlib is not installed (pip install matplotlib)")
    for path in args.json:
        try:
            meta, groups = load(path)
        except (OSError, ValueError, KeyError) as e:
            sys.exit(f"plot.py: cannot read {path}: {e}")
        if not groups:
            sys.exit(f"plot.py: {path} holds no successful runs")
        outdir = args.outdir or os.path.dirname(os.path.abspath(path))
        os.makedirs(outdir, exist_ok=True)
        stem = os.path.splitext(os.path.basename(path))[0]
        plot_totals(plt, meta, groups, os.path.join(outdir, stem + "_total.png"))
        plot_timelines(plt, meta, groups, os.path.join(outdir, stem + "_timeline.png"))
        print(f"plot.py: wrote {stem}_total.png and {stem}_timeline.png in {outdir}")


if __name__ == "__main__":
    main()
