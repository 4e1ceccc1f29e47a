// Watchdog: if no progress is reported for `timeout_s`, it names what hung, aborts every NCCL
// communicator and ends the process with exit code 3, so a benchmark never hangs a node.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace corun {

constexpr int kExitHang = 3;

class Watchdog {
 public:
  static Watchdog& Get();
  // 0 disables; grace_s: how long NCCL's abort may take before the process ends regardless.
  void Start(int timeout_s, int grace_s = 10);
  void Stop();
  // What is running now (shown if it hangs); also counts as progress.
  void Phase(const std::string& what);
  void Kick();

 private:
  Watchdog() = default;
  void Loop();
  std::mutex mu_;
  std::condition_variable cv_;
  std::string phase_ = "start-up";
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
  int timeout_s_ = 0;
  int grace_s_ = 10;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace corun
