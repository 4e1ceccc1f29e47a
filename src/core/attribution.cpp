// Attribution of trace records: breakdown, collective waits, alone-vs-beside durations, verdict.
#include "corun/attribution.h"

#include <algorithm>
#include <cstdlib>
#include <fmt/format.h>
#include <set>
#include <unordered_map>

#include "corun/stats.h"

namespace corun {

namespace {

using Iv = std::pair<int64_t, int64_t>;

constexpr double kMs = 1e-6;  // ns -> ms

// Clips to [b, e), sorts and merges touching intervals.
std::vector<Iv> Merge(std::vector<Iv> v, int64_t b, int64_t e) {
  std::vector<Iv> out;
  for (auto& [s, t] : v) {
    s = std::max(s, b);
    t = std::min(t, e);
  }
  v.erase(std::remove_if(v.begin(), v.end(), [](const Iv& x) { return x.second <= x.first; }), v.end());
  std::sort(v.begin(), v.end());
  for (const Iv& x : v) {
    if (!out.empty() && x.first <= out.back().second)
      out.back().second = std::max(out.back().second, x.second);
    else
      out.push_back(x);
  }
  return out;
}

int64_t Len(const std::vector<Iv>& m) {
  int64_t n = 0;
  for (const Iv& x : m) n += x.second - x.first;
  return n;
}

int64_t InterLen(const std::vector<Iv>& a, const std::vector<Iv>& b) {
  int64_t n = 0;
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    const int64_t s = std::max(a[i].first, b[j].first), e = std::min(a[i].second, b[j].second);
    if (e > s) n += e - s;
    (a[i].second < b[j].second) ? ++i : ++j;
  }
  return n;
}

// Length of [s, e) covered by a merged interval list.
int64_t Covered(const std::vector<Iv>& m, int64_t s, int64_t e) {
  if (e <= s) return 0;
  auto it = std::upper_bound(m.begin(), m.end(), Iv{s, INT64_MAX});
  if (it != m.begin()) --it;
  int64_t n = 0;
  for (; it != m.end() && it->first < e; ++it) {
    const int64_t a = std::max(s, it->first), b = std::min(e, it->second);
    if (b > a) n += b - a;
  }
  return n;
}


bool Contains(const std::string& s, const std::string& sub) { return s.find(sub) != std::string::npos; }

std::string Short(const std::string& name, size_t n = 48) {
  return name.size() <= n ? name : name.substr(0, n - 3) + "...";
}

// Which GPU each host thread launched to (by the correlation ids of its launch calls).
std::unordered_map<uint32_t, int> ThreadDevices(const TraceFile& f) {
  std::unordered_map<uint32_t, int> dev_of_corr;
  for (const GpuActivity& a : f.gpu) dev_of_corr[a.corr] = a.device;
  std::unordered_map<uint32_t, std::map<int, int>> votes;
  for (const ApiCall& c : f.api)
    if (auto it = dev_of_corr.find(c.corr); it != dev_of_corr.end()) ++votes[c.thread][it->second];
  std::unordered_map<uint32_t, int> out;
  for (const auto& [t, v] : votes)
    out[t] = std::max_element(v.begin(), v.end(), [](auto& a, auto& b) { return a.second < b.second; })->first;
  return out;
}

std::vector<Iv> StepBounds(const TraceFile& f, const std::vector<const GpuActivity*>& acts, int dev,
                           const std::string& spec, const std::unordered_map<uint32_t, int>& thread_dev) {
  std::vector<Iv> b;
  if (spec.rfind("nvtx:", 0) == 0) {
    const std::string want = spec.substr(5);
    std::vector<const NvtxRange*> rs;
    for (const NvtxRange& r : f.ranges) {
      auto it = thread_dev.find(r.thread);
      if (Contains(r.name, want) && (it == thread_dev.end() || it->second == dev)) rs.push_back(&r);
    }
    // Steps tile the time: each runs to the next one's start (the GPU works behind the host).
    for (size_t i = 0; i < rs.size(); ++i)
      b.emplace_back(rs[i]->start, i + 1 < rs.size() ? rs[i + 1]->start : rs[i]->end);
  } else if (spec.rfind("kernel:", 0) == 0) {
    const std::string want = spec.substr(7);
    std::vector<int64_t> s;
    for (const GpuActivity* a : acts)
      if (a->kind == GpuKind::kKernel && Contains(a->name, want)) s.push_back(a->start);
    // n marks make n-1 whole steps; what follows the last mark is not a step.
    for (size_t i = 0; i + 1 < s.size(); ++i) b.emplace_back(s[i], s[i + 1]);
  }
  return b;
}

void Verdict(LaneReport* r) {
  const double w = r->bd.window_ms;
  if (w <= 0) {
    r->verdict = "no GPU activity in the window";
    return;
  }
  const int div = r->steps > 0 ? r->steps : 1;
  const char* unit = r->steps > 0 ? "ms/step" : "ms";
  std::string top = r->blockers.empty() ? std::string("compute") : Short(r->blockers[0].first);
  // Without launch-call records (corun trace --no-api) a collective's wait counts from its stream's
  // previous work, which takes in flag and event waits the trace cannot see: not a wait for SMs.
  bool any_api = r->launches.empty();
  for (const CollectiveLaunch& l : r->launches) any_api |= l.has_api;
  std::vector<std::pair<double, std::string>> c = {
      {r->bd.idle_ms, "nothing ran (GPU idle: host, launch or dependency gaps)"},
      {r->bd.comm_only_ms, "communication ran with no compute beside it (exposed)"},
      {r->compute_extra_ms, "compute ran slower beside communication"},
      {r->comm_extra_ms, "collectives ran slower beside compute"},
  };
  if (any_api) c.push_back({r->coll_wait_behind_compute_ms, "collectives waited for SMs behind " + top});
  const std::string no_api = any_api ? "" : " (no launch-call records: collectives' waits for SMs not known)";
  std::stable_sort(c.begin(), c.end(), [](auto& a, auto& b) { return a.first > b.first; });
  if (c[0].first < 0.01 * w) {
    r->verdict = "no loss above 1% of the window: the sides overlap and the GPU stays busy" + no_api;
    return;
  }
  r->verdict = fmt::format("largest loss {:.2f} {} ({:.0f}% of the window): {}", c[0].first / div, unit,
                           100.0 * c[0].first / w, c[0].second);
  if (c[1].first >= 0.01 * w)
    r->verdict += fmt::format("; next {:.2f} {}: {}", c[1].first / div, unit, c[1].second);
  r->verdict += no_api;
}

void AttributeLane(const TraceFile& f, int dev, bool several, const AttributionOptions& o,
                   const std::unordered_map<uint32_t, int>& thread_dev, const std::unordered_map<uint32_t, const ApiCall*>& api,
                   LaneReport* r) {
  r->rank = f.rank;
  r->pid = f.pid;
  r->device = dev;
  r->host = f.host;
  r->label = f.rank >= 0 ? "r" + std::to_string(f.rank) : "p" + std::to_string(f.pid);
  if (several) r->label += ".g" + std::to_string(dev);

  std::vector<const GpuActivity*> acts;
  for (const GpuActivity& a : f.gpu)
    if (a.device == dev) acts.push_back(&a);
  r->records = static_cast<int64_t>(acts.size());
  if (acts.empty()) {
    Verdict(r);
    return;
  }
  int64_t lo = INT64_MAX, hi = INT64_MIN;
  for (const GpuActivity* a : acts) {
    lo = std::min(lo, a->start);
    hi = std::max(hi, a->end);
  }

  // The window.
  int64_t b = lo + static_cast<int64_t>(o.warmup_frac * static_cast<double>(hi - lo)), e = hi;
  if (!o.steps.empty()) {
    std::vector<Iv> bounds = StepBounds(f, acts, dev, o.steps, thread_dev);
    const size_t skip = bounds.size() > static_cast<size_t>(o.skip_steps) ? o.skip_steps : 0;
    if (!bounds.empty()) {
      r->step_bounds.assign(bounds.begin() + static_cast<long>(skip), bounds.end());
      b = r->step_bounds.front().first;
      e = r->step_bounds.back().second;
      r->steps = static_cast<int>(r->step_bounds.size());
      std::vector<double> d;
      for (const Iv& s : r->step_bounds) d.push_back((s.second - s.first) * kMs);
      r->step_median_ms = Summarize(d).median;
    }
  }
  if (o.window_begin_ms >= 0 && o.window_end_ms > o.window_begin_ms) {
    b = o.t0 + static_cast<int64_t>(o.window_begin_ms * 1e6);
    e = o.t0 + static_cast<int64_t>(o.window_end_ms * 1e6);
  }
  r->begin = b;
  r->end = e;

  // Compute = every other kernel and memset (they hold SMs: cv, used for waits and alone/beside);
  // the breakdown adds device-to-device copies (xv): GPU work of the program without SMs, neither
  // idle time nor something a collective beside them is exposed by. Host copies count as neither.
  std::vector<Iv> cv, mv, xv;
  for (const GpuActivity* a : acts) {
    if (a->comm)
      mv.emplace_back(a->start, a->end);
    else if (a->kind != GpuKind::kMemcpy)
      cv.emplace_back(a->start, a->end);
    else if (a->name == "memcpy dtod")
      xv.emplace_back(a->start, a->end);
  }
  std::vector<Iv> pv = cv;
  pv.insert(pv.end(), xv.begin(), xv.end());
  const std::vector<Iv> C = Merge(pv, b, e), M = Merge(mv, b, e);
  const std::vector<Iv> Call = Merge(cv, INT64_MIN, INT64_MAX), Mall = Merge(mv, INT64_MIN, INT64_MAX);
  const int64_t both = InterLen(C, M);
  r->bd.window_ms = e > b ? (e - b) * kMs : 0;
  r->bd.both_ms = both * kMs;
  r->bd.compute_only_ms = (Len(C) - both) * kMs;
  r->bd.comm_only_ms = (Len(M) - both) * kMs;
  r->bd.idle_ms = std::max(0.0, r->bd.window_ms - (Len(C) + Len(M) - both) * kMs);
  r->bd.dtod_copy_ms = Len(Merge(xv, b, e)) * kMs;

  // Busy periods that hold both sides (a bench together-step is one).
  std::vector<Iv> all = cv;
  all.insert(all.end(), mv.begin(), mv.end());
  for (const Iv& p : Merge(all, b, e))
    if (Covered(Call, p.first, p.second) > 0 && Covered(Mall, p.first, p.second) > 0)
      r->mixed_busy_ms.push_back((p.second - p.first) * kMs);

  // Per name, alone vs beside; per collective launch, its wait.
  std::map<std::string, KernelStat> stats;
  std::map<std::string, std::vector<double>> alone, beside;
  std::unordered_map<uint32_t, int64_t> prev_end;  // stream -> end of its last activity so far
  std::vector<const GpuActivity*> comp;            // compute activities by start, for blocker lookup
  int64_t max_comp = 0;
  for (const GpuActivity* a : acts)
    if (!a->comm && a->kind == GpuKind::kKernel) {
      comp.push_back(a);
      max_comp = std::max(max_comp, a->end - a->start);
    }
  std::map<std::string, double> blockers_all;
  for (const GpuActivity* a : acts) {
    auto pe = prev_end.find(a->stream);
    const bool has_prev = pe != prev_end.end();
    const int64_t pred = has_prev ? pe->second : 0;
    prev_end[a->stream] = has_prev ? std::max(pred, a->end) : a->end;
    if (a->start < b || a->start >= e || (a->kind == GpuKind::kMemcpy && !a->comm)) continue;
    const double dur = (a->end - a->start) * kMs;
    const double ov = Covered(a->comm ? Call : Mall, a->start, a->end) * kMs;
    const std::string key = a->name + "|" + a->grid;
    KernelStat& k = stats[key];
    k.name = a->name;
    k.grid = a->grid;
    k.comm = a->comm;
    ++k.count;
    k.total_ms += dur;
    (ov < o.alone_overlap * dur ? alone : beside)[key].push_back(dur);
    if (!a->comm) continue;

    CollectiveLaunch l;
    l.name = a->name;
    l.start = a->start;
    l.end = a->end;
    l.ready = has_prev ? pred : a->start;
    if (auto it = api.find(a->corr); it != api.end()) {
      l.has_api = true;
      l.ready = has_prev ? std::max(pred, it->second->end) : it->second->end;
    }
    l.ready = std::min(l.ready, a->start);
    l.wait_ms = (a->start - l.ready) * kMs;
    l.overlap_ms = Covered(Call, a->start, a->end) * kMs;
    if (l.wait_ms > 0) {
      l.wait_behind_compute_ms = Covered(Call, l.ready, a->start) * kMs;
      std::map<std::string, double> bl;
      auto it = std::lower_bound(comp.begin(), comp.end(), a->start,
                                 [](const GpuActivity* x, int64_t s) { return x->start < s; });
      while (it != comp.begin()) {
        --it;
        const GpuActivity* c = *it;
        if (c->start < l.ready - max_comp) break;
        const int64_t s = std::max(c->start, l.ready), t = std::min(c->end, a->start);
        if (t > s) bl[c->name] += (t - s) * kMs;
      }
      for (auto& [n, ms] : bl) {
        l.blockers.emplace_back(n, ms);
        blockers_all[n] += ms;
      }
      std::sort(l.blockers.begin(), l.blockers.end(), [](auto& x, auto& y) { return x.second > y.second; });
    }
    k.wait_ms += l.wait_ms;
    k.wait_behind_compute_ms += l.wait_behind_compute_ms;
    r->coll_wait_ms += l.wait_ms;
    r->coll_wait_behind_compute_ms += l.wait_behind_compute_ms;
    r->launches.push_back(std::move(l));
  }
  for (auto& [n, k] : stats) {
    const auto& al = alone[n];
    const auto& be = beside[n];
    k.n_alone = static_cast<int>(al.size());
    k.n_beside = static_cast<int>(be.size());
    k.alone_median_ms = Summarize(al).median;
    k.beside_median_ms = Summarize(be).median;
    if (!al.empty())
      for (double d : be) k.extra_ms += d - k.alone_median_ms;
    (k.comm ? r->comm_extra_ms : r->compute_extra_ms) += k.extra_ms;
    r->kernels.push_back(k);
  }
  std::sort(r->kernels.begin(), r->kernels.end(), [](auto& x, auto& y) { return x.total_ms > y.total_ms; });
  r->blockers.assign(blockers_all.begin(), blockers_all.end());
  std::sort(r->blockers.begin(), r->blockers.end(), [](auto& x, auto& y) { return x.second > y.second; });
  Verdict(r);
}

}  // namespace

