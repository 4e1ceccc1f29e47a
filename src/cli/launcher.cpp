// corun [options] -- CMD [ARGS...]: the numactl/faketime way. Options become environment for
// libcorun_preload.so, the library is appended to LD_PRELOAD, the command is exec'd, and its exit
// status (or signal) is therefore the launcher's own.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <climits>
#include <cstring>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "corun/launch_rules.h"
#include "app_profile.h"
#include "corun/profile.h"
#include "corun/policy.h"

namespace corun {

namespace {

std::string SelfDir() {
  char buf[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return ".";
  buf[n] = '\0';
  std::string p(buf);
  return p.substr(0, p.rfind('/'));
}

std::string FindPreload(const std::string& explicit_path) {
  if (!explicit_path.empty()) return access(explicit_path.c_str(), R_OK) == 0 ? explicit_path : "";
  if (const char* e = std::getenv("CORUN_PRELOAD_LIB"); e && *e) return access(e, R_OK) == 0 ? e : "";
  const std::string dir = SelfDir();
  for (const std::string& c : {dir + "/libcorun_preload.so", dir + "/../lib/libcorun_preload.so"})
    if (access(c.c_str(), R_OK) == 0) {
      char real[PATH_MAX];
      return realpath(c.c_str(), real) ? std::string(real) : c;
    }
  return "";
}

bool InPath(const std::string& cmd) {
  if (cmd.find('/') != std::string::npos) return access(cmd.c_str(), X_OK) == 0;
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= p.size()) {
    size_t end = p.find(':', start);
    if (end == std::string::npos) end = p.size();
    const std::string dir = end > start ? p.substr(start, end - start) : ".";
    if (access((dir + "/" + cmd).c_str(), X_OK) == 0) return true;
    start = end + 1;
  }
  return false;
}

}  // namespace

int RunLauncher(int argc, char** argv, int dash) {
  CLI::App app{"corun [options] -- CMD [ARGS...]: run CMD with a corun policy applied to its kernels"};
  std::string policy = "priority", report, lib, allow, deny, patterns;
  bool verbose = false, dry = false;
  int nccl_ctas_hint = 0;
  app.add_option("-p,--policy", policy,
                 "policy for the program's kernels: priority, shape:K|NK[+priority], smtarget:N|auto, ncclctas:N, "
                 "overlap (observe only)")
      ->capture_default_str();
  app.add_flag("-v,--verbose", verbose, "log each decision once per kernel name");
  app.add_flag("--dry-run", dry, "print the environment and the command instead of running it");
  app.add_option("--report", report, "write each process's summary as JSON (%p becomes the pid)");
  app.add_option("--allow", allow, "shape only kernels whose name contains one of these (comma-separated)");
  app.add_option("--deny", deny, "never shape kernels whose name contains one of these (comma-separated)");
  app.add_option("--comm-patterns", patterns, "names of communication kernels (default ncclDevKernel,ncclKernel)");
  app.add_option("--nccl-ctas", nccl_ctas_hint, "CTAs NCCL launches, for smtarget:auto before NCCL's first launch");
  app.add_option("--lib", lib, "path of libcorun_preload.so (default: beside corun, or $CORUN_PRELOAD_LIB)");
  try {
    app.parse(dash, argv);  // the options before "--"
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (dash + 1 >= argc) {
    std::fprintf(stderr, "corun: no command after '--'\n");
    return 2;
  }
  if (policy == "tuned") {
    // The profile corun tune -- CMD stored for exactly this command, GPU and library versions.
    ProfileCache cache;
    ProfileKey key;
    std::string stale;
    const std::string path = DefaultProfilePath();
    Status ks = AppProfileKey(AppWorkloadKey(argc, argv, dash + 1), &key);
    if (ks.ok()) ks = cache.Load(path);
    const ProfileEntry* e = ks.ok() ? cache.Find(key, &stale) : nullptr;
    if (!e) {
      std::fprintf(stderr, "corun: no tuned profile for this command in %s (%s)\n", path.c_str(),
                   !ks.ok() ? ks.message().c_str() : !stale.empty() ? stale.c_str() : "run: corun tune -- CMD");
      return 2;
    }
    policy = e->policy;
    std::fprintf(stderr, "corun: tuned policy %s\n", policy.c_str());
  }
  Policy p;
  Status st = ParsePolicy(policy, &p);
  // The same check the library makes when it loads: a bad policy stops here, before the program runs.
  if (st.ok()) st = CheckInterposable(p);
  if (!st.ok()) {
    std::fprintf(stderr, "corun: %s\n", st.message().c_str());
    return 2;
  }
  const std::string preload = FindPreload(lib);
  if (preload.empty()) {
    std::fprintf(stderr, "corun: cannot find libcorun_preload.so (%s)\n",
                 lib.empty() ? "looked beside corun and in $CORUN_PRELOAD_LIB" : lib.c_str());
    return 2;
  }
  const std::string cmd = argv[dash + 1];
  if (!InPath(cmd)) {
    std::fprintf(stderr, "corun: command not found: %s\n", cmd.c_str());
    return 127;
  }
  std::vector<std::pair<std::string, std::string>> env = {{"CORUN_POLICY", p.Name()}};
  if (verbose) env.emplace_back("CORUN_VERBOSE", "1");
  if (!report.empty()) env.emplace_back("CORUN_REPORT", report);
  if (!allow.empty()) env.emplace_back("CORUN_ALLOW", allow);
  if (!deny.empty()) env.emplace_back("CORUN_DENY", deny);
  if (!patterns.empty()) env.emplace_back("CORUN_COMM_PATTERNS", patterns);
  if (nccl_ctas_hint > 0) env.emplace_back("CORUN_NCCL_CTAS", std::to_string(nccl_ctas_hint));
  // NCCL reads its CTA limit from the environment when a communicator is created.
  if (p.ncclctas > 0) env.emplace_back("NCCL_MAX_CTAS", std::to_string(p.ncclctas));
  const char* old = std::getenv("LD_PRELOAD");
  env.emplace_back("LD_PRELOAD", old && *old ? std::string(old) + ":" + preload : preload);
  if (dry) {
    for (const auto& [k, v] : env) std::printf("%s=%s\n", k.c_str(), v.c_str());
    for (const char* k : {"NCCL_NVLS_ENABLE", "TORCH_SYMM_MEM_DISABLE_MULTICAST", "NVSHMEM_DISABLE_NVLS"})
      if (const char* v = std::getenv(k)) std::printf("%s=%s (kept)\n", k, v);
    for (int i = dash + 1; i < argc; ++i) std::printf("%s%s", i > dash + 1 ? " " : "", argv[i]);
    std::printf("\n");
    return 0;
  }
  // Everything else in the environment (the NVLink-multicast settings included) is inherited.
  for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
  execvp(cmd.c_str(), argv + dash + 1);
  std::fprintf(stderr, "corun: cannot run %s: %s\n", cmd.c_str(), std::strerror(errno));
  return 126;
}

}  // namespace corun
