// corun trace output: the '#' table on stderr, summary.json and one Chrome-trace file per process.
#include "corun/trace_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <map>

#include "corun/stats.h"

namespace corun {

namespace {

using nlohmann::json;

std::string Short(const std::string& name, size_t n = 56) {
  return name.size() <= n ? name : name.substr(0, n - 3) + "...";
}

std::string FileLabel(const TraceFile& f) { return f.rank >= 0 ? "r" + std::to_string(f.rank) : "p" + std::to_string(f.pid); }


}  // namespace

Status AnalyzeTraceDir(const std::string& dir, const AttributionOptions& o, TraceAnalysis* out) {
  out->dir = dir;
  out->opt = o;
  std::vector<std::string> paths;
  CORUN_CHECK(ListTraceFiles(dir, &paths));
  if (paths.empty()) CORUN_FAIL("no trace records (corun_trace.*.jsonl) in " + dir);
  for (const std::string& p : paths) {
    TraceFile f;
    Status s = ReadTraceFile(p, &f);
    if (!s.ok()) {
      out->notes.push_back("skipped " + s.message());
      continue;
    }
    if (!f.complete) out->notes.push_back(p + ": no end record (the process was killed); records so far are used");
    if (f.dropped) out->notes.push_back(p + ": CUPTI dropped " + std::to_string(f.dropped) + " records");
    if (f.incomplete)
      out->notes.push_back(p + ": " + std::to_string(f.incomplete) + " GPU records without a valid start and end left out");
    out->files.push_back(std::move(f));
  }
  // Ranks first, then processes without a rank, by pid.
  std::sort(out->files.begin(), out->files.end(), [](const TraceFile& a, const TraceFile& b) {
    return std::make_pair(a.rank < 0, a.rank < 0 ? a.pid : a.rank) < std::make_pair(b.rank < 0, b.rank < 0 ? b.pid : b.rank);
  });
  int64_t t0 = INT64_MAX;
  for (const TraceFile& f : out->files)
    if (!f.gpu.empty()) t0 = std::min(t0, f.gpu.front().start);
  if (t0 == INT64_MAX) CORUN_FAIL("the trace records in " + dir + " hold no GPU activity");
  out->opt.t0 = t0;
  for (const TraceFile& f : out->files) {
    std::vector<LaneReport> l;
    CORUN_CHECK(Attribute(f, out->opt, &l));
    out->lanes.push_back(std::move(l));
  }
  return Status::Ok();
}

std::string TraceTable(const TraceAnalysis& a) {
  std::string s;
  int nl = 0;
  for (const auto& v : a.lanes) nl += static_cast<int>(v.size());
  const AttributionOptions& o = a.opt;
  std::string win = o.window_begin_ms >= 0 ? fmt::format("window {}:{} ms", o.window_begin_ms, o.window_end_ms)
                    : !o.steps.empty()     ? fmt::format("steps {} (first {} left out)", o.steps, o.skip_steps)
                                           : fmt::format("whole run after a {:.0f}% warm-up", 100 * o.warmup_frac);
  s += fmt::format("# corun trace: {} GPU lane(s) from {} process(es) in {}; {}\n", nl, a.files.size(), a.dir, win);
  s += "# per step where steps are marked, else over the window; ms\n";
  s += fmt::format("# {:<10} {:>9} {:>5} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6} {:>8} {:>8} {:>8} {:>8}\n", "lane", "window",
                   "steps", "step", "comp", "both", "comm", "idle", "colls", "wait", "wait>SM", "comp+", "comm+");
  s += fmt::format("# {:<10} {:>9} {:>5} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6} {:>8} {:>8} {:>8} {:>8}\n", "", "(ms)", "",
                   "median", "only", "", "only", "", "", "", "compute", "slower", "slower");
  for (const auto& v : a.lanes)
    for (const LaneReport& r : v) {
      const double d = r.steps > 0 ? r.steps : 1;
      s += fmt::format("  {:<10} {:>9.2f} {:>5} {:>8.3f} {:>8.3f} {:>8.3f} {:>8.3f} {:>8.3f} {:>6} {:>8.3f} {:>8.3f} {:>8.3f} {:>8.3f}\n",
                       r.label, r.bd.window_ms, r.steps, r.step_median_ms, r.bd.compute_only_ms / d, r.bd.both_ms / d,
                       r.bd.comm_only_ms / d, r.bd.idle_ms / d, r.launches.size(), r.coll_wait_ms / d,
                       r.coll_wait_behind_compute_ms / d, r.compute_extra_ms / d, r.comm_extra_ms / d);
    }
  for (const auto& v : a.lanes)
    for (const LaneReport& r : v) {
      s += fmt::format("# {}: {}\n", r.label, r.verdict);
      int shown = 0;
      for (const KernelStat& k : r.kernels) {
        if (shown++ == 4) break;
        s += fmt::format("#   {:<4} {:<56} {:<16} n={:<5} alone {:>8.3f} ({:>4}) beside {:>8.3f} ({:>4}){}\n",
                         k.comm ? "comm" : "comp", Short(k.name), k.grid, k.count, k.alone_median_ms, k.n_alone,
                         k.beside_median_ms, k.n_beside,
                         k.comm ? fmt::format(" wait {:.3f}", k.wait_ms / std::max(1, k.count)) : std::string());
      }
      if (!r.blockers.empty())
        s += fmt::format("#   collectives waited behind: {} ({:.3f} ms)\n", Short(r.blockers[0].first, 80),
                         r.blockers[0].second);
    }
  for (const std::string& n : a.notes) s += "# note: " + n + "\n";
  return s;
}

json TraceSummaryJson(const TraceAnalysis& a) {
  json out;
  const AttributionOptions& o = a.opt;
  out["meta"] = {{"dir", a.dir}, {"t0_ns", o.t0}, {"steps", o.steps}, {"skip_steps", o.skip_steps},
                 {"warmup_frac", o.warmup_frac}, {"alone_overlap", o.alone_overlap}, {"notes", a.notes}};
  if (o.window_begin_ms >= 0) out["meta"]["window_ms"] = {o.window_begin_ms, o.window_end_ms};
  out["files"] = json::array();
  for (const TraceFile& f : a.files)
    out["files"].push_back({{"path", f.path}, {"pid", f.pid}, {"rank", f.rank}, {"host", f.host},
                            {"command", f.command}, {"complete", f.complete}, {"torn_tail", f.torn_tail},
                            {"dropped", f.dropped}, {"gpu_records", f.gpu.size()}, {"api_records", f.api.size()},
                            {"nvtx_ranges", f.ranges.size()}});
  out["lanes"] = json::array();
  std::map<std::string, std::vector<double>> agg;
  for (const auto& v : a.lanes)
    for (const LaneReport& r : v) {
      json l = {{"label", r.label}, {"rank", r.rank}, {"pid", r.pid}, {"device", r.device}, {"host", r.host},
                {"window_ms", r.bd.window_ms}, {"window_begin_ms", (r.begin - o.t0) * 1e-6},
                {"window_end_ms", (r.end - o.t0) * 1e-6}, {"steps", r.steps}, {"step_median_ms", r.step_median_ms},
                {"breakdown_ms", {{"compute_only", r.bd.compute_only_ms}, {"comm_only", r.bd.comm_only_ms},
                                  {"both", r.bd.both_ms}, {"idle", r.bd.idle_ms}}},
                {"dtod_copy_ms", r.bd.dtod_copy_ms},
                {"coll_launches", r.launches.size()}, {"coll_wait_ms", r.coll_wait_ms},
                {"coll_wait_behind_compute_ms", r.coll_wait_behind_compute_ms},
                {"compute_extra_ms", r.compute_extra_ms}, {"comm_extra_ms", r.comm_extra_ms},
                {"mixed_busy_ms", {{"median", Summarize(r.mixed_busy_ms).median}, {"n", r.mixed_busy_ms.size()}}},
                {"records", r.records}, {"verdict", r.verdict}};
      json sb = json::array();
      for (const auto& [s0, s1] : r.step_bounds) sb.push_back({(s0 - o.t0) * 1e-6, (s1 - o.t0) * 1e-6});
      l["step_bounds_ms"] = sb;
      json ks = json::array();
      int nk = 0;
      for (const KernelStat& k : r.kernels) {
        if (!k.comm && nk++ >= 30) continue;
        json j = {{"name", k.name}, {"grid", k.grid}, {"comm", k.comm}, {"count", k.count}, {"total_ms", k.total_ms},
                  {"n_alone", k.n_alone}, {"n_beside", k.n_beside}, {"alone_median_ms", k.alone_median_ms},
                  {"beside_median_ms", k.beside_median_ms}, {"extra_ms", k.extra_ms}};
        if (k.comm) {
          j["wait_ms"] = k.wait_ms;
          j["wait_behind_compute_ms"] = k.wait_behind_compute_ms;
        }
        ks.push_back(j);
      }
      l["kernels"] = ks;
      json bl = json::array();
      for (const auto& [n, ms] : r.blockers) bl.push_back({{"name", n}, {"ms", ms}});
      l["blockers"] = bl;
      // Launches with the longest waits first (bounded: a long run has many).
      std::vector<const CollectiveLaunch*> ls;
      for (const CollectiveLaunch& c : r.launches) ls.push_back(&c);
      std::stable_sort(ls.begin(), ls.end(), [](auto* x, auto* y) { return x->wait_ms > y->wait_ms; });
      if (ls.size() > 200) ls.resize(200);
      json lj = json::array();
      for (const CollectiveLaunch* c : ls) {
        json bj = json::array();
        for (size_t i = 0; i < c->blockers.size() && i < 3; ++i)
          bj.push_back({{"name", c->blockers[i].first}, {"ms", c->blockers[i].second}});
        lj.push_back({{"name", c->name}, {"start_ms", (c->start - o.t0) * 1e-6}, {"dur_ms", (c->end - c->start) * 1e-6},
                      {"wait_ms", c->wait_ms}, {"wait_behind_compute_ms", c->wait_behind_compute_ms},
                      {"overlap_ms", c->overlap_ms}, {"has_api", c->has_api}, {"blockers", bj}});
      }
      l["longest_waits"] = lj;
      out["lanes"].push_back(l);
      const double d = r.steps > 0 ? r.steps : 1;
      agg["compute_only"].push_back(r.bd.compute_only_ms / d);
      agg["comm_only"].push_back(r.bd.comm_only_ms / d);
      agg["both"].push_back(r.bd.both_ms / d);
      agg["idle"].push_back(r.bd.idle_ms / d);
    }
  json ag;
  for (const auto& [k, v] : agg)
    ag[k] = {{"max", *std::max_element(v.begin(), v.end())}, {"median", Summarize(v).median}};
  out["aggregate_per_step_or_window_ms"] = ag;
  return out;
}

json PerfettoJson(const TraceFile& f, const std::vector<LaneReport>& lanes, int64_t t0) {
  json ev = json::array();
  const int pid = f.rank >= 0 ? f.rank : f.pid;
  ev.push_back({{"ph", "M"}, {"name", "process_name"}, {"pid", pid},
                {"args", {{"name", FileLabel(f) + " (pid " + std::to_string(f.pid) + ")"}}}});
  auto us = [&](int64_t ns) { return (ns - t0) * 1e-3; };
  std::map<int64_t, std::string> tids;
  for (const GpuActivity& a : f.gpu) {
    // One row per GPU stream; rows of communication streams read "comm".
    const int64_t tid = 1000000 + a.device * 100000 + a.stream;
    if (!tids.count(tid)) tids[tid] = fmt::format("GPU{} stream {}", a.device, a.stream);
    if (a.comm && tids[tid].find("comm") == std::string::npos) tids[tid] += " (comm)";
    json e = {{"ph", "X"}, {"name", a.name}, {"cat", a.comm ? "comm" : a.kind == GpuKind::kKernel ? "compute" : "copy"},
              {"pid", pid}, {"tid", tid}, {"ts", us(a.start)}, {"dur", (a.end - a.start) * 1e-3},
              {"args", {{"corr", a.corr}}}};
    if (a.bytes) e["args"]["bytes"] = a.bytes;
    ev.push_back(e);
  }
  for (const ApiCall& c : f.api) {
    const int64_t tid = c.thread;
    if (!tids.count(tid)) tids[tid] = fmt::format("host thread {}", c.thread);
    ev.push_back({{"ph", "X"}, {"name", c.name}, {"cat", "api"}, {"pid", pid}, {"tid", tid}, {"ts", us(c.start)},
                  {"dur", (c.end - c.start) * 1e-3}, {"args", {{"corr", c.corr}}}});
  }
  for (const NvtxRange& r : f.ranges) {
    const int64_t tid = 2000000 + r.thread % 1000000;
    if (!tids.count(tid)) tids[tid] = fmt::format("NVTX thread {}", r.thread);
    ev.push_back({{"ph", "X"}, {"name", r.name}, {"cat", "nvtx"}, {"pid", pid}, {"tid", tid}, {"ts", us(r.start)},
                  {"dur", (r.end - r.start) * 1e-3}});
  }
  for (const LaneReport& l : lanes) {
    // The attribution's window and the longest waits, as their own row.
    const int64_t tid = 3000000 + l.device;
    tids[tid] = fmt::format("GPU{} corun: window, collective waits", l.device);
    ev.push_back({{"ph", "X"}, {"name", "window"}, {"cat", "corun"}, {"pid", pid}, {"tid", tid}, {"ts", us(l.begin)},
                  {"dur", (l.end - l.begin) * 1e-3}, {"args", {{"verdict", l.verdict}}}});
    for (const CollectiveLaunch& c : l.launches)
      if (c.wait_ms > 0.001)
        ev.push_back({{"ph", "X"}, {"name", "wait " + c.name.substr(0, 40)}, {"cat", "corun"}, {"pid", pid},
                      {"tid", tid + 10}, {"ts", us(c.ready)}, {"dur", c.wait_ms * 1e3},
                      {"args", {{"behind_compute_ms", c.wait_behind_compute_ms}}}});
    if (!tids.count(tid + 10)) tids[tid + 10] = fmt::format("GPU{} corun: collective waits", l.device);
  }
  for (const auto& [tid, name] : tids)
    ev.push_back({{"ph", "M"}, {"name", "thread_name"}, {"pid", pid}, {"tid", tid}, {"args", {{"name", name}}}});
  return json{{"traceEvents", ev}, {"displayTimeUnit", "ms"}};
}

Status WriteTraceOutputs(const TraceAnalysis& a, std::vector<std::string>* written) {
  auto put = [&](const std::string& path, const json& j) -> Status {
    std::ofstream o(path);
    if (!o) CORUN_FAIL("cannot write " + path);
    o << j.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
    if (!o) CORUN_FAIL("cannot write " + path);
    written->push_back(path);
    return Status::Ok();
  };
  CORUN_CHECK(put(a.dir + "/summary.json", TraceSummaryJson(a)));
  for (size_t i = 0; i < a.files.size(); ++i) {
    const TraceFile& f = a.files[i];
    CORUN_CHECK(put(a.dir + "/trace." + FileLabel(f) + (f.rank >= 0 ? ".p" + std::to_string(f.pid) : "") + ".json",
                    PerfettoJson(f, a.lanes[i], a.opt.t0)));
  }
  return Status::Ok();
}

}  // namespace corun
