// The %smid probe's analysis on synthetic stamps: both verdicts, and the edges (empty window,
// blocks spanning the window, a sequential step, bad stamps, residency never reduced).
#include <gtest/gtest.h>

#include <algorithm>

#include <nlohmann/json.hpp>

#include "corun/report.h"
#include "corun/smid.h"

using namespace corun;

namespace {

constexpr uint64_t kUs = 1000, kMs = 1000 * kUs;
constexpr int kSms = 8, kNatural = 4;

struct Stamps {
  std::vector<BlockStamp> blocks;
  // Back-to-back blocks of `d` ns in one residency slot of `sm`, from t0 while they start before t1.
  void Slot(uint32_t sm, uint64_t t0, uint64_t t1, uint64_t d = 100 * kUs) {
    for (uint64_t t = t0; t < t1; t += d) blocks.push_back({t, t + d, sm, sm});
  }
  // Every slot of every SM busy from t0 to t1 (the GEMM at natural residency).
  void Full(uint64_t t0, uint64_t t1, int first_sm = 0) {
    for (int sm = first_sm; sm < kSms; ++sm)
      for (int s = 0; s < kNatural; ++s) Slot(sm, t0 + s * 7 * kUs, t1);
  }
};

BlockStamp Mark(uint64_t t) { return {t, t, 0, 0}; }
SmidInputs In(int ctas = 2, int natural = kNatural) { return {kSms, natural, ctas}; }

// SMs 0 and 1 hold a communication CTA from 3 to 7 ms; `beside` GEMM slots stay busy there.
Stamps CommOnTwoSms(int beside) {
  Stamps st;
  st.Full(1 * kMs, 11 * kMs, 2);
  for (uint32_t sm : {0u, 1u})
    for (int s = 0; s < kNatural; ++s) {
      if (s < beside) {
        st.Slot(sm, 1 * kMs + s * 7 * kUs, 11 * kMs);
      } else {
        // Drains into the window (slot s ends a little after it opens), refills at its end.
        st.Slot(sm, 1 * kMs + s * 7 * kUs, 3 * kMs);
        st.Slot(sm, 7 * kMs + s * 5 * kUs, 11 * kMs);
      }
    }
  return st;
}

}  // namespace

TEST(Smid, NotSharedWhenCommSmsEmpty) {
  Stamps st = CommOnTwoSms(0);
  SmidReport r = AnalyzeSmid(st.blocks, Mark(3 * kMs), Mark(7 * kMs), In());
  EXPECT_EQ(r.status, "not shared") << r.verdict;
  EXPECT_EQ(r.sms_reduced, 2);
  EXPECT_EQ(r.reduced_sms, (std::vector<int>{0, 1}));
  EXPECT_EQ(r.sms_shared, 0);
  EXPECT_LT(r.blocks_beside, 0.2);  // only the drain into the window
  EXPECT_NEAR(r.residency_others, kNatural, 0.1);
  EXPECT_NEAR(r.residency_outside, kNatural, 0.3);
  EXPECT_NEAR(r.window_ms, 4.0, 1e-9);
  EXPECT_EQ(r.verdict.rfind("not shared: 2 SMs", 0), 0u) << r.verdict;
}

TEST(Smid, SharedWhenBlocksStayBesideTheDrop) {
  Stamps st = CommOnTwoSms(2);
  SmidReport r = AnalyzeSmid(st.blocks, Mark(3 * kMs), Mark(7 * kMs), In());
  EXPECT_EQ(r.status, "shared") << r.verdict;
  EXPECT_EQ(r.sms_reduced, 2);
  EXPECT_EQ(r.sms_shared, 2);
  EXPECT_EQ(r.shared_sms, (std::vector<int>{0, 1}));
  EXPECT_NEAR(r.blocks_beside, 2.0, 0.2);
  EXPECT_NEAR(r.residency_reduced, 2.0, 0.2);
  EXPECT_EQ(r.verdict.rfind("shared: 2 SMs ran compute blocks beside communication CTAs", 0), 0u) << r.verdict;
}

TEST(Smid, BlockSpanningTheWindowCountsAsBeside) {
  // SM 0: one block resident from before the window to after it, the other slots empty.
  Stamps st;
  st.Full(1 * kMs, 11 * kMs, 1);
  st.blocks.push_back({2 * kMs, 8 * kMs, 0, 0});
  for (int s = 1; s < kNatural; ++s) {
    st.Slot(0, 1 * kMs, 3 * kMs);
    st.Slot(0, 7 * kMs, 11 * kMs);
  }
  SmidReport r = AnalyzeSmid(st.blocks, Mark(3 * kMs), Mark(7 * kMs), In(1));
  EXPECT_EQ(r.status, "shared") << r.verdict;
  EXPECT_EQ(r.shared_sms, (std::vector<int>{0}));
  EXPECT_NEAR(r.blocks_beside, 1.0, 0.05);
}

TEST(Smid, SmsNeverUsedByComputeAreLeftOut) {
  // Compute confined to SMs 0..5 (a green context): SMs 6 and 7 stay empty and are no drop.
  Stamps st = CommOnTwoSms(0);
  st.blocks.erase(std::remove_if(st.blocks.begin(), st.blocks.end(), [](const BlockStamp& b) { return b.smid >= 6; }),
                  st.blocks.end());
  SmidReport r = AnalyzeSmid(st.blocks, Mark(3 * kMs), Mark(7 * kMs), In());
  EXPECT_EQ(r.status, "not shared") << r.verdict;
  EXPECT_EQ(r.sms_unused, 2);
  EXPECT_EQ(r.reduced_sms, (std::vector<int>{0, 1}));
  EXPECT_NEAR(r.residency_others, kNatural, 0.1);
}

