#include "nccl_zero.h"

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>

#include "checks.h"

namespace corun {
namespace {

ncclDataType_t NcclType(DType t) { return t == DType::kBf16 ? ncclBfloat16 : ncclFloat32; }

// Windows are registered in whole pages (NCCL_WIN_REQUIRED_ALIGNMENT); ncclMemAlloc rounds the
// allocation up to its granularity, which is at least that.
size_t WindowBytes(size_t b) {
  const size_t a = NCCL_WIN_REQUIRED_ALIGNMENT;
  return (std::max<size_t>(b, a) + a - 1) / a * a;
}

// How long each blocker block holds its SM, and how long the host waits for all of them to be
// resident before it enqueues the collective (the collective is enqueued either way: the peers
// wait for it).
constexpr double kHoldSeconds = 3.0;
constexpr double kArriveSeconds = 1.0;

__device__ unsigned long long GlobalNs() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

// One block per SM, holding all of the SM's shared memory, so no other block of any kernel fits
// beside it. Each block says it is resident (arrived[b]), then watches `done` (set by a copy
// enqueued after the collective) until it is set or the hold ends, and says whether it saw it
// (saw[b]). Host-mapped flags, one per block: plain stores, no host atomics needed.
__global__ void HoldSmsKernel(volatile unsigned* arrived, volatile unsigned* saw, const volatile unsigned* done,
                              unsigned long long hold_ns) {
  extern __shared__ unsigned char hold_smem[];
  if (threadIdx.x != 0) return;
  hold_smem[0] = 1;
  arrived[blockIdx.x] = 1;
  __threadfence_system();
  const unsigned long long t0 = GlobalNs();
  while (*done == 0 && GlobalNs() - t0 < hold_ns) {
  }
  saw[blockIdx.x] = *done != 0 ? 1 : 0;
  __threadfence_system();
}

}  // namespace

NcclZero::~NcclZero() {
  if (comm_) {
    if (send_win_) ncclCommWindowDeregister(comm_, send_win_);
    if (recv_win_) ncclCommWindowDeregister(comm_, recv_win_);
    ncclCommDestroy(comm_);
  }
  if (send_) ncclMemFree(send_);
  if (recv_) ncclMemFree(recv_);
  if (hold_stream_) cudaStreamDestroy(hold_stream_);
  if (hold_done_) cudaFree(hold_done_);
  if (hold_host_) cudaFreeHost(hold_host_);
}

Status NcclZero::Init(ncclComm_t parent, size_t send_bytes, size_t recv_bytes, int cta_policy) {
  int rank = 0;
  NCCLCHECK(ncclCommUserRank(parent, &rank));
  // The policy is the communicator's: it is given at creation (a split keeps the ranks in order).
  ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
  cfg.CTAPolicy = cta_policy;
  NCCLCHECK(ncclCommSplit(parent, 0, rank, &comm_, &cfg));
  NCCLCHECK(ncclCommCount(comm_, &nranks_));
  const size_t sb = WindowBytes(send_bytes), rb = WindowBytes(recv_bytes);
  NCCLCHECK(ncclMemAlloc(&send_, sb));
  NCCLCHECK(ncclMemAlloc(&recv_, rb));
  // Registration is collective and slow: once, for the largest row.
  NCCLCHECK(ncclCommWindowRegister(comm_, send_, sb, &send_win_, NCCL_WIN_COLL_SYMMETRIC));
  NCCLCHECK(ncclCommWindowRegister(comm_, recv_, rb, &recv_win_, NCCL_WIN_COLL_SYMMETRIC));
  PrepareHold();
  return Status::Ok();
}

// Everything the check's hold needs, ahead of it: between the ranks' meeting and the blocker
// launch there must be no allocation and no wait (a rank that lingers there enqueues its side of
// the collective late, and its peers' holds may end first).
void NcclZero::PrepareHold() {
  std::string why;
  auto fail = [&](const char* what, cudaError_t e) {
    if (why.empty()) why = std::string(what) + ": " + cudaGetErrorString(e);
  };
  int dev = 0;
  cudaDeviceProp prop{};
  if (cudaError_t e = cudaGetDevice(&dev); e != cudaSuccess) fail("cudaGetDevice", e);
  else if (cudaError_t e2 = cudaGetDeviceProperties(&prop, dev); e2 != cudaSuccess) fail("cudaGetDeviceProperties", e2);
  const int blocks = prop.multiProcessorCount;
  const size_t smem = prop.sharedMemPerBlockOptin;
  hold_blocks_ = blocks;
  hold_smem_ = smem;
  if (why.empty() && prop.sharedMemPerMultiprocessor > smem + prop.reservedSharedMemPerBlock)
    why = "one block cannot take all of an SM's shared memory here (" + std::to_string(smem) + " of " +
          std::to_string(prop.sharedMemPerMultiprocessor) + " B)";
  if (why.empty())
    if (cudaError_t e = cudaFuncSetAttribute(HoldSmsKernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             static_cast<int>(smem));
        e != cudaSuccess)
      fail("cudaFuncSetAttribute", e);
  if (why.empty())
    if (cudaError_t e = cudaHostAlloc(reinterpret_cast<void**>(&hold_host_), (2 * blocks + 1) * sizeof(unsigned),
                                      cudaHostAllocMapped);
        e != cudaSuccess)
      fail("cudaHostAlloc", e);
  if (why.empty()) {
    hold_host_[2 * blocks] = 1;  // the source of the copy that sets `done`
    if (cudaError_t e = cudaHostGetDevicePointer(reinterpret_cast<void**>(&hold_dev_flags_), hold_host_, 0);
        e != cudaSuccess)
      fail("cudaHostGetDevicePointer", e);
  }
  if (why.empty())
    if (cudaError_t e = cudaMalloc(&hold_done_, sizeof(unsigned)); e != cudaSuccess) fail("cudaMalloc", e);
  if (why.empty())
    if (cudaError_t e = cudaStreamCreateWithFlags(&hold_stream_, cudaStreamNonBlocking); e != cudaSuccess)
      fail("cudaStreamCreate", e);
  if (why.empty())
    if (cudaError_t e = cudaMemsetAsync(hold_done_, 0, sizeof(unsigned), hold_stream_); e != cudaSuccess)
      fail("cudaMemsetAsync", e);
  if (why.empty()) {
    // The first launch may load the kernel's module (lazy loading): an empty hold, now.
    HoldSmsKernel<<<blocks, 32, smem, hold_stream_>>>(hold_dev_flags_, hold_dev_flags_ + blocks, hold_done_, 0);
    if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) fail("HoldSmsKernel launch", e);
  }
  if (why.empty())
    if (cudaError_t e = cudaStreamSynchronize(hold_stream_); e != cudaSuccess) fail("HoldSmsKernel", e);
  hold_why_ = why.empty() ? "" : "the SM hold could not be prepared (" + why + ")";
}

