// Host fp64 reference for sampled GEMM outputs. Inputs come from GemmValue (multiples of 1/4 in
// [-1, 1]), so the fp32 accumulation on the GPU is exact for K < 2^20 and the only difference
// allowed is the bf16 rounding of the output: |got - ref| <= 2^-8 * |ref|.
#pragma once
#include <cstdint>
#include <vector>

namespace corun {

constexpr double kGemmRelTolerance = 1.0 / 256.0;

// `count` element indices (row * N + col) of an M x N output: the four corners, then
// pseudo-random positions (deterministic in `seed`).
std::vector<uint64_t> GemmSampleIndices(int64_t m, int64_t n, int count, uint32_t seed);

// C[row, col] = sum_k A[row, k] * B[col, k] with A and B filled by GemmValue(seed_a / seed_b).
double GemmReference(int64_t row, int64_t col, int64_t k, uint32_t seed_a, uint32_t seed_b);

// How many sampled values are outside the tolerance (NaN counts as wrong).
int64_t CountGemmMismatches(int64_t n, int64_t k, uint32_t seed_a, uint32_t seed_b,
                            const std::vector<uint64_t>& idx, const std::vector<float>& got,
                            double* worst_rel_error = nullptr);

// The same with references computed once (GemmReference for each index).
int64_t CountGemmMismatchesRef(const std::vector<double>& ref, const std::vector<float>& got,
                               double* worst_rel_error = nullptr);

}  // namespace corun
