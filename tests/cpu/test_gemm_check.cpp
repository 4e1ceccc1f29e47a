#include <gtest/gtest.h>

#include <cstring>

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

namespace {
// bf16 from first principles: the upper 16 bits of an IEEE float32 (1 sign, 8 exponent, 7 stored
// mantissa bits), rounded to nearest, ties to even, on the 16 dropped bits.
uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float FromBits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
float ToBf16(float f) {
  uint32_t u = Bits(f);
  u += 0x7FFFu + ((u >> 16) & 1u);
  return FromBits(u & 0xFFFF0000u);
}
// The bf16 value `steps` representable values further from zero than b (sign-magnitude bits).
float Bf16Step(float b, int steps) { return FromBits(Bits(b) + static_cast<uint32_t>(steps * 0x10000)); }
}  // namespace

TEST(GemmCheck, ToleranceIsBf16Rounding) {
  const int64_t N = 64, K = 4096;  // sums large enough to need more than bf16's 8 bits
  auto idx = GemmSampleIndices(64, N, 64, 1);
  std::vector<double> ref;
  std::vector<float> exact, rounded, off_by_two, nan;
  int inexact = 0;
  for (auto i : idx) {
    const double r = GemmReference(int64_t(i / N), int64_t(i % N), K, 1, 2);
    ref.push_back(r);
    // The fp32 accumulation is exact for these inputs (multiples of 1/16 below 2^24 ulps).
    ASSERT_EQ(double(float(r)), r);
    exact.push_back(float(r));
    // What a correct kernel writes: the fp32 sum rounded to bf16 once.
    const float b = ToBf16(float(r));
    rounded.push_back(b);
    inexact += double(b) != r;
    // Two bf16 steps away from the correct rounding: at least 1.5 bf16 ulps from the exact
    // value, and a bf16 ulp is 2^-7 of the leading power of two, so more than 2^-8 of |ref|.
    off_by_two.push_back(r == 0 ? 1.0f : Bf16Step(b, 2));
    nan.push_back(NAN);
  }
  EXPECT_GE(inexact, 16);  // the rounding is exercised, not only exactly representable values
  EXPECT_EQ(CountGemmMismatchesRef(ref, exact), 0);
  EXPECT_EQ(CountGemmMismatchesRef(ref, rounded), 0);
  EXPECT_EQ(CountGemmMismatchesRef(ref, off_by_two), int64_t(ref.size()));
  EXPECT_EQ(CountGemmMismatchesRef(ref, nan), int64_t(ref.size()));
  std::vector<float> shorter(rounded.begin(), rounded.end() - 3);
  EXPECT_EQ(CountGemmMismatchesRef(ref, shorter), 3);
  EXPECT_EQ(CountGemmMismatches(N, K, 1, 2, idx, rounded), 0);
  // The bound is tight: the largest rounding error of a bf16 value just above a power of two,
  // half an ulp (2^-8 of 2^e), relative to 2^e, is exactly 2^-8 and passes; a hair more fails.
  const double p = 64.0, half_ulp = p / 256;
  EXPECT_EQ(CountGemmMismatchesRef({p + half_ulp}, {float(p)}), 0);
  EXPECT_EQ(CountGemmMismatchesRef({p}, {float(p + half_ulp * 1.01)}), 1);
}
