#include "self_spawn.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace corun {

std::string TempFile(const char* prefix) {
  std::string tmpl = std::string("/tmp/") + prefix + "-XXXXXX";
  const int fd = mkstemp(tmpl.data());
  if (fd < 0) return "";
  close(fd);
  return tmpl;
}

std::string TakeFile(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  unlink(path.c_str());
  return ss.str();
}

pid_t SpawnSelf(const SpawnSpec& spec) {
  std::vector<std::string> args = {"/proc/self/exe"};
  args.insert(args.end(), spec.args.begin(), spec.args.end());
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    const std::string v(*e);
    bool drop = false;
    for (const std::string& d : spec.drop_env)
      if (v.rfind(d, 0) == 0) drop = true;
    if (!drop) env.push_back(v);
  }
  env.insert(env.end(), spec.add_env.begin(), spec.add_env.end());
  std::vector<char*> av, ev;
  for (auto& a : args) av.push_back(a.data());
  av.push_back(nullptr);
  for (auto& e : env) ev.push_back(e.data());
  ev.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (spec.out_fd < 0) {
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  } else {
    posix_spawn_file_actions_adddup2(&fa, spec.out_fd, STDOUT_FILENO);
    if (spec.err_too) posix_spawn_file_actions_adddup2(&fa, spec.out_fd, STDERR_FILENO);
  }
  posix_spawnattr_t at;
  posix_spawnattr_init(&at);
  if (spec.own_group) {
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&at, 0);
  }
  pid_t pid = -1;
  if (posix_spawn(&pid, "/proc/self/exe", &fa, &at, av.data(), ev.data()) != 0) pid = -1;
  posix_spawnattr_destroy(&at);
  posix_spawn_file_actions_destroy(&fa);
  return pid;
}

int WaitExit(pid_t pid) {
  if (pid < 0) return -1;
  int st = 0;
  if (waitpid(pid, &st, 0) < 0) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

namespace {
// A child in a process group of its own does not get the terminal's Ctrl-C: while one is waited
// for, SIGINT / SIGTERM / SIGHUP are caught, passed on to its group, and then take their usual
// effect here. Only signals left at their default are caught (a program's own handlers stay).
volatile sig_atomic_t g_forward = 0;
void Remember(int sig) { g_forward = sig; }

struct ForwardSignals {
  static constexpr int kSigs[3] = {SIGINT, SIGTERM, SIGHUP};
  struct sigaction prev[3];
  bool set[3] = {false, false, false};
  ForwardSignals() {
    g_forward = 0;
    for (int i = 0; i < 3; ++i) {
      struct sigaction cur {};
      if (sigaction(kSigs[i], nullptr, &cur) != 0 || cur.sa_handler != SIG_DFL) continue;
      struct sigaction sa {};
      sa.sa_handler = Remember;
      sigemptyset(&sa.sa_mask);
      set[i] = sigaction(kSigs[i], &sa, &prev[i]) == 0;
    }
  }
  ~ForwardSignals() {
    for (int i = 0; i < 3; ++i)
      if (set[i]) sigaction(kSigs[i], &prev[i], nullptr);
  }
};
}  // namespace

int WaitExit(pid_t pid, int timeout_s, const std::function<void()>& alive, bool* timed_out) {
  if (timed_out) *timed_out = false;
  if (pid < 0) return -1;
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  auto last_alive = t0;
  int sig = 0;
  {
    ForwardSignals fw;
    for (;;) {
      int st = 0;
      const pid_t r = waitpid(pid, &st, WNOHANG);
      if (r == pid) {
        sig = g_forward;
        if (!sig) return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        break;
      }
      if (r < 0) return -1;
      if (g_forward) {
        sig = g_forward;
        if (kill(-pid, sig) != 0) kill(pid, sig);
        waitpid(pid, &st, 0);
        break;
      }
      const auto now = Clock::now();
      if (timeout_s > 0 && now - t0 >= std::chrono::seconds(timeout_s)) {
        // The group takes the child's own helpers (probe processes) with it.
        if (kill(-pid, SIGKILL) != 0) kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        if (timed_out) *timed_out = true;
        return -1;
      }
      if (alive && now - last_alive >= std::chrono::seconds(1)) {
        alive();
        last_alive = now;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  // The handlers are back as they were: the signal now does here what it would have done.
  raise(sig);
  return -1;
}

}  // namespace corun