double UnionMs(std::vector<Iv> iv, int64_t begin, int64_t end) { return Len(Merge(std::move(iv), begin, end)) * kMs; }

Status ParseStepsSpec(const std::string& spec) {
  if (spec.empty()) return Status::Ok();
  for (const char* p : {"nvtx:", "kernel:"})
    if (spec.rfind(p, 0) == 0 && spec.size() > std::string(p).size()) return Status::Ok();
  CORUN_FAIL("bad --steps '" + spec + "' (nvtx:NAME or kernel:NAME)");
}

Status ParseWindowSpec(const std::string& spec, double* begin_ms, double* end_ms) {
  const size_t c = spec.find(':');
  char* e1 = nullptr;
  char* e2 = nullptr;
  if (c != std::string::npos) {
    const std::string a = spec.substr(0, c), b = spec.substr(c + 1);
    *begin_ms = std::strtod(a.c_str(), &e1);
    *end_ms = std::strtod(b.c_str(), &e2);
    if (!a.empty() && !b.empty() && *e1 == '\0' && *e2 == '\0' && *begin_ms >= 0 && *end_ms > *begin_ms)
      return Status::Ok();
  }
  CORUN_FAIL("bad --window '" + spec + "' (BEGIN:END in ms after the first GPU record, BEGIN < END)");
}

Status Attribute(const TraceFile& f, const AttributionOptions& o, std::vector<LaneReport>* lanes) {
  lanes->clear();
  std::set<int> devs;
  for (const GpuActivity& a : f.gpu) devs.insert(a.device);
  const auto thread_dev = ThreadDevices(f);
  std::unordered_map<uint32_t, const ApiCall*> api;
  for (const ApiCall& c : f.api) api[c.corr] = &c;
  for (int d : devs) {
    LaneReport r;
    AttributeLane(f, d, devs.size() > 1, o, thread_dev, api, &r);
    lanes->push_back(std::move(r));
  }
  return Status::Ok();
}

}  // namespace corun
