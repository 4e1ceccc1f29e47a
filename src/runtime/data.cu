#include <string>

#include "checks.h"
#include "corun/datagen.h"
#include "data.h"

namespace corun {
namespace {

__global__ void FillGemmKernel(__nv_bfloat16* p, uint64_t n, uint32_t seed) {
  for (uint64_t i = blockIdx.x * uint64_t(blockDim.x) + threadIdx.x; i < n; i += uint64_t(gridDim.x) * blockDim.x)
    p[i] = __float2bfloat16(GemmValue(i, seed));
}

template <typename T>
__device__ __forceinline__ T FromFloat(float v);
template <>
__device__ __forceinline__ float FromFloat<float>(float v) { return v; }
template <>
__device__ __forceinline__ __nv_bfloat16 FromFloat<__nv_bfloat16>(float v) { return __float2bfloat16(v); }
__device__ __forceinline__ float ToFloat(float v) { return v; }
__device__ __forceinline__ float ToFloat(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__global__ void FillCollKernel(T* p, uint64_t n, int rank, uint64_t first, uint32_t seed) {
  for (uint64_t i = blockIdx.x * uint64_t(blockDim.x) + threadIdx.x; i < n; i += uint64_t(gridDim.x) * blockDim.x)
    p[i] = FromFloat<T>(CollValue(first + i, rank, seed));
}

template <typename T>
__global__ void VerifyKernel(const T* out, VerifyMode mode, uint64_t count, int me, int nranks, uint32_t seed,
                             unsigned long long* wrong) {
  const uint64_t total = CollOutputElems(mode, count, nranks);
  unsigned long long bad = 0;
  for (uint64_t i = blockIdx.x * uint64_t(blockDim.x) + threadIdx.x; i < total; i += uint64_t(gridDim.x) * blockDim.x) {
    const float expect = CollExpected(mode, i, count, me, nranks, seed);
    const float got = ToFloat(out[i]);
    if (!(got == expect)) ++bad;  // exact: every value involved is a small integer
  }
  // Warp-level reduction keeps the atomics few.
  for (int o = 16; o > 0; o >>= 1) bad += __shfl_down_sync(0xffffffffu, bad, o);
  if ((threadIdx.x & 31) == 0 && bad) atomicAdd(wrong, bad);
}

__global__ void GatherKernel(const __nv_bfloat16* c, const uint64_t* idx, float* out, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = __bfloat162float(c[idx[i]]);
}

dim3 GridFor(uint64_t n) {
  const uint64_t blocks = (n + 255) / 256;
  return dim3(static_cast<unsigned>(blocks < 4096 ? (blocks ? blocks : 1) : 4096));
}

}  // namespace

Status FillGemmInput(__nv_bfloat16* p, uint64_t n, uint32_t seed, cudaStream_t s) {
  FillGemmKernel<<<GridFor(n), 256, 0, s>>>(p, n, seed);
  CUDACHECK(cudaGetLastError());
  return Status::Ok();
}

Status FillCollective(void* p, DType t, uint64_t n, int rank, uint64_t first, uint32_t seed, cudaStream_t s) {
  if (t == DType::kBf16)
    FillCollKernel<<<GridFor(n), 256, 0, s>>>(static_cast<__nv_bfloat16*>(p), n, rank, first, seed);
  else
    FillCollKernel<<<GridFor(n), 256, 0, s>>>(static_cast<float*>(p), n, rank, first, seed);
  CUDACHECK(cudaGetLastError());
  return Status::Ok();
}

Status VerifyCollective(const void* out, DType t, VerifyMode mode, uint64_t count, int me, int nranks,
                        uint32_t seed, unsigned long long* wrong, cudaStream_t s) {
  const uint64_t total = CollOutputElems(mode, count, nranks);
  if (t == DType::kBf16)
    VerifyKernel<<<GridFor(total), 256, 0, s>>>(static_cast<const __nv_bfloat16*>(out), mode, count, me, nranks, seed, wrong);
  else
    VerifyKernel<<<GridFor(total), 256, 0, s>>>(static_cast<const float*>(out), mode, count, me, nranks, seed, wrong);
  CUDACHECK(cudaGetLastError());
  return Status::Ok();
}

Status GatherSamples(const __nv_bfloat16* c, const std::vector<uint64_t>& idx, std::vector<float>* out,
                     cudaStream_t s) {
  const int n = static_cast<int>(idx.size());
  uint64_t* d_idx = nullptr;
  float* d_out = nullptr;
  CUDACHECK(cudaMallocAsync(&d_idx, n * sizeof(uint64_t), s));
  CUDACHECK(cudaMallocAsync(&d_out, n * sizeof(float), s));
  CUDACHECK(cudaMemcpyAsync(d_idx, idx.data(), n * sizeof(uint64_t), cudaMemcpyHostToDevice, s));
  GatherKernel<<<(n + 255) / 256, 256, 0, s>>>(c, d_idx, d_out, n);
  CUDACHECK(cudaGetLastError());
  out->resize(n);
  CUDACHECK(cudaMemcpyAsync(out->data(), d_out, n * sizeof(float), cudaMemcpyDeviceToHost, s));
  CUDACHECK(cudaFreeAsync(d_idx, s));
  CUDACHECK(cudaFreeAsync(d_out, s));
  CUDACHECK(cudaStreamSynchronize(s));
  return Status::Ok();
}

}  // namespace corun
