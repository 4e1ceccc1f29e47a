#include <gtest/gtest.h>

#include <cmath>

#include "corun/parse.h"
#include "corun/stats.h"

using namespace corun;

TEST(Parse, Sizes) {
  uint64_t b = 0;
  ASSERT_TRUE(ParseSize("896M", &b).ok());
  EXPECT_EQ(b, 896ull << 20);
  ASSERT_TRUE(ParseSize("1G", &b).ok());
  EXPECT_EQ(b, 1ull << 30);
  ASSERT_TRUE(ParseSize("1.5G", &b).ok());
  EXPECT_EQ(b, 3ull << 29);
  ASSERT_TRUE(ParseSize("64KiB", &b).ok());
  EXPECT_EQ(b, 64ull << 10);
  ASSERT_TRUE(ParseSize("4096", &b).ok());
  EXPECT_EQ(b, 4096u);
  ASSERT_TRUE(ParseSize("8MB", &b).ok());
  EXPECT_EQ(b, 8ull << 20);
  for (const char* bad : {"", "M", "12Q", "-5", "1.5", "0", "abc", "1..2G"}) {
    Status s = ParseSize(bad, &b);
    EXPECT_FALSE(s.ok()) << bad;
  }
  EXPECT_NE(ParseSize("12Q", &b).message().find("'12Q'"), std::string::npos);
}

TEST(Parse, FormatSize) {
  EXPECT_EQ(FormatSize(896ull << 20), "896M");
  EXPECT_EQ(FormatSize(1ull << 30), "1G");
  EXPECT_EQ(FormatSize(1000), "1000");
  EXPECT_EQ(FormatSize(3ull << 29), "1536M");
}

TEST(Parse, GemmShapes) {
  GemmShape g;
  ASSERT_TRUE(ParseGemmShape("8192x57344x8192", &g).ok());
  EXPECT_EQ(g[0], 8192);
  EXPECT_EQ(g[1], 57344);
  EXPECT_EQ(g[2], 8192);
  EXPECT_EQ(FormatGemm(g), "8192x57344x8192");
  for (const char* bad : {"8192x8192", "8192x8192x8192x1", "axbxc", "0x1x1", "x1x1", "1x1x", ""}) {
    EXPECT_FALSE(ParseGemmShape(bad, &g).ok()) << bad;
  }
  std::vector<GemmShape> list;
  ASSERT_TRUE(ParseGemmList("64x64x64,128x64x32", &list).ok());
  EXPECT_EQ(list.size(), 2u);
  // The list's edge cases: a trailing comma is accepted, an empty list or term is not.
  ASSERT_TRUE(ParseGemmList("64x64x64,", &list).ok());
  EXPECT_EQ(list.size(), 1u);
  EXPECT_EQ(ParseGemmList("", &list).message(), "empty GEMM list");
  EXPECT_FALSE(ParseGemmList("64x64x64,,64x64x64", &list).ok());
  EXPECT_FALSE(ParseGemmList(",64x64x64", &list).ok());
}

TEST(Parse, Sweeps) {
  std::vector<uint64_t> s;
  ASSERT_TRUE(SizeSweep(1 << 20, 8 << 20, 2, 0, 1024, &s).ok());
  EXPECT_EQ(s, (std::vector<uint64_t>{1 << 20, 2 << 20, 4 << 20, 8 << 20}));
  ASSERT_TRUE(SizeSweep(1 << 20, 3 << 20, 0, 1 << 20, 1024, &s).ok());
  EXPECT_EQ(s.size(), 3u);
  // A bound off the alignment is refused, naming the flag (it used to become 4096 silently).
  Status bad = SizeSweep(5000, 5000, 2, 0, 1024, &s);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("-b 5000"), std::string::npos) << bad.message();
  EXPECT_FALSE(SizeSweep(10, 10, 2, 0, 1024, &s).ok());
  EXPECT_FALSE(SizeSweep(1024, 3000, 2, 0, 1024, &s).ok());
  EXPECT_FALSE(SizeSweep(1024, 4096, 0, 1000, 1024, &s).ok());
  // Sizes a factor lands between the bounds round down to the alignment.
  ASSERT_TRUE(SizeSweep(4096, 16384, 1.5, 0, 1024, &s).ok());
  EXPECT_EQ(s, (std::vector<uint64_t>{4096, 6144, 9216, 13312}));
  EXPECT_FALSE(SizeSweep(8, 4, 2, 0, 1, &s).ok());
  EXPECT_FALSE(SizeSweep(4, 8, 1.0, 0, 1, &s).ok());
}

TEST(Stats, Summary) {
  Summary s = Summarize({3, 1, 2, 10});
  EXPECT_DOUBLE_EQ(s.median, 2.5);
  EXPECT_DOUBLE_EQ(s.min, 1);
  EXPECT_DOUBLE_EQ(s.max, 10);
  EXPECT_DOUBLE_EQ(s.mean, 4);
  EXPECT_EQ(s.n, 4);
  EXPECT_DOUBLE_EQ(Summarize({5, 1, 3}).median, 3);
  EXPECT_EQ(Summarize({}).n, 0);
}

TEST(Stats, OverlapEfficiency) {
  // Tc = 4, Tm = 5: sequential 9 -> 0, perfect 5 -> 1, halfway 7 -> 0.5, worse than sequential < 0.
  EXPECT_DOUBLE_EQ(OverlapEfficiency(4, 5, 9), 0);
  EXPECT_DOUBLE_EQ(OverlapEfficiency(4, 5, 5), 1);
  EXPECT_DOUBLE_EQ(OverlapEfficiency(4, 5, 7), 0.5);
  EXPECT_LT(OverlapEfficiency(4, 5, 10), 0);
  EXPECT_DOUBLE_EQ(OverlapEfficiency(0, 5, 5), 0);
  EXPECT_DOUBLE_EQ(RelativeChange(7.5, 10), -0.25);
  EXPECT_DOUBLE_EQ(RelativeChange(1, 0), 0);
}
