// corun trace [options] -- CMD [ARGS...]: runs CMD (as a child, waiting for it) with
// libcorun_trace.so injected into every process that uses CUDA (and libcorun_preload.so with -p),
// then reads the per-process record files, attributes them and prints where overlap is lost.
// corun trace --analyze DIR redoes the analysis of records already there.
#include <dlfcn.h>
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "corun/attribution.h"
#include "corun/launch_rules.h"
#include "corun/parse.h"
#include "corun/policy.h"
#include "corun/trace_report.h"

#include "cli.h"

namespace corun {

namespace {

// Creates the folder (one level) and proves it writable; the error names it.
bool PrepareDir(const std::string& dir, std::string* why) {
  if (mkdir(dir.c_str(), 0777) != 0 && errno != EEXIST) {
    *why = std::strerror(errno);
    return false;
  }
  const std::string probe = dir + "/.corun_trace_probe";
  FILE* f = std::fopen(probe.c_str(), "w");
  if (!f) {
    *why = std::strerror(errno);
    return false;
  }
  std::fclose(f);
  unlink(probe.c_str());
  // Records and outputs of an earlier run in this folder would mix with this one's.
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      const std::string n = e->d_name;
      const bool rec = n.rfind("corun_trace.", 0) == 0 && n.size() > 6 && n.compare(n.size() - 6, 6, ".jsonl") == 0;
      const bool out = (n.rfind("trace.", 0) == 0 && n.size() > 5 && n.compare(n.size() - 5, 5, ".json") == 0) ||
                       n == "summary.json";
      if (rec || out) unlink((dir + "/" + n).c_str());
    }
    closedir(d);
  }
  return true;
}

pid_t g_child = -1;
void Forward(int sig) {
  if (g_child > 0) kill(g_child, sig);
}

int Analyze(const std::string& dir, const AttributionOptions& o, int status_if_none) {
  TraceAnalysis a;
  if (Status s = AnalyzeTraceDir(dir, o, &a); !s.ok()) {
    fmt::print(stderr, "corun trace: {}\n", s.message());
    return status_if_none;
  }
  fmt::print(stderr, "{}", TraceTable(a));
  std::vector<std::string> written;
  if (Status s = WriteTraceOutputs(a, &written); !s.ok()) {
    fmt::print(stderr, "corun trace: {}\n", s.message());
    return 1;
  }
  fmt::print(stderr, "# wrote {0}/summary.json and {1} Perfetto trace(s) (ui.perfetto.dev); timeline: scripts/trace_plot.py {0}\n",
             dir, written.size() - 1);
  return 0;
}

}  // namespace

