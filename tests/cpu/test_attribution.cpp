// Attribution on synthetic traces with hand-computed answers (times in ms, stored as ns).
#include <gtest/gtest.h>

#include "corun/attribution.h"

using namespace corun;

namespace {

constexpr int64_t kMs = 1000000;

GpuActivity K(const std::string& name, double s, double e, uint32_t stream, uint32_t corr = 0, int dev = 0) {
  GpuActivity a;
  a.kind = GpuKind::kKernel;
  a.name = name;
  a.start = static_cast<int64_t>(s * kMs);
  a.end = static_cast<int64_t>(e * kMs);
  a.stream = stream;
  a.corr = corr;
  a.device = dev;
  a.comm = IsCommKernelName(name);
  return a;
}

GpuActivity Copy(const std::string& kind, double s, double e, uint32_t stream) {
  GpuActivity a = K("memcpy " + kind, s, e, stream);
  a.kind = GpuKind::kMemcpy;
  a.comm = IsCommKernelName(a.name);
  return a;
}

const char* kNccl = "_Z40ncclDevKernel_AllReduce_Sum_bf16_RING_LL24ncclDevKernelArgsStorageILm4096EE";

TraceFile File(std::vector<GpuActivity> acts) {
  TraceFile f;
  f.pid = 42;
  f.rank = 0;
  std::sort(acts.begin(), acts.end(), [](auto& a, auto& b) { return a.start < b.start; });
  f.gpu = std::move(acts);
  return f;
}

AttributionOptions Window(double b, double e) {
  AttributionOptions o;
  o.window_begin_ms = b;
  o.window_end_ms = e;
  o.t0 = 0;
  return o;
}

LaneReport One(const TraceFile& f, const AttributionOptions& o) {
  std::vector<LaneReport> l;
  EXPECT_TRUE(Attribute(f, o, &l).ok());
  EXPECT_EQ(l.size(), 1u);
  return l.empty() ? LaneReport{} : l[0];
}

}  // namespace

TEST(Attribution, CommNames) {
  EXPECT_TRUE(IsCommKernelName(kNccl));
  EXPECT_TRUE(IsCommKernelName("ncclKernel_AllGather_RING_LL_Sum_int8_t"));
  EXPECT_TRUE(IsCommKernelName("memcpy ptop"));
  EXPECT_FALSE(IsCommKernelName("memcpy dtod"));
  EXPECT_FALSE(IsCommKernelName("sm90_xmma_gemm_bf16bf16_bf16f32"));
}

TEST(Attribution, BreakdownKnownAnswer) {
  // compute [0,40] [50,70]; comm [30,60]; a host copy [80,90] counts as neither.
  TraceFile f = File({K("gemm", 0, 40, 1), K("gemm", 50, 70, 1), K(kNccl, 30, 60, 2), Copy("htod", 80, 90, 1)});
  LaneReport r = One(f, Window(0, 100));
  EXPECT_NEAR(r.bd.window_ms, 100, 1e-9);
  EXPECT_NEAR(r.bd.both_ms, 20, 1e-9);
  EXPECT_NEAR(r.bd.compute_only_ms, 40, 1e-9);
  EXPECT_NEAR(r.bd.comm_only_ms, 10, 1e-9);
  EXPECT_NEAR(r.bd.idle_ms, 30, 1e-9);
  EXPECT_NEAR(r.bd.both_ms + r.bd.compute_only_ms + r.bd.comm_only_ms + r.bd.idle_ms, r.bd.window_ms, 1e-9);
}

TEST(Attribution, DeviceCopiesAreProgramWork) {
  // DDP copies gradients between buckets and parameters with D2D memcpys: a collective beside one
  // is not exposed, and the time is not idle. compute [0,20]; dtod copy [20,50]; comm [40,70];
  // host copy [80,90] (neither). The copy holds no SMs: the collective did not wait behind compute.
  TraceFile f = File({K("gemm", 0, 20, 1), Copy("dtod", 20, 50, 1), K(kNccl, 40, 70, 2, 9), Copy("htod", 80, 90, 1)});
  f.api = {ApiCall{39 * kMs, 40 * kMs, 9, 7, "cuLaunchKernelEx"}};
  LaneReport r = One(f, Window(0, 100));
  EXPECT_NEAR(r.bd.compute_only_ms, 40, 1e-9);
  EXPECT_NEAR(r.bd.both_ms, 10, 1e-9);
  EXPECT_NEAR(r.bd.comm_only_ms, 20, 1e-9);
  EXPECT_NEAR(r.bd.idle_ms, 30, 1e-9);
  EXPECT_NEAR(r.bd.dtod_copy_ms, 30, 1e-9);
  ASSERT_EQ(r.launches.size(), 1u);
  EXPECT_NEAR(r.launches[0].overlap_ms, 0, 1e-9);  // no compute kernel beside it
  // The copy is no kernel: no per-name entry, and the collective ran alone.
  for (const KernelStat& k : r.kernels) EXPECT_NE(k.name, "memcpy dtod");
}

