// The occupancy model against the CUDA runtime on this GPU, for kernels limited by threads,
// registers, static and dynamic shared memory. With CORUN_FIXTURE_OUT=FILE the measured cases
// are written as a fixture for the CPU tier (tests/fixtures/occupancy_<sm>.json).
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include "corun/occupancy.h"
#include "device.h"
#include "gemm_tiled.h"

using namespace corun;

namespace {

template <int N>
__global__ void RegKernel(float* out, int iters) {
  float r[N];
#pragma unroll
  for (int i = 0; i < N; ++i) r[i] = out[threadIdx.x + i];
  for (int it = 0; it < iters; ++it)
#pragma unroll
    for (int i = 0; i < N; ++i) r[i] = r[i] * r[(i + 1) % N] + 1.0f;
  float s = 0;
#pragma unroll
  for (int i = 0; i < N; ++i) s += r[i];
  out[threadIdx.x] = s;
}

template <int BYTES>
__global__ void SmemKernel(float* out) {
  __shared__ float buf[BYTES / 4];
  extern __shared__ float dyn[];
  buf[threadIdx.x % (BYTES / 4)] = threadIdx.x;
  __syncthreads();
  out[threadIdx.x] = buf[(threadIdx.x + 1) % (BYTES / 4)] + dyn[0];
}

struct Named {
  const char* name;
  const void* fn;
};

}  // namespace

TEST(GpuOccupancy, MatchesRuntime) {
  DeviceInfo info;
  ASSERT_TRUE(QueryDevice(0, &info).ok());
  const DeviceLimits& d = info.limits;
  std::vector<Named> kernels = {
      {"reg8", reinterpret_cast<const void*>(&RegKernel<8>)},
      {"reg32", reinterpret_cast<const void*>(&RegKernel<32>)},
      {"reg64", reinterpret_cast<const void*>(&RegKernel<64>)},
      {"reg120", reinterpret_cast<const void*>(&RegKernel<120>)},
      {"smem4k", reinterpret_cast<const void*>(&SmemKernel<4096>)},
      {"smem16k", reinterpret_cast<const void*>(&SmemKernel<16384>)},
      {"smem40k", reinterpret_cast<const void*>(&SmemKernel<40960>)},
  };
  nlohmann::json cases = nlohmann::json::array();
  int checked = 0;
  for (const Named& k : kernels) {
    cudaFuncAttributes a{};
    ASSERT_EQ(cudaFuncGetAttributes(&a, k.fn), cudaSuccess);
    ASSERT_EQ(cudaFuncSetAttribute(k.fn, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                   static_cast<int>(d.smem_per_block_optin - a.sharedSizeBytes)),
              cudaSuccess);
    for (int threads : {64, 128, 256, 512, 1024}) {
      if (threads > a.maxThreadsPerBlock) continue;
      for (size_t dyn : {size_t{0}, size_t{8192}, size_t{30000}, size_t{70 * 1024}, size_t{150 * 1024}}) {
        if (a.sharedSizeBytes + dyn > d.smem_per_block_optin) continue;
        int rt = -1;
        ASSERT_EQ(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&rt, k.fn, threads, dyn), cudaSuccess);
        const KernelFootprint fp{threads, a.numRegs, a.sharedSizeBytes, dyn};
        EXPECT_EQ(ResidentBlocks(d, fp).blocks, rt)
            << k.name << " threads " << threads << " regs " << a.numRegs << " static " << a.sharedSizeBytes
            << " dyn " << dyn;
        cases.push_back({{"kernel", k.name}, {"threads", threads}, {"regs", a.numRegs},
                         {"static_smem", a.sharedSizeBytes}, {"dynamic_smem", dyn}, {"blocks", rt}});
        ++checked;
      }
    }
  }
  // corun's GEMM with the pad of every cap: the pad must deliver exactly the cap.
  for (TileConfig t : {TileConfig::k64x64x32, TileConfig::k64x64x64}) {
    KernelFootprint fp;
    ASSERT_TRUE(TiledGemm::Footprint(t, &fp).ok());
    const int natural = ResidentBlocks(d, fp).blocks;
    int rt0 = 0;
    ASSERT_TRUE(TiledGemm::RuntimeOccupancy(t, 0, &rt0).ok());
    EXPECT_EQ(natural, rt0) << TileConfigName(t);
    for (int cap = 1; cap < natural; ++cap) {
      auto pad = PadForCap(d, fp, cap);
      ASSERT_TRUE(pad.has_value());
      int rt = 0;
      ASSERT_TRUE(TiledGemm::RuntimeOccupancy(t, *pad, &rt).ok());
      EXPECT_EQ(rt, cap) << TileConfigName(t) << " pad " << *pad;
      cases.push_back({{"kernel", TileConfigName(t)}, {"threads", fp.threads}, {"regs", fp.regs_per_thread},
                       {"static_smem", fp.static_smem}, {"dynamic_smem", fp.dynamic_smem + *pad}, {"blocks", rt}});
      ++checked;
    }
  }
  EXPECT_GE(checked, 20);
  if (const char* out = std::getenv("CORUN_FIXTURE_OUT")) {
    nlohmann::json j = {{"device", info.name},
                        {"limits",
                         {{"sm_major", d.sm_major}, {"sm_minor", d.sm_minor}, {"max_threads_per_sm", d.max_threads_per_sm},
                          {"max_blocks_per_sm", d.max_blocks_per_sm}, {"regs_per_sm", d.regs_per_sm},
                          {"regs_per_block", d.regs_per_block}, {"smem_per_sm", d.smem_per_sm},
                          {"smem_per_block_optin", d.smem_per_block_optin},
                          {"smem_reserved_per_block", d.smem_reserved_per_block}}},
                        {"cases", cases}};
    std::ofstream(out) << j.dump(1) << "\n";
  }
}

TEST(GpuOccupancy, TableMatchesDevice) {
  DeviceInfo info;
  ASSERT_TRUE(QueryDevice(0, &info).ok());
  auto t = LimitsForArch(info.sm_major, info.sm_minor);
  ASSERT_TRUE(t.has_value()) << "sm_" << info.sm_major << info.sm_minor << " missing from the table";
  EXPECT_EQ(t->smem_per_sm, info.limits.smem_per_sm);
  EXPECT_EQ(t->smem_per_block_optin, info.limits.smem_per_block_optin);
  EXPECT_EQ(t->smem_reserved_per_block, info.limits.smem_reserved_per_block);
  EXPECT_EQ(t->max_blocks_per_sm, info.limits.max_blocks_per_sm);
  EXPECT_EQ(t->max_threads_per_sm, info.limits.max_threads_per_sm);
  EXPECT_EQ(t->regs_per_sm, info.limits.regs_per_sm);
}
