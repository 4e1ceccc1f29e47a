// ncclzero: the policy term and its refused pairs, which collectives and stacks have NCCL's
// zero-CTA path, and the verdict of the path check from the held SMs.
#include <gtest/gtest.h>

#include "corun/launch_rules.h"
#include "corun/nccl_zero.h"
#include "corun/policy.h"

using namespace corun;

namespace {
std::string Err(const std::string& s) {
  Policy p;
  const Status st = ParsePolicy(s, &p);
  EXPECT_FALSE(st.ok()) << s << " should not parse";
  return st.message();
}
}  // namespace

TEST(NcclZeroPolicy, ParsesAndPrints) {
  Policy p;
  ASSERT_TRUE(ParsePolicy("ncclzero", &p).ok());
  EXPECT_TRUE(p.ncclzero);
  EXPECT_FALSE(p.ce);
  EXPECT_EQ(p.Name(), "ncclzero");
  ASSERT_TRUE(ParsePolicy("overlap+ncclzero", &p).ok());
  EXPECT_EQ(p.Name(), "ncclzero");
  Policy q;
  ASSERT_TRUE(ParsePolicy(p.Name(), &q).ok());
  EXPECT_EQ(q, p);
  std::vector<PolicyItem> items;
  ASSERT_TRUE(ParsePolicyList("overlap,ncclzero", &items).ok());
  ASSERT_EQ(items.size(), 2u);
  EXPECT_TRUE(items[1].policy.ncclzero);
}

TEST(NcclZeroPolicy, RefusesPairsThatMeanNothing) {
  // Each refusal names the term and says why in one line.
  EXPECT_NE(Err("ncclzero+priority").find("'priority'"), std::string::npos);
  EXPECT_NE(Err("shape:2+ncclzero").find("ncclzero launches none"), std::string::npos);
  EXPECT_NE(Err("ncclzero+shape:auto").find("'shape'"), std::string::npos);
  EXPECT_NE(Err("ncclzero+smtarget:100").find("'smtarget'"), std::string::npos);
  EXPECT_NE(Err("ncclzero+smtarget:auto").find("'smtarget'"), std::string::npos);
  EXPECT_NE(Err("ncclzero+greenctx:16").find("'greenctx'"), std::string::npos);
  EXPECT_NE(Err("ncclzero+ncclctas:8").find("'ncclctas'"), std::string::npos);
  EXPECT_NE(Err("ncclzero+maxconn1").find("'maxconn1'"), std::string::npos);
  EXPECT_NE(Err("ncclzero+ce").find("two communication backends"), std::string::npos);
  EXPECT_NE(Err("ncclzero+nthreads:256").find("'nthreads:256'"), std::string::npos);
  EXPECT_NE(Err("ncclzero+proto:simple").find("'proto:simple'"), std::string::npos);
  EXPECT_NE(Err("ncclzero+ctas:8").find("'ctas:8'"), std::string::npos);
  EXPECT_NE(Err("sequential+ncclzero").find("'sequential'"), std::string::npos);
  EXPECT_NE(Err("ncclzero+ncclzero").find("repeats ncclzero"), std::string::npos);
  EXPECT_NE(Err("ncclzero:1").find("is not a policy term"), std::string::npos);
  for (const std::string& m : {Err("ncclzero+priority"), Err("shape:2+ncclzero")})
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
}

TEST(NcclZeroPolicy, NotInAllNorInterposable) {
  PlanInputs in;
  in.num_sms = 132;
  in.natural_blocks = 3;
  for (bool own : {true, false}) {
    in.own_gemm = own;
    for (const Policy& p : ExpandAll(in)) EXPECT_FALSE(p.ncclzero) << p.Name();
    for (const Policy& p : ExpandGeom(in)) EXPECT_FALSE(p.ncclzero) << p.Name();
  }
  Policy p;
  ASSERT_TRUE(ParsePolicy("ncclzero", &p).ok());
  const Status s = CheckInterposable(p);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("use corun bench"), std::string::npos);
}

TEST(NcclZeroRules, CollectivesNcclOffers) {
  EXPECT_EQ(NcclZeroNotApplicable(Collective::kAllGather), "");
  EXPECT_EQ(NcclZeroNotApplicable(Collective::kAllToAll), "");
  const std::string ar = NcclZeroNotApplicable(Collective::kAllReduce);
  EXPECT_NE(ar.find("no zero-CTA allreduce"), std::string::npos) << ar;
  EXPECT_NE(NcclZeroNotApplicable(Collective::kReduceScatter).find("reducescatter"), std::string::npos);
}

