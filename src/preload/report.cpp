// What the interposer did, at exit: one summary line per process that launched kernels and, with
// CORUN_REPORT, the same counts as JSON (keys documented in README.md, "corun -- CMD").
#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "preload.h"

namespace corun {

Counters g_count;

namespace {

nlohmann::ordered_json ReportJson(const State& s) {
  nlohmann::ordered_json j;
  j["pid"] = static_cast<int>(getpid());
  j["policy"] = s.enabled ? s.cfg.policy.Name() : "disabled";
  j["enabled"] = s.enabled;
  j["error"] = s.error;
  j["launches"] = g_count.launches.load();
  j["shaped"] = g_count.shaped.load();
  nlohmann::ordered_json skipped = nlohmann::ordered_json::object();
  for (int i = 0; i < static_cast<int>(SkipReason::kCount); ++i)
    skipped[SkipReasonName(static_cast<SkipReason>(i))] = g_count.skip[i].load();
  j["skipped"] = skipped;
  j["communication"] = g_count.comm.load();
  j["prioritised"] = g_count.prioritised.load();
  j["priority_dropped"] = g_count.priority_dropped.load();
  j["failed"] = g_count.failed.load();
  j["sm_targets"] = g_count.sm_targets.load();
  j["nccl_ctas"] = g_count.nccl_ctas.load();
  CeReportJson(&j);
  return j;
}

std::string SummaryLine(const State& s) {
  std::string skips;
  uint64_t skipped = 0;
  for (int i = 0; i < static_cast<int>(SkipReason::kCount); ++i) {
    const uint64_t n = g_count.skip[i].load();
    if (!n) continue;
    skipped += n;
    skips += fmt::format("{}{} {}", skips.empty() ? "" : ", ", SkipReasonName(static_cast<SkipReason>(i)), n);
  }
  const uint64_t dropped = g_count.priority_dropped.load();
  return fmt::format(
      "corun: pid {} policy {}: {} launches, {} shaped, {} not shaped ({}), {} communication ({} prioritised{}), "
      "{} failed, {} cuBLAS SM targets set",
      static_cast<int>(getpid()), s.cfg.policy.Name(), g_count.launches.load(), g_count.shaped.load(), skipped,
      skips.empty() ? "-" : skips, g_count.comm.load(), g_count.prioritised.load(),
      dropped ? fmt::format(", {} without priority", dropped) : "", g_count.failed.load(), g_count.sm_targets.load());
}

void WriteReport(const State& s) {
  std::string path = s.report;
  const size_t at = path.find("%p");
  if (at != std::string::npos) path.replace(at, 2, std::to_string(getpid()));
  FILE* f = std::fopen(path.c_str(), "w");
  if (!f) {
    fmt::print(stderr, "corun: cannot write the report '{}'\n", path);
    return;
  }
  // Strings come from the environment and kernel names: invalid UTF-8 is replaced, not thrown.
  const std::string text = ReportJson(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  fmt::print(f, "{}\n", text);
  std::fclose(f);
}

// One line per process that launched kernels (helper processes such as compilers stay quiet);
// CORUN_QUIET=1 silences the line, not the report file. A disabled preload said so when it loaded.
__attribute__((destructor)) void AtExit() {
  State& s = S();
  const bool quiet = std::getenv("CORUN_QUIET") != nullptr;
  if (s.enabled && ((g_count.launches.load() > 0 && !quiet) || s.verbose))
    fmt::print(stderr, "{}\n", SummaryLine(s));
  if (s.enabled && (!quiet || s.verbose))
    if (const std::string ce = CeSummaryLine(); !ce.empty()) fmt::print(stderr, "{}\n", ce);
  if (!s.report.empty()) WriteReport(s);
}

}  // namespace
}  // namespace corun
