// Internal to the copy-engine collectives: the CORUN_CE_DEBUG step log (read once), and device
// addresses for the driver's stream memory operations.
#pragma once
#include <cuda.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

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

}  // namespace corun
