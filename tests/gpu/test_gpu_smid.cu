// The %smid probe on the GPU. The tiled GEMM alone: every block stamped, on an SM that exists,
// start <= end on one SM, inside the markers around it on the same stream, never more blocks on an
// SM at once than the runtime's occupancy, and the result still correct. Then the whole probe
// against a stand-in communication kernel whose CTAs stamp their own SMs: the analysis must find
// exactly those SMs, "not shared" when a CTA leaves no room for a GEMM block, "shared" when it does.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

#include "corun/gemm_check.h"
#include "corun/smid.h"
#include "data.h"
#include "device.h"
#include "gemm_tiled.h"

using namespace corun;

namespace {

__device__ unsigned long long Now() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

// The stand-in for NCCL's CTAs: holds `smem` of dynamic shared memory on its SM for `ns`, stamps
// its SM, and counts itself in once resident.
__global__ void CommStandIn(BlockStamp* st, unsigned* resident, unsigned long long ns) {
  extern __shared__ unsigned char hold[];
  const unsigned long long t0 = Now();
  unsigned sm;
  asm volatile("mov.u32 %0, %%smid;" : "=r"(sm));
  if (threadIdx.x == 0) {
    hold[0] = 1;
    st[blockIdx.x].start_ns = t0;
    st[blockIdx.x].smid = st[blockIdx.x].smid_end = sm;
    atomicAdd(resident, 1u);
  }
  while (Now() - t0 < ns) {
  }
  if (threadIdx.x == 0) st[blockIdx.x].end_ns = Now();
}

// Holds the GEMM's stream until every stand-in CTA is resident (at most 1 s), so that the CTAs
// reach their SMs first, as a high-priority communication kernel does.
__global__ void Gate(const volatile unsigned* resident, unsigned n) {
  const unsigned long long t0 = Now();
  while (*resident < n && Now() - t0 < 1000000000ull) {
  }
}

// The most blocks resident on one SM at once.
int MostResident(const std::vector<BlockStamp>& st) {
  std::map<uint32_t, std::vector<std::pair<uint64_t, int>>> ev;
  for (const auto& b : st) {
    ev[b.smid].emplace_back(b.start_ns, 1);
    ev[b.smid].emplace_back(b.end_ns, -1);
  }
  int most = 0;
  for (auto& [sm, e] : ev) {
    std::sort(e.begin(), e.end());
    int n = 0;
    for (const auto& x : e) most = std::max(most, n += x.second);
  }
  return most;
}

}  // namespace

class SmidStampTest : public ::testing::TestWithParam<int> {};  // the cap (0: none)

