// The interposer's routing rule under `ce` (corun/ce_route.h): each reason, their order, and the
// threshold from the environment.
#include <gtest/gtest.h>

#include <string>

#include "corun/ce_route.h"
#include "corun/launch_rules.h"

using namespace corun;

namespace {
CeCallFacts Eligible() {
  CeCallFacts f;
  f.dtype = "bf16";
  f.op = "sum";
  f.bytes = 4 << 20;
  f.state = CeState::kUsable;
  return f;
}
CeConfig Cfg() {
  CeConfig c;
  c.min_bytes = kCeInterposeMinBytes;
  return c;
}
}  // namespace

TEST(CeRoute, ServesAnEligibleCall) {
  EXPECT_EQ(CeRouteCall(Eligible(), Cfg()), CeRoute::kServe);
  CeCallFacts f = Eligible();
  f.dtype = "fp32";
  EXPECT_EQ(CeRouteCall(f, Cfg()), CeRoute::kServe);
  f.bytes = kCeInterposeMinBytes;  // the threshold itself is served
  EXPECT_EQ(CeRouteCall(f, Cfg()), CeRoute::kServe);
  // Not created yet: served (the caller creates the CE communicator, then asks again).
  f.state = CeState::kNotCreated;
  EXPECT_EQ(CeRouteCall(f, Cfg()), CeRoute::kServe);
}

TEST(CeRoute, EachReason) {
  auto with = [](auto change) {
    CeCallFacts f = Eligible();
    change(f);
    return CeRouteCall(f, Cfg());
  };
  EXPECT_EQ(with([](CeCallFacts& f) { f.tracked = false; }), CeRoute::kUntracked);
  EXPECT_EQ(with([](CeCallFacts& f) { f.nonblocking = true; }), CeRoute::kNonBlocking);
  EXPECT_EQ(with([](CeCallFacts& f) { f.nranks = 4; }), CeRoute::kRanks);
  EXPECT_EQ(with([](CeCallFacts& f) { f.nranks = 4; f.max_ranks = 4; }), CeRoute::kServe);
  EXPECT_EQ(with([](CeCallFacts& f) { f.in_group = true; }), CeRoute::kGroup);
  EXPECT_EQ(with([](CeCallFacts& f) { f.capturing = true; }), CeRoute::kCapture);
  EXPECT_EQ(with([](CeCallFacts& f) { f.dtype = "fp16"; }), CeRoute::kDtype);
  EXPECT_EQ(with([](CeCallFacts& f) { f.dtype = "int32"; }), CeRoute::kDtype);
  EXPECT_EQ(with([](CeCallFacts& f) { f.op = "max"; }), CeRoute::kOp);
  EXPECT_EQ(with([](CeCallFacts& f) { f.op = "avg"; }), CeRoute::kOp);
  EXPECT_EQ(with([](CeCallFacts& f) { f.bytes = kCeInterposeMinBytes - 1; }), CeRoute::kSmall);
  // Chunks: at the default 32 MiB a call of 4.5 GiB is served, one of 6 GiB goes to NCCL.
  EXPECT_EQ(with([](CeCallFacts& f) { f.bytes = 9ull << 29; }), CeRoute::kServe);
  EXPECT_EQ(with([](CeCallFacts& f) { f.bytes = 6ull << 30; }), CeRoute::kChunks);
  EXPECT_NE(CeChunksDecision(6ull << 30, Cfg()).find("more than 160 chunks of 33554432 bytes"), std::string::npos)
      << CeChunksDecision(6ull << 30, Cfg());
  EXPECT_EQ(CeChunksDecision(9ull << 29, Cfg()), "");
  EXPECT_EQ(with([](CeCallFacts& f) { f.state = CeState::kUnusable; }), CeRoute::kUnusable);
}

