#!/usr/bin/env python3
"""CPU tests of scripts/overlap_report.py (synthetic sessions with hand-computed answers) and of
scripts/overlap_session.sh end to end with stand-ins for torchrun and corun (no GPU)."""
import json
import os
import stat
import subprocess
import sys
import tempfile
import textwrap
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
REPORT = os.path.join(ROOT, "scripts", "overlap_report.py")
SESSION = os.path.join(ROOT, "scripts", "overlap_session.sh")
STEPS = 19

# Per step, ms: the breakdown of each variant's trace and its plain step median.
#   no_sync   S = 21.0 + 0.1 + 1.4 = 22.5        plain 22.0
#   noop_hook S = 24.0 + 0.1 + 2.4 = 26.5        plain 26.0  -> bucket work 4.0 (plain 4.0)
#   stock     S = 12 + 15 + 3.1 + 2.9 = 33.0     plain 32.2  -> D = 10.2
#     exposed comm 3.1 - 0.1 = 3.0; compute slowdown 27 - 24 = 3.0 (same GEMMs +2.0, the bucket
#     kernel differs by name: +1.0); idle 2.9 - 2.4 = 0.5; sum 10.5; residual -0.3; check +2.94%
#   priority  S = 12 + 16 + 4.1 + 2.9 = 35.0     plain 33.0  -> D = 11.0; sum 12.5; check +13.6%
VARIANTS = {
    "no_sync": dict(co=21.0, both=0.0, mo=0.1, idle=1.4, plain=22.0,
                    kernels=[("gemm", "132,1,1/384,1,1", 50, 18.0)]),
    "noop_hook": dict(co=24.0, both=0.0, mo=0.1, idle=2.4, plain=26.0,
                      kernels=[("gemm", "132,1,1/384,1,1", 50, 18.0), ("copy_kernel", "320,1,1/512,1,1", 70, 3.0)]),
    "stock": dict(co=12.0, both=15.0, mo=3.1, idle=2.9, plain=32.2,
                  kernels=[("gemm", "132,1,1/384,1,1", 50, 20.0), ("mul_kernel", "320,1,1/512,1,1", 70, 4.0)]),
    "priority": dict(co=12.0, both=16.0, mo=4.1, idle=2.9, plain=33.0,
                     kernels=[("gemm", "132,1,1/384,1,1", 50, 21.0), ("mul_kernel", "320,1,1/512,1,1", 70, 4.0)]),
}
MODE = {"no_sync": "no_sync", "noop_hook": "noop_hook"}


def summary(v, steps=STEPS, lanes=2):
    x = VARIANTS[v]
    s = x["co"] + x["both"] + x["mo"] + x["idle"]
    out = {"meta": {"steps": "kernel:DistributionRandomKernel", "skip_steps": 10, "notes": []},
           "files": [{"path": f"d/corun_trace.r{r}.p1.jsonl", "dropped": 0} for r in range(lanes)], "lanes": []}
    for r in range(lanes):
        out["lanes"].append({
            "label": f"r{r}", "rank": r, "steps": steps, "window_ms": s * steps, "step_median_ms": s - 0.1,
            "breakdown_ms": {"compute_only": x["co"] * steps, "both": x["both"] * steps,
                             "comm_only": x["mo"] * steps, "idle": x["idle"] * steps},
            "dtod_copy_ms": 1.5 * steps, "coll_launches": 34 * steps, "coll_wait_ms": 4.0 * steps,
            "coll_wait_behind_compute_ms": 3.5 * steps, "compute_extra_ms": -4.0 * steps, "comm_extra_ms": 0.0,
            "kernels": [{"name": n, "grid": g, "comm": False, "count": c * steps, "total_ms": t * steps}
                        for n, g, c, t in x["kernels"]] +
                       [{"name": "ncclDevKernel_AllReduce_Sum_bf16_RING_LL", "grid": "24,1,1/544,1,1", "comm": True,
                         "count": 34 * steps, "total_ms": (x["both"] + x["mo"]) * steps}],
            "blockers": [{"name": "gemm", "ms": 3.5 * steps}] if x["mo"] > 1 else [],
            "verdict": "largest loss ...",
        })
    return out