TEST(Attribution, OverlappingStreamsCountOnce) {
  // Compute on two streams overlapping; comm kernel then a peer copy that overlaps it.
  TraceFile f = File({K("a", 0, 50, 1), K("b", 20, 80, 3), K(kNccl, 70, 90, 2), Copy("ptop", 85, 95, 4)});
  LaneReport r = One(f, Window(0, 100));
  EXPECT_NEAR(r.bd.compute_only_ms, 70, 1e-9);
  EXPECT_NEAR(r.bd.both_ms, 10, 1e-9);
  EXPECT_NEAR(r.bd.comm_only_ms, 15, 1e-9);
  EXPECT_NEAR(r.bd.idle_ms, 5, 1e-9);
  EXPECT_EQ(r.launches.size(), 2u);  // the NCCL kernel and the peer copy
}

TEST(Attribution, NestedAndClipped) {
  // A short kernel inside a long one; the window cuts the long one.
  TraceFile f = File({K("long", 0, 100, 1), K("short", 10, 20, 3), K(kNccl, 40, 60, 2)});
  LaneReport r = One(f, Window(5, 50));
  EXPECT_NEAR(r.bd.window_ms, 45, 1e-9);
  EXPECT_NEAR(r.bd.both_ms, 10, 1e-9);
  EXPECT_NEAR(r.bd.compute_only_ms, 35, 1e-9);
  EXPECT_NEAR(r.bd.comm_only_ms, 0, 1e-9);
  EXPECT_NEAR(r.bd.idle_ms, 0, 1e-9);
}

TEST(Attribution, EmptyWindow) {
  TraceFile f = File({K("gemm", 0, 40, 1), K(kNccl, 30, 60, 2)});
  LaneReport r = One(f, Window(200, 300));
  EXPECT_NEAR(r.bd.window_ms, 100, 1e-9);
  EXPECT_NEAR(r.bd.idle_ms, 100, 1e-9);
  EXPECT_TRUE(r.launches.empty());
  EXPECT_TRUE(r.kernels.empty());
  EXPECT_NE(r.verdict.find("nothing ran"), std::string::npos) << r.verdict;
  // No GPU record at all: no lane.
  std::vector<LaneReport> l;
  ASSERT_TRUE(Attribute(File({}), AttributionOptions{}, &l).ok());
  EXPECT_TRUE(l.empty());
}

TEST(Attribution, CollectiveWaitBehindCompute) {
  TraceFile f = File({K("prev", 0, 5, 2, 1), K("gemm_big", 0, 50, 1, 2), K(kNccl, 50, 70, 2, 3),
                      K("gemm_big", 70, 80, 1, 4), K(kNccl, 80, 90, 2, 5)});
  f.api = {ApiCall{9 * kMs, 10 * kMs, 3, 7, "cuLaunchKernelEx"}, ApiCall{79 * kMs, 80 * kMs, 5, 7, "cuLaunchKernelEx"}};
  LaneReport r = One(f, Window(0, 100));
  ASSERT_EQ(r.launches.size(), 2u);
  const CollectiveLaunch& a = r.launches[0];
  EXPECT_TRUE(a.has_api);
  EXPECT_EQ(a.ready, 10 * kMs);  // launch returned at 10, stream predecessor done at 5
  EXPECT_NEAR(a.wait_ms, 40, 1e-9);
  EXPECT_NEAR(a.wait_behind_compute_ms, 40, 1e-9);
  ASSERT_EQ(a.blockers.size(), 1u);
  EXPECT_EQ(a.blockers[0].first, "gemm_big");
  EXPECT_NEAR(a.blockers[0].second, 40, 1e-9);
  // The second one could start at 80 (its launch returned then) and did.
  EXPECT_NEAR(r.launches[1].wait_ms, 0, 1e-9);
  EXPECT_NEAR(r.coll_wait_behind_compute_ms, 40, 1e-9);
  EXPECT_NE(r.verdict.find("waited for SMs behind gemm_big"), std::string::npos) << r.verdict;
}

