// Internal to the copy-engine collectives: the CORUN_CE_DEBUG step log and the CORUN_CE_PROFILE
// host-time profile (both read once), and device addresses for the driver's stream memory operations.
#pragma once
#include <cuda.h>

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

// CORUN_CE_PROFILE=1: host time the calls spend in each kind of runtime/driver call, summed per
// process; a stderr line every 500 calls (CeProfileLine: where a call's enqueue time goes).
bool CeProfiling();
void CeProfileAdd(CeHostOp op, uint64_t ns);
void CeProfileCallDone(int rank);  // counts a call; prints the summary every 500
class CeTimer {
 public:
  explicit CeTimer(CeHostOp op) : op_(op), t0_(CeProfiling() ? Now() : 0) {}
  ~CeTimer() {
    if (t0_) CeProfileAdd(op_, Now() - t0_);
  }
  static uint64_t Now();

 private:
  CeHostOp op_;
  uint64_t t0_;
};
#define CE_T(op, ...)    \
  do {                   \
    CeTimer ce_t_(op);   \
    __VA_ARGS__;         \
  } while (0)

}  // namespace corun
