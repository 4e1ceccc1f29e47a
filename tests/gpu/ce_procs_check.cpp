// Copy-engine collectives with one process per GPU (the cross-process path: IPC handles), run by
// a launcher (mpirun -np N, torchrun, ...): every collective x dtype x odd sizes against NCCL's
// result (bit for bit on 2 ranks) and the exact expectation; every wait bounded (a stuck call
// aborts the CE communicator, prints its flags and fails instead of hanging).
// Exit: 0 all matched, 1 a mismatch or an error, 2 bad environment (not under a launcher).
#include <cuda_runtime.h>
#include <nccl.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "bootstrap.h"
#include "ce_comm.h"
#include "data.h"

using namespace corun;

namespace {

int g_rank = 0;
int g_fail = 0;

void Fail(const std::string& what) {
  std::fprintf(stderr, "ce_procs_check: rank %d: FAIL: %s\n", g_rank, what.c_str());
  ++g_fail;
}

// As SyncBounded in test_gpu_ce.cpp: on time-out the flags are printed and the waits released.
bool SyncBounded(CeComm& ce, cudaStream_t s, const std::string& what, double limit_s = 30) {
  const auto t0 = std::chrono::steady_clock::now();
  while (cudaStreamQuery(s) == cudaErrorNotReady) {
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > limit_s) {
      Fail(what + ": stuck for " + std::to_string(limit_s) + " s; flags: " + ce.DumpFlags());
      ce.Abort();
      cudaStreamSynchronize(s);
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  const cudaError_t e = cudaStreamSynchronize(s);
  if (e != cudaSuccess) Fail(what + ": " + cudaGetErrorString(e));
  return e == cudaSuccess;
}

struct Case {
  Collective col;
  DType t;
  uint64_t count;  // the NCCL call's count
};

// Loads every kernel the cases launch (fill, verify per dtype and mode, memset) before any CE
// call is in flight: a lazy module load behind stream waits on a peer can block this thread
// while the peer's thread waits for it (ce_comm.h, ordering rule).
void WarmKernels(int rank, int n, cudaStream_t s) {
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

// Returns false when the run cannot go on (a stuck or failed call).
bool RunCase(CeComm& ce, ncclComm_t nccl, cudaStream_t s, int n, const Case& c, char* send, char* out, char* ref,
             unsigned long long* dw) {
  const int rank = g_rank;
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
    if (!FillCollective(send, c.t, send_elems, rank, 0, 7 + round, s).ok()) { Fail(what + ": fill"); return false; }
    cudaMemsetAsync(ref, 0xFF, recv_elems * eb, s);
    ncclResult_t nr = ncclSuccess;
    if (c.col == Collective::kAllReduce) nr = ncclAllReduce(send, ref, c.count, dt, ncclSum, nccl, s);
    if (c.col == Collective::kAllGather) nr = ncclAllGather(send, ref, c.count, dt, nccl, s);
    if (c.col == Collective::kReduceScatter) nr = ncclReduceScatter(send, ref, c.count, dt, ncclSum, nccl, s);
    if (nr != ncclSuccess) { Fail(what + ": NCCL " + ncclGetErrorString(nr)); return false; }
    Status st;
    if (in_place) {
      cudaMemcpyAsync(out, send, send_elems * eb, cudaMemcpyDeviceToDevice, s);
      st = ce.Run(c.col, out, out, c.count, c.t, s);
    } else {
      cudaMemsetAsync(out, 0xFF, recv_elems * eb, s);
      st = ce.Run(c.col, send, out, c.count, c.t, s);
    }
    if (!st.ok()) { Fail(what + ": " + st.ToString(true)); return false; }
    cudaMemsetAsync(dw, 0, sizeof(*dw), s);
    if (!VerifyCollective(out, c.t, vm, c.count, rank, n, 7 + round, dw, s).ok()) { Fail(what + ": verify"); return false; }
    unsigned long long wrong = 0;
    cudaMemcpyAsync(&wrong, dw, sizeof(wrong), cudaMemcpyDeviceToHost, s);
    if (!SyncBounded(ce, s, what)) return false;
    if (wrong) Fail(what + ": " + std::to_string(wrong) + " wrong elements");
    if (!ce.CheckError().ok()) { Fail(what + ": error flag"); return false; }
    if (n == 2) {
      std::vector<char> h_out(recv_elems * eb), h_ref(recv_elems * eb);
      cudaMemcpy(h_out.data(), out, h_out.size(), cudaMemcpyDeviceToHost);
      cudaMemcpy(h_ref.data(), ref, h_ref.size(), cudaMemcpyDeviceToHost);
      if (std::memcmp(h_out.data(), h_ref.data(), h_out.size()) != 0) Fail(what + ": differs from NCCL");
    }
  }
  return true;
}

int Run() {
  ProcessModel pm;
  Status st = DetectProcessModel(&pm);
  if (!st.ok()) {
    std::fprintf(stderr, "ce_procs_check: %s\n", st.message().c_str());
    return 2;
  }
  if (!pm.multi_process() || pm.world < 2) {
    std::fprintf(stderr, "ce_procs_check: needs a launcher with 2 or more ranks (mpirun -np 2, torchrun)\n");
    return 2;
  }
  g_rank = pm.rank;
  int visible = 0;
  if (cudaGetDeviceCount(&visible) != cudaSuccess || visible < 1) {
    std::fprintf(stderr, "ce_procs_check: rank %d: no GPU visible\n", pm.rank);
    return 1;
  }
  cudaSetDevice(DeviceForLocalRank(pm.local_rank, visible));
  ncclUniqueId id;
  st = ExchangeUniqueId(pm, &id, 60);
  if (!st.ok()) {
    std::fprintf(stderr, "ce_procs_check: rank %d: %s\n", pm.rank, st.message().c_str());
    return 1;
  }
  ncclComm_t nccl = nullptr;
  if (ncclCommInitRank(&nccl, pm.world, id, pm.rank) != ncclSuccess) {
    Fail("ncclCommInitRank");
    return 1;
  }
  cudaStream_t s;
  cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
  const int n = pm.world;
  std::vector<Case> cases;
  for (Collective col : {Collective::kAllReduce, Collective::kReduceScatter, Collective::kAllGather})
    for (DType t : {DType::kBf16, DType::kFp32})
      for (uint64_t c : {uint64_t{1}, uint64_t{7}, uint64_t{1000003}, static_cast<uint64_t>((25ull << 20) / DTypeSize(t) + 5)})
        cases.push_back({col, t, c});
  // The default configuration, then a stressed one (tiny chunks, two slots: every slot reused).
  CeConfig stressed;
  stressed.chunk_bytes = 64 << 10;
  stressed.slots = 2;
  stressed.lanes = 3;
  stressed.batch = 1;
  CeConfig pull, stressed_pull = stressed;
  pull.ag_pull = stressed_pull.ag_pull = true;
  WarmKernels(pm.rank, n, s);
  for (const CeConfig& cfg : {CeConfig{}, stressed, pull, stressed_pull}) {
    CeComm ce;
    st = ce.Init(nccl, cfg, s);
    if (!st.ok()) { Fail("CeComm::Init: " + st.ToString(true)); break; }
    if (!ce.usable()) { Fail("CE path unusable across processes: " + ce.why()); break; }
    uint64_t most = 0;
    for (const Case& c : cases) most = std::max<uint64_t>(most, c.count * n * DTypeSize(c.t));
    char *send = nullptr, *out = nullptr, *ref = nullptr;
    unsigned long long* dw = nullptr;
    if (cudaMalloc(&send, most) != cudaSuccess || cudaMalloc(&out, most) != cudaSuccess ||
        cudaMalloc(&ref, most) != cudaSuccess || cudaMalloc(&dw, sizeof(*dw)) != cudaSuccess) {
      Fail("cudaMalloc");
      break;
    }
    bool going = true;
    for (const Case& c : cases)
      // The stressed configurations (64 KiB chunks) on the small and odd sizes only: every slot
      // is reused hundreds of times there already, and 25 MiB in 64 KiB chunks takes seconds.
      if (going && (cfg.chunk_bytes >= (1u << 20) || (c.count != 1 && c.count * DTypeSize(c.t) < (8u << 20))))
        going = RunCase(ce, nccl, s, n, c, send, out, ref, dw);
    cudaFree(send);
    cudaFree(out);
    cudaFree(ref);
    cudaFree(dw);
    // Every rank drained before any rank frees buffers its peers have mapped.
    int* tok = nullptr;
    cudaMalloc(&tok, sizeof(int));
    ncclAllReduce(tok, tok, 1, ncclInt32, ncclSum, nccl, s);
    cudaStreamSynchronize(s);
    cudaFree(tok);
    if (!going) break;
  }
  cudaStreamDestroy(s);
  ncclCommDestroy(nccl);
  if (g_fail == 0) std::printf("ce_procs_check: rank %d of %d: every case matched\n", pm.rank, n);
  return g_fail ? 1 : 0;
}

}  // namespace

int main() { return Run(); }