TEST(CeRoute, OrderOfReasons) {
  // Everything wrong at once: the first reason in the documented order wins.
  CeCallFacts f;
  f.tracked = false;
  f.nonblocking = f.in_group = f.capturing = true;
  f.nranks = 8;
  f.dtype = "fp16";
  f.op = "max";
  f.bytes = 1;
  f.state = CeState::kUnusable;
  const CeRoute order[] = {CeRoute::kUntracked, CeRoute::kNonBlocking, CeRoute::kRanks, CeRoute::kGroup, CeRoute::kCapture,
                           CeRoute::kDtype,     CeRoute::kOp,          CeRoute::kSmall, CeRoute::kChunks,
                           CeRoute::kUnusable};
  for (CeRoute want : order) {
    ASSERT_EQ(CeRouteCall(f, Cfg()), want) << CeRouteName(want);
    switch (want) {
      case CeRoute::kUntracked: f.tracked = true; break;
      case CeRoute::kNonBlocking: f.nonblocking = false; break;
      case CeRoute::kRanks: f.nranks = 2; break;
      case CeRoute::kGroup: f.in_group = false; break;
      case CeRoute::kCapture: f.capturing = false; break;
      case CeRoute::kDtype: f.dtype = "bf16"; break;
      case CeRoute::kOp: f.op = "sum"; break;
      case CeRoute::kSmall: f.bytes = 1ull << 40; break;
      case CeRoute::kChunks: f.bytes = 1 << 30; break;
      case CeRoute::kUnusable: f.state = CeState::kUsable; break;
      default: break;
    }
  }
  EXPECT_EQ(CeRouteCall(f, Cfg()), CeRoute::kServe);
}

TEST(CeRoute, Names) {
  EXPECT_STREQ(CeRouteName(CeRoute::kServe), "served");
  EXPECT_STREQ(CeRouteName(CeRoute::kGroup), "group");
  EXPECT_STREQ(CeRouteName(CeRoute::kUnusable), "unusable");
  EXPECT_STREQ(CeRouteName(CeRoute::kNonBlocking), "nonblocking");
  EXPECT_STREQ(CeRouteName(CeRoute::kRanks), "ranks");
}

TEST(CeRoute, ThresholdFromTheEnvironment) {
  InterposeConfig cfg;
  EXPECT_EQ(cfg.ce.min_bytes, kCeInterposeMinBytes);
  auto env4m = [](const char* k) -> const char* { return std::string(k) == "CORUN_CE_MIN_BYTES" ? "4M" : nullptr; };
  ASSERT_TRUE(ConfigFromEnv(env4m, &cfg).ok());
  EXPECT_EQ(cfg.ce.min_bytes, 4ull << 20);
  auto bad = [](const char* k) -> const char* { return std::string(k) == "CORUN_CE_MIN_BYTES" ? "lots" : nullptr; };
  const Status s = ConfigFromEnv(bad, &cfg);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("CORUN_CE_MIN_BYTES"), std::string::npos);
  EXPECT_NE(s.message().find("lots"), std::string::npos);
  // The policy is interposable now.
  auto ce = [](const char* k) -> const char* { return std::string(k) == "CORUN_POLICY" ? "ce" : nullptr; };
  InterposeConfig c2;
  EXPECT_TRUE(ConfigFromEnv(ce, &c2).ok());
  EXPECT_TRUE(c2.policy.ce);
}

TEST(CeRoute, MaxRanksFromTheEnvironment) {
  InterposeConfig cfg;
  EXPECT_EQ(cfg.ce_max_ranks, kCeInterposeMaxRanks);
  auto env4 = [](const char* k) -> const char* { return std::string(k) == "CORUN_CE_MAX_RANKS" ? "4" : nullptr; };
  ASSERT_TRUE(ConfigFromEnv(env4, &cfg).ok());
  EXPECT_EQ(cfg.ce_max_ranks, 4);
  auto bad = [](const char* k) -> const char* { return std::string(k) == "CORUN_CE_MAX_RANKS" ? "1" : nullptr; };
  const Status s = ConfigFromEnv(bad, &cfg);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("CORUN_CE_MAX_RANKS must be a rank count (2-8), not '1'"), std::string::npos);
}
