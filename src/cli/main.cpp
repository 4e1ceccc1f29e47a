// corun: the command. One CLI11 app: the launcher is its prefix command ("corun [options] -- CMD"),
// beside the subcommands bench, tune and info, so that `corun --help` shows every way to use it.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "../bench/bench.h"
#include "../runtime/device.h"
#include "cli.h"
#include "corun/launch_rules.h"
#include "corun/parse.h"
#include "corun/version.h"

namespace corun {

std::string Names(const CLI::Option* opt) {
  std::string n = opt->get_name(false, true);
  std::replace(n.begin(), n.end(), ',', '/');
  return n;
}

int ParseFailed(const CLI::App& app, const CLI::ParseError& e, const std::string& prefix) {
  if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);  // --help, --version
  std::string msg = e.what();
  for (char& c : msg)
    if (c == '\n') c = ' ';
  // "--ngpus: ..." -> "-g/--ngpus: ...": the flag as the user may have typed it.
  if (const size_t colon = msg.find(": "); msg.rfind("-", 0) == 0 && colon != std::string::npos) {
    std::vector<const CLI::App*> apps = {&app};
    for (const CLI::App* sub : app.get_subcommands()) apps.insert(apps.begin(), sub);
    for (const CLI::App* a : apps)
      if (const CLI::Option* opt = a->get_option_no_throw(msg.substr(0, colon))) {
        msg = Names(opt) + msg.substr(colon);
        break;
      }
  }
  fmt::print(stderr, "{}: {}\n", prefix, msg);
  return 2;
}

CLI::Validator InRange(double min, double max) {
  return CLI::Validator(
      [min, max](std::string& s) -> std::string {
        char* end = nullptr;
        const double v = std::strtod(s.c_str(), &end);
        if (s.empty() || *end != '\0') return fmt::format("'{}' is not a number", s);
        if (v < min) return fmt::format("must be >= {} (got {})", min, s);
        if (v > max) return fmt::format("must be <= {} (got {})", max, s);
        return "";
      },
      max < 1e300 ? fmt::format("{}..{}", min, max) : fmt::format(">= {}", min));
}

CLI::Validator AtLeast(double min) { return InRange(min, 1e308); }

}  // namespace corun

