#include <gtest/gtest.h>

#include <algorithm>

#include "corun/launch_rules.h"
#include "corun/policy.h"
#include "corun/tune.h"

using namespace corun;

namespace {
Policy P(const std::string& s) {
  Policy p;
  Status st = ParsePolicy(s, &p);
  EXPECT_TRUE(st.ok()) << s << ": " << st.message();
  return p;
}
std::string Err(const std::string& s) {
  Policy p;
  Status st = ParsePolicy(s, &p);
  EXPECT_FALSE(st.ok()) << s << " should not parse";
  return st.message();
}
}  // namespace

TEST(Policy, RoundTripsCanonicalNames) {
  for (const char* s : {"sequential", "overlap", "priority", "shape:2", "shape:2+priority", "shape:96K",
                        "shape:auto", "shape:auto+priority", "smtarget:116", "smtarget:auto", "ncclctas:8",
                        "greenctx:16", "maxconn1", "shape:3+ncclctas:8+priority", "shape:1000B"}) {
    EXPECT_EQ(P(s).Name(), s);
  }
}

TEST(Policy, NormalisesOrderAndOverlap) {
  EXPECT_EQ(P("priority+shape:2").Name(), "shape:2+priority");
  EXPECT_EQ(P("overlap+priority").Name(), "priority");
  EXPECT_EQ(P("shape:2048B").Name(), "shape:2K");
  EXPECT_EQ(P("overlap").Name(), "overlap");
}

TEST(Policy, Fields) {
  Policy p = P("shape:3+priority");
  EXPECT_EQ(p.shape, ShapeMode::kCap);
  EXPECT_EQ(p.shape_cap, 3);
  EXPECT_TRUE(p.comm_priority);
  EXPECT_TRUE(p.uses_two_streams());
  EXPECT_FALSE(P("sequential").uses_two_streams());
  EXPECT_EQ(P("shape:96K").shape_pad, 96u * 1024);
  EXPECT_EQ(P("ncclctas:8").ncclctas, 8);
  EXPECT_EQ(P("greenctx:16").greenctx, 16);
  EXPECT_TRUE(P("smtarget:auto").smtarget_auto);
  EXPECT_TRUE(P("maxconn1").maxconn1);
}

TEST(Policy, ErrorsNameTheBadTerm) {
  EXPECT_NE(Err("shape:0").find("'shape:0'"), std::string::npos);
  EXPECT_NE(Err("shape:33").find("K = 1..32"), std::string::npos);
  EXPECT_NE(Err("shape:228K").find("227"), std::string::npos);
  EXPECT_NE(Err("smtarget:0").find("smtarget:0"), std::string::npos);
  EXPECT_NE(Err("ncclctas:65").find("1..64"), std::string::npos);
  EXPECT_NE(Err("greenctx:x").find("greenctx:x"), std::string::npos);
  EXPECT_NE(Err("fast").find("'fast' is not a policy term"), std::string::npos);
  EXPECT_NE(Err("sequential+priority").find("one stream"), std::string::npos);
  EXPECT_NE(Err("shape:2+shape:3").find("repeats"), std::string::npos);
  // Any repeated term, not only shape: the last value would win silently.
  EXPECT_NE(Err("smtarget:8+smtarget:16").find("repeats smtarget"), std::string::npos);
  EXPECT_NE(Err("ncclctas:4+priority+ncclctas:8").find("repeats ncclctas"), std::string::npos);
  EXPECT_NE(Err("priority+priority").find("repeats priority"), std::string::npos);
  Err("");
  Err("priority+");
  Err("shape:");
  Err("shape:-1");
  Err("priority:1");
}

TEST(Policy, Lists) {
  std::vector<PolicyItem> items;
  ASSERT_TRUE(ParsePolicyList("sequential,all,shape:2+priority,tuned", &items).ok());
  ASSERT_EQ(items.size(), 4u);
  EXPECT_EQ(items[1].kind, PolicyItem::kAll);
  EXPECT_EQ(items[2].policy.Name(), "shape:2+priority");
  EXPECT_EQ(items[3].kind, PolicyItem::kTuned);
  EXPECT_FALSE(ParsePolicyList("overlap,,priority", &items).ok());
  EXPECT_FALSE(ParsePolicyList("overlap,bogus", &items).ok());
}

TEST(Policy, ExpandAllForOwnGemm) {
  PlanInputs in;
  in.own_gemm = true;
  in.natural_blocks = 6;
  in.auto_cap_possible = true;
  in.num_sms = 132;
  in.nccl_ctas = 24;
  std::vector<std::string> names;
  for (const Policy& p : ExpandAll(in)) names.push_back(p.Name());
  const std::vector<std::string> want = {"sequential", "overlap", "priority", "shape:1", "shape:1+priority",
                                         "shape:2", "shape:2+priority", "shape:3", "shape:3+priority",
                                         "shape:4", "shape:4+priority", "shape:auto", "shape:auto+priority",
                                         "ncclctas:12", "greenctx:24", "maxconn1"};
  EXPECT_EQ(names, want);
}

TEST(Policy, ExpandAllForCublasAndMultiProcess) {
  PlanInputs in;
  in.own_gemm = false;
  in.num_sms = 132;
  in.nccl_ctas = 20;
  in.single_process = false;
  std::vector<std::string> names;
  for (const Policy& p : ExpandAll(in)) names.push_back(p.Name());
  const std::vector<std::string> want = {"sequential", "overlap", "priority", "smtarget:auto",
                                         "smtarget:auto+priority", "ncclctas:10", "greenctx:24"};
  EXPECT_EQ(names, want);
}

