// Copy-engine collectives on several GPUs of one process (a thread per GPU): every collective x
// dtype x size (odd ones included) against NCCL's result (bit for bit on 2 ranks) and the exact
// expectation; a stressed protocol configuration; an abort that must end a collective whose peer
// never came; the fallback decisions on a real device.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <mutex>
#include <thread>

#include "ce_comm.h"
#include "comm.h"
#include "data.h"

using namespace corun;

namespace {

int Gpus() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) return 0;
  return n;
}

std::mutex g_log_mu;
#define RANK_EXPECT(cond, msg)                                            \
  do {                                                                    \
    if (!(cond)) {                                                        \
      std::lock_guard<std::mutex> _l(g_log_mu);                           \
      ADD_FAILURE() << "rank " << rank << ": " << msg;                    \
    }                                                                     \
  } while (0)

// Runs fn(rank, nccl comm, stream) on a thread per GPU.
void Threads(int n, const std::function<void(int, ncclComm_t, cudaStream_t)>& fn) {
  ncclUniqueId id;
  ASSERT_EQ(ncclGetUniqueId(&id), ncclSuccess);
  std::vector<std::thread> th;
  for (int r = 0; r < n; ++r)
    th.emplace_back([&, r] {
      cudaSetDevice(r);
      ncclComm_t c = nullptr;
      if (ncclCommInitRank(&c, n, id, r) != ncclSuccess) {
        ADD_FAILURE() << "ncclCommInitRank rank " << r;
        return;
      }
      cudaStream_t s;
      cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
      fn(r, c, s);
      cudaStreamSynchronize(s);
      cudaStreamDestroy(s);
      ncclCommDestroy(c);
    });
  for (auto& t : th) t.join();
}

