#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

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
  r.smid.status = "not shared";
  r.smid.verdict = "not shared: 24 SMs gave up their compute blocks to the collective";
  r.smid.reduced_sms = {3, 5};
  r.wrong = 0;
  return r;
}
}  // namespace

namespace {
// The key lists of docs/ARCHITECTURE.md's JSON section: "name: k1, k2, ..." lines in the fenced
// block after "## JSON".
std::map<std::string, std::set<std::string>> DocumentedKeys() {
  std::ifstream f(std::string(CORUN_DOCS_DIR) + "/ARCHITECTURE.md");
  EXPECT_TRUE(f.good()) << "docs/ARCHITECTURE.md";
  std::map<std::string, std::set<std::string>> out;
  std::string line;
  bool in_json = false, in_block = false;
  while (std::getline(f, line)) {
    if (line.rfind("## ", 0) == 0) in_json = line == "## JSON";
    if (!in_json) continue;
    if (line.rfind("```", 0) == 0) {
      if (in_block) break;
      in_block = true;
      continue;
    }
    if (!in_block) continue;
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    auto& keys = out[line.substr(0, colon)];
    std::stringstream ss(line.substr(colon + 1));
    for (std::string k; std::getline(ss, k, ',');) {
      k.erase(0, k.find_first_not_of(' '));
      k.erase(k.find_last_not_of(' ') + 1);
      keys.insert(k);
    }
  }
  return out;
}

std::set<std::string> KeysOf(const nlohmann::json& j) {
  std::set<std::string> k;
  for (auto it = j.begin(); it != j.end(); ++it) k.insert(it.key());
  return k;
}
}  // namespace

TEST(Report, JsonHasTheDocumentedSchema) {
  const auto doc = DocumentedKeys();
  for (const char* obj : {"document", "meta", "run", "workload", "summary", "clocks", "smid", "tune", "sweep"})
    ASSERT_TRUE(doc.count(obj)) << "docs/ARCHITECTURE.md lists no keys for '" << obj << "'";
  Meta m;
  m.card = "NVIDIA H100 80GB HBM3";
  m.gpus = 2;
  m.nccl = "2.28.9";
  m.cuda_runtime = "13.0";
  m.date = "2026-11-26T15:00:00Z";
  m.notes = {"a note"};
  TuneSummary t;
  t.workload = "w";
  t.policy = "priority";
  t.has_sweep = true;
  const auto j = nlohmann::json::parse(RecordsToJson(m, {Sample()}, 1, {t}));
  // Every key written is documented and every documented key is written.
  EXPECT_EQ(KeysOf(j), doc.at("document"));
  EXPECT_EQ(KeysOf(j["meta"]), doc.at("meta"));
  const auto& r = j["runs"][0];
  EXPECT_EQ(KeysOf(r), doc.at("run"));
  EXPECT_EQ(KeysOf(r["workload"]), doc.at("workload"));
  for (const char* s : {"t_total", "t_comp", "t_comm", "t_comp_end", "t_comm_end"})
    EXPECT_EQ(KeysOf(r[s]), doc.at("summary")) << s;
  EXPECT_EQ(KeysOf(r["clocks"]), doc.at("clocks"));
  EXPECT_EQ(KeysOf(r["clocks"]["sm_mhz"]), doc.at("summary"));
  EXPECT_EQ(KeysOf(r["smid"]), doc.at("smid"));
  EXPECT_EQ(r["smid"]["reduced_sms"], nlohmann::json({3, 5}));
  EXPECT_EQ(KeysOf(j["tune"][0]), doc.at("tune"));
  EXPECT_EQ(KeysOf(j["tune"][0]["sweep"]), doc.at("sweep"));
  // And the values are the record's.
  EXPECT_EQ(j["meta"]["card"], "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(j["meta"]["gpus"], 2);
  EXPECT_EQ(j["meta"]["cuda"], "13.0");
  EXPECT_EQ(j["meta"]["notes"][0], "a note");
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
  EXPECT_TRUE(j["tune"][0]["sweep"]["tuned_vs_best"].is_null());
}

TEST(Report, OlderDocumentsStillParse) {
  // A run as written before the wall-clock fields (and with a null baseline column).
  const std::string old = R"({"meta": {"card": "X", "gpus": 2}, "runs": [{"workload": {"compute": "cublaslt",
      "gemm": [64, 64, 64], "collective": "allreduce", "bytes": 1024}, "policy": "overlap", "vs_overlap": null,
      "vs_sequential": -0.25}], "tune": [{"workload": "w", "policy": "priority", "trials": 31, "budget": 60}]})";
  Meta m;
  std::vector<RunRecord> runs;
  std::vector<TuneSummary> tunes;
  std::string err;
  ASSERT_TRUE(RecordsFromJson(old, &m, &runs, &err, &tunes)) << err;
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].wall_s, 0);
  EXPECT_FALSE(runs[0].has_vs_overlap);
  EXPECT_TRUE(runs[0].has_vs_sequential);
  EXPECT_DOUBLE_EQ(runs[0].vs_sequential, -0.25);
  ASSERT_EQ(tunes.size(), 1u);
  EXPECT_EQ(tunes[0].trials, 31);
  EXPECT_EQ(tunes[0].budget, 60);
  EXPECT_EQ(tunes[0].wall_s, 0);
  EXPECT_FALSE(tunes[0].has_sweep);
}

TEST(Report, BaselineColumnsComeFromTheSameWorkloadsRowsThatRan) {
  RunRecord seq = Sample(), ovl = Sample(), other = Sample(), row = Sample(), failed = Sample();
  seq.policy = "sequential";
  seq.t_total = Summarize({20});
  ovl.policy = "overlap";
  ovl.t_total = Summarize({16});
  other.policy = "overlap";
  other.bytes = 1024;  // another workload
  other.t_total = Summarize({1});
  row.t_total = Summarize({12});
  row.has_vs_sequential = false;
  SetBaselineColumns(&row, {seq, other, ovl});
  EXPECT_TRUE(row.has_vs_sequential);
  EXPECT_DOUBLE_EQ(row.vs_sequential, -0.4);
  EXPECT_TRUE(row.has_vs_overlap);
  EXPECT_DOUBLE_EQ(row.vs_overlap, -0.25);
  failed.status = "error";
  failed.has_vs_sequential = false;
  SetBaselineColumns(&failed, {seq, ovl});
  EXPECT_FALSE(failed.has_vs_sequential);
  EXPECT_FALSE(failed.has_vs_overlap);
  RunRecord none = Sample();
  none.has_vs_sequential = false;
  seq.status = "skipped";
  SetBaselineColumns(&none, {seq});
  EXPECT_FALSE(none.has_vs_sequential);
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
