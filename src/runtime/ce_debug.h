// Internal to the copy-engine collectives: the CORUN_CE_DEBUG step log and the CORUN_CE_PROFILE
// host-time profile (both read once), and device addresses for the driver's stream memory operations.
#pragma once
#include <cuda.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "corun/ce_plan.h"

namespace corun {

// CORUN_CE_DEBUG=1: one stderr line per set-up step and per call (read once).
inline bool CeDebug() {
  static const bool on = [] {
    const char* v = std::getenv("CORUN_CE_DEBUG");
    return v && *v && std::strcmp(v, "0") != 0;
  }();
  return on;
}
#define CE_DLOG(...)                                                   \
  do {                                                                 \
    if (CeDebug()) {                                                   \
      std::fprintf(stderr, "corun ce: rank %d: ", rank_);              \
      std::fprintf(stderr, __VA_ARGS__);                               \
      std::fputc('\n', stderr);                                        \
      std::fflush(stderr);                                             \
    }                                                                  \
  } while (0)

inline CUdeviceptr Dev(const uint32_t* p) { return reinterpret_cast<CUdeviceptr>(p); }

// Raises `m` to `v` if `v` is larger (a running maximum shared between threads).
inline void CeAtomicMax(std::atomic<uint64_t>& m, uint64_t v) {
  for (uint64_t cur = m.load(); v > cur && !m.compare_exchange_weak(cur, v);) {
  }
}

// CORUN_CE_PROFILE=1: host time the calls spend in each kind of runtime/driver call, summed over
// the process's communicators (in the interposer a process is one rank; the line names the rank
// whose call was the 500th); a stderr line every 500 calls (CeProfileLine).
bool CeProfiling();
void CeProfileAdd(CeHostOp op, uint64_t ns);
void CeProfileCallDone(int rank);  // counts a call; prints the summary every 500
// Times its scope. A kCeCall timer (give it the rank) also counts the call once its time is in,
// however the call returns.
class CeTimer {
 public:
  explicit CeTimer(CeHostOp op, int rank = -1) : op_(op), rank_(rank), t0_(CeProfiling() ? Now() : 0) {}
  ~CeTimer() {
    if (!t0_) return;
    CeProfileAdd(op_, Now() - t0_);
    if (op_ == kCeCall) CeProfileCallDone(rank_);
  }
  static uint64_t Now();

 private:
  CeHostOp op_;
  int rank_;
  uint64_t t0_;
};
#define CE_T(op, ...)    \
  do {                   \
    CeTimer ce_t_(op);   \
    __VA_ARGS__;         \
  } while (0)

}  // namespace corun
