// corun's own tiled GEMM (bf16 in, fp32 accumulate, bf16 out): C[M,N] = A[M,K] * B[N,K]^T with
// 64x64 block tiles and a 32- or 64-deep K tile, tensor cores through WMMA. Its shared memory is
// what limits its occupancy, as in the paper's kernel class, and it takes a dynamic-shared-memory
// pad that it never touches: the occupancy-shaping knob.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <string>

#include "corun/occupancy.h"
#include "corun/smid.h"
#include "corun/status.h"

namespace corun {

enum class TileConfig { k64x64x32, k64x64x64 };
const char* TileConfigName(TileConfig t);  // "tiled64x64x32" / "tiled64x64x64"
bool ParseTileConfig(const std::string& s, TileConfig* t);

struct TiledGemm {
  static constexpr int kThreads = 128;
  static constexpr int kTileM = 64, kTileN = 64;
  static int TileK(TileConfig t) { return t == TileConfig::k64x64x32 ? 32 : 64; }
  // Shared memory the kernel itself uses (the double-buffered tiles), passed as dynamic smem.
  static size_t TileBytes(TileConfig t);
  // Threads, registers and shared memory of one block, pad excluded.
  static Status Footprint(TileConfig t, KernelFootprint* fp);
  // Resident blocks per SM with this pad, as the CUDA runtime computes it.
  static Status RuntimeOccupancy(TileConfig t, size_t pad, int* blocks);
  // A shape error, or "" when the kernel supports M, N, K.
  static std::string CheckShape(int64_t m, int64_t n, int64_t k, TileConfig t);
  // `stamps` (device memory, Blocks(m, n) entries, block (x, y) at y * gridDim.x + x): each block
  // stamps its SM and %globaltimer at start and end (the %smid probe), in an instance of the
  // kernel of its own with the same footprint; null: the plain kernel, unchanged.
  static Status Launch(TileConfig t, const __nv_bfloat16* a, const __nv_bfloat16* b, __nv_bfloat16* c,
                       int64_t m, int64_t n, int64_t k, size_t pad, cudaStream_t stream,
                       BlockStamp* stamps = nullptr);
  static int64_t Blocks(int64_t m, int64_t n);
};

// A one-thread kernel that stamps %globaltimer and %smid into `slot` (device memory) when it runs:
// the %smid probe's markers around the collective on the communication stream.
Status LaunchTimeMark(BlockStamp* slot, cudaStream_t stream);

}  // namespace corun
