#include <cuda_bf16.h>

#include "ce_reduce.h"
#include "checks.h"

namespace corun {
namespace {

__device__ __forceinline__ void Acc8(float* a, const uint4& v, __nv_bfloat16*) {
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&v);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __bfloat1622float2(h[i]);
    a[2 * i] += f.x;
    a[2 * i + 1] += f.y;
  }
}
__device__ __forceinline__ void Acc8(float* a, const uint4& v, float*) {
  const float* f = reinterpret_cast<const float*>(&v);
#pragma unroll
  for (int i = 0; i < 4; ++i) a[i] += f[i];
}
__device__ __forceinline__ uint4 Pack(const float* a, __nv_bfloat16*) {
  uint4 v;
  __nv_bfloat162* h = reinterpret_cast<__nv_bfloat162*>(&v);
#pragma unroll
  for (int i = 0; i < 4; ++i) h[i] = __floats2bfloat162_rn(a[2 * i], a[2 * i + 1]);
  return v;
}
__device__ __forceinline__ uint4 Pack(const float* a, float*) {
  uint4 v;
  float* f = reinterpret_cast<float*>(&v);
#pragma unroll
  for (int i = 0; i < 4; ++i) f[i] = a[i];
  return v;
}
__device__ __forceinline__ float ToF(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float ToF(float x) { return x; }
__device__ __forceinline__ void FromF(float x, __nv_bfloat16* p) { *p = __float2bfloat16_rn(x); }
__device__ __forceinline__ void FromF(float x, float* p) { *p = x; }

// A memory-bound kernel needs many bytes in flight per SM: each thread loads kUnroll vectors of
// every input before it adds (a load-add-store loop keeps one or two loads in flight per thread).
constexpr int kUnroll = 4;
constexpr int kThreads = 512;

template <int U>
__device__ __forceinline__ void Load(uint4 (&x)[U], const void* p, uint64_t v, uint64_t stride) {
#pragma unroll
  for (int u = 0; u < U; ++u) x[u] = __ldcs(reinterpret_cast<const uint4*>(p) + v + u * stride);
}
template <typename T, int U>
__device__ __forceinline__ void Store(const CeReduceItem& it, float (&a)[U][16 / sizeof(T)], uint64_t v, uint64_t stride) {
#pragma unroll
  for (int u = 0; u < U; ++u) {
    const uint4 r = Pack(a[u], static_cast<T*>(nullptr));
    reinterpret_cast<uint4*>(it.out)[v + u * stride] = r;
    if (it.out2) reinterpret_cast<uint4*>(it.out2)[v + u * stride] = r;
  }
}
// Vectors v, v + stride, ... (U of them): own + every peer, in that order (the same order as the
// one-vector loop, so the result does not depend on which loop summed an element).
template <typename T, int U>
__device__ __forceinline__ void ReduceVectors(const CeReduceItem& it, int npeers, uint64_t v, uint64_t stride) {
  constexpr int kVec = 16 / sizeof(T);
  uint4 x[U], y[U];
  Load<U>(x, it.own, v, stride);
  Load<U>(y, it.peer[0], v, stride);
  float a[U][kVec];
#pragma unroll
  for (int u = 0; u < U; ++u) {
#pragma unroll
    for (int e = 0; e < kVec; ++e) a[u][e] = 0.f;
    Acc8(a[u], x[u], static_cast<T*>(nullptr));
    Acc8(a[u], y[u], static_cast<T*>(nullptr));
  }
  for (int p = 1; p < npeers; ++p) {
    Load<U>(y, it.peer[p], v, stride);
#pragma unroll
    for (int u = 0; u < U; ++u) Acc8(a[u], y[u], static_cast<T*>(nullptr));
  }
  Store<T, U>(it, a, v, stride);
}

// blockIdx.y: item of the batch; the x blocks stride over its elements, 16 bytes per thread step.
template <typename T>
__global__ void __launch_bounds__(kThreads, 2) CeReduceKernel(CeReduceBatch b) {
  const CeReduceItem& it = b.item[blockIdx.y];
  constexpr int kVec = 16 / sizeof(T);
  const uint64_t n = it.count;
  bool aligned = (reinterpret_cast<uintptr_t>(it.out) | reinterpret_cast<uintptr_t>(it.out2) |
                  reinterpret_cast<uintptr_t>(it.own)) % 16 == 0;
  for (int p = 0; p < b.npeers; ++p) aligned &= reinterpret_cast<uintptr_t>(it.peer[p]) % 16 == 0;
  const uint64_t nvec = aligned ? n / kVec : 0;
  const uint64_t stride = uint64_t(gridDim.x) * blockDim.x;
  uint64_t v = uint64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  for (; v + (kUnroll - 1) * stride < nvec; v += kUnroll * stride) ReduceVectors<T, kUnroll>(it, b.npeers, v, stride);
  for (; v < nvec; v += stride) ReduceVectors<T, 1>(it, b.npeers, v, stride);
  for (uint64_t i = nvec * kVec + uint64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    float a = ToF(static_cast<const T*>(it.own)[i]);
    for (int p = 0; p < b.npeers; ++p) a += ToF(static_cast<const T*>(it.peer[p])[i]);
    FromF(a, static_cast<T*>(it.out) + i);
    if (it.out2) FromF(a, static_cast<T*>(it.out2) + i);
  }
}

}  // namespace

