#include "corun/report.h"

#include <fmt/format.h>

#include <ctime>

#include <nlohmann/json.hpp>

#include "corun/parse.h"
#include "corun/stats.h"

namespace corun {
using nlohmann::json;

namespace {
json SummaryJson(const Summary& s) {
  return json{{"median", s.median}, {"min", s.min}, {"max", s.max}, {"mean", s.mean}, {"n", s.n}};
}
Summary SummaryFrom(const json& j) {
  Summary s;
  if (!j.is_object()) return s;
  s.median = j.value("median", 0.0);
  s.min = j.value("min", 0.0);
  s.max = j.value("max", 0.0);
  s.mean = j.value("mean", 0.0);
  s.n = j.value("n", 0);
  return s;
}
}  // namespace

std::string WorkloadKey(const RunRecord& r) {
  return r.compute + " " + std::to_string(r.m) + "x" + std::to_string(r.n) + "x" + std::to_string(r.k) +
         " x" + std::to_string(r.gemms) + " + " + r.collective + " " + r.dtype + " " + FormatSize(r.bytes);
}

std::string RecordsToJson(const Meta& m, const std::vector<RunRecord>& runs, int indent,
                          const std::vector<TuneSummary>& tunes) {
  json meta = {{"card", m.card},
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
  json arr = json::array();
  for (const RunRecord& r : runs) {
    json j = {
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
        {"t_total", SummaryJson(r.t_total)},
        {"t_comp", SummaryJson(r.t_comp)},
        {"t_comm", SummaryJson(r.t_comm)},
        {"t_comp_end", SummaryJson(r.t_comp_end)},
        {"t_comm_end", SummaryJson(r.t_comm_end)},
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
    };
    if (r.clocks.valid)
      j["clocks"] = {{"sm_mhz", SummaryJson(r.clocks.sm_mhz)},
                     {"power_w", SummaryJson(r.clocks.power_w)},
                     {"throttle", r.clocks.throttle}};
    arr.push_back(std::move(j));
  }
  json doc{{"meta", meta}, {"runs", arr}};
  if (!tunes.empty()) {
    json t = json::array();
    for (const TuneSummary& x : tunes) {
      json j = {{"workload", x.workload}, {"policy", x.policy}, {"t_ms", x.t_ms}, {"overlap_ms", x.overlap_ms},
                {"trials", x.trials}, {"budget", x.budget}, {"sweep_trials", x.sweep_trials},
                {"candidates", x.candidates}, {"stop", x.stop}};
      if (x.has_sweep)
        j["sweep"] = {{"best_policy", x.sweep_best_policy}, {"best_ms", x.sweep_best_ms},
                      {"tuned_ms", x.tuned_in_sweep_ms}, {"overlap_ms", x.overlap_in_sweep_ms},
                      {"tuned_vs_best", x.tuned_in_sweep_ms > 0 && x.sweep_best_ms > 0
                                            ? json(RelativeChange(x.tuned_in_sweep_ms, x.sweep_best_ms))
                                            : json()}};  // null: the tuned policy did not run in the sweep
      t.push_back(j);
    }
    doc["tune"] = t;
  }
  return doc.dump(indent);
}

bool RecordsFromJson(const std::string& text, Meta* m, std::vector<RunRecord>* runs, std::string* err) {
  try {
    json doc = json::parse(text);
    const json& jm = doc.at("meta");
    m->card = jm.value("card", "");
    m->gpus = jm.value("gpus", 0);
    m->sms = jm.value("sms", 0);
    m->nccl = jm.value("nccl", "");
    m->cuda_runtime = jm.value("cuda", "");
    m->date = jm.value("date", "");
    m->process_model = jm.value("process_model", "");
    if (jm.contains("notes")) m->notes = jm.at("notes").get<std::vector<std::string>>();
    runs->clear();
    for (const json& j : doc.at("runs")) {
      RunRecord r;
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
      r.t_total = SummaryFrom(j.value("t_total", json()));
      r.t_comp = SummaryFrom(j.value("t_comp", json()));
      r.t_comm = SummaryFrom(j.value("t_comm", json()));
      r.t_comp_end = SummaryFrom(j.value("t_comp_end", json()));
      r.t_comm_end = SummaryFrom(j.value("t_comm_end", json()));
      r.efficiency = j.value("efficiency", 0.0);
      r.comp_slowdown = j.value("comp_slowdown", 0.0);
      r.comm_slowdown = j.value("comm_slowdown", 0.0);
      r.algbw = j.value("algbw_gbs", 0.0);
      r.busbw = j.value("busbw_gbs", 0.0);
      r.tflops = j.value("tflops", 0.0);
      r.wrong = j.value("wrong", int64_t{0});
      r.samples = j.value("t_total_samples", std::vector<double>{});
      if (j.contains("clocks")) {
        r.clocks.valid = true;
        r.clocks.sm_mhz = SummaryFrom(j["clocks"].value("sm_mhz", json()));
        r.clocks.power_w = SummaryFrom(j["clocks"].value("power_w", json()));
        r.clocks.throttle = j["clocks"].value("throttle", std::vector<std::string>{});
      }
      runs->push_back(std::move(r));
    }
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
