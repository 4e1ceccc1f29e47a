// Running corun itself as a helper process (the maxconn1 child, the NCCL probes, application
// trials of corun tune): the same binary, the caller's environment with some variables replaced.
#pragma once
#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

namespace corun {

struct SpawnSpec {
  std::vector<std::string> args;           // after argv[0]
  std::vector<std::string> drop_env;       // variables whose "NAME=" (or prefix) is removed
  std::vector<std::string> add_env;        // "NAME=value"
  int out_fd = -1;                         // stdout (and stderr if err_too) to this fd; -1: stdout to /dev/null
  bool err_too = false;
  bool own_group = false;  // a process group of its own, so a deadline's kill takes its helpers too
};

// A new empty file under /tmp for a helper's output ("" if none could be made).
std::string TempFile(const char* prefix);
// The whole content of a helper's output file, which is then removed.
std::string TakeFile(const std::string& path);

// Starts /proc/self/exe; returns its pid, or -1.
pid_t SpawnSelf(const SpawnSpec& spec);
// Waits for it: the exit code, or -1 for a signal or failure.
int WaitExit(pid_t pid);
// The same with a deadline (timeout_s > 0; 0 waits as long as it takes). Past it the child's process
// group (or the child alone, if it leads none) is killed and reaped: -1 with *timed_out set.
// `alive`, when given, is called about once a second while the child runs within its deadline.
int WaitExit(pid_t pid, int timeout_s, const std::function<void()>& alive, bool* timed_out);

}  // namespace corun
