#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "corun/datagen.h"
#include "corun/gemm_check.h"

using namespace corun;

TEST(DataGen, ValuesAreExactAndVaried) {
  std::set<float> seen;
  for (uint64_t i = 0; i < 10000; ++i) {
    const float v = GemmValue(i, 11);
    EXPECT_EQ(v * 4, std::round(v * 4));
    EXPECT_LE(std::fabs(v), 1.0f);
    seen.insert(v);
    const float c = CollValue(i, 3, 37);
    EXPECT_EQ(c, std::round(c));
    EXPECT_LE(std::fabs(c), 4.0f);
  }
  EXPECT_EQ(seen.size(), 9u);
  // Different ranks and seeds give different data (a rank mix-up would be caught).
  int diff = 0;
  for (uint64_t i = 0; i < 1000; ++i) diff += CollValue(i, 0, 37) != CollValue(i, 1, 37);
  EXPECT_GT(diff, 700);
}

TEST(GemmCheck, SampleIndicesCoverCornersAndStayInRange) {
  auto idx = GemmSampleIndices(128, 64, 100, 5);
  ASSERT_EQ(idx.size(), 100u);
  EXPECT_EQ(idx[0], 0u);
  EXPECT_EQ(idx[1], 63u);
  EXPECT_EQ(idx[3], 128u * 64 - 1);
  for (auto i : idx) EXPECT_LT(i, 128u * 64);
}

TEST(GemmCheck, ReferenceIsTheDotProduct) {
  const int64_t K = 64;
  double want = 0;
  for (int64_t k = 0; k < K; ++k) want += double(GemmValue(3 * K + k, 1)) * GemmValue(5 * K + k, 2);
  EXPECT_DOUBLE_EQ(GemmReference(3, 5, K, 1, 2), want);
}

TEST(GemmCheck, ToleranceIsBf16Rounding) {
  const int64_t N = 64, K = 256;
  auto idx = GemmSampleIndices(64, N, 64, 1);
  std::vector<double> ref;
  std::vector<float> good, bad, nan;
  for (auto i : idx) {
    const double r = GemmReference(int64_t(i / N), int64_t(i % N), K, 1, 2);
    ref.push_back(r);
    // Round to bf16 (8 significant bits): what a correct kernel writes.
    int e = 0;
    const double m = std::frexp(r, &e);
    good.push_back(float(std::ldexp(std::round(m * 256) / 256, e)));
    bad.push_back(float(r + 1.0));  // a whole unit off: a wrong element
    nan.push_back(NAN);
  }
  EXPECT_EQ(CountGemmMismatchesRef(ref, good), 0);
  // Every sample whose reference is small enough for +1 to exceed 2^-8 relative is caught.
  int64_t expect_bad = 0;
  for (double r : ref) expect_bad += std::fabs(1.0) > std::fabs(r) / 256;
  EXPECT_EQ(CountGemmMismatchesRef(ref, bad), expect_bad);
  EXPECT_GT(expect_bad, 50);
  EXPECT_EQ(CountGemmMismatchesRef(ref, nan), int64_t(ref.size()));
  std::vector<float> shorter(good.begin(), good.end() - 3);
  EXPECT_EQ(CountGemmMismatchesRef(ref, shorter), 3);
  EXPECT_EQ(CountGemmMismatches(N, K, 1, 2, idx, good), 0);
}
