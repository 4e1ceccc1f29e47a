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

// What the output of a collective must hold, rank `me` of `nranks`, inputs from CollValue.
enum class VerifyMode {
  kSumAll,       // out[i] = sum_r CollValue(i, r)                        (allreduce)
  kGather,       // out[r*count + i] = CollValue(i, r)                   (allgather)
  kSumOwnChunk,  // out[i] = sum_r CollValue(me*count + i, r)            (reduce-scatter)
  kAllToAll,     // out[r*count + i] = CollValue(me*count + i, r)        (alltoall)
};

// Output elements checked: count for the reductions to one chunk, count * nranks otherwise.
CORUN_HD uint64_t CollOutputElems(VerifyMode mode, uint64_t count, int nranks) {
  return (mode == VerifyMode::kSumAll || mode == VerifyMode::kSumOwnChunk) ? count : count * nranks;
}

// The exact value out[j] must hold.
CORUN_HD float CollExpected(VerifyMode mode, uint64_t j, uint64_t count, int me, int nranks, uint32_t seed) {
  float expect = 0;
  switch (mode) {
    case VerifyMode::kSumAll:
      for (int r = 0; r < nranks; ++r) expect += CollValue(j, r, seed);
      break;
    case VerifyMode::kSumOwnChunk:
      for (int r = 0; r < nranks; ++r) expect += CollValue(uint64_t(me) * count + j, r, seed);
      break;
    case VerifyMode::kGather:
      expect = CollValue(j % count, int(j / count), seed);
      break;
    case VerifyMode::kAllToAll:
      expect = CollValue(uint64_t(me) * count + j % count, int(j / count), seed);
      break;
  }
  return expect;
}

}  // namespace corun