TEST_P(SmidStampTest, StampsAreSound) {
  const TileConfig t = TileConfig::k64x64x64;
  const int64_t m = 4096, n = 4096, k = 4096;
  DeviceInfo info;
  ASSERT_TRUE(QueryDevice(0, &info).ok());
  KernelFootprint fp;
  ASSERT_TRUE(TiledGemm::Footprint(t, &fp).ok());
  size_t pad = 0;
  if (GetParam() > 0) {
    auto p = PadForCap(info.limits, fp, GetParam());
    ASSERT_TRUE(p.has_value());
    pad = *p;
  }
  int occ = 0;
  ASSERT_TRUE(TiledGemm::RuntimeOccupancy(t, pad, &occ).ok());
  const int64_t nb = TiledGemm::Blocks(m, n);
  ASSERT_EQ(nb, 64 * 64);
  __nv_bfloat16 *a, *b, *c;
  BlockStamp* d_st;
  ASSERT_EQ(cudaMalloc(&a, m * k * 2), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&b, n * k * 2), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&c, m * n * 2), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&d_st, (nb + 2) * sizeof(BlockStamp)), cudaSuccess);
  ASSERT_EQ(cudaMemset(d_st, 0, (nb + 2) * sizeof(BlockStamp)), cudaSuccess);
  ASSERT_TRUE(FillGemmInput(a, m * k, 1, nullptr).ok());
  ASSERT_TRUE(FillGemmInput(b, n * k, 2, nullptr).ok());
  ASSERT_EQ(cudaMemset(c, 0xFF, m * n * 2), cudaSuccess);
  ASSERT_TRUE(LaunchTimeMark(d_st + nb, nullptr).ok());
  ASSERT_TRUE(TiledGemm::Launch(t, a, b, c, m, n, k, pad, nullptr, d_st).ok());
  ASSERT_TRUE(LaunchTimeMark(d_st + nb + 1, nullptr).ok());
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  std::vector<BlockStamp> st(nb + 2);
  ASSERT_EQ(cudaMemcpy(st.data(), d_st, st.size() * sizeof(BlockStamp), cudaMemcpyDeviceToHost), cudaSuccess);
  const BlockStamp before = st[nb], after = st[nb + 1];
  st.resize(nb);

  EXPECT_EQ(CheckStamps(st, info.sms), "");
  std::set<uint32_t> sms;
  for (const auto& s : st) {
    ASSERT_LT(s.smid, static_cast<uint32_t>(info.sms));
    ASSERT_LE(s.start_ns, s.end_ns);
    ASSERT_GE(s.start_ns, before.end_ns) << "a block started before the marker ahead of it";
    ASSERT_LE(s.end_ns, after.start_ns) << "a block ended after the marker behind it";
    sms.insert(s.smid);
  }
  EXPECT_LT(before.smid, static_cast<uint32_t>(info.sms));
  // 4096 blocks over every SM: the dispatcher uses them all.
  EXPECT_EQ(static_cast<int>(sms.size()), info.sms);
  const int most = MostResident(st);
  EXPECT_GE(most, 1);
  EXPECT_LE(most, occ) << "more blocks on one SM at once than the runtime's occupancy";
  // The stamps leave the result intact.
  auto idx = GemmSampleIndices(m, n, 256, 3);
  std::vector<float> got;
  ASSERT_TRUE(GatherSamples(c, idx, &got, nullptr).ok());
  EXPECT_EQ(CountGemmMismatches(n, k, 1, 2, idx, got), 0);
  // Alone, no window of another kernel: the analysis of this step sees no drop.
  SmidReport r = AnalyzeSmid(st, before, after, {info.sms, occ, 0});
  EXPECT_NE(r.status, "shared") << r.verdict;
  cudaFree(a);
  cudaFree(b);
  cudaFree(c);
  cudaFree(d_st);
}

INSTANTIATE_TEST_SUITE_P(Caps, SmidStampTest, ::testing::Values(0, 1, 3));

// smem of one stand-in CTA -> GEMM blocks that still fit beside it (natural 6 at 36 KiB + 1 KiB each).
class SmidStandInTest : public ::testing::TestWithParam<std::pair<size_t, int>> {};

