// SpawnSelf/WaitExit: the child is this same program; it checks what it was given and answers
// with its exit code (0 = arguments and environment as specified). A second child (with a helper
// of its own) sleeps past a 1 s deadline: both must be killed, reaped, and reported; a SIGTERM to
// a parent waiting for a child of its own process group reaches that group, then ends the parent.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "self_spawn.h"

// Gone: no such process, or a zombie left to a reaper that is not ours.
static bool Gone(pid_t pid) {
  if (kill(pid, 0) != 0) return errno == ESRCH;
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  FILE* f = std::fopen(path, "r");
  if (!f) return true;
  char line[512] = {};
  const bool got = std::fgets(line, sizeof line, f) != nullptr;
  std::fclose(f);
  const char* rp = got ? std::strrchr(line, ')') : nullptr;
  return rp && rp[1] == ' ' && rp[2] == 'Z';
}

int main(int argc, char** argv) {
  if (argc > 2 && std::string(argv[1]) == "sleeper") {
    // A helper in the same process group (as a bench child's probes are), whose pid goes to argv[2].
    corun::SpawnSpec h;
    h.args = {"sleep"};
    const pid_t helper = corun::SpawnSelf(h);
    if (FILE* f = std::fopen(argv[2], "w")) {
      std::fprintf(f, "%d\n", static_cast<int>(helper));
      std::fclose(f);
    }
    sleep(30);
    return 0;
  }
  if (argc > 2 && std::string(argv[1]) == "waiter") {
    // Waits (no deadline) for a sleeper in a group of its own; argv[2] gets the sleeper's pid.
    corun::SpawnSpec sl;
    sl.args = {"sleep"};
    sl.own_group = true;
    const pid_t pid = corun::SpawnSelf(sl);
    if (FILE* f = std::fopen(argv[2], "w")) {
      std::fprintf(f, "%d\n", static_cast<int>(pid));
      std::fclose(f);
    }
    bool late = false;
    corun::WaitExit(pid, 0, [] {}, &late);
    return 20;  // not reached when the signal ends this process
  }
  if (argc > 1 && std::string(argv[1]) == "sleep") {
    sleep(30);
    return 0;
  }
  if (argc > 1 && std::string(argv[1]) == "child") {
    const char* added = std::getenv("SPAWN_ADDED");
    const char* dropped = std::getenv("SPAWN_DROPPED");
    const char* kept = std::getenv("SPAWN_KEPT");
    if (argc != 4 || std::string(argv[2]) != "a b" || std::string(argv[3]) != "c") return 10;
    if (!added || std::string(added) != "1") return 11;
    if (dropped) return 12;
    if (!kept || std::string(kept) != "yes") return 13;
    std::puts("to stdout");
    return 7;
  }
  setenv("SPAWN_DROPPED", "x", 1);
  setenv("SPAWN_KEPT", "yes", 1);
  corun::SpawnSpec spec;
  spec.args = {"child", "a b", "c"};
  spec.drop_env = {"SPAWN_DROPPED="};
  spec.add_env = {"SPAWN_ADDED=1"};
  const int code = corun::WaitExit(corun::SpawnSelf(spec));
  if (code != 7) {
    std::printf("FAIL: child answered %d\n", code);
    return 1;
  }
  std::printf("ok: child got its arguments and environment\n");

  char pidfile[] = "/tmp/spawn-check-XXXXXX";
  const int fd = mkstemp(pidfile);
  if (fd < 0) {
    std::printf("FAIL: no temporary file\n");
    return 1;
  }
  close(fd);
  corun::SpawnSpec sl;
  sl.args = {"sleeper", pidfile};
  sl.own_group = true;
  const auto t0 = std::chrono::steady_clock::now();
  const pid_t pid = corun::SpawnSelf(sl);
  int alive = 0;
  bool late = false;
  const int lc = corun::WaitExit(pid, 1, [&] { ++alive; }, &late);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!late || lc != -1 || s > 10) {
    std::printf("FAIL: a child past its 1 s deadline: timed_out %d, code %d after %.1f s\n", late, lc, s);
    return 1;
  }
  if (kill(pid, 0) == 0 || errno != ESRCH) {  // ours: reaped, not a zombie
    std::printf("FAIL: the killed child %d was not reaped\n", static_cast<int>(pid));
    return 1;
  }
  int helper = -1;
  if (FILE* f = std::fopen(pidfile, "r")) {
    if (std::fscanf(f, "%d", &helper) != 1) helper = -1;
    std::fclose(f);
  }
  unlink(pidfile);
  if (helper <= 0) {
    std::printf("FAIL: the child did not start its helper\n");
    return 1;
  }
  // The helper is not ours to reap (init takes it): give it a moment to go.
  for (int i = 0; i < 100 && !Gone(helper); ++i) usleep(20000);
  if (!Gone(helper)) {
    std::printf("FAIL: the child's helper %d survived the deadline's kill\n", helper);
    kill(helper, SIGKILL);
    return 1;
  }
  std::printf("ok: a child past its 1 s deadline was killed with its helper after %.1f s (%d alive calls)\n", s, alive);

  // A signal to a process that waits for a child of its own group reaches that child too (the
  // terminal's Ctrl-C would not), and then ends the waiter as it would have without the child.
  char wfile[] = "/tmp/spawn-check-XXXXXX";
  const int wfd = mkstemp(wfile);
  if (wfd < 0) return 1;
  close(wfd);
  corun::SpawnSpec wt;
  wt.args = {"waiter", wfile};
  const pid_t waiter = corun::SpawnSelf(wt);
  int sleeper = -1;
  for (int i = 0; i < 250 && sleeper <= 0; ++i) {
    usleep(20000);
    if (FILE* f = std::fopen(wfile, "r")) {
      if (std::fscanf(f, "%d", &sleeper) != 1) sleeper = -1;
      std::fclose(f);
    }
  }
  unlink(wfile);
  if (sleeper <= 0) {
    std::printf("FAIL: the waiter did not start its child\n");
    kill(waiter, SIGKILL);
    return 1;
  }
  usleep(200000);  // the waiter is in WaitExit by now
  kill(waiter, SIGTERM);
  int wst = 0;
  waitpid(waiter, &wst, 0);
  for (int i = 0; i < 100 && !Gone(sleeper); ++i) usleep(20000);
  if (!WIFSIGNALED(wst) || WTERMSIG(wst) != SIGTERM || !Gone(sleeper)) {
    std::printf("FAIL: SIGTERM to a waiting parent: parent %s, child %s\n",
                WIFSIGNALED(wst) ? "killed by a signal" : "exited", Gone(sleeper) ? "gone" : "still running");
    kill(sleeper, SIGKILL);
    return 1;
  }
  std::printf("ok: SIGTERM to a waiting parent reached its child's group and then ended the parent\n");
  return 0;
}
