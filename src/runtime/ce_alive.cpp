// Copy-engine collectives, liveness of ranks in other processes: each holds a POSIX lock on a
// shared-memory file for as long as its communicator lives; a monitor thread probes the peers'
// and aborts the collectives when one is gone (ce_comm.h).
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "ce_comm.h"

namespace corun {

bool CeRankLock::Hold(const std::string& name, std::string* why) {
  Release();
  const std::string shm = "/corun_" + name;
  const int fd = shm_open(shm.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) {
    *why = "shm_open " + shm + ": " + std::strerror(errno);
    return false;
  }
  struct flock fl;
  std::memset(&fl, 0, sizeof(fl));
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;  // l_start 0, l_len 0: the whole file
  if (fcntl(fd, F_SETLK, &fl) != 0) {
    *why = "lock " + shm + ": " + std::strerror(errno);
    close(fd);
    return false;
  }
  // One byte, 0 while held; Release writes kCeReleased there before it unlocks.
  const char held = 0;
  if (ftruncate(fd, 1) != 0 || pwrite(fd, &held, 1, 0) != 1) {
    *why = "size " + shm + ": " + std::strerror(errno);
    close(fd);
    return false;
  }
  fd_ = fd;
  name_ = shm;
  return true;
}

void CeRankLock::Release() {
  if (fd_ < 0) return;
  // The mark first: a probe that opened the file before the unlink and looks after the close
  // finds it unlocked, and must read "released", not "gone".
  const char released = kCeReleased;
  if (pwrite(fd_, &released, 1, 0) != 1) { /* the unlink below still hides the name from new probes */ }
  shm_unlink(name_.c_str());
  close(fd_);  // drops the lock
  fd_ = -1;
}

CeRankState CeProbeRankFd(int fd) {
  struct flock fl;
  std::memset(&fl, 0, sizeof(fl));
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  if (fcntl(fd, F_GETLK, &fl) != 0) return CeRankState::kUnknown;
  if (fl.l_type != F_UNLCK) return CeRankState::kAlive;
  char mark = 0;
  if (pread(fd, &mark, 1, 0) != 1 || mark == kCeReleased) return CeRankState::kUnknown;
  return CeRankState::kGone;
}

CeRankState CeProbeRank(const std::string& name) {
  const std::string shm = "/corun_" + name;
  const int fd = shm_open(shm.c_str(), O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) return CeRankState::kUnknown;
  const CeRankState st = CeProbeRankFd(fd);
  close(fd);
  return st;
}

bool CeComm::PollPeers() {
  if (lost_rank_.load() >= 0) return true;
  for (int p = 0; p < nranks_ && p < static_cast<int>(alive_names_.size()); ++p) {
    if (p == rank_ || alive_names_[p].empty() || CeProbeRank(alive_names_[p]) != CeRankState::kGone) continue;
    int none = -1;
    if (lost_rank_.compare_exchange_strong(none, p)) {
      std::fprintf(stderr, "corun ce: rank %d: rank %d (pid %d) exited; aborting the copy-engine collectives\n",
                   rank_, p, peer_pids_[p]);
      std::fflush(stderr);
      Abort();
    }
    return true;
  }
  return false;
}

std::vector<int> CeComm::GoneRanks() const {
  std::vector<int> gone;
  for (int p = 0; p < static_cast<int>(alive_names_.size()); ++p)
    if (p != rank_ && !alive_names_[p].empty() && CeProbeRank(alive_names_[p]) == CeRankState::kGone) gone.push_back(p);
  return gone;
}

void CeComm::StopMonitor() {
  {
    std::lock_guard<std::mutex> l(mon_mu_);
    mon_stop_ = true;
  }
  mon_cv_.notify_all();
  if (monitor_.joinable()) monitor_.join();
}

void CeComm::StartMonitor() {
  bool any_peer_lock = false;
  for (const std::string& nm : alive_names_) any_peer_lock |= !nm.empty();
  if (!any_peer_lock) return;
  monitor_ = std::thread([this] {
    std::unique_lock<std::mutex> l(mon_mu_);
    while (!mon_stop_) {
      mon_cv_.wait_for(l, std::chrono::milliseconds(200));
      if (mon_stop_) break;
      l.unlock();
      const bool done = aborted_ || PollPeers();
      l.lock();
      if (done) break;
    }
  });
}

}  // namespace corun