namespace {

// Subcommands that take "-- CMD" and parse their own options: f(argc, argv, dash) with argv[1]
// the subcommand's name and argv[dash] the first "--" (dash == argc: none). Listed here so that
// `corun --help` shows them and the launcher never takes their name for a command.
struct Forwarded {
  const char* name;
  const char* help;
  int (*run)(int argc, char** argv, int dash);
};
const std::vector<Forwarded>& ForwardedSubcommands() {
  static const std::vector<Forwarded> v = {
      {"trace", "Trace CMD's kernels, copies and collectives (CUPTI) and attribute where overlap is lost",
       [](int argc, char** argv, int dash) { return corun::RunTraceApp(argc, argv, dash == argc ? -1 : dash); }}};
  return v;
}

const char* kUsage =
    "corun: computation-communication overlap for multi-GPU work (occupancy shaping + priority)\n"
    "  corun [options] -- CMD [ARGS...]   run CMD with a policy applied to its kernels\n"
    "  corun bench [options]              every policy side by side on compute + NCCL workloads\n"
    "  corun tune [options]               the best policy for corun's workloads (-p tuned)\n"
    "  corun tune [options] -- CMD        the best policy for an application (corun -p tuned -- CMD)\n"
    "  corun trace [options] -- CMD       where overlap is lost in CMD (timeline, attribution)\n"
    "  corun info [--json]                GPUs, SM limits, priorities, versions, pads";

// The command line without the program: argv[first..last).
std::vector<std::string> Args(char** argv, int first, int last) {
  std::vector<std::string> v;
  for (int i = first; i < last; ++i) v.emplace_back(argv[i]);
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  using corun::AtLeast;
  using corun::InRange;
  using corun::Names;
  // Everything after the first "--" is the command, never corun's options.
  int dash = argc;
  for (int i = 1; i < argc; ++i)
    if (std::string(argv[i]) == "--") {
      dash = i;
      break;
    }
  if (argc > 1)
    for (const Forwarded& f : ForwardedSubcommands())
      if (argv[1] == std::string(f.name)) return f.run(argc, argv, dash);

  CLI::App app{kUsage, "corun"};
  app.set_version_flag("--version", std::string("corun ") + CORUN_VERSION);
  app.require_subcommand(0, 1);
  corun::LauncherOptions lo;
  corun::AddLauncherOptions(&app, &lo);

  corun::BenchOptions o;
  std::string minb = "896M", maxb, stepbytes, computes = "tiled64x64x64,cublaslt",
              gemms = "8192x8192x8192,8192x57344x8192", colls = "allreduce";
  double factor = 2.0;
  bool no_probe = false;
  // The workload flags, shared by bench and tune (nccl-tests style where nccl-tests has them).
  auto add_workload_flags = [&](CLI::App* sub, const std::string& g) {
    sub->add_option("-b,--minbytes", minb, "smallest collective size, a multiple of 1K (nccl-tests convention)")
        ->capture_default_str()->group(g);
    sub->add_option("-e,--maxbytes", maxb, "largest collective size (default: = -b); sweep sizes round down to 1K")
        ->group(g);
    sub->add_option("-f,--stepfactor", factor, "multiplicative step between sizes")->capture_default_str()->group(g);
    sub->add_option("-i,--stepbytes", stepbytes, "additive step between sizes (instead of -f)")->group(g);
    sub->add_option("-n,--iters", o.reps, "timed repetitions per (workload, policy)")
        ->capture_default_str()->check(InRange(1, 100000))->group(g);
    sub->add_option("-w,--warmup_iters", o.warmup, "warm-up repetitions")
        ->capture_default_str()->check(InRange(0, 100000))->group(g);
    sub->add_option("-g,--ngpus", o.ngpus, "GPUs in single-process mode (0: all visible)")
        ->capture_default_str()->check(InRange(0, 4096))->group(g);
    sub->add_option("-d,--datatype", o.dtype, "collective data type: bf16, fp32")->capture_default_str()->group(g);
    sub->add_option("-o,--collectives", colls, "allreduce,allgather,reducescatter,alltoall")
        ->capture_default_str()->group(g);
    sub->add_option("--compute", computes, "compute kernels: tiled64x64x32, tiled64x64x64, cublaslt")
        ->capture_default_str()->group(g);
    sub->add_option("--gemm", gemms, "GEMM shapes MxNxK, comma-separated")->capture_default_str()->group(g);
    sub->add_option("--gemms", o.gemms_per_step, "GEMMs per step")
        ->capture_default_str()->check(InRange(1, 1000))->group(g);
    sub->add_option("--sustain", o.sustain_s, "seconds each (workload, policy) runs before timing")
        ->capture_default_str()->check(InRange(0, 86400))->group(g);
    sub->add_option("--watchdog", o.watchdog_s, "abort NCCL and exit 3 after this many seconds without progress (0: off)")
        ->capture_default_str()->check(InRange(0, 86400 * 7))->group(g);
    sub->add_option("--samples", o.gemm_samples, "GEMM outputs checked against the host reference per run")
        ->capture_default_str()->check(InRange(4, 1 << 24))->group(g);
    sub->add_flag("--no-probe", no_probe, "do not learn the NCCL kernel's footprint from a captured call")->group(g);
    sub->add_option("--json", o.json_path, "write the results as JSON")
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast)->group(g);
  };
  auto* bench = app.add_subcommand("bench",
                                   "Run compute + communication workloads under every policy side by side, "
                                   "check every result, print a table (and --json)");
  add_workload_flags(bench, "Options");
  bench->add_option("--cache", o.cache_path, "profile cache for -p tuned (default $CORUN_CACHE or ~/.cache/corun/profiles.json)");
  bench->add_option("-p,--policies", o.policies,
                    "comma-separated: all, tuned, geom, sequential, overlap, priority, shape:K|NK|auto[+priority], "
                    "smtarget:N|auto, ncclctas:N, greenctx:N, maxconn1, ce[+shape:K|smtarget:N|greenctx:N] (copy engines; not in all), "
                    "ncclzero (NCCL's own zero-CTA allgather/alltoall, checked to launch no kernel; alone; not in all). "
                    "NCCL's kernel geometry combines with any of them but ce and maxconn1 (sequential included): +nthreads:N (64..512, "
                    "NCCL_NTHREADS), +proto:simple|ll|ll128 (NCCL_PROTO), +ctas:N (NCCL_MIN_CTAS=NCCL_MAX_CTAS=N); "
                    "NCCL reads these once per process, so the rows of each geometry run in a child process. "
                    "geom = {sequential, priority, shape:4+priority (own GEMM)} x {NCCL's default, nthreads:256, "
                    "nthreads:256+ctas:32, nthreads:256+proto:simple} (not in all)")
      ->capture_default_str()
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  bench->add_option("--max-caps", o.max_shape_caps, "explicit shape:K caps 'all' tries (K = 1..N)")
      ->capture_default_str()->check(InRange(0, 1024));
  bench->add_flag("--smid-probe", o.smid_probe,
                  "own GEMM: after each row's timed repetitions, one stamped step shows whether compute blocks "
                  "and communication CTAs shared SMs (the row's note and JSON 'smid')");
  bench->add_flag("--child-maxconn1", o.child_maxconn1, "internal")->group("");
  bench->add_option("--probe-only", o.probe_only, "internal")->group("");
  // Tune's own flags are accepted (and ignored) so that its helper processes can run as bench.
  double ignored_budget = 0;
  bool ignored_sweep = false;
  bench->add_option("--budget", ignored_budget, "internal")->group("");
  bench->add_flag("--sweep", ignored_sweep, "internal")->group("");

