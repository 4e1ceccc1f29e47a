#!/usr/bin/env python3
"""Where the DDP example's exposed communication goes: reads the runs of scripts/overlap_session.sh
(plain step timings and `corun trace` summaries of examples/ddp_gpt.py in several variants) and
decomposes each variant's step time minus no_sync's into named causes.

  scripts/overlap_report.py DIR [DIR...] [--md FILE] [--json FILE] [--target 10]

DIR is the OUT of a session (or its w/ folder) and holds:
  variants.tsv              one line per variant: slug, name, mode (stock|no_sync|noop_hook), policy
  plain_SLUG.rK.json        examples/ddp_gpt.py's summary of plain run K (CUDA-event step times)
  plain_SLUG.rK.txt         its log (the reason when it failed)
  traced_SLUG.json          the program's own summary of its run under corun trace
  trace_SLUG/summary.json   corun trace's summary, steps cut at each step's torch.randint kernel

Method (per step; trace numbers are per-lane means over the traced steps, averaged over ranks):
  S = window / steps = compute_only + both + comm_only + idle   (the traced step, mean)
  K = compute_only + both: the program's GPU work (kernels, memsets, D2D copies) busy time
  measured difference D = plain step median (variant) - plain step median (no_sync)
  causes, all from the traces:
    DDP bucket work           S(noop_hook) - S(no_sync): bucket copies and bookkeeping gaps, no
                              communication (cross-checked against the plain runs' difference)
    exposed communication     comm_only(variant) - comm_only(noop_hook): collectives running with
                              no program work beside them (the per-step 1-float allreduces, in
                              every variant, cancel)
    compute slowdown          K(variant) - K(noop_hook): the same program work takes longer beside
                              communication (split into kernels matched by name and launch shape,
                              and the rest)
    idle / launch gaps        idle(variant) - idle(noop_hook): nothing ran on the GPU
  sum of causes = S(variant) - S(no_sync); residual = D - sum: what the trace does not explain
  (tracing's own cost, mean vs median, run-to-run noise). The check is sum / D - 1 (target 10%).
A cause whose inputs are missing is "not measured" and left out of the sum, never guessed.
"""
import argparse
import csv
import glob
import json
import os
import re
import statistics
import sys

MODES = ("stock", "no_sync", "noop_hook")


def fail(msg):
    print(f"overlap_report.py: {msg}", file=sys.stderr)
    sys.exit(2)


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def why_failed(log):
    """The last line of a run's log that says what went wrong (corun's one-liners first)."""
    try:
        lines = [l.strip() for l in open(log, errors="replace") if l.strip()]
    except OSError:
        return "no log"
    for pat in (r"^corun", r"Error|error|Terminated|timed out|Killed"):
        hits = [l for l in lines if re.search(pat, l)]
        if hits:
            return hits[-1][:200].replace("|", "/")  # it goes into a markdown table
    return lines[-1][:200].replace("|", "/") if lines else "empty log"


def read_manifest(d):
    path = os.path.join(d, "variants.tsv")
    out = []
    if os.path.exists(path):
        for row in csv.reader(open(path), delimiter="\t"):
            if not row or row[0].startswith("#"):
                continue
            slug, name, mode, policy = (row + ["", "", "", ""])[:4]
            out.append({"slug": slug, "name": name or slug, "mode": mode or "stock", "policy": policy})
        return out
    # No manifest: whatever plain runs or traces are there; the mode from the program's summary.
    slugs = set()
    for p in glob.glob(os.path.join(d, "plain_*.json")):
        m = re.match(r"plain_(.+)\.r\d+\.json$", os.path.basename(p))
        if m:
            slugs.add(m.group(1))
    for p in glob.glob(os.path.join(d, "trace_*", "summary.json")):
        slugs.add(os.path.basename(os.path.dirname(p))[len("trace_"):])
    for s in sorted(slugs):
        out.append({"slug": s, "name": s, "mode": s if s in MODES else "stock", "policy": "" if s in MODES else s})
    return out


