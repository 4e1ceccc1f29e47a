// The %smid probe's stamps from the tiled GEMM alone: every block stamped, on an SM that exists,
// start <= end on one SM, inside the markers around it on the same stream, never more blocks on an
// SM at once than the runtime's occupancy, and the result still correct.
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
  const int64_t m = 4096, n = 4096, k = 1024;
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