Status CeReduceLaunch(const CeReduceBatch& b, DType t, int sms, cudaStream_t s, int priority) {
  if (b.items <= 0) return Status::Ok();
  if (b.items > kCeMaxBatch || b.npeers < 1 || b.npeers > kCeMaxRanks - 1) CORUN_FAIL("CeReduceLaunch: bad batch");
  uint64_t most = 0;
  for (int i = 0; i < b.items; ++i) most = most > b.item[i].count ? most : b.item[i].count;
  const uint64_t per_block = uint64_t(kThreads) * (16 / DTypeSize(t)) * kUnroll;  // one unrolled step
  // At most two blocks per SM over the batch, each thread about one unrolled step or more. At 64
  // registers per thread two blocks fill an SM's register file: while resident they leave no room
  // beside them (the one-vector loop took 32), so the kernel's shortness is what lets it pass.
  uint64_t want = (most + per_block - 1) / per_block;
  const uint64_t cap = std::max<uint64_t>(1, uint64_t(2 * sms) / b.items);
  dim3 grid(static_cast<unsigned>(std::max<uint64_t>(1, std::min(want, cap))), b.items);
  // The launch's own priority where asked (the caller's stream may have any).
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributePriority;
  attr[0].val.priority = priority;
  cudaLaunchConfig_t lc = {};
  lc.gridDim = grid;
  lc.blockDim = dim3(kThreads);
  lc.stream = s;
  lc.attrs = attr;
  lc.numAttrs = priority != kCeStreamPriority ? 1 : 0;
  if (t == DType::kBf16)
    CUDACHECK(cudaLaunchKernelEx(&lc, CeReduceKernel<__nv_bfloat16>, b));
  else
    CUDACHECK(cudaLaunchKernelEx(&lc, CeReduceKernel<float>, b));
  return Status::Ok();
}

Status CeReduceLoad(cudaStream_t s) {
  CeReduceBatch b;
  b.items = 1;
  b.npeers = 1;
  b.item[0] = CeReduceItem{};  // count 0: the kernel touches nothing
  CeReduceKernel<__nv_bfloat16><<<1, 32, 0, s>>>(b);
  CeReduceKernel<float><<<1, 32, 0, s>>>(b);
  CUDACHECK(cudaGetLastError());
  CUDACHECK(cudaStreamSynchronize(s));
  return Status::Ok();
}

}  // namespace corun