def trace_numbers(summary):
    """Per-step numbers from a corun trace summary: means over the lanes that have steps."""
    if summary is None:
        return None, "no trace summary"
    lanes = [l for l in summary.get("lanes", []) if l.get("steps", 0) > 0]
    if not lanes:
        return None, f"no steps marked in the trace (--steps {summary.get('meta', {}).get('steps', '?')})"
    per = []
    for l in lanes:
        d = float(l["steps"])
        bd = l["breakdown_ms"]
        kern = {}
        for k in l.get("kernels", []):
            if not k.get("comm"):
                kern[k["name"] + "|" + k.get("grid", "")] = (k["count"] / d, k["total_ms"] / d)
        comm_total = sum(k["total_ms"] for k in l.get("kernels", []) if k.get("comm")) / d
        top = l.get("blockers") or []
        per.append({
            "steps": l["steps"],
            "step_mean": l["window_ms"] / d,
            "step_median": l.get("step_median_ms", 0.0),
            "compute_only": bd["compute_only"] / d,
            "both": bd["both"] / d,
            "comm_only": bd["comm_only"] / d,
            "idle": bd["idle"] / d,
            "dtod_copies": l["dtod_copy_ms"] / d if "dtod_copy_ms" in l else None,
            "coll_launches": l.get("coll_launches", 0) / d,
            "coll_wait": l.get("coll_wait_ms", 0.0) / d,
            "coll_wait_behind_compute": l.get("coll_wait_behind_compute_ms", 0.0) / d,
            "comm_kernel_time": comm_total,
            "inrun_compute_extra": l.get("compute_extra_ms", 0.0) / d,
            "inrun_comm_extra": l.get("comm_extra_ms", 0.0) / d,
            "top_blocker": {"name": top[0]["name"], "ms_per_step": top[0]["ms"] / d} if top else None,
            "verdict": l.get("verdict", ""),
            "kernels": kern,
        })
    out = {}
    for key in per[0]:
        vals = [p[key] for p in per]
        if key == "kernels":
            common = set.intersection(*(set(v) for v in vals))
            out[key] = {k: tuple(statistics.fmean(v[k][i] for v in vals) for i in (0, 1)) for k in common}
        elif key in ("top_blocker", "verdict"):
            out[key] = vals[0]
        elif any(v is None for v in vals):
            out[key] = None
        else:
            out[key] = statistics.fmean(vals)
    out["lanes"] = len(per)
    out["step_mean_spread"] = max(p["step_mean"] for p in per) - min(p["step_mean"] for p in per)
    out["compute_busy"] = out["compute_only"] + out["both"]
    out["comm_busy"] = out["comm_only"] + out["both"]
    notes = list(summary.get("meta", {}).get("notes", []))
    for f in summary.get("files", []):
        if f.get("dropped"):
            notes.append(f"{os.path.basename(f['path'])}: CUPTI dropped {f['dropped']} records")
    out["notes"] = notes
    return out, None


def load_variant(d, v):
    reps = []
    for p in sorted(glob.glob(os.path.join(d, f"plain_{v['slug']}.r*.json"))):
        j = load_json(p)
        if j and j.get("step_ms"):
            reps.append(j)
    failed = []
    for log in sorted(glob.glob(os.path.join(d, f"plain_{v['slug']}.r*.txt"))):
        if not os.path.exists(log[:-4] + ".json"):
            failed.append(why_failed(log))
    r = dict(v)
    r["plain"] = None
    if reps:
        meds = [j["step_ms"]["median"] for j in reps]
        pooled = [t for j in reps for t in j["step_ms"]["all"]]
        r["plain"] = {"median": statistics.median(meds), "rep_medians": meds, "mean": statistics.fmean(pooled),
                      "steps": len(pooled)}
        r["meta"] = {k: reps[0].get(k) for k in ("world", "card", "torch", "nccl", "cuda", "date", "model")}
        if reps[0].get("mode") and reps[0]["mode"] != v["mode"]:
            failed.append(f"the program ran mode {reps[0]['mode']}, the session meant {v['mode']}")
    r["plain_failed"] = failed
    traced = load_json(os.path.join(d, f"traced_{v['slug']}.json"))
    r["traced_program_median"] = traced["step_ms"]["median"] if traced and traced.get("step_ms") else None
    if traced and "meta" not in r:
        r["meta"] = {k: traced.get(k) for k in ("world", "card", "torch", "nccl", "cuda", "date", "model")}
    tn, why = trace_numbers(load_json(os.path.join(d, f"trace_{v['slug']}", "summary.json")))
    r["trace"] = tn
    r["trace_missing"] = why
    if tn is None and why == "no trace summary":
        log = os.path.join(d, f"traced_{v['slug']}.txt")
        if os.path.exists(log):
            r["trace_missing"] = "no trace summary: " + why_failed(log)
    world = (r.get("meta") or {}).get("world") or (tn["lanes"] if tn else None)
    r["world"] = world
    return r