TEST(Policy, NotApplicableReasons) {
  PlanInputs own;
  own.own_gemm = true;
  own.num_sms = 132;
  EXPECT_NE(PolicyNotApplicable(P("smtarget:100"), own), "");
  EXPECT_NE(PolicyNotApplicable(P("shape:auto"), own), "");  // no comm footprint known
  EXPECT_EQ(PolicyNotApplicable(P("shape:2"), own), "");
  EXPECT_NE(PolicyNotApplicable(P("greenctx:132"), own), "");
  PlanInputs lt = own;
  lt.own_gemm = false;
  EXPECT_NE(PolicyNotApplicable(P("shape:2"), lt), "");
  EXPECT_NE(PolicyNotApplicable(P("smtarget:200"), lt), "");
  EXPECT_EQ(PolicyNotApplicable(P("smtarget:100"), lt), "");
  EXPECT_NE(PolicyNotApplicable(P("smtarget:auto"), lt), "");  // CTA count unknown
  lt.nccl_ctas = 24;
  EXPECT_EQ(PolicyNotApplicable(P("smtarget:auto"), lt), "");
}

TEST(Policy, OneAutomaticSmTargetAndOneFallbackCtaCount) {
  // smtarget:auto: every SM but the communication kernel's CTAs, at least one.
  EXPECT_EQ(AutoSmTarget(132, 24), 108);
  EXPECT_EQ(AutoSmTarget(132, 0), 132);
  EXPECT_EQ(AutoSmTarget(16, 32), 1);
  Policy p;
  ASSERT_TRUE(ParsePolicy("smtarget:auto", &p).ok());
  EXPECT_EQ(SmTargetFor(p, 132, 24), AutoSmTarget(132, 24));  // the interposer's and the bench's rule
  // The tuner's first SM-target guess is the same rule (with the fallback CTA count when unknown).
  SearchSpace lt{false, false, 0, 0, 132, 0, 8};
  EXPECT_EQ(FirstGuesses(lt)[2].Name(), "smtarget:" + std::to_string(AutoSmTarget(132, kFallbackCommCtas)));
  // "all" without a probed CTA count uses the same fallback as the tuner.
  PlanInputs in;
  in.own_gemm = false;
  in.num_sms = 132;
  in.nccl_ctas = 0;
  std::vector<std::string> names;
  for (const Policy& q : ExpandAll(in)) names.push_back(q.Name());
  EXPECT_NE(std::find(names.begin(), names.end(), "ncclctas:" + std::to_string(kFallbackCommCtas / 2)), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "greenctx:" + std::to_string(kFallbackCommCtas)), names.end());
}

TEST(Policy, CopyEngineTerm) {
  for (const char* s : {"ce", "ce+shape:4", "ce+smtarget:100", "ce+greenctx:16", "ce+shape:auto"})
    EXPECT_EQ(P(s).Name(), s);
  EXPECT_TRUE(P("ce").ce);
  EXPECT_FALSE(P("overlap").ce);
  EXPECT_EQ(P("shape:4+ce").Name(), "ce+shape:4");
  // The copy-engine reduction already runs at the top priority: "priority" folds into "ce".
  EXPECT_EQ(P("ce+priority").Name(), "ce");
  EXPECT_FALSE(P("ce+priority").comm_priority);
  EXPECT_TRUE(P("ce+priority") == P("ce"));
  EXPECT_NE(Err("ce+sequential").find("one stream"), std::string::npos);
  EXPECT_NE(Err("ce+ncclctas:8").find("'ncclctas'"), std::string::npos);
  EXPECT_NE(Err("ce+maxconn1").find("'maxconn1'"), std::string::npos);
  EXPECT_NE(Err("ce:2").find("'ce:2'"), std::string::npos);
  std::vector<PolicyItem> items;
  ASSERT_TRUE(ParsePolicyList("ce,overlap,ce+shape:2", &items).ok());
  EXPECT_TRUE(items[0].policy.ce);
  EXPECT_TRUE(items[2].policy.ce);
}

TEST(Policy, CopyEngineNotInAllAndThreadsOnly) {
  PlanInputs in;
  in.own_gemm = true;
  in.natural_blocks = 6;
  in.auto_cap_possible = true;
  in.num_sms = 132;
  in.nccl_ctas = 24;
  for (const Policy& p : ExpandAll(in)) EXPECT_FALSE(p.ce) << p.Name();
  in.own_gemm = false;
  for (const Policy& p : ExpandAll(in)) EXPECT_FALSE(p.ce) << p.Name();
  EXPECT_EQ(PolicyNotApplicable(P("ce"), in), "");
  EXPECT_EQ(PolicyNotApplicable(P("ce+smtarget:100"), in), "");
  in.single_process = false;
  EXPECT_NE(PolicyNotApplicable(P("ce"), in).find("CUDA_DEVICE_MAX_CONNECTIONS=32"), std::string::npos);
  in.ce_connections = true;  // processes started with enough hardware queues: ce applies
  EXPECT_EQ(PolicyNotApplicable(P("ce"), in), "");
  in.ce_connections = false;
}