int RunTraceApp(int argc, char** argv, int dash) {
  CLI::App app{"corun trace [options] -- CMD [ARGS...]: record CMD's kernels, copies and collectives (CUPTI) "
               "and show where computation-communication overlap is lost; corun trace --analyze DIR",
               "corun trace"};
  std::string policy, dir = "corun_trace", steps, window, analyze, lib;
  AttributionOptions o;
  bool verbose = false, no_api = false;
  app.add_option("-p,--policy", policy, "also apply a corun policy (as corun -p POLICY -- CMD)");
  app.add_option("-o,--out", dir, "folder for the record files and outputs")->capture_default_str();
  app.add_option("--steps", steps, "cut the run into steps: nvtx:NAME (NVTX ranges) or kernel:NAME (a repeating kernel)");
  app.add_option("--skip", o.skip_steps, "warm-up steps left out")->capture_default_str();
  app.add_option("--warmup", o.warmup_frac, "without --steps: fraction of the run left out as warm-up")
      ->capture_default_str();
  app.add_option("--window", window, "BEGIN:END in ms after the first GPU record (instead of steps/warm-up)");
  app.add_option("--analyze", analyze, "redo the analysis of the records in this folder (no command)");
  app.add_option("--lib", lib,
                 "path of libcorun_trace.so (default: ../lib/ or the folder of corun, the build tree, $LD_LIBRARY_PATH)");
  app.add_flag("--no-api", no_api,
               "record no launch calls, only the GPU's work: lighter on programs that launch many small kernels "
               "(a collective's wait then counts from its stream's previous work)");
  app.add_flag("-v,--verbose", verbose, "each traced process says where it writes");
  try {
    app.parse(dash > 0 ? dash - 1 : argc - 1, argv + 1);  // the options between "trace" and "--"
  } catch (const CLI::ParseError& e) {
    return ParseFailed(app, e, "corun trace");
  }
  o.steps = steps;
  Status s = ParseStepsSpec(steps);
  if (s.ok() && !window.empty()) s = ParseWindowSpec(window, &o.window_begin_ms, &o.window_end_ms);
  if (s.ok() && (o.warmup_frac < 0 || o.warmup_frac >= 1)) s = Status::Error("--warmup must be in [0, 1)");
  if (s.ok() && o.skip_steps < 0) s = Status::Error("--skip must be >= 0");
  if (!s.ok()) {
    fmt::print(stderr, "corun trace: {}\n", s.message());
    return 2;
  }
  if (!analyze.empty()) {
    if (dash > 0) {
      fmt::print(stderr, "corun trace: --analyze takes no command\n");
      return 2;
    }
    if (no_api) {
      fmt::print(stderr, "corun trace: --no-api is for recording a run, not for --analyze\n");
      return 2;
    }
    return Analyze(analyze, o, 2);
  }
  if (dash <= 0 || dash + 1 >= argc) {
    fmt::print(stderr, "corun trace: no command after '--' (or --analyze DIR)\n");
    return 2;
  }

  // Everything that can be known before the command runs.
  std::vector<std::pair<std::string, std::string>> env;
  std::string preload;
  if (!policy.empty()) {
    Policy p;
    s = ParsePolicy(policy, &p);
    if (s.ok()) s = CheckInterposable(p);
    if (!s.ok()) {
      fmt::print(stderr, "corun trace: {}\n", s.message());
      return 2;
    }
    std::string tried;
    preload = FindCorunLib("libcorun_preload.so", "", "CORUN_PRELOAD_LIB", &tried);
    if (preload.empty()) {
      fmt::print(stderr, "corun trace: cannot find libcorun_preload.so (looked in {})\n", tried);
      return 2;
    }
    env.emplace_back("CORUN_POLICY", p.Name());
    if (Status pe = PolicyEnv(p, false, &env); !pe.ok()) {
      fmt::print(stderr, "corun trace: {}\n", pe.message());
      return 2;
    }
  }
  const std::string cmd = argv[dash + 1];
  std::string where;
  if (const int r = ResolveCommand(cmd, &where); r != 0) {
    fmt::print(stderr, "corun trace: {}\n",
               r == 127 ? fmt::format("command not found: {}", Printable(cmd))
                        : fmt::format("cannot execute {}: not an executable file", Printable(where)));
    return r;
  }
  std::string why;
  if (!PrepareDir(dir, &why)) {
    fmt::print(stderr, "corun trace: cannot write to output folder {} ({})\n", dir, why);
    return 2;
  }
  char real[PATH_MAX];
  const std::string adir = realpath(dir.c_str(), real) ? std::string(real) : dir;
#ifndef CORUN_HAVE_CUPTI
  if (lib.empty()) {
    fmt::print(stderr, "corun trace: built without CUPTI (cupti.h/libcupti not found at configure time; set CUPTI_HOME and rebuild)\n");
    return 2;
  }
#endif
  std::string tried;
  const std::string tlib = FindCorunLib("libcorun_trace.so", lib, nullptr, &tried);
  if (tlib.empty()) {
    fmt::print(stderr, "corun trace: cannot find libcorun_trace.so (looked in {}; give --lib PATH)\n", tried);
    return 2;
  }
  // Loading it here proves that it and libcupti load; the NVTX hook is CUPTI's own library.
  void* h = dlopen(tlib.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    fmt::print(stderr, "corun trace: cannot load {}: {}\n", tlib, dlerror());
    return 2;
  }
  std::string cupti_path;
  Dl_info info{};
  if (void* sym = dlsym(h, "cuptiActivityEnable"); sym && dladdr(sym, &info) && info.dli_fname)
    cupti_path = info.dli_fname;
  if (const char* inj = std::getenv("CUDA_INJECTION64_PATH"); inj && *inj) {
    fmt::print(stderr, "corun trace: CUDA_INJECTION64_PATH is already set ({}): another tool injects itself\n", inj);
    return 2;
  }
  char rlib[PATH_MAX];
  env.emplace_back("CORUN_TRACE_DIR", adir);
  env.emplace_back("CUDA_INJECTION64_PATH", realpath(tlib.c_str(), rlib) ? std::string(rlib) : tlib);
  if (!cupti_path.empty() && !std::getenv("NVTX_INJECTION64_PATH")) env.emplace_back("NVTX_INJECTION64_PATH", cupti_path);
  if (verbose) env.emplace_back("CORUN_TRACE_VERBOSE", "1");
  if (no_api) env.emplace_back("CORUN_TRACE_API", "0");
  if (!preload.empty()) {
    const char* old = std::getenv("LD_PRELOAD");
    env.emplace_back("LD_PRELOAD", old && *old ? std::string(old) + ":" + preload : preload);
  }

  const auto t0 = std::chrono::steady_clock::now();
  const pid_t pid = fork();
  if (pid < 0) {
    fmt::print(stderr, "corun trace: fork failed: {}\n", std::strerror(errno));
    return 1;
  }
  if (pid == 0) {
    for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    execvp(cmd.c_str(), argv + dash + 1);
    fmt::print(stderr, "corun trace: cannot run {}: {}\n", cmd, std::strerror(errno));
    _exit(126);
  }
  // The terminal's Ctrl-C reaches the child; this process stays to analyze what was recorded.
  g_child = pid;
  signal(SIGINT, SIG_IGN);
  signal(SIGQUIT, SIG_IGN);
  signal(SIGTERM, Forward);
  signal(SIGHUP, Forward);
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const int code = WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : 1;
  fmt::print(stderr, "# corun trace: {} exited with status {} after {:.2f} s\n", cmd, code, secs);
  const int ar = Analyze(adir, o, 1);
  return code != 0 ? code : ar;
}

}  // namespace corun
