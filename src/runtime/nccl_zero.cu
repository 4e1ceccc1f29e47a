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
  return Status::Ok();
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

Status NcclZero::HoldSms(Collective c, uint64_t count, DType t, cudaStream_t s, ZeroHold* out) {
  // Every failure before the collective is evidence lost (cannot_hold), never an early return:
  // the peers' collectives wait for this rank's.
  out->timeout_s = kHoldSeconds;
  std::string& why = out->cannot_hold;
  int dev = 0;
  cudaDeviceProp prop{};
  unsigned* host = nullptr;  // [arrived x blocks | saw x blocks | one]
  unsigned* dev_flags = nullptr;
  unsigned* done = nullptr;
  cudaStream_t hs = nullptr;
  bool launched = false;
  auto fail = [&](const char* what, cudaError_t e) {
    if (why.empty()) why = std::string(what) + ": " + cudaGetErrorString(e);
  };
  if (cudaError_t e = cudaGetDevice(&dev); e != cudaSuccess) fail("cudaGetDevice", e);
  else if (cudaError_t e2 = cudaGetDeviceProperties(&prop, dev); e2 != cudaSuccess) fail("cudaGetDeviceProperties", e2);
  const int blocks = prop.multiProcessorCount;
  out->blocks = blocks;
  const size_t smem = prop.sharedMemPerBlockOptin;
  if (why.empty() && prop.sharedMemPerMultiprocessor > smem + prop.reservedSharedMemPerBlock)
    why = "one block cannot take all of an SM's shared memory here (" + std::to_string(smem) + " of " +
          std::to_string(prop.sharedMemPerMultiprocessor) + " B)";
  if (why.empty())
    if (cudaError_t e = cudaFuncSetAttribute(HoldSmsKernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             static_cast<int>(smem));
        e != cudaSuccess)
      fail("cudaFuncSetAttribute", e);
  if (why.empty())
    if (cudaError_t e = cudaHostAlloc(reinterpret_cast<void**>(&host), (2 * blocks + 1) * sizeof(unsigned),
                                      cudaHostAllocMapped);
        e != cudaSuccess)
      fail("cudaHostAlloc", e);
  if (why.empty()) {
    for (int i = 0; i < 2 * blocks + 1; ++i) host[i] = 0;
    host[2 * blocks] = 1;
    if (cudaError_t e = cudaHostGetDevicePointer(reinterpret_cast<void**>(&dev_flags), host, 0); e != cudaSuccess)
      fail("cudaHostGetDevicePointer", e);
  }
  if (why.empty())
    if (cudaError_t e = cudaMalloc(&done, sizeof(unsigned)); e != cudaSuccess) fail("cudaMalloc", e);
  if (why.empty())
    if (cudaError_t e = cudaMemset(done, 0, sizeof(unsigned)); e != cudaSuccess) fail("cudaMemset", e);
  if (why.empty())
    if (cudaError_t e = cudaStreamCreateWithFlags(&hs, cudaStreamNonBlocking); e != cudaSuccess)
      fail("cudaStreamCreate", e);
  if (why.empty()) {
    HoldSmsKernel<<<blocks, 32, smem, hs>>>(dev_flags, dev_flags + blocks, done,
                                            static_cast<unsigned long long>(kHoldSeconds * 1e9));
    if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) fail("HoldSmsKernel launch", e);
    else launched = true;
  }
  if (launched) {
    // Wait for every block to be resident before the collective exists.
    const auto t0 = std::chrono::steady_clock::now();
    volatile unsigned* arrived = host;
    for (;;) {
      int n = 0;
      for (int b = 0; b < blocks; ++b) n += arrived[b] != 0;
      out->resident = n;
      if (n == blocks || std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > kArriveSeconds)
        break;
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }
  // The collective, then the copy that tells the blocker it finished (a copy engine writes it).
  Status run = Run(c, count, t, s);
  if (run.ok() && launched) {
    if (cudaError_t e = cudaMemcpyAsync(done, host + 2 * blocks, sizeof(unsigned), cudaMemcpyHostToDevice, s);
        e != cudaSuccess)
      run = Status::Error(std::string("cudaMemcpyAsync: ") + cudaGetErrorString(e)).At(__FILE__, __LINE__);
  }
  cudaError_t se = cudaStreamSynchronize(s);
  cudaError_t he = hs ? cudaStreamSynchronize(hs) : cudaSuccess;
  if (launched && se == cudaSuccess && he == cudaSuccess) {
    volatile unsigned* saw = host + blocks;
    for (int b = 0; b < blocks; ++b) out->saw_done += saw[b] != 0;
  }
  if (hs) cudaStreamDestroy(hs);
  if (done) cudaFree(done);
  if (host) cudaFreeHost(host);
  CORUN_CHECK(run);
  CUDACHECK(se);
  CUDACHECK(he);
  return Status::Ok();
}

Status NcclZero::CheckPath(Collective c, uint64_t count, DType t, cudaStream_t s, ZeroVerdict* out) {
  // A first call may set things up (kernels included); the evidence is taken on the next one.
  CORUN_CHECK(Run(c, count, t, s));
  CUDACHECK(cudaStreamSynchronize(s));
  ZeroHold hold;
  CORUN_CHECK(HoldSms(c, count, t, s, &hold));
  *out = ZeroVerdictFromHold(hold);
  return Status::Ok();
}

}  // namespace corun
