// What the subcommands of the corun command share: their entry points, their option structs, and
// the rule for bad input (one line on stderr, exit 2).
#pragma once
#include <CLI/CLI.hpp>
#include <string>
#include <utility>
#include <vector>

#include "corun/policy.h"
#include "corun/status.h"

namespace corun {

// "corun [options] -- CMD": the launcher's options (environment for libcorun_preload.so).
struct LauncherOptions {
  std::string policy = "priority";
  std::string report, lib, allow, deny, patterns, cache;
  bool verbose = false, dry_run = false;
  int nccl_ctas = 0;
};
void AddLauncherOptions(CLI::App* app, LauncherOptions* o);
// The launcher's option objects (to tell "corun -p X bench" that -p belongs to the launcher).
std::vector<const CLI::Option*> LauncherOptionList(const CLI::App& app);
// Execs `cmd` under the policy; returns only on failure (2 bad input, 126/127 for the command).
int RunLauncher(const LauncherOptions& o, const std::vector<std::string>& cmd);
// The environment a policy sets for the program (NCCL geometry, maxconn1, ce), checked; the
// launcher and `corun trace -p` share it.
Status PolicyEnv(const Policy& p, bool verbose, std::vector<std::pair<std::string, std::string>>* env);

// corun's library `name` (libcorun_preload.so, libcorun_trace.so): explicit_path (--lib) if given,
// else $env_var if set (may be null), else ../lib and the folder of corun, the build tree,
// $LD_LIBRARY_PATH. Returns "" if not found; `tried` lists every place looked at, for the error.
std::string FindCorunLib(const std::string& name, const std::string& explicit_path, const char* env_var,
                         std::string* tried);
// Where execvp would find `cmd`: 0 found and executable, 126 found but not executable (or a
// folder), 127 not found (the shell's exit codes); `where` is the path found.
int ResolveCommand(const std::string& cmd, std::string* where);

// "corun tune [options] -- CMD": tuning an application.
struct TuneAppOptions {
  int runs = 16;
  std::string metric;
  bool higher = false;
  std::string cache;
  // Seconds one run may take before it is stopped (its process group killed) and counted as
  // failed; 0: no limit; -1 (the default): kAutoRunTimeoutFactor x the slowest run that
  // succeeded, at least kMinAutoRunTimeoutS, and kFirstRunTimeoutS until one has.
  int run_timeout_s = -1;
};
constexpr int kAutoRunTimeoutFactor = 3;
constexpr int kMinAutoRunTimeoutS = 60;
constexpr int kFirstRunTimeoutS = 3600;
int RunTuneApp(const TuneAppOptions& o, const std::vector<std::string>& cmd);

int RunInfo(bool json);

// "corun trace [options] -- CMD" and "corun trace --analyze DIR" (dash: the "--", or -1).
int RunTraceApp(int argc, char** argv, int dash);

// The rule for a CLI11 parse failure: --help/--version print and return 0; anything else is one
// line "<prefix>: <message>" on stderr and exit 2.
int ParseFailed(const CLI::App& app, const CLI::ParseError& e, const std::string& prefix);

// "-g/--ngpus": every spelling of a flag, for messages.
std::string Names(const CLI::Option* opt);

// A CLI11 check that names the flag, the bound and the value: "-g/--ngpus must be >= 0 (got -1)".
CLI::Validator AtLeast(double min);
CLI::Validator InRange(double min, double max);

}  // namespace corun
