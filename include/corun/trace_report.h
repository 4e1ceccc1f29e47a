// corun trace output: the table, the summary JSON and the Chrome-trace (Perfetto) JSON.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "corun/attribution.h"
#include "corun/status.h"
#include "corun/trace_records.h"

namespace corun {

struct TraceAnalysis {
  std::string dir, steps_spec;
  AttributionOptions opt;
  std::vector<TraceFile> files;
  std::vector<std::vector<LaneReport>> lanes;  // per file
  std::vector<std::string> notes;              // files skipped or cut short
};

// Reads every record file in dir and attributes it. Fails when there is none.
Status AnalyzeTraceDir(const std::string& dir, const AttributionOptions& o, TraceAnalysis* out);

std::string TraceTable(const TraceAnalysis& a);
nlohmann::json TraceSummaryJson(const TraceAnalysis& a);
// One file's records as Chrome-trace JSON (ui.perfetto.dev, chrome://tracing); times in us after t0.
nlohmann::json PerfettoJson(const TraceFile& f, const std::vector<LaneReport>& lanes, int64_t t0);
// Writes summary.json and trace.<label>.json per file into dir.
Status WriteTraceOutputs(const TraceAnalysis& a, std::vector<std::string>* written);

}  // namespace corun
