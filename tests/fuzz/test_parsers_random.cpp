// The fuzz target's properties on seeded random and mutated inputs (runs where libFuzzer does not,
// e.g. under GCC): every parser either succeeds with a result that reads back, or fails with one line.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "parser_checks.h"

namespace {

// Valid inputs of every parser, the starting points of mutation (the fuzz corpus is the same set).
const std::vector<std::string> kSeeds = {
    "priority", "overlap", "sequential", "shape:2+priority", "shape:40K", "shape:auto+priority", "smtarget:auto",
    "smtarget:116+priority", "ncclctas:16", "greenctx:24", "maxconn1", "all", "tuned", "all,tuned,overlap",
    "896M", "1G", "64KiB", "4096", "1.5K", "8192x8192x8192", "8192x57344x8192,64x64x64", "1K 1M", "64K 1G"};

const char kAlphabet[] = "0123456789:+,xXKkMmGgTtBbi.- shapeoverlapriotysmtargeautoncclctasgrenx\xff\x00";

std::string Mutate(std::string s, std::mt19937_64& rng) {
  const int edits = 1 + static_cast<int>(rng() % 4);
  for (int e = 0; e < edits; ++e) {
    const size_t pos = s.empty() ? 0 : rng() % (s.size() + 1);
    const char c = kAlphabet[rng() % (sizeof(kAlphabet) - 1)];
    switch (rng() % 4) {
      case 0: s.insert(s.begin() + pos, c); break;
      case 1: if (pos < s.size()) s.erase(pos, 1); break;
      case 2: if (pos < s.size()) s[pos] = c; break;
      default: s.insert(pos, std::string(rng() % 24, c)); break;
    }
  }
  return s;
}

TEST(ParserFuzz, SeededRandomAndMutatedInputs) {
  std::mt19937_64 rng(20261127);
  for (int i = 0; i < 200000; ++i) {
    std::string in;
    if (i % 3 == 0) {  // random bytes
      in.resize(rng() % 40);
      for (char& c : in) c = static_cast<char>(rng());
    } else {
      in = Mutate(kSeeds[rng() % kSeeds.size()], rng);
    }
    const uint8_t which = static_cast<uint8_t>(i % 6);
    std::string data(1, static_cast<char>(which));
    data += in;
    const std::string err = corun::fuzz::CheckParsers(reinterpret_cast<const uint8_t*>(data.data()), data.size());
    ASSERT_EQ(err, "") << "parser " << int(which) << " input '" << in << "'";
  }
  // The seeds themselves parse (a parser that rejects everything would pass the loop above).
  for (const char* s : {"shape:2+priority", "all,tuned,overlap"}) {
    std::vector<corun::PolicyItem> items;
    EXPECT_TRUE(corun::ParsePolicyList(s, &items).ok()) << s;
  }
  uint64_t b = 0;
  ASSERT_TRUE(corun::ParseSize("896M", &b).ok());
  EXPECT_EQ(b, 896ull << 20);
}

}  // namespace