def program_summary(v, mode, world=2, median=None):
    m = VARIANTS[v]["plain"] if median is None else median
    return {"variant": v, "mode": mode, "world": world, "card": "NVIDIA H200", "torch": "2.11.0", "nccl": "2.28.9",
            "cuda": "13.0", "date": "2026-11-27T00:00:00Z", "model": {"d": 4096},
            "step_ms": {"median": m, "min": m - 0.3, "max": m + 0.5, "all": [m - 0.1, m, m, m + 0.1, m + 0.5]}}


def read_text(path):
    with open(path) as f:
        return f.read()


def read_json(path):
    return json.loads(read_text(path))


def write(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f)


def make_session(d, skip=(), manifest=True):
    rows = []
    for v in VARIANTS:
        mode = MODE.get(v, "stock")
        pol = "" if v in ("stock", "no_sync", "noop_hook") else v
        rows.append(f"{v}\t{v}\t{mode}\t{pol}")
        write(os.path.join(d, f"plain_{v}.r1.json"), program_summary(v, mode))
        if ("trace", v) not in skip:
            write(os.path.join(d, f"trace_{v}", "summary.json"), summary(v))
            write(os.path.join(d, f"traced_{v}.json"), program_summary(v, mode, median=VARIANTS[v]["plain"] + 0.3))
    if manifest:
        with open(os.path.join(d, "variants.tsv"), "w") as f:
            f.write("\n".join(rows) + "\n")


def run_report(*args):
    return subprocess.run([sys.executable, REPORT, *args], capture_output=True, text=True)


