#include "watchdog.h"

#include <unistd.h>

#include <cstdio>

#include "ce_comm.h"
#include "comm.h"

namespace corun {

Watchdog& Watchdog::Get() {
  static Watchdog w;
  return w;
}

void Watchdog::Start(int timeout_s, int grace_s) {
  if (timeout_s <= 0 || thread_.joinable()) return;
  timeout_s_ = timeout_s;
  grace_s_ = grace_s;
  last_ = std::chrono::steady_clock::now();
  thread_ = std::thread([this] { Loop(); });
}

void Watchdog::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Watchdog::Phase(const std::string& what) {
  std::lock_guard<std::mutex> l(mu_);
  phase_ = what;
  last_ = std::chrono::steady_clock::now();
}

void Watchdog::Kick() {
  std::lock_guard<std::mutex> l(mu_);
  last_ = std::chrono::steady_clock::now();
}

void Watchdog::Loop() {
  std::unique_lock<std::mutex> l(mu_);
  while (!stop_) {
    cv_.wait_for(l, std::chrono::seconds(1));
    if (stop_) break;
    const auto idle = std::chrono::steady_clock::now() - last_;
    if (idle > std::chrono::seconds(timeout_s_)) {
      std::fprintf(stderr, "corun: watchdog: no progress for %d s in %s; aborting NCCL communicators\n",
                   timeout_s_, phase_.c_str());
      std::fflush(stderr);
      l.unlock();
      // Abort can itself block on a wedged GPU: give it a bounded time, then leave regardless.
      // Copy-engine waits first (they hold streams NCCL teardown may wait on), then NCCL.
      std::thread([] {
        AbortAllCeComms();
        AbortAllComms();
      }).detach();
      std::this_thread::sleep_for(std::chrono::seconds(grace_s_));
      _exit(kExitHang);
    }
  }
}

}  // namespace corun
