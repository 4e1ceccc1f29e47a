// What the copy-engine GPU checks share (ranks as threads: test_gpu_ce.cpp; one process per rank:
// ce_procs_check.cpp): one case is the fill, NCCL's reference, the CE call, the exact verifier
// and, on 2 ranks, bit equality with NCCL; every wait is bounded.
#pragma once
#include <cuda_runtime.h>
#include <nccl.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "ce_comm.h"
#include "data.h"

namespace corun {
namespace cecheck {

struct Case {
  Collective col;
  DType t;
  uint64_t count;  // the NCCL call's count
};

using FailFn = std::function<void(const std::string&)>;

// The stressed protocol: 64 KiB chunks through two slots on three lanes, one chunk per reduction,
// all-gather by pulls (ag_pull given explicitly: pull_by_ranks off), so every slot is reused many
// times in one call. Tests change what they vary from here.
inline CeConfig StressedConfig() {
  CeConfig c;
  c.ag_pull = true;
  c.pull_by_ranks = false;
  c.chunk_bytes = 64 << 10;
  c.slots = 2;
  c.lanes = 3;
  c.batch = 1;
  return c;
}

// Loads every kernel the cases launch (fill, verify per dtype and mode, memset) before any CE
// call is in flight: a lazy module load behind stream waits on a peer can block this thread
// while the peer's thread waits for it (ce_comm.h, ordering rule).
inline void WarmKernels(int rank, int n, cudaStream_t s) {
  void* buf = nullptr;
  unsigned long long* w = nullptr;
  if (cudaMalloc(&buf, 1 << 16) != cudaSuccess || cudaMalloc(&w, sizeof(*w)) != cudaSuccess) return;
  for (DType t : {DType::kBf16, DType::kFp32})
    for (VerifyMode vm : {VerifyMode::kSumAll, VerifyMode::kGather, VerifyMode::kSumOwnChunk}) {
      (void)FillCollective(buf, t, 64 * n, rank, 0, 1, s);
      cudaMemsetAsync(w, 0, sizeof(*w), s);
      (void)VerifyCollective(buf, t, vm, 8, rank, n, 1, w, s);
    }
  cudaStreamSynchronize(s);
  cudaFree(buf);
  cudaFree(w);
}

// Waits for the stream at most `limit_s`; on time-out reports the flag block, calls `release`
// (an abort that frees the waits, so the check ends instead of hanging) and returns false.
inline bool SyncBounded(CeComm& ce, cudaStream_t s, const std::string& what, double limit_s, const FailFn& fail,
                        const std::function<void()>& release) {
  const auto t0 = std::chrono::steady_clock::now();
  while (cudaStreamQuery(s) == cudaErrorNotReady) {
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > limit_s) {
      fail(what + ": stuck for " + std::to_string(limit_s) + " s; flags: " + ce.DumpFlags());
      release();
      cudaStreamSynchronize(s);
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  const cudaError_t e = cudaStreamSynchronize(s);
  if (e != cudaSuccess) fail(what + ": " + cudaGetErrorString(e));
  return e == cudaSuccess;
}

// Device buffers large enough for every case.
struct Buffers {
  char *send = nullptr, *out = nullptr, *ref = nullptr;
  unsigned long long* wrong = nullptr;
  bool Alloc(const std::vector<Case>& cases, int n) {
    uint64_t most = 0;
    for (const Case& c : cases) most = std::max<uint64_t>(most, c.count * n * DTypeSize(c.t));
    return cudaMalloc(&send, most) == cudaSuccess && cudaMalloc(&out, most) == cudaSuccess &&
           cudaMalloc(&ref, most) == cudaSuccess && cudaMalloc(&wrong, sizeof(*wrong)) == cudaSuccess;
  }
  ~Buffers() {
    cudaFree(send);
    cudaFree(out);
    cudaFree(ref);
    cudaFree(wrong);
  }
};

// One case, twice (slot reuse across calls), the second time in place for an allreduce. Failures
// go to `fail`; returns false when the run cannot go on (a stuck or failed call).
inline bool CheckCase(CeComm& ce, ncclComm_t nccl, cudaStream_t s, int rank, int n, const Case& c, const Buffers& b,
                      double limit_s, const FailFn& fail, const std::function<void()>& release) {
  const size_t eb = DTypeSize(c.t);
  const uint64_t send_elems = c.col == Collective::kReduceScatter ? c.count * n : c.count;
  const uint64_t recv_elems = c.col == Collective::kAllGather ? c.count * n : c.count;
  const VerifyMode vm = c.col == Collective::kAllReduce ? VerifyMode::kSumAll
                        : c.col == Collective::kAllGather ? VerifyMode::kGather : VerifyMode::kSumOwnChunk;
  const ncclDataType_t dt = c.t == DType::kBf16 ? ncclBfloat16 : ncclFloat32;
  for (int round = 0; round < 2; ++round) {
    const bool in_place = round == 1 && c.col == Collective::kAllReduce;
    const std::string what = std::string(CollectiveName(c.col)) + " " + DTypeName(c.t) + " count " +
                             std::to_string(c.count) + (in_place ? " in place" : "");
    if (!FillCollective(b.send, c.t, send_elems, rank, 0, 7 + round, s).ok()) {
      fail(what + ": fill");
      return false;
    }
    cudaMemsetAsync(b.ref, 0xFF, recv_elems * eb, s);
    ncclResult_t nr = ncclSuccess;
    if (c.col == Collective::kAllReduce) nr = ncclAllReduce(b.send, b.ref, c.count, dt, ncclSum, nccl, s);
    if (c.col == Collective::kAllGather) nr = ncclAllGather(b.send, b.ref, c.count, dt, nccl, s);
    if (c.col == Collective::kReduceScatter) nr = ncclReduceScatter(b.send, b.ref, c.count, dt, ncclSum, nccl, s);
    if (nr != ncclSuccess) {
      fail(what + ": NCCL " + ncclGetErrorString(nr));
      return false;
    }
    Status st;
    if (in_place) {
      cudaMemcpyAsync(b.out, b.send, send_elems * eb, cudaMemcpyDeviceToDevice, s);
      st = ce.Run(c.col, b.out, b.out, c.count, c.t, s);
    } else {
      cudaMemsetAsync(b.out, 0xFF, recv_elems * eb, s);
      st = ce.Run(c.col, b.send, b.out, c.count, c.t, s);
    }
    if (!st.ok()) {
      fail(what + ": " + st.ToString(true));
      return false;
    }
    cudaMemsetAsync(b.wrong, 0, sizeof(*b.wrong), s);
    if (!VerifyCollective(b.out, c.t, vm, c.count, rank, n, 7 + round, b.wrong, s).ok()) {
      fail(what + ": verify");
      return false;
    }
    unsigned long long wrong = 0;
    cudaMemcpyAsync(&wrong, b.wrong, sizeof(wrong), cudaMemcpyDeviceToHost, s);
    if (!SyncBounded(ce, s, what, limit_s, fail, release)) return false;
    if (wrong) fail(what + ": " + std::to_string(wrong) + " wrong elements");
    if (!ce.CheckError().ok()) {
      fail(what + ": error flag");
      return false;
    }
    if (n == 2) {
      std::vector<char> h_out(recv_elems * eb), h_ref(recv_elems * eb);
      cudaMemcpy(h_out.data(), b.out, h_out.size(), cudaMemcpyDeviceToHost);
      cudaMemcpy(h_ref.data(), b.ref, h_ref.size(), cudaMemcpyDeviceToHost);
      if (std::memcmp(h_out.data(), h_ref.data(), h_out.size()) != 0) fail(what + ": differs from NCCL");
    }
  }
  return true;
}

}  // namespace cecheck
}  // namespace corun