TEST(Smid, EmptyWindowGivesNoVerdict) {
  Stamps st = CommOnTwoSms(0);
  for (auto [a, b] : {std::pair<uint64_t, uint64_t>{5 * kMs, 5 * kMs}, {6 * kMs, 4 * kMs}, {0, 4 * kMs}}) {
    SmidReport r = AnalyzeSmid(st.blocks, Mark(a), Mark(b), In());
    EXPECT_EQ(r.status, "no verdict");
    EXPECT_NE(r.verdict.find("empty communication window"), std::string::npos) << r.verdict;
  }
}

TEST(Smid, SequentialStepHasNoComputeInTheWindow) {
  Stamps st;
  st.Full(1 * kMs, 5 * kMs);
  SmidReport r = AnalyzeSmid(st.blocks, Mark(6 * kMs), Mark(9 * kMs), In());
  EXPECT_EQ(r.status, "not shared");
  EXPECT_EQ(r.blocks_in_window, 0);
  EXPECT_EQ(r.verdict, "not shared: no compute block ran during the collective");
}

TEST(Smid, WindowAfterTheLastDispatchGivesNoVerdict) {
  // The collective begins while the GEMM's last wave drains: every SM loses residency anyway.
  Stamps st;
  st.Full(1 * kMs, 5 * kMs);
  SmidReport r = AnalyzeSmid(st.blocks, Mark(5 * kMs + 10 * kUs), Mark(9 * kMs), In());
  EXPECT_GT(r.blocks_in_window, 0);
  EXPECT_EQ(r.status, "no verdict") << r.verdict;
}

TEST(Smid, FullResidencyThroughoutGivesNoVerdict) {
  // CTAs in room the compute side left (or no SM used): nothing to see in the residency.
  Stamps st;
  st.Full(1 * kMs, 11 * kMs);
  SmidReport r = AnalyzeSmid(st.blocks, Mark(3 * kMs), Mark(7 * kMs), In(24));
  EXPECT_EQ(r.status, "no verdict");
  EXPECT_EQ(r.sms_reduced, 0);
  EXPECT_NE(r.verdict.find("no SM lost compute residency"), std::string::npos) << r.verdict;
}

TEST(Smid, NaturalResidencyInferredWhenUnknown) {
  Stamps st = CommOnTwoSms(0);
  SmidReport r = AnalyzeSmid(st.blocks, Mark(3 * kMs), Mark(7 * kMs), In(0, 0));
  EXPECT_EQ(r.natural, kNatural);
  EXPECT_EQ(r.status, "not shared");
  EXPECT_NE(r.verdict.find("CTAs unknown"), std::string::npos) << r.verdict;
}

TEST(Smid, MoreCtasThanDropsAreNamed) {
  Stamps st = CommOnTwoSms(0);
  SmidReport r = AnalyzeSmid(st.blocks, Mark(3 * kMs), Mark(7 * kMs), In(5));
  EXPECT_EQ(r.status, "not shared");
  EXPECT_NE(r.verdict.find("3 CTAs not seen as a drop"), std::string::npos) << r.verdict;
}

TEST(Smid, BadStampsAreNamed) {
  const Stamps good = CommOnTwoSms(0);
  EXPECT_EQ(CheckStamps(good.blocks, kSms), "");
  struct Case {
    BlockStamp b;
    const char* want;
  };
  for (const Case& c : {Case{{0, 5, 1, 1}, "never stamped"}, Case{{9, 5, 1, 1}, "ends before it starts"},
                        Case{{5, 9, kSms, kSms}, "SM id 8 >= SM count 8"},
                        Case{{5, 9, 1, 2}, "started on SM 1, ended on SM 2"}}) {
    Stamps st = good;
    st.blocks[3] = c.b;
    EXPECT_EQ(CheckStamps(st.blocks, kSms), std::string("smid probe: block 3: ") + c.want);
    SmidReport r = AnalyzeSmid(st.blocks, Mark(3 * kMs), Mark(7 * kMs), In());
    EXPECT_EQ(r.status, "no verdict");
    EXPECT_NE(r.verdict.find(c.want), std::string::npos) << r.verdict;
  }
  EXPECT_EQ(AnalyzeSmid({}, Mark(3 * kMs), Mark(7 * kMs), In()).status, "no verdict");
}

TEST(Smid, RoundTripsThroughTheRunJson) {
  Stamps st = CommOnTwoSms(2);
  RunRecord rec;
  rec.compute = "tiled64x64x64";
  rec.collective = "allreduce";
  rec.policy = "priority";
  rec.smid = AnalyzeSmid(st.blocks, Mark(3 * kMs), Mark(7 * kMs), In());
  RunRecord plain = rec;
  plain.smid = SmidReport{};
  const std::string doc = RecordsToJson(Meta{}, {rec, plain});
  Meta m;
  std::vector<RunRecord> back;
  std::string err;
  ASSERT_TRUE(RecordsFromJson(doc, &m, &back, &err)) << err;
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[0].smid.status, "shared");
  EXPECT_EQ(back[0].smid.verdict, rec.smid.verdict);
  EXPECT_EQ(back[0].smid.shared_sms, rec.smid.shared_sms);
  EXPECT_DOUBLE_EQ(back[0].smid.blocks_beside, rec.smid.blocks_beside);
  EXPECT_FALSE(back[1].smid.ran());
  EXPECT_FALSE(nlohmann::json::parse(doc)["runs"][1].contains("smid"));
}