def sub(a, b):
    return None if a is None or b is None else a - b


def decompose(v, ns, noop, target):
    """Variant minus no_sync in named causes (see the module's docstring)."""
    out = {"variant": v["name"], "notes": []}
    D = sub(v["plain"]["median"] if v["plain"] else None, ns["plain"]["median"] if ns and ns["plain"] else None)
    out["measured_ms"] = D
    out["measured_mean_ms"] = sub(v["plain"]["mean"] if v["plain"] else None,
                                  ns["plain"]["mean"] if ns and ns["plain"] else None)
    # The communication's own cost as the plain runs see it (what the issue calls exposed).
    out["comm_cost_plain_ms"] = sub(v["plain"]["median"] if v["plain"] else None,
                                    noop["plain"]["median"] if noop and noop["plain"] else None)
    tv, tns = v["trace"], ns["trace"] if ns else None
    tref = noop["trace"] if noop else None
    if tref is None:
        out["notes"].append("no noop_hook trace: DDP bucket work not measured, and the other causes are "
                            "measured against no_sync (they then include the bucket work)")
        tref = tns
    causes = {}
    if tns is not None and noop and noop["trace"] is not None:
        causes["ddp_bucket_work"] = noop["trace"]["step_mean"] - tns["step_mean"]
        out["ddp_bucket_work_parts"] = {
            "compute_busy": noop["trace"]["compute_busy"] - tns["compute_busy"],
            "idle": noop["trace"]["idle"] - tns["idle"],
            "comm_only": noop["trace"]["comm_only"] - tns["comm_only"],
        }
        out["ddp_bucket_work_plain_ms"] = sub(noop["plain"]["median"] if noop["plain"] else None,
                                              ns["plain"]["median"] if ns["plain"] else None)
    else:
        causes["ddp_bucket_work"] = None
    if tv is not None and tref is not None:
        causes["exposed_communication"] = tv["comm_only"] - tref["comm_only"]
        causes["compute_slowdown"] = tv["compute_busy"] - tref["compute_busy"]
        causes["idle_launch_gaps"] = tv["idle"] - tref["idle"]
        # The compute slowdown, kernel by kernel: the same name and launch shape, as often per step.
        matched = 0.0
        n = 0
        for k, (cnt, tot) in tv["kernels"].items():
            if k in tref["kernels"] and abs(tref["kernels"][k][0] - cnt) < 0.5:
                matched += tot - tref["kernels"][k][1]
                n += 1
        out["compute_slowdown_parts"] = {"same_kernels": matched, "same_kernels_n": n,
                                         "other": causes["compute_slowdown"] - matched}
        out["trace_inrun_alone_vs_beside_ms"] = tv["inrun_compute_extra"]
        out["coll_wait_behind_compute_ms"] = tv["coll_wait_behind_compute"]
    else:
        for k in ("exposed_communication", "compute_slowdown", "idle_launch_gaps"):
            causes[k] = None
        out["notes"].append("no trace of " + (v["name"] if tv is None else "the reference") +
                            f" ({v['trace_missing'] if tv is None else 'missing'}): causes not measured")
    out["causes_ms"] = causes
    known = [c for c in causes.values() if c is not None]
    out["causes_sum_ms"] = sum(known) if known else None
    out["not_measured"] = [k for k, c in causes.items() if c is None]
    out["residual_ms"] = sub(D, out["causes_sum_ms"])
    if D is not None and out["causes_sum_ms"] is not None and abs(D) >= 0.05:
        out["check_pct"] = 100.0 * (out["causes_sum_ms"] - D) / D
        out["within_target"] = abs(out["check_pct"]) <= target
    else:
        out["check_pct"] = None
        out["within_target"] = None
    return out


