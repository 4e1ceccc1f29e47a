// The reductions of the copy-engine collectives: one launch sums a batch of chunks, each its own
// input slice plus the slices the peers pushed into the staging (fp32 accumulation, one rounding).
#pragma once
#include <cuda_runtime.h>

#include <climits>
#include <cstdint>

#include "corun/collective.h"
#include "corun/status.h"

namespace corun {

constexpr int kCeMaxRanks = 8;
constexpr int kCeMaxBatch = 32;

struct CeReduceItem {
  void* out;
  void* out2;                         // a second copy of the result (null: none), e.g. the staging peers pull from
  const void* own;                    // this rank's input slice
  const void* peer[kCeMaxRanks - 1];  // the peers' slices in the staging
  uint64_t count;
};
struct CeReduceBatch {
  CeReduceItem item[kCeMaxBatch];
  int items = 0;
  int npeers = 0;
};

// `priority`: the launch's own priority (cudaLaunchAttributePriority), or kCeStreamPriority for
// the stream's.
constexpr int kCeStreamPriority = INT32_MIN;
Status CeReduceLaunch(const CeReduceBatch& b, DType t, int sms, cudaStream_t s, int priority = kCeStreamPriority);
// Loads the reduction kernels (an empty launch of each type, synchronised) so that no later
// launch has to load a module while streams wait on peers.
Status CeReduceLoad(cudaStream_t s);

}  // namespace corun
