#include "corun/gemm_check.h"

#include <cmath>

#include "corun/datagen.h"

namespace corun {

std::vector<uint64_t> GemmSampleIndices(int64_t m, int64_t n, int count, uint32_t seed) {
  std::vector<uint64_t> idx;
  const uint64_t total = static_cast<uint64_t>(m) * static_cast<uint64_t>(n);
  const uint64_t corners[] = {0, static_cast<uint64_t>(n - 1), static_cast<uint64_t>((m - 1) * n), total - 1};
  for (uint64_t c : corners)
    if (static_cast<int>(idx.size()) < count) idx.push_back(c);
  for (uint64_t i = 0; static_cast<int>(idx.size()) < count; ++i) {
    const uint64_t r = (static_cast<uint64_t>(HashIndex(i, seed)) << 32) | HashIndex(i, seed + 1);
    idx.push_back(r % total);
  }
  return idx;
}

double GemmReference(int64_t row, int64_t col, int64_t k, uint32_t seed_a, uint32_t seed_b) {
  double acc = 0;
  for (int64_t kk = 0; kk < k; ++kk)
    acc += static_cast<double>(GemmValue(static_cast<uint64_t>(row * k + kk), seed_a)) *
           static_cast<double>(GemmValue(static_cast<uint64_t>(col * k + kk), seed_b));
  return acc;
}

int64_t CountGemmMismatchesRef(const std::vector<double>& refs, const std::vector<float>& got, double* worst) {
  int64_t bad = 0;
  double w = 0;
  for (size_t i = 0; i < refs.size(); ++i) {
    if (i >= got.size()) {
      ++bad;  // a missing sample is a wrong one
      continue;
    }
    const double ref = refs[i];
    const double err = std::fabs(static_cast<double>(got[i]) - ref);
    const double rel = ref != 0 ? err / std::fabs(ref) : err;
    if (!(err <= kGemmRelTolerance * std::fabs(ref))) ++bad;
    if (std::isnan(rel) || rel > w) w = std::isnan(rel) ? INFINITY : rel;
  }
  if (worst) *worst = w;
  return bad;
}

int64_t CountGemmMismatches(int64_t n, int64_t k, uint32_t seed_a, uint32_t seed_b,
                            const std::vector<uint64_t>& idx, const std::vector<float>& got,
                            double* worst) {
  std::vector<double> refs;
  refs.reserve(idx.size());
  for (uint64_t i : idx)
    refs.push_back(GemmReference(static_cast<int64_t>(i / static_cast<uint64_t>(n)),
                                 static_cast<int64_t>(i % static_cast<uint64_t>(n)), k, seed_a, seed_b));
  return CountGemmMismatchesRef(refs, got, worst);
}

}  // namespace corun
