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

// Claimed tiles (CeReduceLaunch's `claim`): kTileSteps unrolled steps of the block's threads.
constexpr int kTileSteps = 2;
template <typename T>
__host__ __device__ constexpr uint64_t TileElems() {
  return uint64_t(kThreads) * kUnroll * kTileSteps * (16 / sizeof(T));
}

// Elements [e0, e1) of one item by one block: vectors where the item is aligned (e0 is a
// multiple of the tile, so of the vector), single elements for the rest.
template <typename T>
__device__ __forceinline__ void ReduceTile(const CeReduceItem& it, int npeers, bool aligned, uint64_t e0, uint64_t e1) {
  constexpr int kVec = 16 / sizeof(T);
  uint64_t done = e0;
  if (aligned) {
    const uint64_t v0 = e0 / kVec, nv = (e1 - e0) / kVec;
    uint64_t v = threadIdx.x;
    for (; v + (kUnroll - 1) * kThreads < nv; v += kUnroll * kThreads) ReduceVectors<T, kUnroll>(it, npeers, v0 + v, kThreads);
    for (; v < nv; v += kThreads) ReduceVectors<T, 1>(it, npeers, v0 + v, kThreads);
    done = e0 + nv * kVec;
  }
  for (uint64_t i = done + threadIdx.x; i < e1; i += kThreads) {
    float a = ToF(static_cast<const T*>(it.own)[i]);
    for (int p = 0; p < npeers; ++p) a += ToF(static_cast<const T*>(it.peer[p])[i]);
    FromF(a, static_cast<T*>(it.out) + i);
    if (it.out2) FromF(a, static_cast<T*>(it.out2) + i);
  }
}

// One block per claim: thread 0 claims the next tile while the block sums the current one.
template <typename T>
__global__ void __launch_bounds__(kThreads, 2) CeReduceClaimKernel(CeReduceBatch b, uint32_t* claim) {
  __shared__ uint32_t next[2];
  const uint32_t tiles = b.tile_end[b.items - 1];
  if (threadIdx.x == 0) next[0] = atomicAdd(&claim[0], 1u);
  __syncthreads();
  for (int k = 0;; k ^= 1) {
    const uint32_t t = next[k];
    if (t >= tiles) break;
    if (threadIdx.x == 0) next[k ^ 1] = atomicAdd(&claim[0], 1u);
    int i = 0;
    while (t >= b.tile_end[i]) ++i;
    const CeReduceItem& it = b.item[i];
    bool aligned = (reinterpret_cast<uintptr_t>(it.out) | reinterpret_cast<uintptr_t>(it.out2) |
                    reinterpret_cast<uintptr_t>(it.own)) % 16 == 0;
    for (int p = 0; p < b.npeers; ++p) aligned &= reinterpret_cast<uintptr_t>(it.peer[p]) % 16 == 0;
    const uint64_t e0 = uint64_t(t - (i ? b.tile_end[i - 1] : 0)) * TileElems<T>();
    const uint64_t e1 = e0 + TileElems<T>();
    ReduceTile<T>(it, b.npeers, aligned, e0, e1 < it.count ? e1 : it.count);
    __syncthreads();  // next[k ^ 1] written; every thread has read next[k]
  }
  // Every block has made its one failed claim before it counts itself out: the last one out
  // leaves the words zeroed for the next launch that uses them.
  if (threadIdx.x == 0) {
    __threadfence();
    if (atomicAdd(&claim[1], 1u) == gridDim.x - 1) {
      atomicExch(&claim[0], 0u);
      atomicExch(&claim[1], 0u);
    }
  }
}

}  // namespace

Status CeReduceLaunch(const CeReduceBatch& b, DType t, int sms, cudaStream_t s, int priority, uint32_t* claim) {
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
  CeReduceBatch cb;
  if (claim) {  // tiles over the whole batch, at most two blocks per SM
    cb = b;
    const uint64_t tile = t == DType::kBf16 ? TileElems<__nv_bfloat16>() : TileElems<float>();
    uint64_t sum = 0;
    for (int i = 0; i < b.items; ++i) {
      sum += (b.item[i].count + tile - 1) / tile;
      if (sum >= UINT32_MAX - 1024) CORUN_FAIL("CeReduceLaunch: too many tiles");
      cb.tile_end[i] = static_cast<uint32_t>(sum);
    }
    grid = dim3(static_cast<unsigned>(std::max<uint64_t>(1, std::min<uint64_t>(sum, 2 * sms))), 1);
  }
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
  if (claim && t == DType::kBf16)
    CUDACHECK(cudaLaunchKernelEx(&lc, CeReduceClaimKernel<__nv_bfloat16>, cb, claim));
  else if (claim)
    CUDACHECK(cudaLaunchKernelEx(&lc, CeReduceClaimKernel<float>, cb, claim));
  else if (t == DType::kBf16)
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
  // Zero tiles: every block claims once, fails and counts itself out (the words end zeroed).
  uint32_t* w = nullptr;
  CUDACHECK(cudaMallocAsync(reinterpret_cast<void**>(&w), kCeClaimWords * sizeof(uint32_t), s));
  CUDACHECK(cudaMemsetAsync(w, 0, kCeClaimWords * sizeof(uint32_t), s));
  CeReduceClaimKernel<__nv_bfloat16><<<1, 32, 0, s>>>(b, w);
  CeReduceClaimKernel<float><<<1, 32, 0, s>>>(b, w);
  CUDACHECK(cudaFreeAsync(w, s));
  CUDACHECK(cudaGetLastError());
  CUDACHECK(cudaStreamSynchronize(s));
  return Status::Ok();
}

}  // namespace corun
