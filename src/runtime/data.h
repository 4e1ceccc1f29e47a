// Device-side test data: deterministic fills (corun/datagen.h), a gather of sampled GEMM outputs
// for the host reference, and exact checks of collective outputs.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "corun/collective.h"
#include "corun/status.h"

namespace corun {

Status FillGemmInput(__nv_bfloat16* p, uint64_t n, uint32_t seed, cudaStream_t s);
// Rank `rank`'s collective input: element i holds CollValue(first_index + i, rank).
Status FillCollective(void* p, DType t, uint64_t n, int rank, uint64_t first_index, uint32_t seed, cudaStream_t s);

// Counts elements that differ from CollExpected (NaN included) into *wrong_dev (accumulates).
Status VerifyCollective(const void* out, DType t, VerifyMode mode, uint64_t count, int me, int nranks,
                        uint32_t seed, unsigned long long* wrong_dev, cudaStream_t s);

// Samples C (M x N, bf16) at `idx` (row * N + col) into host floats.
Status GatherSamples(const __nv_bfloat16* c, const std::vector<uint64_t>& idx, std::vector<float>* out,
                     cudaStream_t s);

}  // namespace corun
