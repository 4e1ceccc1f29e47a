#include <gtest/gtest.h>

#include <algorithm>
#include <map>

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

TEST(Policy, CommGeometryTerms) {
  for (const char* s : {"nthreads:256", "priority+nthreads:256", "shape:4+priority+nthreads:256+proto:simple",
                        "sequential+nthreads:128", "priority+nthreads:256+ctas:32", "proto:ll128", "proto:ll",
                        "ctas:32", "ncclctas:12+priority+nthreads:64", "smtarget:auto+priority+proto:simple"})
    EXPECT_EQ(P(s).Name(), s);
  // The compute side first, then priority, then the geometry, whatever the order given.
  EXPECT_EQ(P("nthreads:256+priority").Name(), "priority+nthreads:256");
  EXPECT_EQ(P("proto:Simple+nthreads:512+shape:4").Name(), "shape:4+nthreads:512+proto:simple");
  EXPECT_EQ(P("proto:LL128").proto, CommProto::kLL128);
  EXPECT_EQ(P("nthreads:256").nthreads, 256);
  EXPECT_EQ(P("ctas:32").ctas, 32);
  EXPECT_TRUE(P("proto:ll").has_env_geometry());
  EXPECT_FALSE(P("ncclctas:8+priority").has_env_geometry());  // a communicator setting, no environment
  EXPECT_EQ(P("shape:4+priority+nthreads:256+proto:simple").GeometryName(), "nthreads:256+proto:simple");
  EXPECT_EQ(P("priority").GeometryName(), "");
  // Rows of one geometry share a process whatever their compute side.
  EXPECT_EQ(P("sequential+nthreads:256").GeometryName(), P("shape:2+priority+nthreads:256").GeometryName());
  EXPECT_TRUE(P("sequential+nthreads:256").sequential);
  EXPECT_FALSE(P("sequential+nthreads:256").uses_two_streams());
}

TEST(Policy, CommGeometryBadTerms) {
  EXPECT_NE(Err("nthreads:32").find("64..512"), std::string::npos);
  EXPECT_NE(Err("nthreads:544").find("'nthreads:544'"), std::string::npos);
  EXPECT_NE(Err("nthreads:100").find("multiple of 32"), std::string::npos);
  Err("nthreads:");
  Err("nthreads:abc");
  Err("nthreads");
  EXPECT_NE(Err("proto:fast").find("simple, ll or ll128"), std::string::npos);
  Err("proto");
  EXPECT_NE(Err("ctas:0").find("1..64"), std::string::npos);
  Err("ctas:65");
  EXPECT_NE(Err("nthreads:256+priority+nthreads:128").find("repeats nthreads"), std::string::npos);
  EXPECT_NE(Err("proto:ll+proto:simple").find("repeats proto"), std::string::npos);
  EXPECT_NE(Err("ctas:8+ncclctas:8").find("both set NCCL's CTA count"), std::string::npos);
  EXPECT_NE(Err("nthreads:256+proto:ll128").find("NCCL_LL128_NTHREADS"), std::string::npos);
  EXPECT_NE(Err("ce+nthreads:256").find("ce does not use"), std::string::npos);
  // sequential takes the geometry and nothing else.
  EXPECT_NE(Err("sequential+priority+nthreads:256").find("one stream"), std::string::npos);
  EXPECT_NE(Err("sequential+ncclctas:8").find("one stream"), std::string::npos);
}

TEST(Policy, CommGeometryEnvironment) {
  using Env = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(CommGeometryEnv(P("priority")), Env{});
  EXPECT_EQ(CommGeometryEnv(P("shape:4+priority+nthreads:256+proto:simple")),
            (Env{{"NCCL_NTHREADS", "256"}, {"NCCL_PROTO", "Simple"}}));
  EXPECT_EQ(CommGeometryEnv(P("ctas:32+proto:ll128")),
            (Env{{"NCCL_PROTO", "LL128"}, {"NCCL_MIN_CTAS", "32"}, {"NCCL_MAX_CTAS", "32"}}));
  static std::map<std::string, std::string> table;
  auto get = [](const char* k) -> const char* {
    auto it = table.find(k);
    return it == table.end() ? nullptr : it->second.c_str();
  };
  table = {};
  EXPECT_TRUE(CommGeometryEnvHolds(P("priority"), get));
  EXPECT_FALSE(CommGeometryEnvHolds(P("priority+nthreads:256"), get));
  table = {{"NCCL_NTHREADS", "256"}, {"NCCL_PROTO", "simple"}};
  // NCCL_PROTO set but not asked for: the rows would measure a mix, so it does not hold.
  EXPECT_FALSE(CommGeometryEnvHolds(P("priority+nthreads:256"), get));
  EXPECT_TRUE(CommGeometryEnvHolds(P("nthreads:256+proto:simple"), get));  // NCCL_PROTO ignores case
  table = {{"NCCL_NTHREADS", "256"}};
  EXPECT_TRUE(CommGeometryEnvHolds(P("priority+nthreads:256"), get));
  EXPECT_EQ(CommGeometryVars().size(), 4u);
  EXPECT_FALSE(CommGeometryEnvHolds(P("nthreads:128"), get));
  EXPECT_FALSE(CommGeometryEnvHolds(P("proto:ll"), get));
}