def fmt(x, nd=2, plus=False):
    if x is None:
        return "not measured"
    return f"{x:+.{nd}f}" if plus else f"{x:.{nd}f}"


def render(worlds, target):
    s = []
    for w, g in sorted(worlds.items()):
        m = g["meta"]
        s.append(f"## {w} GPU{'s' if w != 1 else ''}: {m.get('card')}, PyTorch {m.get('torch')}, NCCL {m.get('nccl')}, "
                 f"CUDA {m.get('cuda')}, {m.get('date')}\n")
        s.append("Per step, ms. Plain: median of the CUDA-event step times (median over repetitions); trace: "
                 "mean over the traced steps and ranks (a traced step runs from one step's torch.randint to the "
                 "next, so it also holds the per-step synchronisation outside the timed region).\n")
        s.append("| variant | plain step (median) | reps | under trace (program) | traced step (mean) | compute only "
                 "| both | comm only | idle | of compute: D2D copies | NCCL busy | coll. waits behind compute |")
        s.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for v in g["variants"]:
            t = v["trace"] or {}
            p = v["plain"]
            s.append("| " + " | ".join([
                v["name"] + (f" ({v['mode']})" if v["mode"] not in ("stock", v["name"]) else ""),
                fmt(p["median"]) if p else "failed: " + "; ".join(v["plain_failed"][:1]),
                " / ".join(f"{x:.2f}" for x in p["rep_medians"]) if p else "",
                fmt(v["traced_program_median"]),
            ] + ([fmt(t.get(k)) for k in ("step_mean", "compute_only", "both", "comm_only", "idle", "dtod_copies",
                                          "comm_busy", "coll_wait_behind_compute")] if t else
                 ["not traced: " + (v["trace_missing"] or "")] + [""] * 7)) + " |")
        s.append("")
        if g["decomposition"]:
            s.append(f"Decomposition of (variant − no_sync), ms per step; check = causes sum vs measured "
                     f"difference (target ±{target:g}%).\n")
            s.append("| variant | measured: variant − no_sync (plain medians) | DDP bucket work | exposed communication "
                     "| compute slowdown beside communication | idle / launch gaps | causes sum | residual "
                     "| causes sum vs measured (%) |")
            s.append("|---|---|---|---|---|---|---|---|---|")
            for d in g["decomposition"]:
                c = d["causes_ms"]
                ok = "" if d["within_target"] is None else (" ✓" if d["within_target"] else " ✗")
                s.append("| " + " | ".join([d["variant"], fmt(d["measured_ms"]), fmt(c["ddp_bucket_work"]),
                                            fmt(c["exposed_communication"]), fmt(c["compute_slowdown"]),
                                            fmt(c["idle_launch_gaps"]), fmt(d["causes_sum_ms"]), fmt(d["residual_ms"], plus=True),
                                            (fmt(d["check_pct"], 1, plus=True) + ok) if d["check_pct"] is not None else "n/a"])
                         + " |")
            s.append("")
            for d in g["decomposition"]:
                parts = []
                if "ddp_bucket_work_parts" in d:
                    b = d["ddp_bucket_work_parts"]
                    parts.append(f"bucket work = compute {b['compute_busy']:+.2f} + idle {b['idle']:+.2f} + comm-only "
                                 f"{b['comm_only']:+.2f} (plain runs: {fmt(d.get('ddp_bucket_work_plain_ms'))})")
                if d["comm_cost_plain_ms"] is not None and "compute_slowdown_parts" in d:
                    c = d["causes_ms"]
                    parts.append(f"{d['variant']} − noop_hook (plain) {d['comm_cost_plain_ms']:.2f} vs trace "
                                 f"{c['exposed_communication'] + c['compute_slowdown'] + c['idle_launch_gaps']:.2f} "
                                 "(exposed + slowdown + idle)")
                if "compute_slowdown_parts" in d:
                    cp = d["compute_slowdown_parts"]
                    parts.append(f"compute slowdown = same {cp['same_kernels_n']} kernels {cp['same_kernels']:+.2f} + "
                                 f"other kernels/copies {cp['other']:+.2f}")
                    parts.append(f"collectives waited behind compute {d['coll_wait_behind_compute_ms']:.2f}")
                    parts.append(f"trace's in-run alone-vs-beside sum {d['trace_inrun_alone_vs_beside_ms']:+.2f} (not used)")
                if d["not_measured"]:
                    parts.append("not measured: " + ", ".join(d["not_measured"]))
                s.append(f"- {d['variant']}: " + "; ".join(parts + d["notes"]))
            s.append("")
        for v in g["variants"]:
            t = v["trace"]
            if t and t.get("top_blocker"):
                b = t["top_blocker"]
                s.append(f"- {v['name']}: collectives waited most behind `{b['name'][:80]}` "
                         f"({b['ms_per_step']:.2f} ms/step); r0: {t['verdict']}")
            for n in (t or {}).get("notes", []):
                s.append(f"- {v['name']}: note: {n}")
        for n in g["notes"]:
            s.append(f"- note: {n}")
        s.append("")
    return "\n".join(s)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dirs", nargs="+")
    ap.add_argument("--md", help="markdown report (default: stdout only)")
    ap.add_argument("--json", help="the same as JSON")
    ap.add_argument("--target", type=float, default=10.0, help="check target, percent")
    a = ap.parse_args()
    worlds = {}
    for d in a.dirs:
        if not os.path.isdir(d):
            fail(f"no such folder: {d}")
        if os.path.isdir(os.path.join(d, "w")):
            d = os.path.join(d, "w")
        vs = read_manifest(d)
        if not vs:
            fail(f"no runs in {d} (variants.tsv, plain_*.json, trace_*/summary.json)")
        rs = [load_variant(d, v) for v in vs]
        # A variant that failed everywhere belongs to its session's GPU count.
        world = next((r["world"] for r in rs if r["world"]), 0)
        for r in rs:
            r["world"] = r["world"] or world
            g = worlds.setdefault(r["world"], {"meta": {}, "variants": [], "decomposition": [], "notes": []})
            if any(x["name"] == r["name"] for x in g["variants"]):
                g["notes"].append(f"{r['name']} appears twice; the first is used ({d})")
                continue
            g["variants"].append(r)
            if not g["meta"] and r.get("meta"):
                g["meta"] = r["meta"]
    for w, g in worlds.items():
        ns = next((v for v in g["variants"] if v["mode"] == "no_sync"), None)
        noop = next((v for v in g["variants"] if v["mode"] == "noop_hook"), None)
        if ns is None:
            g["notes"].append("no no_sync run: nothing to decompose against")
            continue
        if noop is None:
            g["notes"].append("no noop_hook run: DDP bucket work not measured")
        if ns["plain"] is None:
            g["notes"].append("the no_sync plain run failed: measured differences unknown")
        if any(v["policy"] for v in g["variants"]):
            g["notes"].append("policies are decomposed against the stock no_sync / noop_hook runs "
                              "(the policy's own effect on bucket work is inside its other causes)")
        for v in g["variants"]:
            if v["mode"] == "stock":
                g["decomposition"].append(decompose(v, ns, noop, a.target))
    md = render(worlds, a.target)
    print(md)
    if a.md:
        with open(a.md, "w") as f:
            f.write(md + "\n")
    if a.json:
        for g in worlds.values():
            for v in g["variants"]:
                if v["trace"]:
                    v["trace"] = {k: x for k, x in v["trace"].items() if k != "kernels"}
        with open(a.json, "w") as f:
            json.dump({"target_pct": a.target, "worlds": {str(k): v for k, v in worlds.items()}}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