class Report(unittest.TestCase):
    def report(self, d):
        out = os.path.join(d, "r.json")
        r = run_report(d, "--json", out, "--md", os.path.join(d, "r.md"))
        self.assertEqual(r.returncode, 0, r.stderr)
        return read_json(out), read_text(os.path.join(d, "r.md"))

    def test_known_decomposition(self):
        with tempfile.TemporaryDirectory() as d:
            make_session(d)
            j, md = self.report(d)
            g = j["worlds"]["2"]
            dec = {x["variant"]: x for x in g["decomposition"]}
            self.assertEqual(sorted(dec), ["priority", "stock"])
            s = dec["stock"]
            c = s["causes_ms"]
            self.assertAlmostEqual(s["measured_ms"], 10.2, places=9)
            self.assertAlmostEqual(c["ddp_bucket_work"], 4.0, places=9)
            self.assertAlmostEqual(s["ddp_bucket_work_plain_ms"], 4.0, places=9)
            self.assertAlmostEqual(c["exposed_communication"], 3.0, places=9)
            self.assertAlmostEqual(c["compute_slowdown"], 3.0, places=9)
            self.assertAlmostEqual(c["idle_launch_gaps"], 0.5, places=9)
            self.assertAlmostEqual(s["causes_sum_ms"], 10.5, places=9)
            self.assertAlmostEqual(s["residual_ms"], -0.3, places=9)
            self.assertAlmostEqual(s["check_pct"], 100 * 0.3 / 10.2, places=9)
            self.assertTrue(s["within_target"])
            self.assertEqual(s["not_measured"], [])
            self.assertAlmostEqual(s["comm_cost_plain_ms"], 6.2, places=9)
            self.assertIn("stock − noop_hook (plain) 6.20 vs trace 6.50", md)
            # The GEMM is matched by name and shape (+2.0); the bucket kernel is not (mul vs copy).
            self.assertAlmostEqual(s["compute_slowdown_parts"]["same_kernels"], 2.0, places=9)
            self.assertEqual(s["compute_slowdown_parts"]["same_kernels_n"], 1)
            self.assertAlmostEqual(s["compute_slowdown_parts"]["other"], 1.0, places=9)
            p = dec["priority"]
            self.assertAlmostEqual(p["measured_ms"], 11.0, places=9)
            self.assertAlmostEqual(p["causes_sum_ms"], 12.5, places=9)
            self.assertFalse(p["within_target"])  # +13.6%: outside the target, and said so
            v = {x["name"]: x for x in g["variants"]}
            self.assertAlmostEqual(v["stock"]["trace"]["step_mean"], 33.0, places=9)
            self.assertAlmostEqual(v["stock"]["trace"]["comm_busy"], 18.1, places=9)
            self.assertAlmostEqual(v["stock"]["traced_program_median"], 32.5, places=9)
            for text in ("| stock | 32.20 |", "| stock | 10.20 | 4.00 | 3.00 | 3.00 | 0.50 | 10.50 | -0.30 | +2.9 ✓ |",
                         "+13.6 ✗", "not used"):
                self.assertIn(text, md)

    def test_missing_noop_trace_is_not_measured(self):
        with tempfile.TemporaryDirectory() as d:
            make_session(d, skip={("trace", "noop_hook")})
            j, md = self.report(d)
            s = {x["variant"]: x for x in j["worlds"]["2"]["decomposition"]}["stock"]
            self.assertIsNone(s["causes_ms"]["ddp_bucket_work"])
            self.assertIn("ddp_bucket_work", s["not_measured"])
            # The others fall back to no_sync and then hold the bucket work: 33.0 - 22.5 in all.
            self.assertAlmostEqual(s["causes_sum_ms"], 10.5, places=9)
            self.assertIn("not measured", md)
            self.assertTrue(any("noop_hook" in n for n in s["notes"]))

    def test_failed_run_and_unmarked_trace(self):
        with tempfile.TemporaryDirectory() as d:
            make_session(d)
            os.remove(os.path.join(d, "plain_priority.r1.json"))
            with open(os.path.join(d, "plain_priority.r1.txt"), "w") as f:
                f.write("W1127 noise\ncorun: ce is not in the interposer yet\n")
            nosteps = summary("priority")
            for l in nosteps["lanes"]:
                l["steps"] = 0
            write(os.path.join(d, "trace_priority", "summary.json"), nosteps)
            j, md = self.report(d)
            v = {x["name"]: x for x in j["worlds"]["2"]["variants"]}["priority"]
            self.assertIsNone(v["plain"])
            self.assertEqual(v["plain_failed"], ["corun: ce is not in the interposer yet"])
            self.assertIn("no steps marked", v["trace_missing"])
            self.assertIn("failed: corun: ce is not in the interposer yet", md)
            p = {x["variant"]: x for x in j["worlds"]["2"]["decomposition"]}["priority"]
            self.assertIsNone(p["measured_ms"])
            self.assertIsNone(p["check_pct"])

    def test_without_manifest_and_two_reps(self):
        with tempfile.TemporaryDirectory() as d:
            make_session(d, manifest=False)
            write(os.path.join(d, "plain_stock.r2.json"), program_summary("stock", "stock", median=33.2))
            j, _ = self.report(d)
            v = {x["name"]: x for x in j["worlds"]["2"]["variants"]}
            self.assertEqual(v["stock"]["plain"]["rep_medians"], [32.2, 33.2])
            self.assertAlmostEqual(v["stock"]["plain"]["median"], 32.7, places=9)
            self.assertEqual(v["no_sync"]["mode"], "no_sync")

    def test_bad_input(self):
        r = run_report("/nonexistent/overlap")
        self.assertEqual(r.returncode, 2)
        self.assertEqual(r.stderr.strip(), "overlap_report.py: no such folder: /nonexistent/overlap")
        with tempfile.TemporaryDirectory() as d:
            r = run_report(d)
            self.assertEqual(r.returncode, 2)
            self.assertIn("no runs in", r.stderr)


