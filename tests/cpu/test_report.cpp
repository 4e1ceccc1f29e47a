#include <gtest/gtest.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "corun/report.h"

using namespace corun;

namespace {
RunRecord Sample() {
  RunRecord r;
  r.compute = "tiled64x64x64";
  r.m = 8192;
  r.n = 57344;
  r.k = 8192;
  r.collective = "allreduce";
  r.dtype = "bf16";
  r.bytes = 896ull << 20;
  r.policy = "shape:2+priority";
  r.pad_bytes = 77824;
  r.blocks_per_sm = 2;
  r.t_total = Summarize({10, 11, 12});
  r.t_comp = Summarize({7, 7.5, 8});
  r.t_comm = Summarize({4, 4, 4});
  r.efficiency = 0.5;
  r.vs_sequential = -0.2;
  r.has_vs_sequential = true;
  r.clocks.valid = true;
  r.clocks.sm_mhz = Summarize({1500, 1600});
  r.clocks.power_w = Summarize({690, 700});
  r.clocks.throttle = {"sw_power_cap"};
  r.wrong = 0;
  return r;
}
}  // namespace

TEST(Report, JsonHasTheDocumentedSchema) {
  Meta m;
  m.card = "NVIDIA H100 80GB HBM3";
  m.gpus = 2;
  m.nccl = "2.28.9";
  m.cuda_runtime = "13.0";
  m.date = "2026-11-26T15:00:00Z";
  const auto j = nlohmann::json::parse(RecordsToJson(m, {Sample()}));
  for (const char* k : {"card", "gpus", "nccl", "cuda", "date"}) EXPECT_TRUE(j["meta"].contains(k)) << k;
  const auto& r = j["runs"][0];
  EXPECT_EQ(r["workload"]["compute"], "tiled64x64x64");
  EXPECT_EQ(r["workload"]["gemm"], nlohmann::json({8192, 57344, 8192}));
  EXPECT_EQ(r["workload"]["collective"], "allreduce");
  EXPECT_EQ(r["workload"]["bytes"], 896ull << 20);
  EXPECT_EQ(r["policy"], "shape:2+priority");
  EXPECT_DOUBLE_EQ(r["t_total_ms"].get<double>(), 11);
  EXPECT_DOUBLE_EQ(r["t_comp_ms"].get<double>(), 7.5);
  EXPECT_DOUBLE_EQ(r["t_comm_ms"].get<double>(), 4);
  EXPECT_DOUBLE_EQ(r["efficiency"].get<double>(), 0.5);
  EXPECT_EQ(r["wrong"], 0);
  EXPECT_TRUE(r["vs_overlap"].is_null());
  EXPECT_EQ(r["clocks"]["throttle"][0], "sw_power_cap");
}

TEST(Report, JsonRoundTrip) {
  Meta m;
  m.card = "X";
  m.gpus = 4;
  std::vector<RunRecord> back;
  Meta m2;
  std::string err;
  ASSERT_TRUE(RecordsFromJson(RecordsToJson(m, {Sample(), Sample()}), &m2, &back, &err)) << err;
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(m2.gpus, 4);
  EXPECT_EQ(back[0].policy, "shape:2+priority");
  EXPECT_DOUBLE_EQ(back[0].t_total.max, 12);
  EXPECT_EQ(back[0].pad_bytes, 77824u);
  EXPECT_TRUE(back[0].clocks.valid);
  EXPECT_FALSE(RecordsFromJson("{not json", &m2, &back, &err));
  EXPECT_FALSE(err.empty());
}

TEST(Report, TableRowsAreReadable) {
  char* buf = nullptr;
  size_t len = 0;
  FILE* f = open_memstream(&buf, &len);
  PrintTableHeader(f);
  RunRecord r = Sample();
  PrintWorkloadLine(f, r);
  PrintRow(f, r);
  RunRecord s = Sample();
  s.status = "skipped";
  s.note = "smtarget applies to cuBLAS/cuBLASLt GEMMs only";
  PrintRow(f, s);
  fclose(f);
  const std::string out(buf, len);
  free(buf);
  EXPECT_NE(out.find("# workload: tiled64x64x64 8192x57344x8192 x1 + allreduce bf16 896M"), std::string::npos);
  EXPECT_NE(out.find("#wrong"), std::string::npos);
  EXPECT_NE(out.find("shape:2+priority"), std::string::npos);
  EXPECT_NE(out.find("11.000"), std::string::npos);
  EXPECT_NE(out.find("-20.0"), std::string::npos);
  EXPECT_NE(out.find("skipped: smtarget applies"), std::string::npos);
  // Every header line starts with '#', every data row does not.
  size_t pos = 0;
  while (pos < out.size()) {
    size_t nl = out.find('\n', pos);
    std::string line = out.substr(pos, nl - pos);
    if (!line.empty() && line.find("shape:2+priority") == std::string::npos) EXPECT_EQ(line[0], '#') << line;
    pos = nl + 1;
  }
}

TEST(Report, TuneSummariesInJson) {
  TuneSummary t;
  t.workload = "tiled64x64x64 8192x8192x8192 x1 + allreduce bf16 896M";
  t.policy = "shape:4+priority";
  t.t_ms = 7.4;
  t.trials = 20;
  t.budget = 50;
  t.sweep_trials = 200;
  t.has_sweep = true;
  t.sweep_best_policy = "shape:4+priority";
  t.sweep_best_ms = 7.3;
  t.tuned_in_sweep_ms = 7.3;
  const auto j = nlohmann::json::parse(RecordsToJson(Meta{}, {}, 1, {t}));
  ASSERT_EQ(j["tune"].size(), 1u);
  EXPECT_EQ(j["tune"][0]["policy"], "shape:4+priority");
  EXPECT_EQ(j["tune"][0]["trials"], 20);
  EXPECT_DOUBLE_EQ(j["tune"][0]["sweep"]["tuned_vs_best"].get<double>(), 0.0);
  EXPECT_FALSE(nlohmann::json::parse(RecordsToJson(Meta{}, {})).contains("tune"));
}