TEST(Policy, CommGeometryMismatchIsOneLine) {
  EXPECT_EQ(KernelProtocol("ncclDevKernel_AllReduce_Sum_bf16_RING_LL"), "LL");
  EXPECT_EQ(KernelProtocol("ncclDevKernel_AllReduce_Sum_bf16_RING_LL128"), "LL128");
  EXPECT_EQ(KernelProtocol("ncclDevKernel_AllReduce_Sum_f32_RING_SIMPLE"), "SIMPLE");
  EXPECT_EQ(KernelProtocol("ncclDevKernel_Generic_4"), "");
  EXPECT_EQ(KernelProtocol("ncclDevKernel_AllGather_RING_LL(ncclDevKernelArgs4K)"), "LL");
  // Simple adds one warp: 256 asked runs 288.
  EXPECT_EQ(CommGeometryMismatch(P("priority+nthreads:256"), 288, 24, "ncclDevKernel_Generic_4"), "");
  EXPECT_EQ(CommGeometryMismatch(P("priority+nthreads:256"), 256, 24, "k_RING_LL"), "");
  EXPECT_EQ(CommGeometryMismatch(P("priority"), 544, 24, "k"), "");  // nothing asked
  EXPECT_EQ(CommGeometryMismatch(P("nthreads:256"), 0, 0, ""), "");  // nothing probed: unchecked
  const std::string m = CommGeometryMismatch(P("priority+nthreads:256"), 544, 24, "k");
  EXPECT_NE(m.find("NCCL ignored or adjusted nthreads:256 (kernel runs 544 threads)"), std::string::npos) << m;
  EXPECT_EQ(m.find('\n'), std::string::npos);
  EXPECT_NE(CommGeometryMismatch(P("ctas:32"), 288, 24, "k").find("ctas:32 (kernel runs 24 CTAs)"), std::string::npos);
  EXPECT_NE(CommGeometryMismatch(P("proto:simple"), 544, 24, "ncclDevKernel_AllReduce_Sum_bf16_RING_LL").find("is LL"),
            std::string::npos);
  EXPECT_EQ(CommGeometryMismatch(P("proto:simple"), 544, 24, "ncclDevKernel_AllReduce_Sum_bf16_RING_SIMPLE"), "");
  const std::string two = CommGeometryMismatch(P("nthreads:128+ctas:8"), 544, 24, "k");
  EXPECT_NE(two.find("nthreads:128"), std::string::npos);
  EXPECT_NE(two.find("ctas:8"), std::string::npos);
}

TEST(Policy, GeomListAndExpansion) {
  std::vector<PolicyItem> items;
  ASSERT_TRUE(ParsePolicyList("geom,priority+nthreads:256", &items).ok());
  EXPECT_EQ(items[0].kind, PolicyItem::kGeom);
  EXPECT_EQ(items[1].policy.Name(), "priority+nthreads:256");
  PlanInputs in;
  in.own_gemm = true;
  in.natural_blocks = 6;
  in.num_sms = 132;
  in.nccl_ctas = 24;
  std::vector<std::string> names;
  for (const Policy& p : ExpandGeom(in)) names.push_back(p.Name());
  const std::vector<std::string> want = {
      "sequential", "priority", "shape:4+priority",
      "sequential+nthreads:256", "priority+nthreads:256", "shape:4+priority+nthreads:256",
      "sequential+nthreads:256+ctas:32", "priority+nthreads:256+ctas:32", "shape:4+priority+nthreads:256+ctas:32",
      "sequential+nthreads:256+proto:simple", "priority+nthreads:256+proto:simple",
      "shape:4+priority+nthreads:256+proto:simple"};
  EXPECT_EQ(names, want);
  in.own_gemm = false;
  names.clear();
  for (const Policy& p : ExpandGeom(in)) names.push_back(p.Name());
  EXPECT_EQ(names.size(), 8u);
  for (const std::string& n : names) EXPECT_EQ(n.find("shape"), std::string::npos) << n;
  // "all" keeps out of the geometry: each geometry needs a process of its own.
  for (const Policy& p : ExpandAll(in)) EXPECT_FALSE(p.has_env_geometry()) << p.Name();
}
