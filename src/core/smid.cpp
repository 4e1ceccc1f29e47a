// The %smid probe's analysis (corun/smid.h): per SM, the GEMM residency as a step function of
// time, measured inside the collective's window while GEMM blocks were still being dispatched
// (after the last dispatch every SM drains, so residency falls whatever else runs).
#include "corun/smid.h"

#include <algorithm>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace corun {
namespace {

// One SM's residency: (time, level from this time on), sorted by time.
using Steps = std::vector<std::pair<uint64_t, int>>;

Steps StepsOf(std::vector<std::pair<uint64_t, int>> ev) {
  // At equal times, ends before starts: a block replacing another is not counted twice.
  std::sort(ev.begin(), ev.end());
  Steps s;
  int level = 0;
  for (const auto& e : ev) {
    level += e.second;
    if (!s.empty() && s.back().first == e.first)
      s.back().second = level;
    else
      s.emplace_back(e.first, level);
  }
  return s;
}

// Nanoseconds spent at each level within [a, b).
void AddHist(const Steps& s, uint64_t a, uint64_t b, std::map<int, double>* h) {
  if (b <= a) return;
  int level = 0;
  uint64_t t = a;
  for (const auto& st : s) {
    if (st.first > t) {
      const uint64_t until = std::min(st.first, b);
      if (until > t) (*h)[level] += static_cast<double>(until - t);
      t = std::max(t, until);
      if (t >= b) return;
    }
    level = st.second;
  }
  if (b > t) (*h)[level] += static_cast<double>(b - t);
}

double Integral(const std::map<int, double>& h) {
  double x = 0;
  for (const auto& [l, ns] : h) x += l * ns;
  return x;
}

}  // namespace

std::string CheckStamps(const std::vector<BlockStamp>& blocks, int num_sms) {
  for (size_t i = 0; i < blocks.size(); ++i) {
    const BlockStamp& b = blocks[i];
    const std::string at = "smid probe: block " + std::to_string(i) + ": ";
    if (b.start_ns == 0 || b.end_ns == 0) return at + "never stamped";
    if (b.end_ns < b.start_ns) return at + "ends before it starts";
    if (num_sms > 0 && (b.smid >= static_cast<uint32_t>(num_sms) || b.smid_end >= static_cast<uint32_t>(num_sms)))
      return at + "SM id " + std::to_string(std::max(b.smid, b.smid_end)) + " >= SM count " + std::to_string(num_sms);
    if (b.smid != b.smid_end)
      return at + "started on SM " + std::to_string(b.smid) + ", ended on SM " + std::to_string(b.smid_end);
  }
  return "";
}