TEST_P(SmidStandInTest, FindsTheCtasSms) {
  const auto [smem, beside] = GetParam();
  const TileConfig t = TileConfig::k64x64x64;
  const int64_t m = 8192, n = 8192, k = 4096;  // dispatching for several ms
  const unsigned kCtas = 8;
  DeviceInfo info;
  ASSERT_TRUE(QueryDevice(0, &info).ok());
  int occ = 0;
  ASSERT_TRUE(TiledGemm::RuntimeOccupancy(t, 0, &occ).ok());
  ASSERT_EQ(cudaFuncSetAttribute(CommStandIn, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)), cudaSuccess);
  // The largest carveout: the SM then has room for GEMM blocks beside the CTA (with a carveout
  // sized for the CTA alone nothing would fit, whatever the residency rules say).
  ASSERT_EQ(cudaFuncSetAttribute(CommStandIn, cudaFuncAttributePreferredSharedMemoryCarveout,
                                 cudaSharedmemCarveoutMaxShared),
            cudaSuccess);
  const int64_t nb = TiledGemm::Blocks(m, n);
  __nv_bfloat16 *a, *b, *c;
  BlockStamp *d_st, *d_cta;
  unsigned* d_res;
  ASSERT_EQ(cudaMalloc(&a, m * k * 2), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&b, n * k * 2), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&c, m * n * 2), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&d_st, (nb + 2) * sizeof(BlockStamp)), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&d_cta, kCtas * sizeof(BlockStamp)), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&d_res, sizeof(unsigned)), cudaSuccess);
  ASSERT_EQ(cudaMemset(d_st, 0, (nb + 2) * sizeof(BlockStamp)), cudaSuccess);
  ASSERT_EQ(cudaMemset(d_cta, 0, kCtas * sizeof(BlockStamp)), cudaSuccess);
  ASSERT_EQ(cudaMemset(d_res, 0, sizeof(unsigned)), cudaSuccess);
  ASSERT_TRUE(FillGemmInput(a, m * k, 1, nullptr).ok());
  ASSERT_TRUE(FillGemmInput(b, n * k, 2, nullptr).ok());
  cudaStream_t cs, ms;
  ASSERT_EQ(cudaStreamCreateWithPriority(&cs, cudaStreamNonBlocking, info.priority_lowest), cudaSuccess);
  ASSERT_EQ(cudaStreamCreateWithPriority(&ms, cudaStreamNonBlocking, info.priority_highest), cudaSuccess);
  // Every kernel of the sequence runs once first: CUDA loads a module at its first launch, and a
  // load behind the gate held the stamped GEMM back until the stand-in CTAs had ended (seen on
  // an H200: the first case found no compute block in the window, the second, loaded, passed).
  ASSERT_TRUE(TiledGemm::Launch(t, a, b, c, 64, 64, 64, 0, cs, d_st).ok());
  ASSERT_TRUE(LaunchTimeMark(d_st + nb, ms).ok());
  CommStandIn<<<1, 128, smem, ms>>>(d_cta, d_res, 0);
  Gate<<<1, 1, 0, cs>>>(d_res, 0);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  ASSERT_EQ(cudaMemset(d_st, 0, (nb + 2) * sizeof(BlockStamp)), cudaSuccess);
  ASSERT_EQ(cudaMemset(d_cta, 0, kCtas * sizeof(BlockStamp)), cudaSuccess);
  ASSERT_EQ(cudaMemset(d_res, 0, sizeof(unsigned)), cudaSuccess);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  ASSERT_TRUE(LaunchTimeMark(d_st + nb, ms).ok());
  CommStandIn<<<kCtas, 128, smem, ms>>>(d_cta, d_res, 3000000ull);  // 3 ms
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  ASSERT_TRUE(LaunchTimeMark(d_st + nb + 1, ms).ok());
  Gate<<<1, 1, 0, cs>>>(d_res, kCtas);
  ASSERT_TRUE(TiledGemm::Launch(t, a, b, c, m, n, k, 0, cs, d_st).ok());
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  unsigned resident = 0;
  ASSERT_EQ(cudaMemcpy(&resident, d_res, sizeof(unsigned), cudaMemcpyDeviceToHost), cudaSuccess);
  ASSERT_EQ(resident, kCtas) << "the stand-in CTAs were not all resident at once";
  std::vector<BlockStamp> st(nb + 2), cta(kCtas);
  ASSERT_EQ(cudaMemcpy(st.data(), d_st, st.size() * sizeof(BlockStamp), cudaMemcpyDeviceToHost), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(cta.data(), d_cta, cta.size() * sizeof(BlockStamp), cudaMemcpyDeviceToHost), cudaSuccess);
  const BlockStamp before = st[nb], after = st[nb + 1];
  st.resize(nb);
  std::set<int> cta_sms;
  for (const auto& x : cta) cta_sms.insert(static_cast<int>(x.smid));
  ASSERT_EQ(cta_sms.size(), kCtas) << "one stand-in CTA per SM expected (" << smem << " B each)";

  SmidReport r = AnalyzeSmid(st, before, after, {info.sms, occ, static_cast<int>(kCtas)});
  SCOPED_TRACE(r.verdict);
  EXPECT_GT(r.overlap_ms, 1.0) << "the GEMM must still be dispatching while the CTAs hold their SMs";
  EXPECT_EQ(std::set<int>(r.reduced_sms.begin(), r.reduced_sms.end()), cta_sms);
  EXPECT_NEAR(r.residency_others, occ, 0.5);
  EXPECT_NEAR(r.blocks_beside, beside, 0.5);
  if (beside == 0) {
    EXPECT_EQ(r.status, "not shared");
    EXPECT_EQ(r.sms_shared, 0);
  } else {
    EXPECT_EQ(r.status, "shared");
    EXPECT_EQ(std::set<int>(r.shared_sms.begin(), r.shared_sms.end()), cta_sms);
  }
  cudaStreamDestroy(cs);
  cudaStreamDestroy(ms);
  for (void* p : {static_cast<void*>(a), static_cast<void*>(b), static_cast<void*>(c), static_cast<void*>(d_st),
                  static_cast<void*>(d_cta), static_cast<void*>(d_res)})
    cudaFree(p);
}

// 200 KiB: no 37 KiB GEMM block fits beside it (228 KiB per SM); 120 KiB: two do, and no second
// stand-in CTA fits on the same SM.
INSTANTIATE_TEST_SUITE_P(Room, SmidStandInTest,
                         ::testing::Values(std::make_pair(size_t{200} << 10, 0), std::make_pair(size_t{120} << 10, 2)));
