// NCCL's zero-CTA AllGather on 2 GPUs of one process (a thread per GPU): at 64 MiB per rank the
// path check must say NCCL launched no kernel, and the result must equal plain NCCL's bit for bit
// and the exact expectation. A control on the same windows with NCCL's default CTA policy must be
// seen to launch a kernel, so a check that always says "zero-CTA" fails here. At 2 MB per rank
// the result must be right and the check's verdict is printed (not asserted: whether NCCL keeps
// its kernel off at that size is not shown).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "data.h"
#include "nccl_zero.h"

using namespace corun;

namespace {

std::mutex g_mu;
#define RANK_EXPECT(cond, msg)                           \
  do {                                                   \
    if (!(cond)) {                                       \
      std::lock_guard<std::mutex> _l(g_mu);              \
      ADD_FAILURE() << "rank " << rank << ": " << msg;   \
    }                                                    \
  } while (0)

int Gpus() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess ? n : 0;
}

// Elements per rank (bf16), odd on purpose: not a multiple of a page, a chunk or a warp. Large:
// 64 MiB and a few elements; small: about 2 MB.
constexpr uint64_t kLarge = (64ull << 20) / 2 + 3;
constexpr uint64_t kSmall = 1000003;
constexpr uint32_t kSeed = 17;

// What the path check must say: a given path, or anything (printed only).
enum class Want { kTaken, kNotTaken, kAny };

bool Satisfies(ZeroPath got, Want want) {
  switch (want) {
    case Want::kTaken: return got == ZeroPath::kTaken;
    case Want::kNotTaken: return got == ZeroPath::kNotTaken;
    case Want::kAny: return true;
  }
  return false;
}

// The check's meeting (CheckPath's `meet`): both ranks meet right before their blockers, so each
// one's side of the collective is enqueued inside the peer's hold (the same test gave both
// verdicts run to run while the ranks met before the check's own set-up instead).
std::mutex g_meet_mu;
std::condition_variable g_meet_cv;
int g_meet_count = 0;
void Meet(int n) {
  std::unique_lock<std::mutex> l(g_meet_mu);
  const int gen = g_meet_count / n;
  ++g_meet_count;
  g_meet_cv.notify_all();
  g_meet_cv.wait(l, [&] { return g_meet_count / n > gen; });
}

void Rank(int rank, int n, const ncclUniqueId& id, int cta_policy, uint64_t count, Want want) {
  ASSERT_EQ(cudaSetDevice(rank), cudaSuccess);
  ncclComm_t base = nullptr;
  ASSERT_EQ(ncclCommInitRank(&base, n, id, rank), ncclSuccess);
  cudaStream_t s;
  ASSERT_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
  const DType t = DType::kBf16;
  const size_t send_b = count * DTypeSize(t), recv_b = send_b * n;
  {
    NcclZero z;
    Status st = z.Init(base, send_b, recv_b, cta_policy);
    RANK_EXPECT(st.ok(), st.ToString(true));
    if (st.ok()) {
      RANK_EXPECT(FillCollective(z.send(), t, count, rank, 0, kSeed, s).ok(), "fill");
      RANK_EXPECT(cudaStreamSynchronize(s) == cudaSuccess, "sync");
      ZeroVerdict v;
      st = z.CheckPath(Collective::kAllGather, count, t, s, &v, [n] {
        Meet(n);
        return Status::Ok();
      });
      RANK_EXPECT(st.ok(), st.ToString(true));
      RANK_EXPECT(Satisfies(v.path, want), "path check: " << ZeroVerdictNote(v));
      int version = 0;
      ncclGetVersion(&version);
      if (rank == 0)
        std::printf("NCCL %d, CTA policy %d, allgather %llu B per rank: %s\n", version, cta_policy,
                    static_cast<unsigned long long>(send_b), ZeroVerdictNote(v).c_str());
      // The result, against plain NCCL on cudaMalloc buffers and against the expectation.
      void *send = nullptr, *recv = nullptr;
      unsigned long long* wrong = nullptr;
      RANK_EXPECT(cudaMalloc(&send, send_b) == cudaSuccess && cudaMalloc(&recv, recv_b) == cudaSuccess &&
                      cudaMalloc(&wrong, sizeof(*wrong)) == cudaSuccess,
                  "cudaMalloc");
      RANK_EXPECT(FillCollective(send, t, count, rank, 0, kSeed, s).ok(), "fill");
      cudaMemsetAsync(z.recv(), 0xFF, recv_b, s);
      cudaMemsetAsync(recv, 0xFF, recv_b, s);
      cudaMemsetAsync(wrong, 0, sizeof(*wrong), s);
      st = z.Run(Collective::kAllGather, count, t, s);
      RANK_EXPECT(st.ok(), st.ToString(true));
      RANK_EXPECT(ncclAllGather(send, recv, count, ncclBfloat16, base, s) == ncclSuccess, "ncclAllGather");
      const CollectiveShape sh = ShapeOf(Collective::kAllGather, recv_b, t, n);  // takes the total bytes
      RANK_EXPECT(sh.count == count, "shape count " << sh.count);
      RANK_EXPECT(VerifyCollective(z.recv(), t, sh.verify, count, rank, n, kSeed, wrong, s).ok(), "verify");
      unsigned long long bad = ~0ull;
      cudaMemcpyAsync(&bad, wrong, sizeof(bad), cudaMemcpyDeviceToHost, s);
      RANK_EXPECT(cudaStreamSynchronize(s) == cudaSuccess, "sync");
      RANK_EXPECT(bad == 0, bad << " elements differ from the expectation");
      std::vector<unsigned char> a(recv_b), b(recv_b);
      cudaMemcpy(a.data(), z.recv(), recv_b, cudaMemcpyDeviceToHost);
      cudaMemcpy(b.data(), recv, recv_b, cudaMemcpyDeviceToHost);
      RANK_EXPECT(std::memcmp(a.data(), b.data(), recv_b) == 0, "zero-CTA result differs from plain NCCL's");
      cudaFree(send);
      cudaFree(recv);
      cudaFree(wrong);
    }
  }
  cudaStreamDestroy(s);
  ncclCommDestroy(base);
}

void TwoRanks(int cta_policy, uint64_t count, Want want) {
  if (Gpus() < 2) GTEST_SKIP() << "needs 2 GPUs";
  ncclUniqueId id;
  ASSERT_EQ(ncclGetUniqueId(&id), ncclSuccess);
  std::vector<std::thread> th;
  for (int r = 0; r < 2; ++r) th.emplace_back([&, r] { Rank(r, 2, id, cta_policy, count, want); });
  for (auto& t : th) t.join();
}

}  // namespace

TEST(NcclZeroMultiGpu, AllGatherTakesTheZeroCtaPath) { TwoRanks(NCCL_CTA_POLICY_ZERO, kLarge, Want::kTaken); }

// The control: the same size and windows, NCCL's default policy, its kernel. The check must see it.
TEST(NcclZeroMultiGpu, CheckSeesNcclsKernel) { TwoRanks(NCCL_CTA_POLICY_DEFAULT, kLarge, Want::kNotTaken); }

// At 2 MB per rank: the result must be right; the check's verdict is printed, not asserted (the
// bench skips a row whose check does not say "taken").
TEST(NcclZeroMultiGpu, SmallAllGatherIsRightAndPrintsItsVerdict) { TwoRanks(NCCL_CTA_POLICY_ZERO, kSmall, Want::kAny); }