  auto* tune = app.add_subcommand("tune",
                                  "Find the best policy for each workload (model guess + local search) and cache it "
                                  "for -p tuned; 'corun tune [options] -- CMD' tunes an application");
  const std::string own = "Tuning corun's workloads (corun tune [options])";
  add_workload_flags(tune, own);
  tune->add_option("--budget", o.tune_budget, "wall-clock budget as a fraction of the exhaustive sweep's estimated wall time")
      ->capture_default_str()->group(own);
  tune->add_flag("--sweep", o.tune_sweep, "also run the exhaustive sweep in the same process and compare")->group(own);
  tune->add_option("--cache", o.cache_path, "profile cache (default $CORUN_CACHE or ~/.cache/corun/profiles.json)");
  tune->footer(
      "The candidates include ce (collectives by copy engines) and NCCL's kernel geometries. With '-- CMD', a ce "
      "candidate whose runs served no collective (e.g. communicators above CORUN_CE_MAX_RANKS ranks, read from "
      "the runs' reports) is rejected, not scored.");
  corun::TuneAppOptions to;
  const std::string appg = "Tuning an application (corun tune [options] -- CMD)";
  std::vector<const CLI::Option*> app_only = {
      tune->add_option("--runs", to.runs, "runs of the application in all (the trial budget)")
          ->capture_default_str()->check(InRange(4, 100000))->group(appg),
      tune->add_option("--metric", to.metric,
                       "regex whose first group is the score printed by the program (default: wall time)")->group(appg),
      tune->add_flag("--higher-is-better", to.higher, "the metric is a rate (e.g. samples/s)")->group(appg),
      tune->add_option("--run-timeout", to.run_timeout_s,
                       "seconds one run may take before it is stopped and counted as failed; 0: no limit "
                       "(default: 3x the slowest run that succeeded, at least 60 s; 1 h until one has)")
          ->check(InRange(0, 1000000))->group(appg)};

