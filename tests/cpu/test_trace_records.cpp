// The record-file reader and the outputs, on files written here in libcorun_trace.so's format.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "corun/trace_records.h"
#include "corun/trace_report.h"

using namespace corun;

namespace {

std::string TempDir() {
  char t[] = "/tmp/corun-trace-test.XXXXXX";
  const char* d = mkdtemp(t);
  EXPECT_NE(d, nullptr);
  return d ? d : "/tmp";
}

// The writer's side: a header, names, records; 'torn' cuts the last record in the middle.
void Write(const std::string& path, int rank, int pid, int n_kernels, bool end, bool torn) {
  std::ofstream o(path);
  o << R"({"corun_trace":1,"pid":)" << pid << R"(,"rank":)" << rank << R"(,"host":"h","start_ns":0,"cmd":"prog a b"})" << "\n";
  o << R"({"t":"n","i":1,"s":"gemm_kernel"})" << "\n";
  o << R"({"t":"n","i":2,"s":"ncclDevKernel_AllReduce_Sum_f32_RING_LL"})" << "\n";
  o << R"({"t":"n","i":3,"s":"cuLaunchKernelEx"})" << "\n";
  o << R"({"t":"n","i":4,"s":"step"})" << "\n";
  const int64_t ms = 1000000;
  for (int i = 0; i < n_kernels; ++i) {
    const int64_t s = 10 * ms * i;
    o << R"({"t":"k","s":)" << s << R"(,"e":)" << s + 6 * ms << R"(,"d":0,"q":7,"c":)" << 2 * i
      << R"(,"n":1,"g":[128,1,1],"b":[128,1,1]})" << "\n";
    o << R"({"t":"a","s":)" << s + 3 * ms << R"(,"e":)" << s + 4 * ms << R"(,"c":)" << 2 * i + 1 << R"(,"n":3,"h":9})" << "\n";
    o << R"({"t":"k","s":)" << s + 4 * ms << R"(,"e":)" << s + 8 * ms << R"(,"d":0,"q":8,"c":)" << 2 * i + 1
      << R"(,"n":2,"g":[24,1,1],"b":[544,1,1]})" << "\n";
    o << R"({"t":"r","s":)" << s << R"(,"e":)" << s + 9 * ms << R"(,"n":4,"h":9})" << "\n";
  }
  o << R"({"t":"m","s":1,"e":2,"d":0,"q":7,"c":0,"y":"ptop","by":4096})" << "\n";
  o << R"({"t":"y","s":1,"e":5,"q":7,"y":"stream"})" << "\n";
  if (end) o << R"({"t":"end","dropped":3})" << "\n";
  if (torn) o << R"({"t":"k","s":99999999,"e":1000)";
}

}  // namespace

TEST(TraceRecords, CompleteFile) {
  const std::string d = TempDir(), p = d + "/corun_trace.r0.p11.jsonl";
  Write(p, 0, 11, 3, true, false);
  TraceFile f;
  ASSERT_TRUE(ReadTraceFile(p, &f).ok());
  EXPECT_EQ(f.pid, 11);
  EXPECT_EQ(f.rank, 0);
  EXPECT_EQ(f.command, "prog a b");
  EXPECT_TRUE(f.complete);
  EXPECT_FALSE(f.torn_tail);
  EXPECT_EQ(f.dropped, 3u);
  ASSERT_EQ(f.gpu.size(), 7u);  // 6 kernels and the peer copy
  EXPECT_EQ(f.gpu[0].name, "gemm_kernel");  // sorted by start
  EXPECT_FALSE(f.gpu[0].comm);
  EXPECT_EQ(f.gpu[1].kind, GpuKind::kMemcpy);
  EXPECT_EQ(f.gpu[1].name, "memcpy ptop");
  EXPECT_TRUE(f.gpu[1].comm);
  EXPECT_EQ(f.gpu[1].bytes, 4096u);
  EXPECT_TRUE(f.gpu[2].comm);
  EXPECT_EQ(f.gpu[2].corr, 1u);
  ASSERT_EQ(f.api.size(), 3u);
  EXPECT_EQ(f.api[0].name, "cuLaunchKernelEx");
  EXPECT_EQ(f.ranges.size(), 3u);
  EXPECT_EQ(f.syncs.size(), 1u);
}

TEST(TraceRecords, TruncatedFileKeepsRecordsSoFar) {
  const std::string d = TempDir(), p = d + "/corun_trace.r1.p12.jsonl";
  Write(p, 1, 12, 2, false, true);
  TraceFile f;
  ASSERT_TRUE(ReadTraceFile(p, &f).ok());
  EXPECT_FALSE(f.complete);
  EXPECT_TRUE(f.torn_tail);
  EXPECT_EQ(f.gpu.size(), 5u);
}

TEST(TraceRecords, BadInput) {
  const std::string d = TempDir();
  TraceFile f;
  EXPECT_FALSE(ReadTraceFile(d + "/missing.jsonl", &f).ok());
  {
    std::ofstream(d + "/noheader.jsonl") << R"({"t":"k","s":1,"e":2})" << "\n";
  }
  Status s = ReadTraceFile(d + "/noheader.jsonl", &f);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("not a corun trace file"), std::string::npos);
  {
    std::ofstream o(d + "/middle.jsonl");
    o << R"({"corun_trace":1,"pid":1,"rank":-1})" << "\n" << "garbage\n" << R"({"t":"end","dropped":0})" << "\n";
  }
  s = ReadTraceFile(d + "/middle.jsonl", &f);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find(":2: not a trace record"), std::string::npos) << s.message();
}

