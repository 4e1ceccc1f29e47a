// Collectives are verified exactly, the verifier catches a corrupted element, the kernel probe
// reads NCCL's launch footprint; on several GPUs the same in one process (a thread per GPU).
#include <gtest/gtest.h>

#include <thread>

#include "comm.h"
#include "data.h"

using namespace corun;

namespace {

// One rank's round of every collective; returns wrong elements per collective.
void RankRound(const ncclUniqueId& id, int nranks, int rank, DType t, CommConfig cfg, std::vector<int64_t>* wrong,
               KernelFootprint* fp, int* ctas) {
  ASSERT_EQ(cudaSetDevice(rank), cudaSuccess);
  Comm c;
  Status s = c.Init(id, nranks, rank, cfg);
  ASSERT_TRUE(s.ok()) << s.ToString(true);
  cudaStream_t st;
  ASSERT_EQ(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking), cudaSuccess);
  const uint64_t bytes = 6 << 20;
  void *send = nullptr, *recv = nullptr;
  unsigned long long* dw = nullptr;
  ASSERT_EQ(cudaMalloc(&send, bytes * 2), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&recv, bytes * 2), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&dw, sizeof(*dw)), cudaSuccess);
  for (Collective col : {Collective::kAllReduce, Collective::kAllGather, Collective::kReduceScatter, Collective::kAllToAll}) {
    const CollectiveShape sh = ShapeOf(col, bytes, t, nranks);
    ASSERT_TRUE(FillCollective(send, t, sh.send_elems, rank, 0, 99, st).ok());
    ASSERT_EQ(cudaMemsetAsync(recv, 0xFF, sh.recv_elems * DTypeSize(t), st), cudaSuccess);
    // Graph capture of NCCL is only safe with one GPU per process (multi-GPU processes break
    // the communicator: corun bench probes those in child processes instead).
    if (col == Collective::kAllReduce && fp && nranks == 1) {
      // One rank: NCCL copies with no kernel; the captured call is still replayed.
      Status p = c.ProbeKernel(col, send, recv, sh.count, t, st, fp, ctas, nullptr);
      if (nranks == 1 && !p.ok()) {
        EXPECT_NE(p.message().find("no kernel node"), std::string::npos) << p.ToString(true);
        *ctas = -1;
      } else {
        ASSERT_TRUE(p.ok()) << p.ToString(true);
      }
    } else {
      ASSERT_TRUE(c.Run(col, send, recv, sh.count, t, st).ok());
    }
    ASSERT_EQ(cudaMemsetAsync(dw, 0, sizeof(*dw), st), cudaSuccess);
    ASSERT_TRUE(VerifyCollective(recv, t, sh.verify, sh.count, rank, nranks, 99, dw, st).ok());
    unsigned long long w = 0;
    ASSERT_EQ(cudaMemcpyAsync(&w, dw, sizeof(w), cudaMemcpyDeviceToHost, st), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(st), cudaSuccess);
    wrong->push_back(static_cast<int64_t>(w));
    // The verifier must catch one corrupted element.
    if (col == Collective::kAllReduce) {
      ASSERT_EQ(cudaMemsetAsync(recv, 0x7F, 2, st), cudaSuccess);
      ASSERT_EQ(cudaMemsetAsync(dw, 0, sizeof(*dw), st), cudaSuccess);
      ASSERT_TRUE(VerifyCollective(recv, t, sh.verify, sh.count, rank, nranks, 99, dw, st).ok());
      ASSERT_EQ(cudaMemcpyAsync(&w, dw, sizeof(w), cudaMemcpyDeviceToHost, st), cudaSuccess);
      ASSERT_EQ(cudaStreamSynchronize(st), cudaSuccess);
      EXPECT_EQ(w, 1u) << "corrupted element not caught";
    }
  }
  cudaFree(send);
  cudaFree(recv);
  cudaFree(dw);
  cudaStreamDestroy(st);
}

void World(int n, DType t, CommConfig cfg) {
  int have = 0;
  ASSERT_EQ(cudaGetDeviceCount(&have), cudaSuccess);
  if (have < n) GTEST_SKIP() << "needs " << n << " GPUs, " << have << " visible";
  ncclUniqueId id;
  ASSERT_EQ(ncclGetUniqueId(&id), ncclSuccess);
  std::vector<std::vector<int64_t>> wrong(n);
  std::vector<KernelFootprint> fps(n);
  std::vector<int> ctas(n, 0);
  std::vector<std::thread> th;
  for (int r = 0; r < n; ++r) th.emplace_back([&, r] { RankRound(id, n, r, t, cfg, &wrong[r], &fps[r], &ctas[r]); });
  for (auto& x : th) x.join();
  for (int r = 0; r < n; ++r) {
    ASSERT_EQ(wrong[r].size(), 4u) << "rank " << r;
    for (size_t i = 0; i < wrong[r].size(); ++i) EXPECT_EQ(wrong[r][i], 0) << "rank " << r << " collective " << i;
    if (ctas[r] <= 0) continue;  // not probed (several ranks) or a single rank without a kernel
    EXPECT_GT(fps[r].threads, 0);
    EXPECT_GT(ctas[r], 0);
  }
  std::printf("[ info ] %d rank(s), allreduce kernel: %d CTAs x %d threads, %d regs, %zu+%zu B smem\n", n, ctas[0],
              fps[0].threads, fps[0].regs_per_thread, fps[0].static_smem, fps[0].dynamic_smem);
}

}  // namespace

TEST(Collectives, OneGpuBf16) { World(1, DType::kBf16, {}); }
TEST(Collectives, OneGpuFp32) { World(1, DType::kFp32, {}); }
TEST(CollectivesMultiGpu, AllGpusBf16) {
  int n = 0;
  cudaGetDeviceCount(&n);
  if (n < 2) GTEST_SKIP() << "one GPU";
  World(n, DType::kBf16, {});
}
TEST(CollectivesMultiGpu, AllGpusFp32WithCtaCap) {
  int n = 0;
  cudaGetDeviceCount(&n);
  if (n < 2) GTEST_SKIP() << "one GPU";
  World(n, DType::kFp32, CommConfig{4});
}
