#include "corun/report.h"

#include <fmt/format.h>

#include <ctime>

#include <nlohmann/json.hpp>

#include "corun/parse.h"
#include "corun/stats.h"

namespace corun {
using nlohmann::json;

// The JSON of each struct (nlohmann's to_json/from_json, found by argument-dependent lookup).
// Readers take every field with a default, so documents of older versions still parse.
void to_json(json& j, const Summary& s) {
  j = json{{"median", s.median}, {"min", s.min}, {"max", s.max}, {"mean", s.mean}, {"n", s.n}};
}
void from_json(const json& j, Summary& s) {
  s = Summary{};
  if (!j.is_object()) return;
  s.median = j.value("median", 0.0);
  s.min = j.value("min", 0.0);
  s.max = j.value("max", 0.0);
  s.mean = j.value("mean", 0.0);
  s.n = j.value("n", 0);
}

void to_json(json& j, const Meta& m) {
  j = json{{"card", m.card},
           {"gpus", m.gpus},
           {"sms", m.sms},
           {"nccl", m.nccl},
           {"cuda", m.cuda_runtime},
           {"cuda_driver", m.cuda_driver},
           {"driver", m.driver},
           {"date", m.date},
           {"host", m.host},
           {"process_model", m.process_model},
           {"priority_range", {m.priority_lowest, m.priority_highest}},
           {"sustain_s", m.sustain_s},
           {"warmup", m.warmup},
           {"reps", m.reps},
           {"command_line", m.command_line},
           {"notes", m.notes}};
}
void from_json(const json& j, Meta& m) {
  m.card = j.value("card", "");
  m.gpus = j.value("gpus", 0);
  m.sms = j.value("sms", 0);
  m.nccl = j.value("nccl", "");
  m.cuda_runtime = j.value("cuda", "");
  m.cuda_driver = j.value("cuda_driver", "");
  m.driver = j.value("driver", "");
  m.date = j.value("date", "");
  m.host = j.value("host", "");
  m.process_model = j.value("process_model", "");
  if (j.contains("priority_range") && j["priority_range"].size() == 2) {
    m.priority_lowest = j["priority_range"][0].get<int>();
    m.priority_highest = j["priority_range"][1].get<int>();
  }
  m.sustain_s = j.value("sustain_s", 0.0);
  m.warmup = j.value("warmup", 0);
  m.reps = j.value("reps", 0);
  m.command_line = j.value("command_line", "");
  m.notes = j.value("notes", std::vector<std::string>{});
}

void to_json(json& j, const ClockSample& c) {
  j = json{{"sm_mhz", c.sm_mhz}, {"power_w", c.power_w}, {"throttle", c.throttle}};
}
void from_json(const json& j, ClockSample& c) {
  c.valid = true;
  c.sm_mhz = j.value("sm_mhz", Summary{});
  c.power_w = j.value("power_w", Summary{});
  c.throttle = j.value("throttle", std::vector<std::string>{});
}

void to_json(json& j, const RunRecord& r) {
  j = json{
      {"workload",
       {{"compute", r.compute},
        {"gemm", {r.m, r.n, r.k}},
        {"gemms", r.gemms},
        {"collective", r.collective},
        {"dtype", r.dtype},
        {"bytes", r.bytes}}},
      {"policy", r.policy},
      {"status", r.status},
      {"note", r.note},
      {"pad_bytes", r.pad_bytes},
      {"blocks_per_sm", r.blocks_per_sm},
      {"comm_ctas", r.comm_ctas},
      {"compute_sms", r.compute_sms},
      {"t_total_ms", r.t_total.median},
      {"t_comp_ms", r.t_comp.median},
      {"t_comm_ms", r.t_comm.median},
      {"t_total", r.t_total},
      {"t_comp", r.t_comp},
      {"t_comm", r.t_comm},
      {"t_comp_end", r.t_comp_end},
      {"t_comm_end", r.t_comm_end},
      {"efficiency", r.efficiency},
      {"comp_slowdown", r.comp_slowdown},
      {"comm_slowdown", r.comm_slowdown},
      {"vs_sequential", r.has_vs_sequential ? json(r.vs_sequential) : json(nullptr)},
      {"vs_overlap", r.has_vs_overlap ? json(r.vs_overlap) : json(nullptr)},
      {"algbw_gbs", r.algbw},
      {"busbw_gbs", r.busbw},
      {"tflops", r.tflops},
      {"wrong", r.wrong},
      {"t_total_samples", r.samples},
      {"wall_s", r.wall_s},
      {"timed_wall_s", r.timed_wall_s},
  };
  if (r.clocks.valid) j["clocks"] = r.clocks;
  if (r.smid.ran()) j["smid"] = r.smid;
}
void from_json(const json& j, RunRecord& r) {
  r = RunRecord{};
  const json& w = j.at("workload");
  r.compute = w.at("compute").get<std::string>();
  r.m = w.at("gemm").at(0).get<int64_t>();
  r.n = w.at("gemm").at(1).get<int64_t>();
  r.k = w.at("gemm").at(2).get<int64_t>();
  r.gemms = w.value("gemms", 1);
  r.collective = w.at("collective").get<std::string>();
  r.dtype = w.value("dtype", "");
  r.bytes = w.at("bytes").get<uint64_t>();
  r.policy = j.at("policy").get<std::string>();
  r.status = j.value("status", "ok");
  r.note = j.value("note", "");
  r.pad_bytes = j.value("pad_bytes", uint64_t{0});
  r.blocks_per_sm = j.value("blocks_per_sm", 0);
  r.comm_ctas = j.value("comm_ctas", 0);
  r.compute_sms = j.value("compute_sms", 0);
  r.t_total = j.value("t_total", Summary{});
  r.t_comp = j.value("t_comp", Summary{});
  r.t_comm = j.value("t_comm", Summary{});
  r.t_comp_end = j.value("t_comp_end", Summary{});
  r.t_comm_end = j.value("t_comm_end", Summary{});
  r.efficiency = j.value("efficiency", 0.0);
  r.comp_slowdown = j.value("comp_slowdown", 0.0);
  r.comm_slowdown = j.value("comm_slowdown", 0.0);
  if (j.contains("vs_sequential") && j["vs_sequential"].is_number()) {
    r.vs_sequential = j["vs_sequential"].get<double>();
    r.has_vs_sequential = true;
  }
  if (j.contains("vs_overlap") && j["vs_overlap"].is_number()) {
    r.vs_overlap = j["vs_overlap"].get<double>();
    r.has_vs_overlap = true;
  }
  r.algbw = j.value("algbw_gbs", 0.0);
  r.busbw = j.value("busbw_gbs", 0.0);
  r.tflops = j.value("tflops", 0.0);
  r.wrong = j.value("wrong", int64_t{0});
  r.samples = j.value("t_total_samples", std::vector<double>{});
  r.wall_s = j.value("wall_s", 0.0);
  r.timed_wall_s = j.value("timed_wall_s", 0.0);
  if (j.contains("clocks")) r.clocks = j.at("clocks").get<ClockSample>();
  if (j.contains("smid")) r.smid = j.at("smid").get<SmidReport>();
}

void to_json(json& j, const TuneSummary& x) {
  j = json{{"workload", x.workload}, {"policy", x.policy}, {"t_ms", x.t_ms}, {"overlap_ms", x.overlap_ms},
           {"trials", x.trials}, {"budget", x.budget}, {"sweep_trials", x.sweep_trials},
           {"candidates", x.candidates}, {"stop", x.stop}, {"wall_s", x.wall_s}, {"budget_s", x.budget_s},
           {"sweep_wall_s_estimate", x.sweep_wall_s_estimate}};
  if (x.has_sweep)
    j["sweep"] = {{"best_policy", x.sweep_best_policy}, {"best_ms", x.sweep_best_ms},
                  {"tuned_ms", x.tuned_in_sweep_ms}, {"overlap_ms", x.overlap_in_sweep_ms},
                  {"wall_s", x.sweep_wall_s},
                  {"tuned_vs_best", x.tuned_in_sweep_ms > 0 && x.sweep_best_ms > 0
                                        ? json(RelativeChange(x.tuned_in_sweep_ms, x.sweep_best_ms))
                                        : json()}};  // null: the tuned policy did not run in the sweep
}
void from_json(const json& j, TuneSummary& x) {
  x = TuneSummary{};
  x.workload = j.value("workload", "");
  x.policy = j.value("policy", "");
  x.t_ms = j.value("t_ms", 0.0);
  x.overlap_ms = j.value("overlap_ms", 0.0);
  x.trials = j.value("trials", 0);
  x.budget = j.value("budget", 0);
  x.sweep_trials = j.value("sweep_trials", 0);
  x.candidates = j.value("candidates", 0);
  x.stop = j.value("stop", "");
  x.wall_s = j.value("wall_s", 0.0);
  x.budget_s = j.value("budget_s", 0.0);
  x.sweep_wall_s_estimate = j.value("sweep_wall_s_estimate", 0.0);
  if (j.contains("sweep") && j["sweep"].is_object()) {
    const json& s = j["sweep"];
    x.has_sweep = true;
    x.sweep_best_policy = s.value("best_policy", "");
    x.sweep_best_ms = s.value("best_ms", 0.0);
    x.tuned_in_sweep_ms = s.value("tuned_ms", 0.0);
    x.overlap_in_sweep_ms = s.value("overlap_ms", 0.0);
    x.sweep_wall_s = s.value("wall_s", 0.0);
  }
}

std::string WorkloadKey(const RunRecord& r) {
  return r.compute + " " + std::to_string(r.m) + "x" + std::to_string(r.n) + "x" + std::to_string(r.k) +
         " x" + std::to_string(r.gemms) + " + " + r.collective + " " + r.dtype + " " + FormatSize(r.bytes);
}

void SetBaselineColumns(RunRecord* r, const std::vector<RunRecord>& earlier) {
  const bool ran = r->status == "ok" || r->status == "wrong";
  const std::string key = WorkloadKey(*r);
  for (const RunRecord& b : earlier) {
    if ((b.status != "ok" && b.status != "wrong") || WorkloadKey(b) != key) continue;
    if (b.policy == "sequential") {
      r->vs_sequential = RelativeChange(r->t_total.median, b.t_total.median);
      r->has_vs_sequential = ran;
    }
    if (b.policy == "overlap") {
      r->vs_overlap = RelativeChange(r->t_total.median, b.t_total.median);
      r->has_vs_overlap = ran;
    }
  }
}

std::string RecordsToJson(const Meta& m, const std::vector<RunRecord>& runs, int indent,
                          const std::vector<TuneSummary>& tunes) {
  json doc{{"meta", m}, {"runs", runs}};
  if (!tunes.empty()) doc["tune"] = tunes;
  return doc.dump(indent);
}

bool RecordsFromJson(const std::string& text, Meta* m, std::vector<RunRecord>* runs, std::string* err,
                     std::vector<TuneSummary>* tunes) {
  try {
    const json doc = json::parse(text);
    *m = doc.at("meta").get<Meta>();
    *runs = doc.at("runs").get<std::vector<RunRecord>>();
    if (tunes) *tunes = doc.value("tune", std::vector<TuneSummary>{});
  } catch (const std::exception& e) {
    if (err) *err = e.what();
    return false;
  }
  return true;
}

void PrintTableHeader(FILE* f) {
  fmt::print(f, "#\n# {:<22} {:>6} {:>4} {:>8} {:>8} {:>8} {:>17} {:>6} {:>7} {:>7} {:>7} {:>5} {:>5} {:>6}\n",
             "policy", "pad", "blk", "T_c", "T_m", "T", "T min-max", "E", "vsSeq", "vsOvl", "busbw", "MHz",
             "W", "#wrong");
  fmt::print(f, "# {:<22} {:>6} {:>4} {:>8} {:>8} {:>8} {:>17} {:>6} {:>7} {:>7} {:>7} {:>5} {:>5} {:>6}\n", "",
             "(KiB)", "/SM", "(ms)", "(ms)", "(ms)", "(ms)", "(%)", "(%)", "(%)", "(GB/s)", "", "", "");
}

void PrintWorkloadLine(FILE* f, const RunRecord& r) {
  fmt::print(f, "#\n# workload: {}\n", WorkloadKey(r));
}

void PrintRow(FILE* f, const RunRecord& r) {
  if (r.status == "skipped" || r.status == "error") {
    fmt::print(f, "  {:<22} {}: {}\n", r.policy, r.status, r.note);
    return;
  }
  auto pct = [](bool has, double v) { return has ? fmt::format("{:+.1f}", 100 * v) : std::string("-"); };
  fmt::print(f, "  {:<22} {:>6.1f} {:>4} {:>8.3f} {:>8.3f} {:>8.3f} {:>17} {:>6.1f} {:>7} {:>7} {:>7.1f} {:>5.0f} {:>5.0f} {:>6}{}\n",
             r.policy, r.pad_bytes / 1024.0, r.blocks_per_sm ? std::to_string(r.blocks_per_sm) : "-",
             r.t_comp.median, r.t_comm.median, r.t_total.median,
             fmt::format("{:.3f}-{:.3f}", r.t_total.min, r.t_total.max), 100 * r.efficiency,
             pct(r.has_vs_sequential, r.vs_sequential), pct(r.has_vs_overlap, r.vs_overlap), r.busbw,
             r.clocks.valid ? r.clocks.sm_mhz.median : 0.0, r.clocks.valid ? r.clocks.power_w.mean : 0.0,
             r.wrong, r.note.empty() ? "" : "  # " + r.note);
}

std::string NowIsoUtc() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace corun
