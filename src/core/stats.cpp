#include "corun/stats.h"

#include <algorithm>
#include <numeric>

namespace corun {

Summary Summarize(std::vector<double> v) {
  Summary s;
  s.n = static_cast<int>(v.size());
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  s.median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  s.min = v.front();
  s.max = v.back();
  s.mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(n);
  return s;
}

double OverlapEfficiency(double tc, double tm, double t) {
  const double hideable = tc + tm - std::max(tc, tm);  // = min(tc, tm)
  if (hideable <= 0) return 0;
  return (tc + tm - t) / hideable;
}

double RelativeChange(double t, double base) { return base > 0 ? (t - base) / base : 0; }

}  // namespace corun
