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

#include "corun/attribution.h"
#include "corun/launch_rules.h"
#include "corun/policy.h"
#include "corun/trace_report.h"

#include "cli.h"

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

std::string FindBeside(const std::string& name) {
  const std::string dir = SelfDir();
  for (const std::string& c : {dir + "/" + name, dir + "/../lib/" + name}) {
    char real[PATH_MAX];
    if (access(c.c_str(), R_OK) == 0) return realpath(c.c_str(), real) ? std::string(real) : c;
  }
  return "";
}

bool InPath(const std::string& cmd) {
  if (cmd.find('/') != std::string::npos) return access(cmd.c_str(), X_OK) == 0;
  const char* path = std::getenv("PATH");
  const std::string p = path ? path : "/usr/bin:/bin";
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
    std::fprintf(stderr, "corun trace: %s\n", s.message().c_str());
    return status_if_none;
  }
  std::fputs(TraceTable(a).c_str(), stderr);
  std::vector<std::string> written;
  if (Status s = WriteTraceOutputs(a, &written); !s.ok()) {
    std::fprintf(stderr, "corun trace: %s\n", s.message().c_str());
    return 1;
  }
  std::fprintf(stderr, "# wrote %s/summary.json and %zu Perfetto trace(s) (ui.perfetto.dev); timeline: scripts/trace_plot.py %s\n",
               dir.c_str(), written.size() - 1, dir.c_str());
  return 0;
}

}  // namespace

int RunTraceApp(int argc, char** argv, int dash) {
  CLI::App app{"corun trace [options] -- CMD [ARGS...]: record CMD's kernels, copies and collectives (CUPTI) "
               "and show where computation-communication overlap is lost; corun trace --analyze DIR"};
  std::string policy, dir = "corun_trace", steps, window, analyze, lib;
  AttributionOptions o;
  bool verbose = false;
  app.add_option("-p,--policy", policy, "also apply a corun policy (as corun -p POLICY -- CMD)");
  app.add_option("-o,--out", dir, "folder for the record files and outputs")->capture_default_str();
  app.add_option("--steps", steps, "cut the run into steps: nvtx:NAME (NVTX ranges) or kernel:NAME (a repeating kernel)");
  app.add_option("--skip", o.skip_steps, "warm-up steps left out")->capture_default_str();
  app.add_option("--warmup", o.warmup_frac, "without --steps: fraction of the run left out as warm-up")
      ->capture_default_str();
  app.add_option("--window", window, "BEGIN:END in ms after the first GPU record (instead of steps/warm-up)");
  app.add_option("--analyze", analyze, "redo the analysis of the records in this folder (no command)");
  app.add_option("--lib", lib, "path of libcorun_trace.so (default: beside corun)");
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
    std::fprintf(stderr, "corun trace: %s\n", s.message().c_str());
    return 2;
  }
  if (!analyze.empty()) {
    if (dash > 0) {
      std::fprintf(stderr, "corun trace: --analyze takes no command\n");
      return 2;
    }
    return Analyze(analyze, o, 2);
  }
  if (dash <= 0 || dash + 1 >= argc) {
    std::fprintf(stderr, "corun trace: no command after '--' (or --analyze DIR)\n");
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
      std::fprintf(stderr, "corun trace: %s\n", s.message().c_str());
      return 2;
    }
    preload = FindBeside("libcorun_preload.so");
    if (preload.empty()) {
      std::fprintf(stderr, "corun trace: cannot find libcorun_preload.so beside corun\n");
      return 2;
    }
    env.emplace_back("CORUN_POLICY", p.Name());
    if (p.ncclctas > 0) env.emplace_back("NCCL_MAX_CTAS", std::to_string(p.ncclctas));
  }
  const std::string cmd = argv[dash + 1];
  if (!InPath(cmd)) {
    std::fprintf(stderr, "corun trace: command not found: %s\n", cmd.c_str());
    return 127;
  }
  std::string why;
  if (!PrepareDir(dir, &why)) {
    std::fprintf(stderr, "corun trace: cannot write to output folder %s (%s)\n", dir.c_str(), why.c_str());
    return 2;
  }
  char real[PATH_MAX];
  const std::string adir = realpath(dir.c_str(), real) ? std::string(real) : dir;
#ifndef CORUN_HAVE_CUPTI
  if (lib.empty()) {
    std::fprintf(stderr, "corun trace: built without CUPTI (cupti.h/libcupti not found at configure time; set CUPTI_HOME and rebuild)\n");
    return 2;
  }
#endif
  const std::string tlib = lib.empty() ? FindBeside("libcorun_trace.so") : lib;
  // Loading it here proves that it and libcupti load; the NVTX hook is CUPTI's own library.
  void* h = tlib.empty() ? nullptr : dlopen(tlib.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    std::fprintf(stderr, "corun trace: cannot load %s: %s\n", tlib.empty() ? "libcorun_trace.so" : tlib.c_str(),
                 tlib.empty() ? "not beside corun" : dlerror());
    return 2;
  }
  std::string cupti_path;
  Dl_info info{};
  if (void* sym = dlsym(h, "cuptiActivityEnable"); sym && dladdr(sym, &info) && info.dli_fname)
    cupti_path = info.dli_fname;
  if (const char* inj = std::getenv("CUDA_INJECTION64_PATH"); inj && *inj) {
    std::fprintf(stderr, "corun trace: CUDA_INJECTION64_PATH is already set (%s): another tool injects itself\n", inj);
    return 2;
  }
  char rlib[PATH_MAX];
  env.emplace_back("CORUN_TRACE_DIR", adir);
  env.emplace_back("CUDA_INJECTION64_PATH", realpath(tlib.c_str(), rlib) ? std::string(rlib) : tlib);
  if (!cupti_path.empty() && !std::getenv("NVTX_INJECTION64_PATH")) env.emplace_back("NVTX_INJECTION64_PATH", cupti_path);
  if (verbose) env.emplace_back("CORUN_TRACE_VERBOSE", "1");
  if (!preload.empty()) {
    const char* old = std::getenv("LD_PRELOAD");
    env.emplace_back("LD_PRELOAD", old && *old ? std::string(old) + ":" + preload : preload);
  }

  const auto t0 = std::chrono::steady_clock::now();
  const pid_t pid = fork();
  if (pid < 0) {
    std::fprintf(stderr, "corun trace: fork failed: %s\n", std::strerror(errno));
    return 1;
  }
  if (pid == 0) {
    for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    execvp(cmd.c_str(), argv + dash + 1);
    std::fprintf(stderr, "corun trace: cannot run %s: %s\n", cmd.c_str(), std::strerror(errno));
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
  std::fprintf(stderr, "# corun trace: %s exited with status %d after %.2f s\n", cmd.c_str(), code, secs);
  const int ar = Analyze(adir, o, 1);
  return code != 0 ? code : ar;
}

}  // namespace corun
