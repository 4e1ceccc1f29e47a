// The liveness lock by which copy-engine ranks find a peer process gone (ce_comm.h), without a
// GPU: a rank's lock reads alive from another process while its holder lives, gone once the holder
// exits without releasing it (even while a child it forked still has the file open), and unknown
// after a clean Release (the file is removed). Exit 0 on success, 1 with one line per failure.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "ce_comm.h"

using corun::CeProbeRank;
using corun::CeRankLock;
using corun::CeRankState;

namespace {

int g_fail = 0;

const char* Name(CeRankState s) {
  return s == CeRankState::kAlive ? "alive" : s == CeRankState::kGone ? "gone" : "unknown";
}

void Expect(const std::string& what, CeRankState got, CeRankState want) {
  if (got == want) return;
  std::fprintf(stderr, "ce_rank_lock_check: FAIL: %s: probe says %s, want %s\n", what.c_str(), Name(got), Name(want));
  ++g_fail;
}

// The probe run in a child process (a process's own lock never conflicts with itself).
CeRankState ProbeFromChild(const std::string& name) {
  const pid_t pid = fork();
  if (pid == 0) _exit(static_cast<int>(CeProbeRank(name)));
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? static_cast<CeRankState>(WEXITSTATUS(st)) : CeRankState::kUnknown;
}

}  // namespace

int main() {
  const std::string name = "ce_rank_lock_check_" + std::to_string(getpid());
  Expect("before anyone holds it", CeProbeRank(name), CeRankState::kUnknown);

  // A holder that forks a child keeping the descriptor, then leaves without releasing.
  int ready[2], go[2], grandchild[2];
  if (pipe(ready) != 0 || pipe(go) != 0 || pipe(grandchild) != 0) {
    std::fprintf(stderr, "ce_rank_lock_check: FAIL: pipe\n");
    return 1;
  }
  const pid_t holder = fork();
  if (holder == 0) {
    CeRankLock lock;
    std::string why;
    char c = lock.Hold(name, &why) ? 'y' : 'n';
    if (c == 'n') std::fprintf(stderr, "ce_rank_lock_check: FAIL: Hold: %s\n", why.c_str());
    const pid_t g = fork();  // inherits the descriptor, not the lock
    if (g == 0) {
      for (;;) pause();
    }
    if (write(grandchild[1], &g, sizeof(g)) != sizeof(g) || write(ready[1], &c, 1) != 1) _exit(3);
    if (read(go[0], &c, 1) != 1) _exit(3);
    _exit(0);  // no Release: as a crash would leave it
  }
  char c = 0;
  pid_t g = 0;
  if (read(ready[0], &c, 1) != 1 || c != 'y' || read(grandchild[0], &g, sizeof(g)) != sizeof(g)) {
    std::fprintf(stderr, "ce_rank_lock_check: FAIL: the holder could not take its lock\n");
    return 1;
  }
  Expect("holder alive", CeProbeRank(name), CeRankState::kAlive);
  if (write(go[1], &c, 1) != 1) return 1;
  int st = 0;
  waitpid(holder, &st, 0);
  Expect("holder exited, its fork still running", CeProbeRank(name), CeRankState::kGone);
  kill(g, SIGKILL);
  waitpid(g, &st, 0);
  shm_unlink(("/corun_" + name).c_str());  // what the holder left behind

  // A clean release removes the file: unknown, never gone.
  {
    CeRankLock lock;
    std::string why;
    if (!lock.Hold(name, &why)) {
      std::fprintf(stderr, "ce_rank_lock_check: FAIL: Hold: %s\n", why.c_str());
      return 1;
    }
    Expect("held by this process, probed from a child", ProbeFromChild(name), CeRankState::kAlive);
    // A probe that opened the file before the release and looks after it: released, not gone.
    int opened[2], released[2];
    if (pipe(opened) != 0 || pipe(released) != 0) return 1;
    const pid_t prober = fork();
    if (prober == 0) {
      const int fd = shm_open(("/corun_" + name).c_str(), O_RDWR | O_CLOEXEC, 0600);
      char x = fd >= 0 ? 'y' : 'n';
      if (write(opened[1], &x, 1) != 1 || read(released[0], &x, 1) != 1) _exit(9);
      _exit(fd >= 0 ? static_cast<int>(corun::CeProbeRankFd(fd)) : 9);
    }
    char x = 0;
    if (read(opened[0], &x, 1) != 1 || x != 'y') {
      std::fprintf(stderr, "ce_rank_lock_check: FAIL: the prober could not open the lock file\n");
      return 1;
    }
    lock.Release();
    if (write(released[1], &x, 1) != 1) return 1;
    int pst = 0;
    waitpid(prober, &pst, 0);
    const CeRankState raced = WIFEXITED(pst) && WEXITSTATUS(pst) <= 2 ? static_cast<CeRankState>(WEXITSTATUS(pst))
                                                                      : CeRankState::kAlive;
    Expect("opened before Release, probed after it", raced, CeRankState::kUnknown);
    Expect("after Release", ProbeFromChild(name), CeRankState::kUnknown);
  }
  if (g_fail == 0) std::puts("ce_rank_lock_check: alive while held, gone after the holder exited, unknown after release (also to a probe that opened the file before it)");
  return g_fail ? 1 : 0;
}