TEST(TraceRecords, AnalyzeDirWritesOutputs) {
  const std::string d = TempDir();
  Write(d + "/corun_trace.r0.p21.jsonl", 0, 21, 5, true, false);
  Write(d + "/corun_trace.r1.p22.jsonl", 1, 22, 5, false, true);
  { std::ofstream(d + "/unrelated.jsonl") << "x\n"; }
  std::vector<std::string> files;
  ASSERT_TRUE(ListTraceFiles(d, &files).ok());
  EXPECT_EQ(files.size(), 2u);

  AttributionOptions o;
  o.steps = "nvtx:step";
  TraceAnalysis a;
  ASSERT_TRUE(AnalyzeTraceDir(d, o, &a).ok());
  ASSERT_EQ(a.lanes.size(), 2u);
  const LaneReport& r = a.lanes[0][0];
  EXPECT_EQ(r.label, "r0");
  EXPECT_EQ(r.steps, 4);  // 5 steps, the first left out
  // Per 10 ms step: gemm [0,6], nccl [4,8] -> compute only 4, both 2, comm only 2, idle 2;
  // the collective could start at 4 (its launch returned) and did.
  EXPECT_NEAR(r.bd.compute_only_ms / r.steps, 4, 0.3);
  EXPECT_NEAR(r.bd.both_ms / r.steps, 2, 1e-6);
  EXPECT_EQ(r.launches.size(), 4u);
  EXPECT_NEAR(r.coll_wait_ms, 0, 1e-9);
  const std::string table = TraceTable(a);
  EXPECT_NE(table.find("# corun trace: 2 GPU lane(s) from 2 process(es)"), std::string::npos) << table;
  EXPECT_NE(table.find("no end record"), std::string::npos) << table;

  std::vector<std::string> written;
  ASSERT_TRUE(WriteTraceOutputs(a, &written).ok());
  ASSERT_EQ(written.size(), 3u);
  nlohmann::json sum = nlohmann::json::parse(std::ifstream(d + "/summary.json"));
  EXPECT_EQ(sum["lanes"].size(), 2u);
  EXPECT_EQ(sum["lanes"][0]["steps"], 4);
  EXPECT_GT(sum["lanes"][0]["breakdown_ms"]["both"].get<double>(), 0);
  nlohmann::json pf = nlohmann::json::parse(std::ifstream(written[1]));
  int x = 0;
  for (const auto& e : pf["traceEvents"]) x += e["ph"] == "X";
  EXPECT_GT(x, 10);

  // A folder without records is an error that names it.
  const std::string empty = TempDir();
  Status s = AnalyzeTraceDir(empty, o, &a);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find(empty), std::string::npos);
}

// Records of a killed program: each rule leaves out one record (zero timestamps, end before
// start, start before the tracer's own start), the rest is read, and the analysis's time origin
// is the first valid record (not the clock's zero).
TEST(TraceRecords, IncompleteRecordsAreLeftOut) {
  const std::string d = TempDir(), p = d + "/corun_trace.r0.p12.jsonl";
  const int64_t ms = 1000000, t = 5000 * ms;  // the tracer started at 5 s
  {
    std::ofstream o(p);
    o << R"({"corun_trace":1,"pid":12,"rank":0,"host":"h","start_ns":)" << t << R"(,"cmd":"x"})" << "\n";
    o << R"({"t":"n","i":1,"s":"gemm_kernel"})" << "\n";
    auto k = [&](int64_t s, int64_t e) {
      o << R"({"t":"k","s":)" << s << R"(,"e":)" << e << R"(,"d":0,"q":7,"c":1,"n":1,"g":[1,1,1],"b":[32,1,1]})" << "\n";
    };
    k(t + 10 * ms, t + 20 * ms);  // valid
    k(t + 30 * ms, t + 40 * ms);  // valid
    k(0, 0);                      // still running when killed
    k(t + 50 * ms, t + 45 * ms);  // ends before it starts
    k(t - 3 * ms, t + 25 * ms);   // starts before the tracer did
  }
  TraceFile f;
  ASSERT_TRUE(ReadTraceFile(p, &f).ok());
  EXPECT_EQ(f.incomplete, 3);
  ASSERT_EQ(f.gpu.size(), 2u);
  EXPECT_EQ(f.gpu.front().start, t + 10 * ms);
  TraceAnalysis a;
  AttributionOptions o;
  o.warmup_frac = 0;
  ASSERT_TRUE(AnalyzeTraceDir(d, o, &a).ok());
  EXPECT_EQ(a.opt.t0, t + 10 * ms);
  ASSERT_EQ(a.lanes.size(), 1u);
  ASSERT_EQ(a.lanes[0].size(), 1u);
  EXPECT_NEAR(a.lanes[0][0].bd.window_ms, 30, 1e-9);
}
