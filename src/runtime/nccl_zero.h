// NCCL's own zero-CTA collectives: a communicator split from the rank's base communicator with
// ncclConfig_t.CTAPolicy = NCCL_CTA_POLICY_ZERO, send and receive buffers from ncclMemAlloc
// registered once as symmetric windows (NCCL_WIN_COLL_SYMMETRIC), AllGather and AlltoAll on them;
// and the check that a call really launched no kernel (the verdict is corun/nccl_zero.h's).
#pragma once
#include <cuda_runtime.h>
#include <nccl.h>

#include <functional>
#include <string>

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

  // Collective over `parent`'s ranks: the split, the allocations and the window registrations,
  // and everything the path check needs (its flags, its stream, the blocker kernel loaded), so the
  // check itself allocates and waits for nothing before its blocker runs. A failure of the latter
  // leaves the communicator usable and the check unable to tell (its verdict says why).
  // `cta_policy` other than ZERO only for a test's control (same buffers, NCCL's kernels).
  Status Init(ncclComm_t parent, size_t send_bytes, size_t recv_bytes, int cta_policy = NCCL_CTA_POLICY_ZERO);
  // The collective on the communicator's own buffers (count elements per rank, as Comm::Run).
  Status Run(Collective c, uint64_t count, DType t, cudaStream_t s);
  void* send() const { return send_; }
  void* recv() const { return recv_; }
  ncclComm_t get() const { return comm_; }

  // Whether a call launches no kernel: every SM held by a blocker kernel while one call runs
  // (corun/nccl_zero.h ZeroHold). A collective: every rank calls it with the same arguments. One
  // warm call first (a first call may set things up), then `meet` (every rank's; a barrier over
  // the ranks), then at once the blocker and the call, so each rank's side of the call is enqueued
  // inside every peer's hold. Without `meet` (and more than one rank) a call that did not finish
  // reads as unknown, not as a kernel.
  Status CheckPath(Collective c, uint64_t count, DType t, cudaStream_t s, ZeroVerdict* out,
                   const std::function<Status()>& meet = {});

 private:
  void PrepareHold();
  Status HoldSms(Collective c, uint64_t count, DType t, cudaStream_t s, const std::function<Status()>& meet,
                 ZeroHold* out);

  ncclComm_t comm_ = nullptr;
  int nranks_ = 0;
  void *send_ = nullptr, *recv_ = nullptr;
  ncclWindow_t send_win_ = nullptr, recv_win_ = nullptr;
  // The path check's state, from PrepareHold: why it cannot hold the SMs ("" when it can), one
  // blocker block per SM with all of its shared memory, host-mapped flags [arrived x blocks |
  // saw x blocks | one], the device word the blocker watches (0 between checks), its stream.
  std::string hold_why_ = "not prepared";
  int hold_blocks_ = 0;
  size_t hold_smem_ = 0;
  unsigned* hold_host_ = nullptr;
  unsigned* hold_dev_flags_ = nullptr;
  unsigned* hold_done_ = nullptr;
  cudaStream_t hold_stream_ = nullptr;
};

}  // namespace corun
