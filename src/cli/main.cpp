// corun: the command. Subcommands: bench (policies side by side), info (what the GPUs offer).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>
#include <vector>

#include "../bench/bench.h"
#include "corun/launch_rules.h"
#include "corun/parse.h"
#include "corun/version.h"

namespace corun {
int RunInfo(bool json);
int RunLauncher(int argc, char** argv, int dash);
int RunTuneApp(int argc, char** argv, int dash);
int RunTraceApp(int argc, char** argv, int dash);
}


int main(int argc, char** argv) {
  // "corun [options] -- CMD": the launcher, unless a subcommand comes first.
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "bench" || a == "info" || a == "tune" || a == "trace") break;
    if (a == "--") return corun::RunLauncher(argc, argv, i);
  }
  // "corun trace [options] -- CMD" / "corun trace --analyze DIR": trace an application.
  if (argc > 1 && std::string(argv[1]) == "trace") {
    int dash = -1;
    for (int i = 2; i < argc && dash < 0; ++i)
      if (std::string(argv[i]) == "--") dash = i;
    return corun::RunTraceApp(argc, argv, dash);
  }
  // "corun tune [options] -- CMD": tune an application.
  if (argc > 1 && std::string(argv[1]) == "tune")
    for (int i = 2; i < argc; ++i)
      if (std::string(argv[i]) == "--") return corun::RunTuneApp(argc, argv, i);
  CLI::App app{"corun: computation-communication overlap for multi-GPU work (occupancy shaping + priority)"};
  app.set_version_flag("--version", std::string("corun ") + CORUN_VERSION);
  app.require_subcommand(1);
  app.footer("Wrap a program: corun [-p POLICY] [-v] [--dry-run] [--report FILE] -- CMD [ARGS...]\n"
             "  (corun -p priority -- torchrun --nproc_per_node=8 train.py; see 'corun --policy x -- true' for errors)");

  corun::BenchOptions o;
  std::string minb = "896M", maxb, stepbytes, computes = "tiled64x64x64,cublaslt",
              gemms = "8192x8192x8192,8192x57344x8192", colls = "allreduce";
  double factor = 2.0;
  bool no_probe = false;
  // The workload flags, shared by bench and tune (nccl-tests style where nccl-tests has them).
  auto add_workload_flags = [&](CLI::App* sub) {
    sub->add_option("-b,--minbytes", minb, "smallest collective size (nccl-tests convention)")->capture_default_str();
    sub->add_option("-e,--maxbytes", maxb, "largest collective size (default: = -b)");
    sub->add_option("-f,--stepfactor", factor, "multiplicative step between sizes")->capture_default_str();
    sub->add_option("-i,--stepbytes", stepbytes, "additive step between sizes (instead of -f)");
    sub->add_option("-n,--iters", o.reps, "timed repetitions per (workload, policy)")->capture_default_str();
    sub->add_option("-w,--warmup_iters", o.warmup, "warm-up repetitions")->capture_default_str();
    sub->add_option("-g,--ngpus", o.ngpus, "GPUs in single-process mode (0: all visible)")->capture_default_str();
    sub->add_option("-d,--datatype", o.dtype, "collective data type: bf16, fp32")->capture_default_str();
    sub->add_option("-o,--collectives", colls, "allreduce,allgather,reducescatter,alltoall")->capture_default_str();
    sub->add_option("--compute", computes, "compute kernels: tiled64x64x32, tiled64x64x64, cublaslt")->capture_default_str();
    sub->add_option("--gemm", gemms, "GEMM shapes MxNxK, comma-separated")->capture_default_str();
    sub->add_option("--gemms", o.gemms_per_step, "GEMMs per step")->capture_default_str();
    sub->add_option("--sustain", o.sustain_s, "seconds each (workload, policy) runs before timing")->capture_default_str();
    sub->add_option("--watchdog", o.watchdog_s, "abort NCCL and exit 3 after this many seconds without progress (0: off)")
        ->capture_default_str();
    sub->add_option("--samples", o.gemm_samples, "GEMM outputs checked against the host reference per run")
        ->capture_default_str();
    sub->add_flag("--no-probe", no_probe, "do not learn the NCCL kernel's footprint from a captured call");
    sub->add_option("--json", o.json_path, "write the results as JSON")->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    sub->add_option("--cache", o.cache_path, "profile cache (default $CORUN_CACHE or ~/.cache/corun/profiles.json)");
  };
  auto* bench = app.add_subcommand("bench",
                                   "Run compute + communication workloads under every policy side by side, "
                                   "check every result, print a table (and --json)");
  add_workload_flags(bench);
  bench->add_option("-p,--policies", o.policies,
                    "comma-separated: all, tuned, sequential, overlap, priority, shape:K|NK|auto[+priority], "
                    "smtarget:N|auto, ncclctas:N, greenctx:N, maxconn1")
      ->capture_default_str()
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  bench->add_option("--max-caps", o.max_shape_caps, "explicit shape:K caps 'all' tries (K = 1..N)")->capture_default_str();
  bench->add_flag("--child-maxconn1", o.child_maxconn1, "internal")->group("");
  bench->add_option("--probe-only", o.probe_only, "internal")->group("");
  // Tune's own flags are accepted (and ignored) so that its helper processes can run as bench.
  double ignored_budget = 0;
  bool ignored_sweep = false;
  bench->add_option("--budget", ignored_budget, "internal")->group("");
  bench->add_flag("--sweep", ignored_sweep, "internal")->group("");

  auto* tune = app.add_subcommand("tune",
                                  "Find the best policy for each workload (model guess + local search), cache it "
                                  "for --policies tuned; 'corun tune [opts] -- CMD' tunes an application");
  add_workload_flags(tune);
  tune->add_option("--budget", o.tune_budget, "trial budget as a fraction of an exhaustive sweep's trials")
      ->capture_default_str();
  tune->add_flag("--sweep", o.tune_sweep, "also run the exhaustive sweep in the same process and compare");
  bool info_json = false;
  auto* info = app.add_subcommand("info", "Print GPUs, SM limits, stream-priority range, NCCL/CUDA versions and the "
                                          "occupancy of corun's kernels");
  info->add_flag("--json", info_json, "JSON instead of text");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  if (*info) return corun::RunInfo(info_json);

  // bench / tune
  o.tune = static_cast<bool>(*tune);
  if (o.tune) o.policies = "overlap";  // unused by the search; keeps validation simple
  for (int i = 2; i < argc; ++i) o.argv.push_back(argv[i]);
  for (int i = 0; i < argc; ++i) o.command_line += (i ? " " : "") + std::string(argv[i]);
  o.probe_comm = !no_probe;
  o.computes = corun::SplitPatterns(computes);
  o.collectives = corun::SplitPatterns(colls);
  corun::Status s = corun::ParseGemmList(gemms, &o.gemms);
  uint64_t b = 0, e = 0, inc = 0;
  if (s.ok()) s = corun::ParseSize(minb, &b);
  if (s.ok()) s = maxb.empty() ? (e = b, corun::Status::Ok()) : corun::ParseSize(maxb, &e);
  if (s.ok() && !stepbytes.empty()) s = corun::ParseSize(stepbytes, &inc);
  if (s.ok()) s = corun::SizeSweep(b, e, factor, inc, 1024, &o.sizes);
  if (!s.ok()) {
    std::fprintf(stderr, "corun bench: %s\n", s.message().c_str());
    return 2;
  }
  return corun::RunBench(o);
}