TEST(Attribution, WaitWithoutLaunchRecordUsesStreamOrder) {
  // No API record: ready = the previous activity on the same stream.
  TraceFile f = File({K("gemm", 0, 30, 1), K("pre", 0, 10, 2), K(kNccl, 30, 40, 2)});
  LaneReport r = One(f, Window(0, 40));
  ASSERT_EQ(r.launches.size(), 1u);
  EXPECT_FALSE(r.launches[0].has_api);
  EXPECT_NEAR(r.launches[0].wait_ms, 20, 1e-9);
  EXPECT_NEAR(r.launches[0].wait_behind_compute_ms, 20, 1e-9);
  // That wait may be a flag or event wait the trace cannot see: the verdict does not call it a
  // wait for SMs, and says why.
  EXPECT_EQ(r.verdict.find("waited for SMs"), std::string::npos) << r.verdict;
  EXPECT_NE(r.verdict.find("no launch-call records"), std::string::npos) << r.verdict;
}

TEST(Attribution, VerdictWithoutLaunchRecordsNamesTheNextLoss) {
  // The same shape as CollectiveWaitBehindCompute without its API records (corun trace --no-api):
  // the waits counted from each stream predecessor (5 -> 50 and 70 -> 80: 55 ms, more than any other
  // loss) are not ranked; the exposed collective time (50-70, 80-90) is.
  TraceFile f = File({K("prev", 0, 5, 2, 1), K("gemm_big", 0, 50, 1, 2), K(kNccl, 50, 70, 2, 3),
                      K("gemm_big", 70, 80, 1, 4), K(kNccl, 80, 90, 2, 5)});
  LaneReport r = One(f, Window(0, 100));
  EXPECT_NEAR(r.coll_wait_behind_compute_ms, 55, 1e-9);
  EXPECT_EQ(r.verdict.find("waited for SMs"), std::string::npos) << r.verdict;
  EXPECT_NE(r.verdict.find("largest loss 30.00 ms"), std::string::npos) << r.verdict;
  EXPECT_NE(r.verdict.find("exposed"), std::string::npos) << r.verdict;
}

TEST(Attribution, AloneVersusBeside) {
  // The collective: alone 3x 10 ms, beside compute 2x 15 ms. The GEMM: alone 2x 20, beside 2x 25.
  std::vector<GpuActivity> v = {K(kNccl, 0, 10, 2), K(kNccl, 20, 30, 2), K(kNccl, 40, 50, 2),
                                K("gemm", 60, 80, 1), K("gemm", 90, 110, 1),
                                K("gemm", 200, 225, 1), K(kNccl, 200, 215, 2), K("gemm", 300, 325, 1), K(kNccl, 300, 315, 2)};
  LaneReport r = One(File(v), Window(0, 400));
  const KernelStat* c = nullptr;
  const KernelStat* g = nullptr;
  for (const KernelStat& k : r.kernels) (k.comm ? c : g) = &k;
  ASSERT_TRUE(c && g);
  EXPECT_EQ(c->n_alone, 3);
  EXPECT_EQ(c->n_beside, 2);
  EXPECT_NEAR(c->alone_median_ms, 10, 1e-9);
  EXPECT_NEAR(c->beside_median_ms, 15, 1e-9);
  EXPECT_NEAR(c->extra_ms, 10, 1e-9);
  EXPECT_NEAR(g->alone_median_ms, 20, 1e-9);
  EXPECT_NEAR(g->beside_median_ms, 25, 1e-9);
  EXPECT_NEAR(g->extra_ms, 10, 1e-9);
  EXPECT_NEAR(r.comm_extra_ms, 10, 1e-9);
  EXPECT_NEAR(r.compute_extra_ms, 10, 1e-9);
  // Two together-periods of 25 ms each (bench's T).
  ASSERT_EQ(r.mixed_busy_ms.size(), 2u);
  EXPECT_NEAR(r.mixed_busy_ms[0], 25, 1e-9);
}

