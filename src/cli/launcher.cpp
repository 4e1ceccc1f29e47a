// corun [options] -- CMD [ARGS...]: the numactl/faketime way. Options become environment for
// libcorun_preload.so, the library is appended to LD_PRELOAD, the command is exec'd, and its exit
// status (or signal) is therefore the launcher's own.
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "app_profile.h"
#include "cli.h"
#include "corun/ce_plan.h"
#include "corun/launch_rules.h"
#include "corun/parse.h"
#include "corun/policy.h"
#include "corun/profile.h"

namespace corun {

void AddLauncherOptions(CLI::App* app, LauncherOptions* o) {
  const char* g = "Wrapping a program (corun [options] -- CMD)";
  app->add_option("-p,--policy", o->policy,
                  "policy for the program's kernels: priority, shape:K|NK[+priority], smtarget:N|auto, ncclctas:N, "
                  "maxconn1, ce (allreduce/reduce-scatter/all-gather by copy engines, communicators of at most "
                  "$CORUN_CE_MAX_RANKS (2) ranks), overlap (observe only), tuned (what 'corun tune -- CMD' stored); "
                  "NCCL's kernel geometry, combinable with any but ce: nthreads:N, proto:simple|ll|ll128, ctas:N "
                  "(NCCL_NTHREADS, NCCL_PROTO, NCCL_MIN/MAX_CTAS; a value already in the environment wins)")
      ->capture_default_str()
      ->group(g);
  app->add_flag("-v,--verbose", o->verbose, "log each decision once per kernel name")->group(g);
  app->add_flag("--dry-run", o->dry_run, "print the environment and the command instead of running it")->group(g);
  app->add_option("--report", o->report, "write each process's summary as JSON (%p becomes the pid)")->group(g);
  app->add_option("--allow", o->allow, "shape only kernels whose name contains one of these (comma-separated)")
      ->group(g);
  app->add_option("--deny", o->deny, "never shape kernels whose name contains one of these (comma-separated)")
      ->group(g);
  app->add_option("--comm-patterns", o->patterns, "names of communication kernels (default ncclDevKernel,ncclKernel)")
      ->group(g);
  app->add_option("--nccl-ctas", o->nccl_ctas, "CTAs NCCL launches, for smtarget:auto before NCCL's first launch")
      ->check(AtLeast(0))
      ->group(g);
  app->add_option("--lib", o->lib,
                  "path of libcorun_preload.so (default: $CORUN_PRELOAD_LIB, ../lib/ or the folder of corun, "
                  "the build tree, $LD_LIBRARY_PATH)")
      ->group(g);
  app->add_option("--cache", o->cache, "profile cache for -p tuned (default $CORUN_CACHE or ~/.cache/corun/profiles.json)")
      ->group(g);
}

std::vector<const CLI::Option*> LauncherOptionList(const CLI::App& app) {
  std::vector<const CLI::Option*> v;
  for (const char* n : {"--policy", "--verbose", "--dry-run", "--report", "--allow", "--deny", "--comm-patterns",
                        "--nccl-ctas", "--lib", "--cache"})
    v.push_back(app.get_option(n));
  return v;
}

namespace {

void Fail(const std::string& msg) { fmt::print(stderr, "corun: {}\n", msg); }

}  // namespace

// What a policy sets in the program's environment besides CORUN_POLICY (the launcher and
// `corun trace -p` alike). Values the user already set win; --verbose says so in one line.
Status PolicyEnv(const Policy& p, bool verbose, std::vector<std::pair<std::string, std::string>>* env) {
  auto keep_user = [&](const std::string& k, const std::string& v) {
    const char* have = std::getenv(k.c_str());
    if (have && *have) {
      if (verbose) fmt::print(stderr, "corun: {}={} already set: kept (the policy asks {})\n", k, Printable(have), v);
      return;
    }
    env->emplace_back(k, v);
  };
  // NCCL reads its CTA limit and its kernel geometry from the environment, once per process.
  if (p.ncclctas > 0) env->emplace_back("NCCL_MAX_CTAS", std::to_string(p.ncclctas));
  for (const auto& [k, v] : CommGeometryEnv(p)) keep_user(k, v);
  // maxconn1 is an environment setting only: one hardware queue for the whole program.
  if (p.maxconn1) env->emplace_back("CUDA_DEVICE_MAX_CONNECTIONS", "1");
  if (p.ce) {
    // The CORUN_CE_* settings the library would refuse when it loads are refused here, before
    // anything runs (the library's own rules; the rest of its environment is checked as ever).
    InterposeConfig icfg;
    Status st = ConfigFromEnv(
        [](const char* k) -> const char* { return std::string(k).rfind("CORUN_CE_", 0) == 0 ? std::getenv(k) : nullptr; },
        &icfg);
    if (!st.ok()) return st;
    // The copy-engine path holds up to kCeMaxCopyStreams + 3 streams per communicator beside the program's and
    // NCCL's (a shared hardware queue can block a stream behind another's wait), and its stream
    // waits on peers must never sit behind a lazy module load (ce_comm.h).
    keep_user("CUDA_DEVICE_MAX_CONNECTIONS", "32");
    keep_user("CUDA_MODULE_LOADING", "EAGER");
  }
  return Status::Ok();
}

int RunLauncher(const LauncherOptions& o, const std::vector<std::string>& cmd) {
  if (cmd.empty() || cmd[0].empty()) {
    Fail("no command after '--' (corun [options] -- CMD [ARGS...])");
    return 2;
  }
  std::string policy = o.policy;
  if (policy == "tuned") {
    // The profile corun tune -- CMD stored for exactly this command, GPU and library versions.
    ProfileCache cache;
    ProfileKey key;
    std::string stale;
    const std::string path = o.cache.empty() ? DefaultProfilePath() : o.cache;
    Status ks = AppProfileKey(AppWorkloadKey(cmd), &key);
    if (ks.ok()) ks = cache.Load(path);
    const ProfileEntry* e = ks.ok() ? cache.Find(key, &stale) : nullptr;
    if (!e) {
      Fail(fmt::format("no tuned profile for this command in {} ({})", path,
                       !ks.ok() ? ks.message() : !stale.empty() ? stale : "run: corun tune -- CMD"));
      return 2;
    }
    policy = e->policy;
    fmt::print(stderr, "corun: tuned policy {}\n", policy);
  }
  Policy p;
  Status st = ParsePolicy(policy, &p);
  // The same check the library makes when it loads: a bad policy stops here, before the program runs.
  if (st.ok()) st = CheckInterposable(p);
  if (!st.ok()) {
    Fail(st.message());
    return 2;
  }
  std::string tried;
  const std::string preload = FindCorunLib("libcorun_preload.so", o.lib, "CORUN_PRELOAD_LIB", &tried);
  if (preload.empty()) {
    Fail(fmt::format("cannot find libcorun_preload.so (looked in {}; give --lib PATH)", tried));
    return 2;
  }
  std::string where;
  if (const int r = ResolveCommand(cmd[0], &where); r != 0) {
    Fail(r == 127 ? fmt::format("command not found: {}", Printable(cmd[0]))
                  : fmt::format("cannot execute {}: not an executable file", Printable(where)));
    return r;
  }
  std::vector<std::pair<std::string, std::string>> env = {{"CORUN_POLICY", p.Name()}};
  if (o.verbose) env.emplace_back("CORUN_VERBOSE", "1");
  if (!o.report.empty()) env.emplace_back("CORUN_REPORT", o.report);
  if (!o.allow.empty()) env.emplace_back("CORUN_ALLOW", o.allow);
  if (!o.deny.empty()) env.emplace_back("CORUN_DENY", o.deny);
  if (!o.patterns.empty()) env.emplace_back("CORUN_COMM_PATTERNS", o.patterns);
  if (o.nccl_ctas > 0) env.emplace_back("CORUN_NCCL_CTAS", std::to_string(o.nccl_ctas));
  if (Status pe = PolicyEnv(p, o.verbose, &env); !pe.ok()) {
    Fail(pe.message());
    return 2;
  }
  const char* old = std::getenv("LD_PRELOAD");
  env.emplace_back("LD_PRELOAD", old && *old ? std::string(old) + ":" + preload : preload);
  if (o.dry_run) {
    for (const auto& [k, v] : env) fmt::print("{}={}\n", k, v);
    for (const char* k : {"NCCL_NVLS_ENABLE", "TORCH_SYMM_MEM_DISABLE_MULTICAST", "NVSHMEM_DISABLE_NVLS"})
      if (const char* v = std::getenv(k)) fmt::print("{}={} (kept)\n", k, v);
    fmt::print("{}\n", fmt::join(cmd, " "));
    return 0;
  }
  // Everything else in the environment (the NVLink-multicast settings included) is inherited.
  for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
  std::vector<char*> args;
  for (const std::string& a : cmd) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  execvp(args[0], args.data());
  const int err = errno;
  Fail(fmt::format("cannot run {}: {}", cmd[0], std::strerror(err)));
  return err == ENOENT ? 127 : 126;
}

}  // namespace corun
