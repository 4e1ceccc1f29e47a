// Both GEMMs give correct results: with and without a pad, with an SM-count target, on a green
// context's stream, and a poisoned output is caught.
#include <gtest/gtest.h>

#include "corun/gemm_check.h"
#include "corun/occupancy.h"
#include "data.h"
#include "device.h"
#include "gemm_cublaslt.h"
#include "gemm_tiled.h"
#include "greenctx.h"

using namespace corun;

namespace {

struct Bufs {
  __nv_bfloat16 *a = nullptr, *b = nullptr, *c = nullptr;
  int64_t m, n, k;
  Bufs(int64_t m_, int64_t n_, int64_t k_) : m(m_), n(n_), k(k_) {
    EXPECT_EQ(cudaMalloc(&a, m * k * 2), cudaSuccess);
    EXPECT_EQ(cudaMalloc(&b, n * k * 2), cudaSuccess);
    EXPECT_EQ(cudaMalloc(&c, m * n * 2), cudaSuccess);
    EXPECT_TRUE(FillGemmInput(a, m * k, 1, nullptr).ok());
    EXPECT_TRUE(FillGemmInput(b, n * k, 2, nullptr).ok());
    Poison();
  }
  void Poison() { EXPECT_EQ(cudaMemset(c, 0xFF, m * n * 2), cudaSuccess); }
  int64_t Wrong(int samples = 256) {
    auto idx = GemmSampleIndices(m, n, samples, 3);
    std::vector<float> got;
    EXPECT_TRUE(GatherSamples(c, idx, &got, nullptr).ok());
    return CountGemmMismatches(n, k, 1, 2, idx, got);
  }
  ~Bufs() {
    cudaFree(a);
    cudaFree(b);
    cudaFree(c);
  }
};

}  // namespace

class TiledGemmTest : public ::testing::TestWithParam<TileConfig> {};

TEST_P(TiledGemmTest, CorrectWithAndWithoutPad) {
  const TileConfig t = GetParam();
  for (auto shape : {std::array<int64_t, 3>{64, 64, 64}, {512, 384, 256}, {1024, 2048, 1024}}) {
    Bufs x(shape[0], shape[1], shape[2]);
    EXPECT_GT(x.Wrong(), 0) << "poisoned output must fail the check";
    ASSERT_TRUE(TiledGemm::Launch(t, x.a, x.b, x.c, x.m, x.n, x.k, 0, nullptr).ok());
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    EXPECT_EQ(x.Wrong(), 0) << TileConfigName(t) << " " << x.m << "x" << x.n << "x" << x.k;
    // A pad that caps the kernel at one block per SM changes nothing in the result.
    DeviceInfo info;
    ASSERT_TRUE(QueryDevice(0, &info).ok());
    KernelFootprint fp;
    ASSERT_TRUE(TiledGemm::Footprint(t, &fp).ok());
    auto pad = PadForCap(info.limits, fp, 1);
    ASSERT_TRUE(pad.has_value());
    x.Poison();
    ASSERT_TRUE(TiledGemm::Launch(t, x.a, x.b, x.c, x.m, x.n, x.k, *pad, nullptr).ok());
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    EXPECT_EQ(x.Wrong(), 0) << "with pad " << *pad;
  }
}

INSTANTIATE_TEST_SUITE_P(Tiles, TiledGemmTest, ::testing::Values(TileConfig::k64x64x32, TileConfig::k64x64x64));

TEST(CublasLtGemmTest, CorrectWithSmTargets) {
  Bufs x(1024, 2048, 512);
  CublasLtGemm g;
  ASSERT_TRUE(g.Init(x.m, x.n, x.k).ok());
  for (int target : {0, 66, 100}) {
    x.Poison();
    ASSERT_TRUE(g.Run(x.a, x.b, x.c, target, nullptr).ok());
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    EXPECT_EQ(x.Wrong(), 0) << "sm target " << target;
  }
}

TEST(GreenContext, SplitLeavesSmsAndComputesCorrectly) {
  DeviceInfo info;
  ASSERT_TRUE(QueryDevice(0, &info).ok());
  GreenSplit g;
  Status s = g.Create(0, 16);
  ASSERT_TRUE(s.ok()) << s.ToString(true);
  EXPECT_LT(g.compute_sms(), info.sms);
  EXPECT_GE(g.compute_sms(), info.sms - 16);
  Bufs x(1024, 1024, 1024);
  ASSERT_TRUE(TiledGemm::Launch(TileConfig::k64x64x64, x.a, x.b, x.c, x.m, x.n, x.k, 0, g.compute_stream()).ok());
  ASSERT_EQ(cudaStreamSynchronize(g.compute_stream()), cudaSuccess);
  EXPECT_EQ(x.Wrong(), 0);
  // Events from the primary context work on the green stream (the harness relies on it).
  cudaEvent_t e0, e1;
  ASSERT_EQ(cudaEventCreate(&e0), cudaSuccess);
  ASSERT_EQ(cudaEventCreate(&e1), cudaSuccess);
  ASSERT_EQ(cudaEventRecord(e0, g.compute_stream()), cudaSuccess);
  ASSERT_TRUE(TiledGemm::Launch(TileConfig::k64x64x64, x.a, x.b, x.c, x.m, x.n, x.k, 0, g.compute_stream()).ok());
  ASSERT_EQ(cudaEventRecord(e1, g.compute_stream()), cudaSuccess);
  ASSERT_EQ(cudaEventSynchronize(e1), cudaSuccess);
  float ms = 0;
  ASSERT_EQ(cudaEventElapsedTime(&ms, e0, e1), cudaSuccess);
  EXPECT_GT(ms, 0);
  CublasLtGemm lt;
  ASSERT_TRUE(lt.Init(x.m, x.n, x.k).ok());
  x.Poison();
  ASSERT_TRUE(lt.Run(x.a, x.b, x.c, 0, g.compute_stream()).ok());
  ASSERT_EQ(cudaStreamSynchronize(g.compute_stream()), cudaSuccess);
  EXPECT_EQ(x.Wrong(), 0);
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
}