SmidReport AnalyzeSmid(const std::vector<BlockStamp>& blocks, const BlockStamp& before, const BlockStamp& after,
                       const SmidInputs& in) {
  SmidReport r;
  r.comm_ctas = in.comm_ctas;
  r.blocks = static_cast<int64_t>(blocks.size());
  auto no_verdict = [&](const std::string& why) {
    r.status = "no verdict";
    r.verdict = "no verdict: " + why;
    return r;
  };
  if (in.num_sms <= 0) return no_verdict("SM count unknown");
  if (blocks.empty()) return no_verdict("no compute block stamped");
  const std::string bad = CheckStamps(blocks, in.num_sms);
  if (!bad.empty()) return no_verdict(bad);
  const uint64_t w0 = before.end_ns, w1 = after.start_ns;
  if (w0 == 0 || w1 <= w0) return no_verdict("empty communication window");
  r.window_ms = static_cast<double>(w1 - w0) / 1e6;

  std::vector<std::vector<std::pair<uint64_t, int>>> ev(in.num_sms);
  uint64_t s0 = UINT64_MAX, s1 = 0;  // the dispatch span: first to last block start
  for (const BlockStamp& b : blocks) {
    ev[b.smid].emplace_back(b.start_ns, +1);
    ev[b.smid].emplace_back(b.end_ns, -1);
    s0 = std::min(s0, b.start_ns);
    s1 = std::max(s1, b.start_ns);
    if (b.start_ns < w1 && b.end_ns > w0) ++r.blocks_in_window;
  }
  std::vector<Steps> steps(in.num_sms);
  int most = 0;
  for (int sm = 0; sm < in.num_sms; ++sm) {
    steps[sm] = StepsOf(std::move(ev[sm]));
    for (const auto& st : steps[sm]) most = std::max(most, st.second);
  }
  r.natural = in.natural > 0 ? in.natural : most;
  if (r.blocks_in_window == 0) {
    r.status = "not shared";
    r.verdict = "not shared: no compute block ran during the collective";
    return r;
  }
  const uint64_t o0 = std::max(w0, s0), o1 = std::min(w1, s1);
  if (o1 <= o0)
    return no_verdict("the GEMM dispatched its last block before the collective began (its tail drains anyway)");
  r.overlap_ms = static_cast<double>(o1 - o0) / 1e6;

  const double span = static_cast<double>(o1 - o0);
  double out_int = 0, out_ns = 0;
  double beside_int = 0, below_ns = 0, red_sum = 0, oth_sum = 0;
  for (int sm = 0; sm < in.num_sms; ++sm) {
    if (steps[sm].empty()) {  // never ran a GEMM block: nothing there could drop
      ++r.sms_unused;
      continue;
    }
    std::map<int, double> h, out;
    AddHist(steps[sm], o0, o1, &h);
    AddHist(steps[sm], s0, std::min(s1, w0), &out);
    AddHist(steps[sm], std::max(s0, w1), s1, &out);
    for (const auto& [l, ns] : out) out_ns += ns;
    out_int += Integral(out);
    const double mean = Integral(h) / span;
    if (mean > r.natural - in.reduced_by) {
      oth_sum += mean;
      continue;
    }
    r.reduced_sms.push_back(sm);
    red_sum += mean;
    // Below natural residency: the level held longest tells what sat beside the drop (the
    // drains into and out of it pass through each level briefly).
    int mode = 0;
    double mode_ns = -1;
    for (const auto& [l, ns] : h) {
      if (l >= r.natural) continue;
      below_ns += ns;
      beside_int += l * ns;
      if (ns > mode_ns) mode = l, mode_ns = ns;
    }
    if (mode > 0) r.shared_sms.push_back(sm);
  }
  r.sms_reduced = static_cast<int>(r.reduced_sms.size());
  r.sms_shared = static_cast<int>(r.shared_sms.size());
  r.blocks_beside = below_ns > 0 ? beside_int / below_ns : 0;
  r.residency_reduced = r.sms_reduced ? red_sum / r.sms_reduced : 0;
  const int others = in.num_sms - r.sms_unused - r.sms_reduced;
  r.residency_others = others > 0 ? oth_sum / others : 0;
  r.residency_outside = out_ns > 0 ? out_int / out_ns : 0;

  const std::string ctas = in.comm_ctas > 0 ? fmt::format("NCCL launched {} CTAs", in.comm_ctas) : "CTAs unknown";
  if (r.sms_shared > 0) {
    r.status = "shared";
    r.verdict = fmt::format("shared: {} SMs ran compute blocks beside communication CTAs ({:.2f} blocks on average; "
                            "{} SMs lost residency, {})",
                            r.sms_shared, r.blocks_beside, r.sms_reduced, ctas);
  } else if (r.sms_reduced > 0) {
    r.status = "not shared";
    r.verdict = fmt::format("not shared: {} SMs gave up their compute blocks to the collective ({:.2f} left on "
                            "average, natural {}; {})",
                            r.sms_reduced, r.blocks_beside, r.natural, ctas);
    if (in.comm_ctas > r.sms_reduced)
      r.verdict += fmt::format("; {} CTAs not seen as a drop", in.comm_ctas - r.sms_reduced);
  } else {
    return no_verdict(fmt::format("no SM lost compute residency while the collective ran and GEMM blocks were "
                                  "being dispatched ({}): its CTAs, if any, sat in room the compute side left, or "
                                  "waited for the GEMM's last dispatch",
                                  ctas));
  }
  return r;
}

void to_json(nlohmann::json& j, const SmidReport& r) {
  j = nlohmann::json{{"status", r.status},
                     {"verdict", r.verdict},
                     {"natural", r.natural},
                     {"comm_ctas", r.comm_ctas},
                     {"sms_unused", r.sms_unused},
                     {"sms_reduced", r.sms_reduced},
                     {"sms_shared", r.sms_shared},
                     {"blocks_beside", r.blocks_beside},
                     {"residency_reduced", r.residency_reduced},
                     {"residency_others", r.residency_others},
                     {"residency_outside", r.residency_outside},
                     {"window_ms", r.window_ms},
                     {"overlap_ms", r.overlap_ms},
                     {"blocks", r.blocks},
                     {"blocks_in_window", r.blocks_in_window},
                     {"reduced_sms", r.reduced_sms},
                     {"shared_sms", r.shared_sms}};
}

void from_json(const nlohmann::json& j, SmidReport& r) {
  r = SmidReport{};
  r.status = j.value("status", "");
  r.verdict = j.value("verdict", "");
  r.natural = j.value("natural", 0);
  r.comm_ctas = j.value("comm_ctas", 0);
  r.sms_unused = j.value("sms_unused", 0);
  r.sms_reduced = j.value("sms_reduced", 0);
  r.sms_shared = j.value("sms_shared", 0);
  r.blocks_beside = j.value("blocks_beside", 0.0);
  r.residency_reduced = j.value("residency_reduced", 0.0);
  r.residency_others = j.value("residency_others", 0.0);
  r.residency_outside = j.value("residency_outside", 0.0);
  r.window_ms = j.value("window_ms", 0.0);
  r.overlap_ms = j.value("overlap_ms", 0.0);
  r.blocks = j.value("blocks", int64_t{0});
  r.blocks_in_window = j.value("blocks_in_window", int64_t{0});
  r.reduced_sms = j.value("reduced_sms", std::vector<int>{});
  r.shared_sms = j.value("shared_sms", std::vector<int>{});
}

}  // namespace corun
