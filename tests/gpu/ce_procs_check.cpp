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
#include "ce_check.h"
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

using cecheck::Case;

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
  cecheck::WarmKernels(pm.rank, n, s);
  for (const CeConfig& cfg : {CeConfig{}, stressed, pull, stressed_pull}) {
    CeComm ce;
    st = ce.Init(nccl, cfg, s);
    if (!st.ok()) { Fail("CeComm::Init: " + st.ToString(true)); break; }
    if (!ce.usable()) { Fail("CE path unusable across processes: " + ce.why()); break; }
    bool going = true;
    {
      cecheck::Buffers b;
      if (!b.Alloc(cases, n)) {
        Fail("cudaMalloc");
        break;
      }
      for (const Case& c : cases)
        // The stressed configurations (64 KiB chunks) on the small and odd sizes only: every slot
        // is reused hundreds of times there already, and 25 MiB in 64 KiB chunks takes seconds.
        if (going && (cfg.chunk_bytes >= (1u << 20) || (c.count != 1 && c.count * DTypeSize(c.t) < (8u << 20))))
          going = cecheck::CheckCase(ce, nccl, s, pm.rank, n, c, b, 30, Fail, [&] { ce.Abort(); });
    }
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