// Waits for the stream at most `limit_s`; on time-out prints the flag block, aborts every CE
// communicator (releasing the waits, so the test ends instead of hanging) and returns false.
bool SyncBounded(CeComm& ce, cudaStream_t s, int rank, const std::string& what, double limit_s = 20) {
  const auto t0 = std::chrono::steady_clock::now();
  while (cudaStreamQuery(s) == cudaErrorNotReady) {
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > limit_s) {
      {
        std::lock_guard<std::mutex> l(g_log_mu);
        ADD_FAILURE() << "rank " << rank << ": " << what << ": stuck for " << limit_s << " s; flags: " << ce.DumpFlags();
      }
      AbortAllCeComms();
      cudaStreamSynchronize(s);
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return cudaStreamSynchronize(s) == cudaSuccess;
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

// One rank's checks of a list of cases; both CE and NCCL run every case twice (slot reuse
// across calls), the second time in place for allreduce.
void RankCases(int rank, int n, ncclComm_t nccl, cudaStream_t s, const CeConfig& cfg, const std::vector<Case>& cases) {
  WarmKernels(rank, n, s);
  CeComm ce;
  Status st = ce.Init(nccl, cfg, s);
  RANK_EXPECT(st.ok(), st.ToString(true));
  RANK_EXPECT(ce.usable(), ce.why());
  if (!ce.usable()) return;
  uint64_t most = 0;
  for (const Case& c : cases) most = std::max<uint64_t>(most, c.count * n * DTypeSize(c.t));
  char *send = nullptr, *out = nullptr, *ref = nullptr;
  unsigned long long* dw = nullptr;
  RANK_EXPECT(cudaMalloc(&send, most) == cudaSuccess, "cudaMalloc");
  RANK_EXPECT(cudaMalloc(&out, most) == cudaSuccess, "cudaMalloc");
  RANK_EXPECT(cudaMalloc(&ref, most) == cudaSuccess, "cudaMalloc");
  RANK_EXPECT(cudaMalloc(&dw, sizeof(*dw)) == cudaSuccess, "cudaMalloc");
  std::vector<char> h_out, h_ref;
  for (const Case& c : cases) {
    const size_t eb = DTypeSize(c.t);
    const uint64_t send_elems = c.col == Collective::kReduceScatter ? c.count * n : c.count;
    const uint64_t recv_elems = c.col == Collective::kAllGather ? c.count * n : (c.col == Collective::kReduceScatter ? c.count : c.count);
    const VerifyMode vm = c.col == Collective::kAllReduce ? VerifyMode::kSumAll
                          : c.col == Collective::kAllGather ? VerifyMode::kGather : VerifyMode::kSumOwnChunk;
    const std::string what = std::string(CollectiveName(c.col)) + " " + DTypeName(c.t) + " count " + std::to_string(c.count);
    for (int round = 0; round < 2; ++round) {
      const bool in_place = round == 1 && c.col == Collective::kAllReduce;
      RANK_EXPECT(FillCollective(send, c.t, send_elems, rank, 0, 7 + round, s).ok(), "fill");
      // Reference: NCCL.
      cudaMemsetAsync(ref, 0xFF, recv_elems * eb, s);
      ncclDataType_t dt = c.t == DType::kBf16 ? ncclBfloat16 : ncclFloat32;
      ncclResult_t nr = ncclSuccess;
      if (c.col == Collective::kAllReduce) nr = ncclAllReduce(send, ref, c.count, dt, ncclSum, nccl, s);
      if (c.col == Collective::kAllGather) nr = ncclAllGather(send, ref, c.count, dt, nccl, s);
      if (c.col == Collective::kReduceScatter) nr = ncclReduceScatter(send, ref, c.count, dt, ncclSum, nccl, s);
      RANK_EXPECT(nr == ncclSuccess, what << ": NCCL " << ncclGetErrorString(nr));
      // Copy engines.
      void* dst = out;
      if (in_place) {
        cudaMemcpyAsync(out, send, send_elems * eb, cudaMemcpyDeviceToDevice, s);
        st = ce.Run(c.col, out, out, c.count, c.t, s);
      } else {
        cudaMemsetAsync(out, 0xFF, recv_elems * eb, s);
        st = ce.Run(c.col, send, dst, c.count, c.t, s);
      }
      RANK_EXPECT(st.ok(), what << ": " << st.ToString(true));
      cudaMemsetAsync(dw, 0, sizeof(*dw), s);
      RANK_EXPECT(VerifyCollective(out, c.t, vm, c.count, rank, n, 7 + round, dw, s).ok(), "verify");
      unsigned long long wrong = 0;
      cudaMemcpyAsync(&wrong, dw, sizeof(wrong), cudaMemcpyDeviceToHost, s);
      if (!SyncBounded(ce, s, rank, what)) return;
      RANK_EXPECT(wrong == 0, what << (in_place ? " in place" : "") << ": " << wrong << " wrong elements");
      RANK_EXPECT(ce.CheckError().ok(), "error flag");
      if (n == 2) {
        h_out.resize(recv_elems * eb);
        h_ref.resize(recv_elems * eb);
        cudaMemcpy(h_out.data(), out, recv_elems * eb, cudaMemcpyDeviceToHost);
        cudaMemcpy(h_ref.data(), ref, recv_elems * eb, cudaMemcpyDeviceToHost);
        RANK_EXPECT(std::memcmp(h_out.data(), h_ref.data(), h_out.size()) == 0,
                    what << (in_place ? " in place" : "") << ": differs from NCCL");
      }
    }
  }
  cudaFree(send);
  cudaFree(out);
  cudaFree(ref);
  cudaFree(dw);
}

std::vector<Case> AllCases(bool big) {
  std::vector<Case> v;
  for (Collective col : {Collective::kAllReduce, Collective::kReduceScatter, Collective::kAllGather})
    for (DType t : {DType::kBf16, DType::kFp32}) {
      std::vector<uint64_t> counts = {1, 7, 1000003, (25ull << 20) / DTypeSize(t)};
      if (big) counts.push_back((300ull << 20) / DTypeSize(t) + 3);
      for (uint64_t c : counts) v.push_back({col, t, c});
    }
  return v;
}

}  // namespace

TEST(CeCollMultiGpu, EveryCollectiveDtypeAndSizeMatchesNccl) {
  const int n = Gpus();
  if (n < 2) GTEST_SKIP() << "needs 2 GPUs";
  const auto cases = AllCases(true);
  Threads(n, [&](int r, ncclComm_t c, cudaStream_t s) { RankCases(r, n, c, s, CeConfig{}, cases); });
}

// The all-gather step by pulls from the owner's staging (CeConfig::ag_pull).
TEST(CeCollMultiGpu, PullFormMatchesNccl) {
  const int n = Gpus();
  if (n < 2) GTEST_SKIP() << "needs 2 GPUs";
  CeConfig cfg;
  cfg.ag_pull = true;
  const auto cases = AllCases(true);
  Threads(n, [&](int r, ncclComm_t c, cudaStream_t s) { RankCases(r, n, c, s, cfg, cases); });
}

// Tiny chunks, two slots, three lanes, no batching: hundreds of chunks through every slot; both
// forms of the all-gather step.
TEST(CeCollMultiGpu, StressedProtocolConfiguration) {
  const int n = Gpus();
  if (n < 2) GTEST_SKIP() << "needs 2 GPUs";
  for (bool pull : {false, true}) {
    CeConfig cfg;
    cfg.ag_pull = pull;
    cfg.chunk_bytes = 64 << 10;
    cfg.slots = 2;
    cfg.lanes = 3;
    cfg.batch = 1;
    std::vector<Case> cases = {{Collective::kAllReduce, DType::kBf16, 1000003},
                               {Collective::kReduceScatter, DType::kFp32, 300007},
                               {Collective::kAllGather, DType::kBf16, 300007}};
    Threads(n, [&](int r, ncclComm_t c, cudaStream_t s) { RankCases(r, n, c, s, cfg, cases); });
    cfg.slots = 16;
    cfg.batch = 8;
    cfg.lanes = 4;
    Threads(n, [&](int r, ncclComm_t c, cudaStream_t s) { RankCases(r, n, c, s, cfg, cases); });
  }
}

// Rank 1 never enters the collective: rank 0's waits hang until Abort() releases them; then the
// stream drains and the error is reported.
TEST(CeCollMultiGpu, AbortEndsACollectiveWhosePeerNeverCame) {
  if (Gpus() < 2) GTEST_SKIP() << "needs 2 GPUs";
  std::atomic<bool> rank0_done{false};
  Threads(2, [&](int rank, ncclComm_t nccl, cudaStream_t s) {
    CeComm ce;
    Status st = ce.Init(nccl, CeConfig{}, s);
    RANK_EXPECT(st.ok() && ce.usable(), st.ToString(true) << " " << ce.why());
    if (!ce.usable()) return;
    if (rank == 0) {
      const uint64_t count = 8 << 20;
      void* buf = nullptr;
      cudaMalloc(&buf, count * 2);
      cudaMemsetAsync(buf, 0, count * 2, s);
      st = ce.AllReduce(buf, buf, count, DType::kBf16, s);
      RANK_EXPECT(st.ok(), st.ToString(true));
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      RANK_EXPECT(cudaStreamQuery(s) == cudaErrorNotReady, "collective finished without its peer");
      const auto t0 = std::chrono::steady_clock::now();
      std::thread([&] { AbortAllCeComms(); }).join();
      RANK_EXPECT(cudaStreamSynchronize(s) == cudaSuccess, "stream after abort");
      const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      RANK_EXPECT(waited < 5.0, "abort took " << waited << " s");
      RANK_EXPECT(!ce.CheckError().ok(), "abort not reported");
      RANK_EXPECT(!ce.AllReduce(buf, buf, count, DType::kBf16, s).ok(), "call after abort accepted");
      cudaFree(buf);
      rank0_done = true;
    }
    // Rank 1 keeps its flags alive until rank 0 is done (the abort also writes them).
    while (!rank0_done) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  });
}

TEST(CeCollMultiGpu, FallbackDecisions) {
  if (Gpus() < 2) GTEST_SKIP() << "needs 2 GPUs";
  // A staging larger than the device: every rank falls back, with the reason.
  CeConfig huge;
  huge.chunk_bytes = 1ull << 40;
  Threads(2, [&](int rank, ncclComm_t nccl, cudaStream_t s) {
    CeComm ce;
    Status st = ce.Init(nccl, huge, s);
    RANK_EXPECT(st.ok(), st.ToString(true));
    RANK_EXPECT(!ce.usable(), "usable with a 1 TiB staging");
    RANK_EXPECT(ce.why().find("too little device memory") != std::string::npos, ce.why());
    RANK_EXPECT(!ce.AllReduce(nullptr, nullptr, 1, DType::kBf16, s).ok(), "call on an unusable comm accepted");
  });
  // One rank: nothing to move.
  Threads(1, [&](int rank, ncclComm_t nccl, cudaStream_t s) {
    CeComm ce;
    Status st = ce.Init(nccl, CeConfig{}, s);
    RANK_EXPECT(st.ok(), st.ToString(true));
    RANK_EXPECT(!ce.usable() && ce.why().find("single rank") != std::string::npos, ce.why());
  });
  // Bad configuration is an error, not a fallback.
  Threads(2, [&](int rank, ncclComm_t nccl, cudaStream_t s) {
    CeComm ce;
    CeConfig bad;
    bad.slots = 1;
    RANK_EXPECT(!ce.Init(nccl, bad, s).ok(), "slots = 1 accepted");
  });
}