TEST(Attribution, StepsByKernel) {
  // A marker kernel every 100 ms: 4 marks = 3 steps; the first is warm-up.
  std::vector<GpuActivity> v;
  for (int i = 0; i < 4; ++i) {
    v.push_back(K("step_marker", 100 * i, 100 * i + 1, 1));
    v.push_back(K("gemm", 100 * i + 1, 100 * i + 60, 1));
    v.push_back(K(kNccl, 100 * i + 50, 100 * i + 80, 2));
  }
  AttributionOptions o;
  o.steps = "kernel:step_marker";
  LaneReport r = One(File(v), o);
  EXPECT_EQ(r.steps, 2);
  EXPECT_EQ(r.begin, 100 * kMs);
  EXPECT_EQ(r.end, 300 * kMs);
  EXPECT_NEAR(r.step_median_ms, 100, 1e-9);
  // Per step: compute 60, both 10, comm only 20, idle 20.
  EXPECT_NEAR(r.bd.compute_only_ms / r.steps, 50, 1e-9);
  EXPECT_NEAR(r.bd.both_ms / r.steps, 10, 1e-9);
  EXPECT_NEAR(r.bd.comm_only_ms / r.steps, 20, 1e-9);
  EXPECT_NEAR(r.bd.idle_ms / r.steps, 20, 1e-9);
  EXPECT_NE(r.verdict.find("ms/step"), std::string::npos) << r.verdict;
}

TEST(Attribution, StepsByNestedNvtx) {
  TraceFile f = File({K("gemm", 0, 300, 1)});
  // "step" ranges with a nested "forward" inside each: only "step" cuts.
  for (int i = 0; i < 3; ++i) {
    f.ranges.push_back(NvtxRange{100 * i * kMs, (100 * i + 90) * kMs, 1, "step"});
    f.ranges.push_back(NvtxRange{(100 * i + 10) * kMs, (100 * i + 30) * kMs, 1, "forward"});
  }
  AttributionOptions o;
  o.steps = "nvtx:step";
  LaneReport r = One(f, o);
  EXPECT_EQ(r.steps, 2);
  EXPECT_EQ(r.begin, 100 * kMs);
  EXPECT_EQ(r.end, 290 * kMs);
  // Fewer marks than skipped steps: all of them are used.
  o.skip_steps = 5;
  EXPECT_EQ(One(f, o).steps, 3);
}

TEST(Attribution, DefaultWindowSkipsWarmup) {
  TraceFile f = File({K("gemm", 0, 10, 1), K("gemm", 90, 100, 1)});
  LaneReport r = One(f, AttributionOptions{});
  EXPECT_EQ(r.begin, 10 * kMs);  // 10% of the 100 ms span
  EXPECT_NEAR(r.bd.window_ms, 90, 1e-9);
  EXPECT_NEAR(r.bd.idle_ms, 80, 1e-9);
}

TEST(Attribution, TwoGpusInOneProcess) {
  TraceFile f = File({K("gemm", 0, 10, 1, 0, 0), K(kNccl, 0, 10, 2, 0, 1)});
  std::vector<LaneReport> l;
  ASSERT_TRUE(Attribute(f, Window(0, 10), &l).ok());
  ASSERT_EQ(l.size(), 2u);
  EXPECT_EQ(l[0].label, "r0.g0");
  EXPECT_NEAR(l[0].bd.compute_only_ms, 10, 1e-9);
  EXPECT_EQ(l[1].label, "r0.g1");
  EXPECT_NEAR(l[1].bd.comm_only_ms, 10, 1e-9);
  EXPECT_NE(l[1].verdict.find("exposed"), std::string::npos) << l[1].verdict;
}

TEST(Attribution, Specs) {
  double b = 0, e = 0;
  EXPECT_TRUE(ParseWindowSpec("100:250.5", &b, &e).ok());
  EXPECT_EQ(b, 100);
  EXPECT_EQ(e, 250.5);
  EXPECT_FALSE(ParseWindowSpec("250:100", &b, &e).ok());
  EXPECT_FALSE(ParseWindowSpec("abc", &b, &e).ok());
  EXPECT_FALSE(ParseWindowSpec("1:", &b, &e).ok());
  EXPECT_TRUE(ParseStepsSpec("nvtx:step").ok());
  EXPECT_TRUE(ParseStepsSpec("kernel:marker").ok());
  EXPECT_FALSE(ParseStepsSpec("nvtx:").ok());
  EXPECT_FALSE(ParseStepsSpec("step").ok());
  EXPECT_NEAR(UnionMs({{0, 10 * kMs}, {5 * kMs, 20 * kMs}, {30 * kMs, 40 * kMs}}, 0, 35 * kMs), 25, 1e-9);
}
