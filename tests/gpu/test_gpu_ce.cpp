// Copy-engine collectives on several GPUs of one process (a thread per GPU): every collective x
// dtype x size (odd ones included) against NCCL's result (bit for bit on 2 ranks) and the exact
// expectation; a stressed protocol configuration; aborts that must end a collective whose peer
// never came or whose peer's stream stalls mid-call; the fallback decisions on a real device.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <thread>

#include "ce_check.h"
#include "ce_comm.h"
#include "ce_reduce.h"
#include "comm.h"
#include "data.h"

using namespace corun;

namespace {

// The copy streams wait on flags and must not share a hardware queue with other streams
// (ce_comm.h): run directly, without ctest's environment, the stressed configuration stopped at a
// time limit. Set before the first CUDA call creates a context, unless the caller chose a value.
const bool g_connections = setenv("CUDA_DEVICE_MAX_CONNECTIONS", "32", 0) == 0;

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

using cecheck::Case;

// One rank's checks of a list of cases (cecheck::CheckCase); a stuck call aborts every CE
// communicator of the process, so the peer threads end too.
void RankCases(int rank, int n, ncclComm_t nccl, cudaStream_t s, const CeConfig& cfg, const std::vector<Case>& cases) {
  cecheck::WarmKernels(rank, n, s);
  CeComm ce;
  Status st = ce.Init(nccl, cfg, s);
  RANK_EXPECT(st.ok(), st.ToString(true));
  RANK_EXPECT(ce.usable(), ce.why());
  if (!ce.usable()) return;
  // The cases run the form asked for: flags by stream writes and pulls unless told otherwise, or
  // more than 2 ranks share this process (push form, copied flags: ce_setup.cpp). A driver that
  // refused the stream write would show here, not as a slower run.
  RANK_EXPECT(ce.signal_copy() == (cfg.signal_copy || n > 2), "flags by " << (ce.signal_copy() ? "copies" : "writes"));
  const bool want_pull = cfg.pull_by_ranks ? CePullByRanks(cfg, n) : cfg.ag_pull && n <= 2;
  RANK_EXPECT(ce.ag_pull() == want_pull, "all-gather step by " << (ce.ag_pull() ? "pulls" : "pushes"));
  cecheck::Buffers b;
  RANK_EXPECT(b.Alloc(cases, n), "cudaMalloc");
  const cecheck::FailFn fail = [&](const std::string& what) { RANK_EXPECT(false, what); };
  for (const Case& c : cases)
    if (!cecheck::CheckCase(ce, nccl, s, rank, n, c, b, 20, fail, AbortAllCeComms)) return;
  // Direct all-gather copies (CeConfig::direct): on where asked, and taken by allreduces (a call
  // whose ranks are more than direct_wait_us apart takes the staging, so not necessarily all).
  RANK_EXPECT(ce.direct_on() == cfg.direct, "direct copies " << (ce.direct_on() ? "on" : "off"));
  RANK_EXPECT(ce.queued() == cfg.enqueue_thread, "calls " << (ce.queued() ? "" : "not ") << "queued by a thread");
  bool any_ar = false;
  for (const Case& c : cases) any_ar |= c.col == Collective::kAllReduce;
  if (cfg.direct && any_ar)
    RANK_EXPECT(ce.direct_calls() > 0, "no allreduce took the direct copies (" << ce.staged_calls() << " staged)");
  // Direct calls in the push form move in bulk; phased, wholly on the caller's stream where asked.
  const bool on_caller = cfg.direct && cfg.bulk && !ce.ag_pull() && cfg.bulk_on_caller && cfg.phases;
  RANK_EXPECT(ce.caller_stream_calls() == (on_caller ? ce.direct_calls() : 0),
              ce.caller_stream_calls() << " of " << ce.direct_calls() << " direct calls on the caller's stream");
  // Started just below the flag words' wrap (CeConfig::first_seq): both steps' chunks crossed it.
  const CeSeq wrap = CeSeq{1} << 32;
  if (cfg.first_seq && cfg.first_seq < wrap)
    RANK_EXPECT(ce.rs_seq() > wrap && ce.ag_seq() > wrap,
                "chunks ended at " << ce.rs_seq() << " / " << ce.ag_seq() << ", below the wrap at " << wrap);
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

// The reduction kernel alone on one GPU, as every rank count launches it: its own slice plus 1 to
// 7 peers' slices (filled as ranks 1.., so the sums are exact), a batch of items of odd sizes,
// with and without the second output, aligned and one element off (the single-element path).
TEST(CeReduceKernel, SumsEveryPeerCountOnOneGpu) {
  if (Gpus() < 1) GTEST_SKIP() << "needs a GPU";
  ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
  cudaStream_t s;
  ASSERT_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
  int sms = 0;
  ASSERT_EQ(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0), cudaSuccess);
  unsigned long long* dw = nullptr;
  ASSERT_EQ(cudaMalloc(&dw, sizeof(*dw)), cudaSuccess);
  const std::vector<uint64_t> counts = {1, 7, 4096 * 4 + 3, 1000003, (8ull << 20) + 5};
  for (DType t : {DType::kBf16, DType::kFp32})
    for (int npeers : {1, 2, 3, 7})
      for (int off : {0, 1}) {
        const size_t eb = DTypeSize(t);
        std::vector<void*> bufs;
        auto alloc = [&](uint64_t n) -> char* {
          void* p = nullptr;
          if (cudaMalloc(&p, (n + 16) * eb) != cudaSuccess) return nullptr;
          bufs.push_back(p);
          return static_cast<char*>(p) + off * eb;
        };
        CeReduceBatch b;
        b.npeers = npeers;
        b.items = static_cast<int>(counts.size());
        for (int i = 0; i < b.items; ++i) {
          const uint64_t n = counts[i];
          const uint32_t seed = 11 + i;
          CeReduceItem& it = b.item[i];
          it.count = n;
          char* own = alloc(n);
          ASSERT_NE(own, nullptr);
          ASSERT_TRUE(FillCollective(own, t, n, 0, 0, seed, s).ok());
          it.own = own;
          for (int p = 0; p < npeers; ++p) {
            char* peer = alloc(n);
            ASSERT_NE(peer, nullptr);
            ASSERT_TRUE(FillCollective(peer, t, n, p + 1, 0, seed, s).ok());
            it.peer[p] = peer;
          }
          it.out = alloc(n);
          it.out2 = i % 2 ? alloc(n) : nullptr;
          ASSERT_NE(it.out, nullptr);
          ASSERT_EQ(cudaMemsetAsync(it.out, 0xff, n * eb, s), cudaSuccess);  // NaN in bf16 and fp32
          if (it.out2) ASSERT_EQ(cudaMemsetAsync(it.out2, 0xff, n * eb, s), cudaSuccess);
        }
        ASSERT_TRUE(CeReduceLaunch(b, t, sms, s).ok());
        ASSERT_EQ(cudaMemsetAsync(dw, 0, sizeof(*dw), s), cudaSuccess);
        for (int i = 0; i < b.items; ++i)
          for (void* o : {b.item[i].out, b.item[i].out2})
            if (o) ASSERT_TRUE(VerifyCollective(o, t, VerifyMode::kSumAll, counts[i], 0, npeers + 1, 11 + i, dw, s).ok());
        unsigned long long wrong = 0;
        ASSERT_EQ(cudaMemcpyAsync(&wrong, dw, sizeof(wrong), cudaMemcpyDeviceToHost, s), cudaSuccess);
        ASSERT_EQ(cudaStreamSynchronize(s), cudaSuccess);
        EXPECT_EQ(wrong, 0u) << (t == DType::kBf16 ? "bf16" : "fp32") << ", " << npeers << " peers, offset " << off;
        for (void* p : bufs) cudaFree(p);
      }
  cudaFree(dw);
  cudaStreamDestroy(s);
}

// The all-gather step by pushes chunk by chunk, into the peers' outputs or staging (the default
// moves direct allreduces in bulk rounds).
TEST(CeCollMultiGpu, PushFormMatchesNccl) {
  const int n = Gpus();
  if (n < 2) GTEST_SKIP() << "needs 2 GPUs";
  CeConfig cfg;
  cfg.ag_pull = false;
  cfg.pull_by_ranks = false;
  cfg.bulk = false;
  const auto cases = AllCases(true);
  Threads(n, [&](int r, ncclComm_t c, cudaStream_t s) { RankCases(r, n, c, s, cfg, cases); });
}

// Calls queued by the communicator's thread (CeConfig::enqueue_thread): the defaults, then the
// stressed staging (hundreds of chunks per call through two slots) and bulk rounds of 3.
TEST(CeCollMultiGpu, EnqueueThreadMatchesNccl) {
  const int n = Gpus();
  if (n < 2) GTEST_SKIP() << "needs 2 GPUs";
  CeConfig cfg;
  cfg.enqueue_thread = true;
  Threads(n, [&](int r, ncclComm_t c, cudaStream_t s) { RankCases(r, n, c, s, cfg, AllCases(false)); });
  cfg.chunk_bytes = 64 << 10;
  cfg.slots = 2;
  cfg.direct = false;
  const std::vector<Case> cases = {{Collective::kAllReduce, DType::kBf16, 1000003},
                                   {Collective::kReduceScatter, DType::kFp32, 300007},
                                   {Collective::kAllGather, DType::kBf16, 300007}};
  Threads(n, [&](int r, ncclComm_t c, cudaStream_t s) { RankCases(r, n, c, s, cfg, cases); });
  cfg.direct = true;
  cfg.slots = 16;
  cfg.bulk_round = 3;
  Threads(n, [&](int r, ncclComm_t c, cudaStream_t s) { RankCases(r, n, c, s, cfg, cases); });
}

// Tiny chunks, two slots, three lanes, no batching: hundreds of chunks through every slot; both
// forms of the all-gather step, each with both ways of signalling, and copies in batches with
// and without phases.
TEST(CeCollMultiGpu, StressedProtocolConfiguration) {
  const int n = Gpus();
  if (n < 2) GTEST_SKIP() << "needs 2 GPUs";
  for (bool pull : {false, true}) {
    CeConfig cfg = cecheck::StressedConfig();
    cfg.ag_pull = pull;
    cfg.direct = false;  // the allreduces through the staging first, then straight between the outputs
    std::vector<Case> cases = {{Collective::kAllReduce, DType::kBf16, 1000003},
                               {Collective::kReduceScatter, DType::kFp32, 300007},
                               {Collective::kAllGather, DType::kBf16, 300007}};
    Threads(n, [&](int r, ncclComm_t c, cudaStream_t s) { RankCases(r, n, c, s, cfg, cases); });
    cfg.direct = true;
    cfg.bulk_round = 3;  // push form: bulk rounds of 3 chunks in a ring of 16 slots (every wrap)
    cfg.slots = 16;
    cfg.batch = 8;
    cfg.lanes = 4;
    cfg.signal_copy = true;  // flags by 4-byte copies (the default writes them)
    cfg.reduce_sms = 3;      // reductions on a few blocks: every block strides over many vectors
    Threads(n, [&](int r, ncclComm_t c, cudaStream_t s) { RankCases(r, n, c, s, cfg, cases); });
    if (!pull) {  // the same bulk rounds on a stream each way (the default: the caller's)
      cfg.bulk_on_caller = false;
      Threads(n, [&](int r, ncclComm_t c, cudaStream_t s) { RankCases(r, n, c, s, cfg, cases); });
      cfg.bulk_on_caller = true;
    }
    cfg.signal_copy = false;
    cfg.reduce_sms = 0;
    cfg.phases = false;       // pulls as soon as each reduction is done (phases are the default)
    cfg.batch_copies = true;  // each chunk's copies in one cudaMemcpyBatchAsync
    cfg.slots = 2;
    cfg.bulk = false;         // push form: direct pushes chunk by chunk (the default moves rounds in bulk)
    Threads(n, [&](int r, ncclComm_t c, cudaStream_t s) { RankCases(r, n, c, s, cfg, cases); });
    cfg.phases = true;  // batches in phases of two chunks: hundreds of rounds per allreduce
    Threads(n, [&](int r, ncclComm_t c, cudaStream_t s) { RankCases(r, n, c, s, cfg, cases); });
  }
}

// Chunk numbers past 2^32, where the flag words (their low 32 bits) wrap: at the DDP example's
// rate, about 4,000 chunks a second, that comes after some 12 days of training. Each configuration
// starts a few chunks before it (CeConfig::first_seq; RankCases checks that both steps crossed it):
// the defaults (direct bulk allreduces on 2 ranks), pulls through the staging, and small chunks on
// 3 lanes and 2 or 16 slots, whose ring positions (q modulo 3 or 2) are not continuous across 2^32
// in 32-bit arithmetic.
void CrossTheWrap(CeConfig cfg, CeSeq before) {
  const int n = Gpus();
  if (n < 2) GTEST_SKIP() << "needs 2 GPUs";
  cfg.first_seq = (CeSeq{1} << 32) - before;
  std::vector<Case> cases = {{Collective::kAllReduce, DType::kBf16, 1000003},
                             {Collective::kReduceScatter, DType::kFp32, 300007},
                             {Collective::kAllGather, DType::kBf16, 300007}};
  // A 100 MiB allreduce where chunks are 1 MiB or more (at 64 KiB it is 1,601 chunks in one call).
  if (cfg.chunk_bytes >= (1u << 20)) cases.push_back({Collective::kAllReduce, DType::kFp32, (100ull << 20) / 4 + 3});
  Threads(n, [&](int r, ncclComm_t c, cudaStream_t s) { RankCases(r, n, c, s, cfg, cases); });
}
CeConfig PullThroughStaging() {
  CeConfig c;
  c.ag_pull = true;
  c.pull_by_ranks = false;
  c.direct = false;
  c.chunk_bytes = 1 << 20;
  return c;
}
CeConfig SmallChunks() {  // the stressed protocol in the push form, through the staging
  CeConfig c = cecheck::StressedConfig();
  c.ag_pull = false;
  c.direct = false;
  return c;
}
TEST(CeCollMultiGpu, FlagWrapDefaults) { CrossTheWrap(CeConfig{}, 3); }  // 32 MiB chunks: a few per step
TEST(CeCollMultiGpu, FlagWrapPullThroughStaging) { CrossTheWrap(PullThroughStaging(), 40); }
TEST(CeCollMultiGpu, FlagWrapSmallChunks) { CrossTheWrap(SmallChunks(), 40); }
TEST(CeCollMultiGpu, FlagWrapBulkRounds) {
  CeConfig c = SmallChunks();
  c.direct = true;
  c.slots = 16;
  c.bulk_round = 3;
  CrossTheWrap(c, 40);
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

// Both ranks agree on direct copies, so rank 0's call is a bulk one wholly on its stream (or, with
// the enqueue thread, on the thread's), but rank 1's stream is held by a host function: rank 0
// waits for pushes that do not come, and its abort must end the call. Rank 1's abort then ends
// its own call, let go while the abort runs (its stream held until the abort began, so that the
// call cannot finish on its own first), with the error reported on both and every stream drained.
TEST(CeCollMultiGpu, AbortEndsABulkCallWhosePeerStalls) {
  if (Gpus() < 2) GTEST_SKIP() << "needs 2 GPUs";
  for (bool thread : {false, true}) {
    std::atomic<bool> rank0_aborted{false}, release1{false}, rank0_done{false}, rank1_done{false};
    Threads(2, [&](int rank, ncclComm_t nccl, cudaStream_t s) {
      const char* how = thread ? " (enqueue thread)" : " (caller's stream)";
      CeConfig cfg;
      cfg.enqueue_thread = thread;
      CeComm ce;
      Status st = ce.Init(nccl, cfg, s);
      RANK_EXPECT(st.ok() && ce.usable(), st.ToString(true) << " " << ce.why() << how);
      if (!ce.usable()) return;
      const uint64_t count = 8 << 20;
      void* buf = nullptr;
      cudaMalloc(&buf, count * 2);
      cudaMemsetAsync(buf, 0, count * 2, s);
      cudaStreamSynchronize(s);
      if (rank == 1)
        cudaLaunchHostFunc(
            s,
            [](void* p) {
              while (!static_cast<std::atomic<bool>*>(p)->load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
            },
            &release1);
      st = ce.AllReduce(buf, buf, count, DType::kBf16, s);
      RANK_EXPECT(st.ok(), st.ToString(true) << how);
      ce.Drain();
      RANK_EXPECT(ce.direct_calls() == 1, "the call took the staging (" << ce.staged_calls() << ")" << how);
      RANK_EXPECT(ce.caller_stream_calls() == 1, "the call was not a bulk one on one stream" << how);
      auto t0 = std::chrono::steady_clock::now();
      if (rank == 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
        RANK_EXPECT(cudaStreamQuery(s) == cudaErrorNotReady, "collective finished without its peer's pushes" << how);
        t0 = std::chrono::steady_clock::now();
        std::thread([&] { ce.Abort(); }).join();
        rank0_aborted = true;
      } else {
        while (!rank0_aborted) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        t0 = std::chrono::steady_clock::now();
        std::thread ab([&] { ce.Abort(); });
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        release1 = true;
        ab.join();
      }
      const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      RANK_EXPECT(waited < 4.0, "abort took " << waited << " s" << how);
      RANK_EXPECT(cudaStreamSynchronize(s) == cudaSuccess, "stream after abort" << how);
      RANK_EXPECT(!ce.CheckError().ok(), "abort not reported" << how);
      RANK_EXPECT(!ce.AllReduce(buf, buf, count, DType::kBf16, s).ok(), "call after abort accepted" << how);
      // Each rank's copies write the other's memory: free only once both streams are drained.
      (rank == 0 ? rank0_done : rank1_done) = true;
      while (!rank0_done || !rank1_done) std::this_thread::sleep_for(std::chrono::milliseconds(5));
      cudaFree(buf);
    });
  }
}

// A communicator's calls run in the order they were issued, whatever streams they are on (as
// NCCL's): the first call's stream is held back by a host function while the second call goes on
// another stream at once. Both results must be exact; unordered, the second call's flags (higher
// sequence numbers) would satisfy the first call's waits before the peers' pushes came. Round 1
// follows a bulk call by a reduce-scatter (the staging, on the communicator's streams); round 2
// holds the other stream and switches back.
TEST(CeCollMultiGpu, CallsOnTwoStreamsRunInIssueOrder) {
  const int n = Gpus();
  if (n < 2) GTEST_SKIP() << "needs 2 GPUs";
  Threads(n, [&](int rank, ncclComm_t nccl, cudaStream_t s) {
    cecheck::WarmKernels(rank, n, s);
    CeComm ce;
    Status st = ce.Init(nccl, CeConfig{}, s);
    RANK_EXPECT(st.ok() && ce.usable(), st.ToString(true) << " " << ce.why());
    if (!ce.usable()) return;
    cudaStream_t s2 = nullptr;
    cudaStreamCreateWithFlags(&s2, cudaStreamNonBlocking);
    const uint64_t count = (40ull << 20) / 2 + 5;  // bf16 elements, odd
    void *x = nullptr, *y = nullptr, *z = nullptr;
    unsigned long long* wrong = nullptr;
    const bool alloc = cudaMalloc(&x, count * 2) == cudaSuccess && cudaMalloc(&y, count * 2 * n) == cudaSuccess &&
                       cudaMalloc(&z, count * 2) == cudaSuccess &&
                       cudaMalloc(&wrong, 2 * sizeof(*wrong)) == cudaSuccess;
    RANK_EXPECT(alloc, "cudaMalloc");
    const cecheck::FailFn fail = [&](const std::string& what) { RANK_EXPECT(false, what); };
    auto hold = [](void*) { std::this_thread::sleep_for(std::chrono::milliseconds(40)); };
    const uint64_t bulk_before = ce.caller_stream_calls(), direct_before = ce.direct_calls();
    for (int round = 0; alloc && round < 3; ++round) {
      const bool rs = round == 1;
      cudaStream_t first = round == 2 ? s2 : s, second = round == 2 ? s : s2;
      const uint32_t seed_x = 31 + round, seed_y = 41 + round;
      RANK_EXPECT(FillCollective(x, DType::kBf16, count, rank, 0, seed_x, first).ok(), "fill x");
      RANK_EXPECT(FillCollective(y, DType::kBf16, rs ? count * n : count, rank, 0, seed_y, second).ok(), "fill y");
      cudaMemsetAsync(z, 0xFF, count * 2, second);
      cudaMemsetAsync(wrong, 0, 2 * sizeof(*wrong), first);
      cudaStreamSynchronize(first);
      cudaStreamSynchronize(second);
      cudaLaunchHostFunc(first, hold, nullptr);
      st = ce.AllReduce(x, x, count, DType::kBf16, first);
      RANK_EXPECT(st.ok(), "round " << round << ": first call: " << st.ToString(true));
      st = rs ? ce.ReduceScatter(y, z, count, DType::kBf16, second) : ce.AllReduce(y, y, count, DType::kBf16, second);
      RANK_EXPECT(st.ok(), "round " << round << ": second call: " << st.ToString(true));
      (void)VerifyCollective(x, DType::kBf16, VerifyMode::kSumAll, count, rank, n, seed_x, wrong, first);
      (void)VerifyCollective(rs ? z : y, DType::kBf16, rs ? VerifyMode::kSumOwnChunk : VerifyMode::kSumAll, count, rank,
                             n, seed_y, wrong + 1, second);
      const std::string what = "round " + std::to_string(round);
      if (!cecheck::SyncBounded(ce, first, what + " first stream", 20, fail, AbortAllCeComms) ||
          !cecheck::SyncBounded(ce, second, what + " second stream", 20, fail, AbortAllCeComms))
        break;
      unsigned long long h[2] = {0, 0};
      cudaMemcpy(h, wrong, sizeof(h), cudaMemcpyDeviceToHost);
      RANK_EXPECT(h[0] == 0, what << ": first call (allreduce on the held stream): " << h[0] << " wrong elements");
      RANK_EXPECT(h[1] == 0, what << ": second call (" << (rs ? "reduce-scatter" : "allreduce") << "): " << h[1]
                                  << " wrong elements");
      RANK_EXPECT(ce.CheckError().ok(), what << ": error flag");
    }
    // The allreduces that took direct copies (all, unless ranks were more than direct_wait_us
    // apart) were bulk calls wholly on their callers' streams, where the order matters.
    const uint64_t bulk = ce.caller_stream_calls() - bulk_before, direct = ce.direct_calls() - direct_before;
    RANK_EXPECT(bulk >= 1 && bulk == direct,
                bulk << " of " << direct << " direct allreduces (of 5) on callers' streams");
    ce.Drain();
    cudaFree(x);
    cudaFree(y);
    cudaFree(z);
    cudaFree(wrong);
    cudaStreamDestroy(s2);
  });
}

// Direct copies need every output to be cudaMalloc memory: rank 1's output in managed memory
// makes every allreduce take the staging on both ranks, with the right sum; back in device
// memory, the next calls go direct again.
TEST(CeCollMultiGpu, DirectCopiesFallBackForAnOutputTheyCannotShare) {
  if (Gpus() < 2) GTEST_SKIP() << "needs 2 GPUs";
  // The ranks meet before each call: the agreement waits only direct_wait_us for the peer, and
  // the host-side checks between calls (one rank reading managed memory) can keep them further apart.
  std::atomic<int> arrived{0};
  Threads(2, [&](int rank, ncclComm_t nccl, cudaStream_t s) {
    int meetings = 0;
    auto meet = [&] {
      arrived.fetch_add(1);
      ++meetings;
      const auto t0 = std::chrono::steady_clock::now();  // bounded: a peer that returned early never comes
      while (arrived.load() < 2 * meetings && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10))
        std::this_thread::yield();
    };
    CeComm ce;
    Status st = ce.Init(nccl, CeConfig{}, s);
    RANK_EXPECT(st.ok() && ce.usable() && ce.direct_on(), st.ToString(true) << " " << ce.why());
    if (!ce.usable() || !ce.direct_on()) return;
    const uint64_t count = (3u << 20) + 5;  // 12 MiB of fp32, an odd count
    std::vector<float> h(count), got(count);
    for (uint64_t i = 0; i < count; ++i) h[i] = static_cast<float>((i % 1000) + 1000 * rank);
    float *in = nullptr, *dev_out = nullptr, *managed_out = nullptr;
    cudaMalloc(&in, count * 4);
    cudaMalloc(&dev_out, count * 4);
    cudaMallocManaged(&managed_out, count * 4);
    cudaMemcpy(in, h.data(), count * 4, cudaMemcpyHostToDevice);
    for (int round = 0; round < 2; ++round) {
      float* out = round == 0 && rank == 1 ? managed_out : dev_out;
      const uint64_t direct0 = ce.direct_calls(), staged0 = ce.staged_calls();
      for (int call = 0; call < 3; ++call) {
        cudaMemsetAsync(out, 0xff, count * 4, s);
        meet();
        st = ce.AllReduce(in, out, count, DType::kFp32, s);
        RANK_EXPECT(st.ok(), st.ToString(true));
        cudaMemcpyAsync(got.data(), out, count * 4, cudaMemcpyDefault, s);
        RANK_EXPECT(cudaStreamSynchronize(s) == cudaSuccess, "sync");
        uint64_t wrong = 0;
        for (uint64_t i = 0; i < count; ++i) wrong += got[i] != static_cast<float>(2 * (i % 1000) + 1000);
        RANK_EXPECT(wrong == 0, "round " << round << " call " << call << ": " << wrong << " wrong values");
      }
      if (round == 0)
        RANK_EXPECT(ce.staged_calls() - staged0 == 3 && ce.direct_calls() == direct0,
                    "a managed output on rank 1: " << ce.direct_calls() - direct0 << " calls went direct");
      else
        RANK_EXPECT(ce.direct_calls() - direct0 > 0, "device outputs again: no call went direct");
    }
    cudaFree(in);
    cudaFree(dev_out);
    cudaFree(managed_out);
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
