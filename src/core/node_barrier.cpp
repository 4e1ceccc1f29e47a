// A one-shot barrier in POSIX shared memory for the ranks of one node (corun/node_barrier.h).
#include "corun/node_barrier.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

namespace corun {
namespace {

struct Segment {
  std::atomic<uint32_t> arrived;
  std::atomic<uint32_t> passed;
};
static_assert(std::atomic<uint32_t>::is_always_lock_free, "the counters are shared between processes");

}  // namespace

bool NodeBarrier(const std::string& key, int n, double timeout_s, std::string* why) {
  const std::string name = "/corun_" + key;
  // A new segment is zero-filled: both counters start at 0.
  const int fd = shm_open(name.c_str(), O_CREAT | O_RDWR, 0600);
  if (fd < 0) {
    *why = "shm_open " + name + ": " + std::strerror(errno);
    return false;
  }
  if (ftruncate(fd, sizeof(Segment)) != 0) {
    *why = "ftruncate " + name + ": " + std::strerror(errno);
    close(fd);
    return false;
  }
  void* p = mmap(nullptr, sizeof(Segment), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (p == MAP_FAILED) {
    *why = "mmap " + name + ": " + std::strerror(errno);
    return false;
  }
  auto* seg = static_cast<Segment*>(p);
  seg->arrived.fetch_add(1);
  const auto t0 = std::chrono::steady_clock::now();
  bool ok = true;
  while (seg->arrived.load() < static_cast<uint32_t>(n)) {
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > timeout_s) {
      *why = "node barrier " + name + ": " + std::to_string(seg->arrived.load()) + " of " + std::to_string(n) +
             " arrived in " + std::to_string(timeout_s) + " s";
      ok = false;
      break;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  // Everyone opened the segment before the count reached n: the last to pass removes its name.
  if (!ok || seg->passed.fetch_add(1) + 1 == static_cast<uint32_t>(n)) shm_unlink(name.c_str());
  munmap(p, sizeof(Segment));
  return ok;
}

}  // namespace corun