TEST(NcclZeroRules, StackVersions) {
  EXPECT_EQ(NcclZeroStackMissing(22809, 12080), "");
  EXPECT_EQ(NcclZeroStackMissing(22803, 12050), "");
  EXPECT_EQ(NcclZeroStackMissing(22802, 12080), "ncclzero needs NCCL >= 2.28.3 (this is 2.28.2)");
  EXPECT_EQ(NcclZeroStackMissing(22703, 12080), "ncclzero needs NCCL >= 2.28.3 (this is 2.27.3)");
  EXPECT_EQ(NcclZeroStackMissing(22809, 12040), "ncclzero needs a CUDA driver >= 12.5 (this is 12.4)");
}

TEST(NcclZeroVerdict, HoldingEverySm) {
  ZeroHold h;
  h.blocks = 132;
  h.resident = 132;
  h.saw_done = 132;
  h.timeout_s = 3;
  h.met = true;
  h.enqueued_s = 0.01;
  EXPECT_EQ(ZeroVerdictFromHold(h).path, ZeroPath::kTaken);
  EXPECT_EQ(ZeroVerdictNote(ZeroVerdictFromHold(h)),
            "zero-CTA path checked: the collective finished while all 132 SMs were held");
  // One block let its SM go before the collective finished: a kernel may have run there.
  h.saw_done = 131;
  EXPECT_EQ(ZeroVerdictFromHold(h).path, ZeroPath::kNotTaken);
  h.saw_done = 0;
  EXPECT_EQ(ZeroVerdictNote(ZeroVerdictFromHold(h)),
            "NCCL launched a kernel: zero-CTA path not taken (the collective did not finish within 3.0 s while "
            "every SM was held)");
  // Not every SM held before the collective was enqueued: no evidence either way.
  h.resident = 131;
  h.saw_done = 132;
  EXPECT_EQ(ZeroVerdictFromHold(h).path, ZeroPath::kUnknown);
  EXPECT_NE(ZeroVerdictFromHold(h).why.find("131 of 132"), std::string::npos);
  ZeroHold no;
  no.cannot_hold = "cudaHostAlloc: out of memory";
  no.blocks = no.resident = no.saw_done = 132;
  EXPECT_EQ(ZeroVerdictFromHold(no).path, ZeroPath::kUnknown);
  EXPECT_EQ(ZeroVerdictFromHold(no).why, "cudaHostAlloc: out of memory");
  ZeroHold zero;
  EXPECT_EQ(ZeroVerdictFromHold(zero).path, ZeroPath::kUnknown);
}

// An unfinished collective reads as a kernel only when it could have finished: the ranks met right
// before their holds and this rank enqueued its side well before its hold ended. Otherwise a late
// peer is as likely, and the verdict is unknown with the reason.
TEST(NcclZeroVerdict, LatePeerIsNotAKernel) {
  ZeroHold h;
  h.blocks = h.resident = 132;
  h.saw_done = 0;
  h.timeout_s = 3;
  h.met = true;
  h.enqueued_s = 2.0;  // exactly kZeroMinMarginSeconds before the end: still inside
  EXPECT_EQ(ZeroVerdictFromHold(h).path, ZeroPath::kNotTaken);
  h.enqueued_s = 2.5;
  ZeroVerdict v = ZeroVerdictFromHold(h);
  EXPECT_EQ(v.path, ZeroPath::kUnknown);
  EXPECT_EQ(ZeroVerdictNote(v),
            "zero-CTA path unchecked: the collective did not finish while every SM was held, but it was enqueued "
            "2.50 s into the hold, less than 1.0 s before its end (a late peer cannot be told from a kernel)");
  h.enqueued_s = -1;
  v = ZeroVerdictFromHold(h);
  EXPECT_EQ(v.path, ZeroPath::kUnknown);
  EXPECT_NE(v.why.find("when it was enqueued is unknown"), std::string::npos) << v.why;
  // Enqueued at once, but the ranks did not meet first.
  h.enqueued_s = 0.01;
  h.met = false;
  v = ZeroVerdictFromHold(h);
  EXPECT_EQ(v.path, ZeroPath::kUnknown);
  EXPECT_NE(v.why.find("the ranks did not meet right before the hold"), std::string::npos) << v.why;
  // A collective that finished while every SM was held needs neither: it ran no kernel.
  h.saw_done = 132;
  h.enqueued_s = 2.9;
  EXPECT_EQ(ZeroVerdictFromHold(h).path, ZeroPath::kTaken);
}
