// Summaries of repeated timings and the overlap figures derived from them.
#pragma once
#include <vector>

namespace corun {

struct Summary {
  double median = 0, min = 0, max = 0, mean = 0;
  int n = 0;
};
Summary Summarize(std::vector<double> samples);

// Overlap efficiency E = (Tc + Tm - T) / (Tc + Tm - max(Tc, Tm)): 1 = the shorter side fully
// hidden, 0 = no better than running one after the other, < 0 = worse than sequential.
double OverlapEfficiency(double t_comp, double t_comm, double t_total);

// Relative change of `t` against `base` ((t - base) / base); 0 when base is not positive.
double RelativeChange(double t, double base);

}  // namespace corun