  bool info_json = false;
  auto* info = app.add_subcommand("info", "Print GPUs, SM limits, stream-priority range, NCCL/CUDA versions and the "
                                          "occupancy of corun's kernels");
  info->add_flag("--json", info_json, "JSON instead of text");
  for (const Forwarded& f : ForwardedSubcommands()) app.add_subcommand(f.name, f.help);

  if (argc == 1) {
    fmt::print(stderr, "{}", app.help());
    return 2;
  }
  try {
    app.parse(dash, argv);  // the options before "--"
  } catch (const CLI::ParseError& e) {
    const auto subs = app.get_subcommands();
    return corun::ParseFailed(app, e, subs.empty() ? "corun" : "corun " + subs.back()->get_name());
  }
  const std::vector<std::string> cmd = dash < argc ? Args(argv, dash + 1, argc) : std::vector<std::string>{};
  const auto subs = app.get_subcommands();
  if (subs.empty()) {
    if (dash == argc) {
      fmt::print(stderr, "corun: no command: corun [options] -- CMD [ARGS...] (or bench, tune, info; see corun --help)\n");
      return 2;
    }
    return corun::RunLauncher(lo, cmd);
  }
  const std::string name = subs.back()->get_name();
  const std::string prefix = "corun " + name;
  for (const CLI::Option* opt : corun::LauncherOptionList(app))
    if (opt->count() > 0) {
      fmt::print(stderr, "corun: {} belongs to 'corun [options] -- CMD', not to '{}'\n", Names(opt), name);
      return 2;
    }
  if (dash < argc && !*tune) {
    fmt::print(stderr, "{}: takes no command after '--'\n", prefix);
    return 2;
  }
  if (*info) return corun::RunInfo(info_json);

  if (*tune && dash < argc) {
    // An application: corun's workload flags do not apply.
    for (const CLI::Option* opt : tune->get_options())
      if (opt->count() > 0 && opt->get_group() == own) {
        fmt::print(stderr, "corun tune: {} is for tuning corun's own workloads, not a command after '--'\n",
                   Names(opt));
        return 2;
      }
    to.cache = o.cache_path;
    return corun::RunTuneApp(to, cmd);
  }
  for (const CLI::Option* opt : app_only)
    if (opt->count() > 0) {
      fmt::print(stderr, "corun tune: {} needs an application: corun tune {} ... -- CMD\n", Names(opt),
                 opt->get_name());
      return 2;
    }

  // bench / tune of corun's own workloads
  o.tune = static_cast<bool>(*tune);
  if (o.tune) o.policies = "overlap";  // unused by the search; keeps validation simple
  o.argv = Args(argv, 2, argc);
  o.command_line = fmt::format("{}", fmt::join(Args(argv, 0, argc), " "));
  o.probe_comm = !no_probe;
  o.computes = corun::SplitPatterns(computes);
  o.collectives = corun::SplitPatterns(colls);
  corun::Status s = corun::ParseGemmList(gemms, &o.gemms);
  uint64_t b = 0, e = 0, inc = 0;
  if (s.ok()) s = corun::ParseSize(minb, &b);
  if (s.ok()) s = maxb.empty() ? (e = b, corun::Status::Ok()) : corun::ParseSize(maxb, &e);
  if (s.ok() && !stepbytes.empty()) s = corun::ParseSize(stepbytes, &inc);
  // Whole KiB: every rank's share of a collective is then a whole number of elements (n <= 256).
  if (s.ok()) s = corun::SizeSweep(b, e, factor, inc, 1024, &o.sizes);
  // Bad flags are exit 2 here; RunBench checks them again (it is also a library call) and counts the GPUs.
  if (s.ok()) s = corun::ValidateBenchOptions(o);
  if (!s.ok()) {
    fmt::print(stderr, "{}: {}\n", prefix, s.message());
    return 2;
  }
  return corun::RunBench(o);
}
