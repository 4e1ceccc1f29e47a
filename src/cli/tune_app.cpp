// corun tune [options] -- CMD: tunes the policy for an unmodified application. Every trial runs
// `corun -p POLICY -- CMD` (so the interposer applies it) and scores the run by its wall time or
// by a number the program prints (--metric REGEX, first capture group; lower is better unless
// --higher-is-better). The best policy goes to the profile cache; `corun -p tuned -- CMD` reads it.
#include <cmath>
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <regex>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "../bench/self_spawn.h"
#include "../runtime/device.h"
#include "app_profile.h"
#include "cli.h"
#include "corun/profile.h"
#include "corun/report.h"
#include "corun/tune.h"

namespace corun {

std::string AppWorkloadKey(const std::vector<std::string>& cmd) {
  std::string k = "app:";
  for (const std::string& a : cmd) k += " " + a;
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

// The interposer's report files under `dir` (each process's), removed with the folder.
std::vector<std::string> TakeReports(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = opendir(dir.c_str())) {
    while (const dirent* e = readdir(d))
      if (e->d_name[0] != '.') out.push_back(TakeFile(dir + "/" + e->d_name));
    closedir(d);
  }
  rmdir(dir.c_str());
  return out;
}

// One run of the application under a policy: its score, or false if it failed. A ce run writes
// the interposer's reports: one that served no collective measured stock NCCL and is rejected.
bool RunOnce(const Policy& p, const std::vector<std::string>& cmd, const std::string& metric, bool higher,
             int timeout_s, double* score, double* wall_ms_out, std::string* why) {
  const std::string policy = p.Name();
  SpawnSpec spec;
  spec.args = {"-p", policy};
  std::string reports;
  if (p.ce) {
    std::string tmpl = "/tmp/corun-tune-reports-XXXXXX";
    if (mkdtemp(tmpl.data())) {
      reports = tmpl;
      spec.args.push_back("--report");
      spec.args.push_back(reports + "/%p.json");
    }
  }
  spec.args.push_back("--");
  spec.args.insert(spec.args.end(), cmd.begin(), cmd.end());
  spec.add_env = {"CORUN_QUIET=1"};
  const std::string file = TempFile("corun-tune-app");
  const int fd = file.empty() ? -1 : open(file.c_str(), O_WRONLY | O_TRUNC);
  if (fd < 0) {
    *why = "cannot create a temporary file for the output";
    return false;
  }
  spec.out_fd = fd;
  spec.err_too = true;
  spec.own_group = true;  // a stopped run takes torchrun's workers with it
  const auto t0 = std::chrono::steady_clock::now();
  const pid_t pid = SpawnSelf(spec);
  close(fd);
  bool timed_out = false;
  const int code = WaitExit(pid, timeout_s, nullptr, &timed_out);
  const double wall_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  *wall_ms_out = wall_ms;
  const std::string text = TakeFile(file);
  const std::string unserved = reports.empty() ? "" : CeServedNothing(TakeReports(reports));
  if (timed_out) {
    *why = fmt::format("still running after {} s: stopped (--run-timeout)", timeout_s);
    return false;
  }
  if (code != 0) {
    *why = fmt::format("exit status {}", code);
    return false;
  }
  if (!unserved.empty()) {
    *why = unserved;
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
  char* end = nullptr;
  const double v = std::strtod(last.c_str(), &end);
  if (end == last.c_str() || *end != '\0' || !std::isfinite(v)) {
    *why = "--metric captured '" + last + "', which is not a finite number";
    return false;
  }
  *score = higher ? -v : v;
  return true;
}

void Fail(const std::string& msg) { fmt::print(stderr, "corun tune: {}\n", msg); }

}  // namespace

int RunTuneApp(const TuneAppOptions& o, const std::vector<std::string>& cmd) {
  if (cmd.empty() || cmd[0].empty()) {
    Fail("no command after '--' (corun tune [options] -- CMD [ARGS...])");
    return 2;
  }
  if (!o.metric.empty()) {
    try {
      std::regex r(o.metric);
      if (r.mark_count() < 1) throw std::regex_error(std::regex_constants::error_badrepeat);
    } catch (const std::regex_error&) {
      Fail(fmt::format("bad --metric '{}' (a regex with one capture group)", o.metric));
      return 2;
    }
  }
  const std::string workload = AppWorkloadKey(cmd);
  ProfileKey key;
  if (Status s = AppProfileKey(workload, &key); !s.ok()) {
    Fail(s.message());
    return 2;
  }
  const int runs = o.runs;
  const bool higher = o.higher;
  SearchSpace sp;
  sp.app = true;
  sp.num_sms = key.sms;
  // The communication side through the launcher's environment (PolicyEnv): NCCL's kernel
  // geometry and the copy-engine collectives (the interposer hands NCCL what ce does not serve).
  // The program's kernels are unknown to the model, so a geometry goes with priority alone.
  sp.geometry = true;
  sp.ce = true;
  TuneOptions opt;
  opt.budget_trials = runs;
  opt.first_reps = 1;
  opt.more_reps = 1;
  opt.max_reps = 4;
  Tuner t(sp, opt);
  double slowest_ms = 0;  // of the runs that succeeded: the automatic deadline's scale
  auto deadline_s = [&]() -> int {
    if (o.run_timeout_s >= 0) return o.run_timeout_s;
    if (slowest_ms <= 0) return kFirstRunTimeoutS;
    return std::max(kMinAutoRunTimeoutS, static_cast<int>(std::ceil(kAutoRunTimeoutFactor * slowest_ms / 1e3)));
  };
  const Measured* best = RunTuner(&t, [&](const Policy& p, int reps, std::vector<double>* out) {
    for (int i = 0; i < reps; ++i) {
      double v = 0, wall_ms = 0;
      std::string why;
      fmt::print(stderr, "corun tune: [{}/{}] {} ...", t.trials() + static_cast<int>(out->size()) + 1, runs, p.Name());
      const bool ok = RunOnce(p, cmd, o.metric, higher, deadline_s(), &v, &wall_ms, &why);
      if (ok) slowest_ms = std::max(slowest_ms, wall_ms);
      if (!ok) {
        fmt::print(stderr, " failed ({})\n", why);
        return false;
      }
      fmt::print(stderr, " {:.3f}\n", higher ? -v : v);
      out->push_back(v);
    }
    return true;
  });
  if (!best) {
    Fail("no policy ran the command successfully");
    return 1;
  }
  fmt::print("# corun tune: {}\n# {:<40} {:>10} {:>6}\n", workload, "policy", o.metric.empty() ? "wall ms" : "score",
             "runs");
  for (const Measured& m : t.All())
    fmt::print("  {:<40} {:>10.3f} {:>6}\n", m.policy.Name(), higher ? -m.summary.median : m.summary.median,
               m.samples.size());
  ProfileCache cache;
  const std::string path = o.cache.empty() ? DefaultProfilePath() : o.cache;
  if (Status s = cache.Load(path); !s.ok()) Fail(fmt::format("warning: {} (starting a new cache)", s.message()));
  ProfileEntry e;
  e.key = key;
  e.policy = best->policy.Name();
  e.t_ms = higher ? -best->summary.median : best->summary.median;
  e.date = NowIsoUtc();
  if (const Measured* b = t.Baseline()) e.overlap_ms = higher ? -b->summary.median : b->summary.median;
  cache.Put(e);
  if (Status s = cache.Save(path); !s.ok()) {
    Fail(s.message());
    return 1;
  }
  fmt::print("# tuned: {} ({} runs; {}); saved in {} — use: corun -p tuned -- ...\n", e.policy, t.trials(), t.Why(),
             path);
  return 0;
}

}  // namespace corun