Status NcclZero::Run(Collective c, uint64_t count, DType t, cudaStream_t s) {
  switch (c) {
    case Collective::kAllGather:
      NCCLCHECK(ncclAllGather(send_, recv_, count, NcclType(t), comm_, s));
      return Status::Ok();
    case Collective::kAllToAll:
      NCCLCHECK(ncclAlltoAll(send_, recv_, count, NcclType(t), comm_, s));
      return Status::Ok();
    default: break;
  }
  CORUN_FAIL(NcclZeroNotApplicable(c));
}

Status NcclZero::HoldSms(Collective c, uint64_t count, DType t, cudaStream_t s, const std::function<Status()>& meet,
                         ZeroHold* out) {
  // Every failure before the collective is evidence lost (cannot_hold), never an early return:
  // the peers' collectives wait for this rank's. Nothing here allocates or waits before the
  // blocker runs (PrepareHold did that).
  out->timeout_s = kHoldSeconds;
  out->blocks = hold_blocks_;
  std::string& why = out->cannot_hold;
  why = hold_why_;
  const int blocks = hold_blocks_;
  if (why.empty()) {
    volatile unsigned* flags = hold_host_;  // the last hold's blocker has finished (synchronised)
    for (int i = 0; i < 2 * blocks; ++i) flags[i] = 0;
  }
  // Every rank calls `meet`, whatever it could prepare: the peers' meetings wait for it.
  Status met = meet ? meet() : Status::Ok();
  out->met = meet ? met.ok() : nranks_ <= 1;
  if (!met.ok() && why.empty()) why = "the ranks could not meet before the hold (" + met.message() + ")";
  bool launched = false;
  const auto t_launch = std::chrono::steady_clock::now();
  if (why.empty()) {
    HoldSmsKernel<<<blocks, 32, hold_smem_, hold_stream_>>>(hold_dev_flags_, hold_dev_flags_ + blocks, hold_done_,
                                                             static_cast<unsigned long long>(kHoldSeconds * 1e9));
    if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) why = std::string("HoldSmsKernel launch: ") + cudaGetErrorString(e);
    else launched = true;
  }
  if (launched) {
    // Wait for every block to be resident before the collective exists.
    volatile unsigned* arrived = hold_host_;
    for (;;) {
      int n = 0;
      for (int b = 0; b < blocks; ++b) n += arrived[b] != 0;
      out->resident = n;
      if (n == blocks ||
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t_launch).count() > kArriveSeconds)
        break;
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }
  // The collective, then the copy that tells the blocker it finished (a copy engine writes it).
  Status run = Run(c, count, t, s);
  if (run.ok() && launched) {
    if (cudaError_t e = cudaMemcpyAsync(hold_done_, hold_host_ + 2 * blocks, sizeof(unsigned),
                                        cudaMemcpyHostToDevice, s);
        e != cudaSuccess)
      run = Status::Error(std::string("cudaMemcpyAsync: ") + cudaGetErrorString(e)).At(__FILE__, __LINE__);
  }
  // The blocks' holds began at the launch or later: this is how far into them the call came.
  if (launched) out->enqueued_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_launch).count();
  cudaError_t se = cudaStreamSynchronize(s);
  cudaError_t he = launched ? cudaStreamSynchronize(hold_stream_) : cudaSuccess;
  if (launched && se == cudaSuccess && he == cudaSuccess) {
    volatile unsigned* saw = hold_host_ + blocks;
    for (int b = 0; b < blocks; ++b) out->saw_done += saw[b] != 0;
  }
  // The watched word back to 0 for the next check (ordered after `s`'s copy: `s` is synchronised).
  if (launched) {
    if (he == cudaSuccess) he = cudaMemsetAsync(hold_done_, 0, sizeof(unsigned), hold_stream_);
    if (he == cudaSuccess) he = cudaStreamSynchronize(hold_stream_);
    if (he != cudaSuccess) hold_why_ = std::string("an earlier SM hold failed (") + cudaGetErrorString(he) + ")";
  }
  CORUN_CHECK(met);
  CORUN_CHECK(run);
  CUDACHECK(se);
  CUDACHECK(he);
  return Status::Ok();
}

Status NcclZero::CheckPath(Collective c, uint64_t count, DType t, cudaStream_t s, ZeroVerdict* out,
                           const std::function<Status()>& meet) {
  // A first call may set things up (kernels included); the evidence is taken on the next one.
  CORUN_CHECK(Run(c, count, t, s));
  CUDACHECK(cudaStreamSynchronize(s));
  ZeroHold hold;
  CORUN_CHECK(HoldSms(c, count, t, s, meet, &hold));
  *out = ZeroVerdictFromHold(hold);
  return Status::Ok();
}

}  // namespace corun
