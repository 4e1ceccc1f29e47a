// NCCL communicators: creation with the CTA knobs (ncclConfig_t maxCTAs + CTAPolicy), the
// collectives corun measures, and a registry the watchdog aborts when something hangs.
#pragma once
#include <cuda_runtime.h>
#include <nccl.h>

#include <functional>
#include <string>

#include "corun/collective.h"
#include "corun/occupancy.h"
#include "corun/status.h"
#include "data.h"

namespace corun {

struct CommConfig {
  int max_ctas = 0;  // 0 = NCCL's choice; else maxCTAs with CTAPolicy efficiency
  bool operator<(const CommConfig& o) const { return max_ctas < o.max_ctas; }
};

class Comm {
 public:
  Comm() = default;
  ~Comm();
  Comm(const Comm&) = delete;
  Comm& operator=(const Comm&) = delete;
  Status Init(const ncclUniqueId& id, int nranks, int rank, const CommConfig& cfg);
  Status Run(Collective c, const void* send, void* recv, uint64_t count, DType t, cudaStream_t s);
  // Small collectives used by the harness itself.
  Status Barrier(cudaStream_t s, int flag_in, int* flag_max);  // also an agreement: max of flags
  Status MaxFloats(float* dev_buf, size_t n, cudaStream_t s);
  Status SumInt64(int64_t* dev_buf, size_t n, cudaStream_t s);
  // Launch footprint of the collective's kernel, learned by capturing one call into a graph
  // (then replayed once, so every rank's communicator stays in step). `agree`, when given, is
  // called once between the capture and the replay with whether this rank's capture worked and
  // says whether every rank's did: a rank replays only when all will (no rank left waiting).
  using ProbeAgreeFn = std::function<Status(bool ok_here, bool* all_ok)>;
  Status ProbeKernel(Collective c, const void* send, void* recv, uint64_t count, DType t, cudaStream_t s,
                     KernelFootprint* fp, int* ctas, std::string* kernel_name, const ProbeAgreeFn& agree = nullptr);
  int rank() const { return rank_; }
  int nranks() const { return nranks_; }
  ncclComm_t get() const { return comm_; }

 private:
  ncclComm_t comm_ = nullptr;
  int rank_ = 0, nranks_ = 0;
  int* scratch_ = nullptr;  // device int for Barrier
};

// Every live communicator, for the watchdog.
void AbortAllComms();

}  // namespace corun
