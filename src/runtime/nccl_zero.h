// NCCL's own zero-CTA collectives: a communicator split from the rank's base communicator with
// ncclConfig_t.CTAPolicy = NCCL_CTA_POLICY_ZERO, send and receive buffers from ncclMemAlloc
// registered once as symmetric windows (NCCL_WIN_COLL_SYMMETRIC), AllGather and AlltoAll on them;
// and the check that a call really launched no kernel (the verdict is corun/nccl_zero.h's).
#pragma once
#include <cuda_runtime.h>
#include <nccl.h>

#include "corun/collective.h"
#include "corun/nccl_zero.h"
#include "corun/status.h"
#include "data.h"

namespace corun {

class NcclZero {
 public:
  NcclZero() = default;
  ~NcclZero();
  NcclZero(const NcclZero&) = delete;
  NcclZero& operator=(const NcclZero&) = delete;

  // Collective over `parent`'s ranks: the split, the allocations and the window registrations.
  // `cta_policy` other than ZERO only for a test's control (same buffers, NCCL's kernels).
  Status Init(ncclComm_t parent, size_t send_bytes, size_t recv_bytes, int cta_policy = NCCL_CTA_POLICY_ZERO);
  // The collective on the communicator's own buffers (count elements per rank, as Comm::Run).
  Status Run(Collective c, uint64_t count, DType t, cudaStream_t s);
  void* send() const { return send_; }
  void* recv() const { return recv_; }
  ncclComm_t get() const { return comm_; }

  // Whether a call launches no kernel: every SM held by a blocker kernel while one call runs
  // (corun/nccl_zero.h ZeroHold). A collective: every rank calls it with the same arguments. One
  // warm call first (a first call may set things up), then the evidence.
  Status CheckPath(Collective c, uint64_t count, DType t, cudaStream_t s, ZeroVerdict* out);

 private:
  Status HoldSms(Collective c, uint64_t count, DType t, cudaStream_t s, ZeroHold* out);

  ncclComm_t comm_ = nullptr;
  int nranks_ = 0;
  void *send_ = nullptr, *recv_ = nullptr;
  ncclWindow_t send_win_ = nullptr, recv_win_ = nullptr;
};

}  // namespace corun