FAKE_TORCHRUN = """\
#!/usr/bin/env python3
# Stand-in for torchrun + examples/ddp_gpt.py: writes the program's summary for --mode/--variant.
import json, os, sys
a = sys.argv
get = lambda k: a[a.index(k) + 1]
data = json.load(open(os.environ["FAKE_DATA"]))
v = get("--variant")
p = data["program"][v]
json.dump(p, open(get("--out"), "w"))
print(f"[{v}/{get('--mode')}] world 2: step median {p['step_ms']['median']:.2f} ms")
"""

FAKE_CORUN = """\
#!/usr/bin/env python3
# Stand-in for corun: --version, -p POLICY -- CMD, trace [-p P] -o DIR ... -- CMD.
import json, os, subprocess, sys
a = sys.argv[1:]
if a == ["--version"]:
    print("corun 0.0-fake"); sys.exit(0)
dash = a.index("--")
opts, cmd = a[:dash], a[dash + 1:]
if "-p" in opts and opts[opts.index("-p") + 1] == "ce":
    print("corun: ce (copy-engine collectives) is not in the interposer yet", file=sys.stderr); sys.exit(2)
rc = subprocess.call(cmd)
if opts and opts[0] == "trace":
    d = opts[opts.index("-o") + 1]
    os.makedirs(d, exist_ok=True)
    v = cmd[cmd.index("--variant") + 1]
    json.dump(json.load(open(os.environ["FAKE_DATA"]))["trace"][v], open(os.path.join(d, "summary.json"), "w"))
    print("  r0  fake table", file=sys.stderr)
sys.exit(rc)
"""


class Session(unittest.TestCase):
    def test_session_end_to_end_with_stand_ins(self):
        with tempfile.TemporaryDirectory() as d:
            build = os.path.join(d, "build")
            os.makedirs(build)
            for path, text in ((os.path.join(build, "corun"), FAKE_CORUN), (os.path.join(d, "torchrun"), FAKE_TORCHRUN)):
                with open(path, "w") as f:
                    f.write(textwrap.dedent(text))
                os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
            data = {"program": {v: program_summary(v, MODE.get(v, "stock")) for v in VARIANTS},
                    "trace": {v: summary(v) for v in VARIANTS}}
            write(os.path.join(d, "data.json"), data)
            out = os.path.join(d, "out")
            env = dict(os.environ, BUILD_DIR=build, TORCHRUN=os.path.join(d, "torchrun"), NGPU="2",
                       FAKE_DATA=os.path.join(d, "data.json"), OVERLAP_POLICIES="priority ce", OVERLAP_REPS="2",
                       OVERLAP_TIMEOUT="30")
            r = subprocess.run(["bash", SESSION, out], capture_output=True, text=True, env=env, timeout=120)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            files = sorted(os.listdir(out))
            self.assertLessEqual(len(files), 8, files)
            for f in ("overlap_session.tgz", "session.log", "overlap_report.md", "overlap_report.json"):
                self.assertIn(f, files)
            j = read_json(os.path.join(out, "overlap_report.json"))
            g = j["worlds"]["2"]
            dec = {x["variant"]: x for x in g["decomposition"]}
            self.assertAlmostEqual(dec["stock"]["check_pct"], 100 * 0.3 / 10.2, places=6)
            v = {x["name"]: x for x in g["variants"]}
            self.assertEqual(v["stock"]["plain"]["rep_medians"], [32.2, 32.2])
            self.assertIsNone(v["ce"]["plain"])
            self.assertIn("not in the interposer", v["ce"]["plain_failed"][0])
            self.assertIn("not in the interposer", v["ce"]["trace_missing"])
            listing = subprocess.run(["tar", "tzf", os.path.join(out, "overlap_session.tgz")], capture_output=True,
                                     text=True).stdout.split()
            for f in ("w/variants.tsv", "w/plain_no_sync.r2.json", "w/trace_stock/summary.json", "w/traced_noop_hook.txt"):
                self.assertIn(f, listing)
            log = read_text(os.path.join(out, "session.log"))
            self.assertIn("## traced priority: exit 0", log)
            self.assertIn("## plain ce r1: exit 2", log)


if __name__ == "__main__":
    unittest.main(verbosity=2)
