// corun tune [options] -- CMD: tunes the policy for an unmodified application. Every trial runs
// `corun -p POLICY -- CMD` (so the interposer applies it) and scores the run by its wall time or
// by a number the program prints (--metric REGEX, first capture group; lower is better unless
// --higher-is-better). The best policy goes to the profile cache; `corun -p tuned -- CMD` reads it.
#include <fcntl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <regex>
#include <string>
#include <vector>

#include "../bench/self_spawn.h"
#include "../runtime/device.h"
#include "app_profile.h"
#include "corun/profile.h"
#include "corun/report.h"
#include "corun/tune.h"

namespace corun {

std::string AppWorkloadKey(int argc, char** argv, int first) {
  std::string k = "app:";
  for (int i = first; i < argc; ++i) k += std::string(" ") + argv[i];
  return k;
}

Status AppProfileKey(const std::string& workload, ProfileKey* key) {
  int n = 0;
  if (!CountDevices(&n).ok()) {
    // No GPU here: the profile is keyed as such (and never matches a machine with GPUs).
    *key = ProfileKey{"no GPU", 0, 0, NcclVersion(), CudaRuntimeVersion(), workload};
    return Status::Ok();
  }
  DeviceInfo d;
  CORUN_CHECK(QueryDevice(0, &d));
  *key = ProfileKey{d.name, d.sms, n, NcclVersion(), CudaRuntimeVersion(), workload};
  return Status::Ok();
}

namespace {

// One run of the application under a policy: its score, or false if it failed.
bool RunOnce(const std::string& policy, int argc, char** argv, int first, const std::string& metric, bool higher,
             double* score, std::string* why) {
  SpawnSpec spec;
  spec.args = {"-p", policy, "--"};
  for (int i = first; i < argc; ++i) spec.args.push_back(argv[i]);
  spec.add_env = {"CORUN_QUIET=1"};
  const std::string file = TempFile("corun-tune-app");
  const int fd = file.empty() ? -1 : open(file.c_str(), O_WRONLY | O_TRUNC);
  if (fd < 0) {
    *why = "cannot create a temporary file for the output";
    return false;
  }
  spec.out_fd = fd;
  spec.err_too = true;
  const auto t0 = std::chrono::steady_clock::now();
  const pid_t pid = SpawnSelf(spec);
  close(fd);
  const int code = WaitExit(pid);
  const double wall_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  const std::string text = TakeFile(file);
  if (code != 0) {
    *why = "exit status " + std::to_string(code);
    return false;
  }
  if (metric.empty()) {
    *score = wall_ms;
    return true;
  }
  const std::regex re(metric);
  std::string last;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator(); ++it)
    if (it->size() > 1) last = (*it)[1].str();
  if (last.empty()) {
    *why = "--metric matched nothing in the output";
    return false;
  }
  const double v = std::strtod(last.c_str(), nullptr);
  *score = higher ? -v : v;
  return true;
}

}  // namespace

int RunTuneApp(int argc, char** argv, int dash) {
  CLI::App app{"corun tune [options] -- CMD [ARGS...]: choose the policy for an application"};
  int runs = 16;
  std::string metric, cache_path;
  bool higher = false;
  app.add_option("--runs", runs, "runs of the application in all (the trial budget)")->capture_default_str();
  app.add_option("--metric", metric, "regex whose first group is the score printed by the program (default: wall time)");
  app.add_flag("--higher-is-better", higher, "the metric is a rate (e.g. samples/s)");
  app.add_option("--cache", cache_path, "profile cache (default $CORUN_CACHE or ~/.cache/corun/profiles.json)");
  try {
    app.parse(dash - 1, argv + 1);  // the options between "tune" and "--"
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (dash + 1 >= argc) {
    std::fprintf(stderr, "corun tune: no command after '--'\n");
    return 2;
  }
  if (!metric.empty()) {
    try {
      std::regex r(metric);
      if (r.mark_count() < 1) throw std::regex_error(std::regex_constants::error_badrepeat);
    } catch (const std::regex_error&) {
      std::fprintf(stderr, "corun tune: bad --metric '%s' (a regex with one capture group)\n", metric.c_str());
      return 2;
    }
  }
  if (runs < 4) {
    std::fprintf(stderr, "corun tune: --runs must be at least 4\n");
    return 2;
  }
  const std::string workload = AppWorkloadKey(argc, argv, dash + 1);
  ProfileKey key;
  if (Status s = AppProfileKey(workload, &key); !s.ok()) {
    std::fprintf(stderr, "corun tune: %s\n", s.message().c_str());
    return 2;
  }
  SearchSpace sp;
  sp.app = true;
  sp.num_sms = key.sms;
  TuneOptions opt;
  opt.budget_trials = runs;
  opt.first_reps = 1;
  opt.more_reps = 1;
  opt.max_reps = 4;
  Tuner t(sp, opt);
  const Measured* best = RunTuner(&t, [&](const Policy& p, int reps, std::vector<double>* out) {
    for (int i = 0; i < reps; ++i) {
      double v = 0;
      std::string why;
      std::fprintf(stderr, "corun tune: [%d/%d] %s ...", t.trials() + static_cast<int>(out->size()) + 1, runs,
                   p.Name().c_str());
      if (!RunOnce(p.Name(), argc, argv, dash + 1, metric, higher, &v, &why)) {
        std::fprintf(stderr, " failed (%s)\n", why.c_str());
        return false;
      }
      std::fprintf(stderr, " %.3f\n", higher ? -v : v);
      out->push_back(v);
    }
    return true;
  });
  if (!best) {
    std::fprintf(stderr, "corun tune: no policy ran the command successfully\n");
    return 1;
  }
  std::printf("# corun tune: %s\n# %-28s %10s %6s\n", workload.c_str(), "policy", metric.empty() ? "wall ms" : "score",
              "runs");
  for (const Measured& m : t.All())
    std::printf("  %-28s %10.3f %6zu\n", m.policy.Name().c_str(), higher ? -m.summary.median : m.summary.median,
                m.samples.size());
  ProfileCache cache;
  const std::string path = cache_path.empty() ? DefaultProfilePath() : cache_path;
  if (Status s = cache.Load(path); !s.ok()) std::fprintf(stderr, "corun tune: warning: %s (starting a new cache)\n", s.message().c_str());
  ProfileEntry e;
  e.key = key;
  e.policy = best->policy.Name();
  e.t_ms = higher ? -best->summary.median : best->summary.median;
  e.date = NowIsoUtc();
  if (const Measured* b = t.Baseline()) e.overlap_ms = higher ? -b->summary.median : b->summary.median;
  cache.Put(e);
  if (Status s = cache.Save(path); !s.ok()) {
    std::fprintf(stderr, "corun tune: %s\n", s.message().c_str());
    return 1;
  }
  std::printf("# tuned: %s (%d runs; %s); saved in %s — use: corun -p tuned -- ...\n", e.policy.c_str(), t.trials(),
              t.Why().c_str(), path.c_str());
  return 0;
}

}  // namespace corun
