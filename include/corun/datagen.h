// Deterministic test data shared by the GPU kernels that write it and the host code that checks
// it: values are small multiples of 1/4 (GEMM) or small integers (collectives), so every
// reference sum is exact in fp32 and bf16 and a wrong element cannot pass by rounding.
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define CORUN_HD __host__ __device__ __forceinline__
#else
#define CORUN_HD inline
#endif

namespace corun {

CORUN_HD uint32_t Hash32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}

CORUN_HD uint32_t HashIndex(uint64_t idx, uint32_t seed) {
  return Hash32(static_cast<uint32_t>(idx) ^ Hash32(static_cast<uint32_t>(idx >> 32) + seed * 0x9e3779b9U));
}

// GEMM inputs: {-1, -0.75, ..., 1}; exact in bf16.
CORUN_HD float GemmValue(uint64_t idx, uint32_t seed) {
  return static_cast<float>(static_cast<int>(HashIndex(idx, seed) % 9u) - 4) * 0.25f;
}

// Collective inputs of one rank: integers in [-4, 4]; sums over up to 32 ranks are exact in bf16.
CORUN_HD float CollValue(uint64_t idx, int rank, uint32_t seed) {
  return static_cast<float>(static_cast<int>(HashIndex(idx * 64u + static_cast<uint64_t>(rank), seed) % 9u) - 4);
}

}  // namespace corun
