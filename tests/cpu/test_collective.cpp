// Collective shapes and expected outputs for any rank count (8 ranks: one 8-GPU node), checked
// against a host model of each collective whose reductions round to bf16 after every addition,
// in a random order per element (NCCL's order depends on algorithm, channels and rank count).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "corun/collective.h"

using namespace corun;

namespace {

float RoundBf16(float x) {
  uint32_t b;
  std::memcpy(&b, &x, 4);
  b = (b + 0x7FFFu + ((b >> 16) & 1u)) & 0xFFFF0000u;  // round to nearest even
  std::memcpy(&x, &b, 4);
  return x;
}

// Rank r's send buffer, as FillCollective writes it.
std::vector<float> SendBuffer(const CollectiveShape& s, int r, uint32_t seed) {
  std::vector<float> v(s.send_elems);
  for (uint64_t j = 0; j < s.send_elems; ++j) v[j] = CollValue(s.fill_first + j, r, seed);
  return v;
}

// Rank `me`'s output by the collective's definition.
std::vector<float> Reference(Collective c, const CollectiveShape& s, const std::vector<std::vector<float>>& in, int me,
                             std::mt19937* rng) {
  const int n = static_cast<int>(in.size());
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  auto reduce = [&](uint64_t j) {
    std::shuffle(order.begin(), order.end(), *rng);
    float acc = 0;
    for (int r : order) acc = RoundBf16(acc + in[r][j]);
    return acc;
  };
  std::vector<float> out(s.recv_elems);
  for (uint64_t j = 0; j < s.recv_elems; ++j) switch (c) {
      case Collective::kAllReduce: out[j] = reduce(j); break;
      case Collective::kReduceScatter: out[j] = reduce(uint64_t(me) * s.count + j); break;
      case Collective::kAllGather: out[j] = in[j / s.count][j % s.count]; break;
      case Collective::kAllToAll: out[j] = in[j / s.count][uint64_t(me) * s.count + j % s.count]; break;
    }
  return out;
}

}  // namespace

TEST(Collective, ShapesForAnyRankCount) {
  const uint64_t bytes = 896ull << 20;
  for (int n : {1, 2, 3, 4, 8, 16}) {
    const CollectiveShape ar = ShapeOf(Collective::kAllReduce, bytes, DType::kBf16, n);
    EXPECT_EQ(ar.count, bytes / 2);
    EXPECT_EQ(ar.send_elems, ar.recv_elems);
    EXPECT_DOUBLE_EQ(ar.busbw_factor, 2.0 * (n - 1) / n);  // nccl-tests: 2(n-1)/n
    for (Collective c : {Collective::kAllGather, Collective::kReduceScatter, Collective::kAllToAll}) {
      const CollectiveShape s = ShapeOf(c, bytes, DType::kBf16, n);
      EXPECT_EQ(s.count, bytes / 2 / n) << CollectiveName(c) << " n=" << n;
      EXPECT_DOUBLE_EQ(s.busbw_factor, double(n - 1) / n) << CollectiveName(c);
      // The side that holds every rank's chunk is n chunks long, and never longer than the size.
      EXPECT_EQ(std::max(s.send_elems, s.recv_elems), s.count * n) << CollectiveName(c);
      EXPECT_LE(std::max(s.send_elems, s.recv_elems) * 2, bytes);
      EXPECT_EQ(CollOutputElems(s.verify, s.count, n), s.recv_elems) << CollectiveName(c);
    }
  }
  const CollectiveShape f = ShapeOf(Collective::kAllGather, 1 << 20, DType::kFp32, 8);
  EXPECT_EQ(f.count, (1u << 20) / 4 / 8);
}

TEST(Collective, ExpectedOutputsMatchTheDefinitionOnEveryRank) {
  std::mt19937 rng(7);
  for (int n : {2, 3, 4, 8, 32}) {  // 32 ranks: the largest whose sums stay exact in bf16
    for (Collective c : {Collective::kAllReduce, Collective::kAllGather, Collective::kReduceScatter,
                         Collective::kAllToAll}) {
      const CollectiveShape s = ShapeOf(c, uint64_t(n) * 2 * 96, DType::kBf16, n);  // 96 elements per chunk
      std::vector<std::vector<float>> in;
      for (int r = 0; r < n; ++r) in.push_back(SendBuffer(s, r, 11));
      int wrong = 0;
      for (int me = 0; me < n; ++me) {
        const std::vector<float> out = Reference(c, s, in, me, &rng);
        ASSERT_EQ(out.size(), CollOutputElems(s.verify, s.count, n));
        for (uint64_t j = 0; j < out.size(); ++j) wrong += out[j] != CollExpected(s.verify, j, s.count, me, n, 11);
      }
      EXPECT_EQ(wrong, 0) << CollectiveName(c) << " with " << n << " ranks";
    }
  }
}

TEST(Collective, AWrongRankOrChunkIsCaught) {
  // The check must fail when data lands in the wrong place: rank 3's gather output with rank 2's
  // chunk where rank 5's belongs, and an alltoall receiving another rank's chunk.
  const int n = 8;
  const CollectiveShape g = ShapeOf(Collective::kAllGather, n * 2 * 64, DType::kBf16, n);
  int diff = 0;
  for (uint64_t i = 0; i < g.count; ++i)
    diff += CollValue(i, 2, 11) != CollExpected(g.verify, 5 * g.count + i, g.count, 3, n, 11);
  EXPECT_GT(diff, int(g.count) / 2);
  const CollectiveShape a = ShapeOf(Collective::kAllToAll, n * 2 * 64, DType::kBf16, n);
  diff = 0;
  for (uint64_t i = 0; i < a.count; ++i)
    diff += CollValue(4 * a.count + i, 1, 11) != CollExpected(a.verify, 1 * a.count + i, a.count, 3, n, 11);
  EXPECT_GT(diff, int(a.count) / 2);
}

TEST(Collective, NamesRoundTrip) {
  for (Collective c : {Collective::kAllReduce, Collective::kAllGather, Collective::kReduceScatter,
                       Collective::kAllToAll}) {
    Collective back;
    ASSERT_TRUE(ParseCollective(CollectiveName(c), &back));
    EXPECT_EQ(back, c);
  }
  Collective x;
  EXPECT_FALSE(ParseCollective("broadcastx", &x));
  DType t;
  ASSERT_TRUE(ParseDType("bf16", &t));
  EXPECT_EQ(DTypeSize(t), 2u);
  EXPECT_FALSE(ParseDType("fp8", &t));
}
