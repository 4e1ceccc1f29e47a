#include <gtest/gtest.h>

#include <map>

#include "corun/launch_rules.h"

using namespace corun;

namespace {
InterposeConfig Cfg(const std::string& policy) {
  InterposeConfig c;
  EXPECT_TRUE(ParsePolicy(policy, &c.policy).ok());
  return c;
}
LaunchFacts Gemm(uint64_t grid = 100000) {
  LaunchFacts f;
  f.name = "gemm";
  f.fp = {128, 80, 0, 36864};
  f.grid_blocks = grid;
  return f;
}
const DeviceLimits kH100 = *LimitsForArch(9, 0, 132);
}  // namespace

TEST(LaunchRules, ShapesComputeToTheCap) {
  const auto d = DecideLaunch(Cfg("shape:2"), kH100, Gemm());
  EXPECT_TRUE(d.shaped);
  EXPECT_FALSE(d.comm);
  EXPECT_EQ(d.pad, 40064u);
  KernelFootprint p = Gemm().fp;
  p.dynamic_smem += d.pad;
  EXPECT_EQ(ResidentBlocks(kH100, p).blocks, 2);
}

TEST(LaunchRules, ExplicitPad) {
  const auto d = DecideLaunch(Cfg("shape:96K"), kH100, Gemm());
  EXPECT_TRUE(d.shaped);
  EXPECT_EQ(d.pad, 96u * 1024);
  LaunchFacts big = Gemm();
  big.fp.dynamic_smem = 150 * 1024;  // 150 + 96 KiB > 227 KiB opt-in
  EXPECT_EQ(DecideLaunch(Cfg("shape:96K"), kH100, big).skip, SkipReason::kOptIn);
}

TEST(LaunchRules, EverySkipReason) {
  std::map<SkipReason, LaunchFacts> cases;
  LaunchFacts f = Gemm();
  f.cooperative = true;
  cases[SkipReason::kCooperative] = f;
  f = Gemm();
  f.cluster = true;
  cases[SkipReason::kCluster] = f;
  cases[SkipReason::kResident] = Gemm(132 * 6);
  f = Gemm();
  f.name = "denied_gemm";
  cases[SkipReason::kDenied] = f;
  f = Gemm();
  f.attrs_known = false;
  cases[SkipReason::kUnknown] = f;
  f = Gemm();
  f.fp = {1024, 32, 0, 0};
  cases[SkipReason::kAtCap] = f;
  InterposeConfig c = Cfg("shape:2+priority");
  c.deny = {"denied_"};
  for (const auto& [want, facts] : cases) {
    const auto d = DecideLaunch(c, kH100, facts);
    EXPECT_FALSE(d.shaped) << SkipReasonName(want);
    EXPECT_EQ(d.skip, want) << SkipReasonName(want) << " got " << SkipReasonName(d.skip);
  }
  // Over the opt-in limit: a cap of 1 for a kernel whose static smem already takes 120 KiB at 2
  // blocks... is reachable; one that needs more than 227 KiB is not.
  LaunchFacts tiny = Gemm();
  tiny.fp = {32, 16, 0, 0};  // 32 blocks/SM by the block limit; cap 1 needs > 114 KiB: fine
  EXPECT_TRUE(DecideLaunch(Cfg("shape:1"), kH100, tiny).shaped);
  const DeviceLimits a40 = *LimitsForArch(8, 6, 84);
  LaunchFacts huge = Gemm();
  huge.fp = {32, 16, 60 * 1024, 0};  // 1 block of 61 KiB on sm_86 already: at cap for 1
  EXPECT_EQ(DecideLaunch(Cfg("shape:1"), a40, huge).skip, SkipReason::kAtCap);
}

TEST(LaunchRules, AllowList) {
  InterposeConfig c = Cfg("shape:2");
  c.allow = {"gemm"};
  EXPECT_TRUE(DecideLaunch(c, kH100, Gemm()).shaped);
  LaunchFacts other = Gemm();
  other.name = "elementwise";
  EXPECT_EQ(DecideLaunch(c, kH100, other).skip, SkipReason::kDenied);
}

TEST(LaunchRules, CommunicationIsPrioritisedNeverPadded) {
  LaunchFacts f;
  f.name = "ncclDevKernel_AllReduce_Sum_bf16_RING_LL";
  f.fp = {544, 96, 21568, 82240};
  f.grid_blocks = 24;
  auto d = DecideLaunch(Cfg("shape:2+priority"), kH100, f);
  EXPECT_TRUE(d.comm);
  EXPECT_TRUE(d.prioritise);
  EXPECT_EQ(d.pad, 0u);
  d = DecideLaunch(Cfg("shape:2"), kH100, f);
  EXPECT_TRUE(d.comm);
  EXPECT_FALSE(d.prioritise);
  InterposeConfig custom = Cfg("priority");
  custom.comm_patterns = {"myAllReduce"};
  f.name = "myAllReduceKernel";
  EXPECT_TRUE(DecideLaunch(custom, kH100, f).comm);
  f.is_comm = 0;  // a cached verdict wins over the name
  EXPECT_FALSE(DecideLaunch(custom, kH100, f).comm);
}

TEST(LaunchRules, SmTargets) {
  Policy p;
  ASSERT_TRUE(ParsePolicy("smtarget:100", &p).ok());
  EXPECT_EQ(SmTargetFor(p, 132, 24), 100);
  EXPECT_EQ(SmTargetFor(p, 80, 24), 80);
  ASSERT_TRUE(ParsePolicy("smtarget:auto", &p).ok());
  EXPECT_EQ(SmTargetFor(p, 132, 24), 108);
  EXPECT_EQ(SmTargetFor(p, 132, 0), 132);
  ASSERT_TRUE(ParsePolicy("priority", &p).ok());
  EXPECT_EQ(SmTargetFor(p, 132, 24), 0);
}

TEST(LaunchRules, ConfigFromEnvRejectsWhatCannotApply) {
  static std::map<std::string, std::string> env;
  auto get = [](const char* k) -> const char* {
    auto it = env.find(k);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  InterposeConfig c;
  env = {{"CORUN_POLICY", "shape:3+priority"}, {"CORUN_DENY", "a,b"}, {"CORUN_COMM_PATTERNS", "x"}};
  ASSERT_TRUE(ConfigFromEnv(get, &c).ok());
  EXPECT_EQ(c.policy.Name(), "shape:3+priority");
  EXPECT_EQ(c.deny, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(c.comm_patterns, (std::vector<std::string>{"x"}));
  for (const char* bad : {"sequential", "greenctx:16", "shape:auto", "bogus"}) {
    InterposeConfig c2;
    env = {{"CORUN_POLICY", bad}};
    EXPECT_FALSE(ConfigFromEnv(get, &c2).ok()) << bad;
  }
}
