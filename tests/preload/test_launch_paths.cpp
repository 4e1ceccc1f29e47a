// Launches through every path a program can take to the driver — the direct symbol, dlsym,
// cuGetProcAddress (both versions, per-thread-stream flag), cuLaunchKernelEx — against the fake
// libcuda. Run twice by CTest: without the preload (every launch must arrive unchanged) and with
// it under CORUN_POLICY=shape:2+priority, CORUN_DENY=denied_ (every rule must show).
#include <cuda.h>

#include "fake_api.h"
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#undef cuGetProcAddress

namespace {

bool Preloaded() {
  const char* e = std::getenv("CORUN_TEST_EXPECT");
  return e && std::string(e) == "shaped";
}

// The 64x64x64 tiled GEMM's footprint: 128 threads, 80 registers, 36864 B: 6 blocks/SM on H100;
// shape:2 needs a 40064 B pad (the occupancy model's answer, checked on the GPU).
constexpr unsigned kTile = 36864, kPad2 = 40064;
unsigned Expected(unsigned shmem) { return Preloaded() ? shmem + kPad2 : shmem; }

CUfunction Gemm() {
  static CUfunction f = fake_function("gemm_like_kernel", 80, 0, 0);
  return f;
}

using LaunchFn = CUresult (*)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                              CUstream, void**, void**);
using LaunchExFn = CUresult (*)(const CUlaunchConfig*, CUfunction, void**, void**);
using ProcV2 = CUresult (*)(const char*, void**, int, cuuint64_t, CUdriverProcAddressQueryResult*);
using ProcV1 = CUresult (*)(const char*, void**, int, cuuint64_t);

void* Lib() {
  static void* h = dlopen("libcuda.so.1", RTLD_NOW);
  return h;
}

CUlaunchConfig Config(unsigned grid, unsigned block, unsigned shmem, CUlaunchAttribute* attrs, unsigned n) {
  CUlaunchConfig c{};
  c.gridDimX = grid;
  c.gridDimY = c.gridDimZ = 1;
  c.blockDimX = block;
  c.blockDimY = c.blockDimZ = 1;
  c.sharedMemBytes = shmem;
  c.attrs = attrs;
  c.numAttrs = n;
  return c;
}

}  // namespace

TEST(LaunchPaths, DirectSymbol) {
  ASSERT_EQ(cuLaunchKernel(Gemm(), 100000, 1, 1, 128, 1, 1, kTile, nullptr, nullptr, nullptr), CUDA_SUCCESS);
  EXPECT_STREQ(fake_last().api, "cuLaunchKernel");
  EXPECT_EQ(fake_last().shmem, Expected(kTile));
}

TEST(LaunchPaths, Dlsym) {
  auto fn = reinterpret_cast<LaunchFn>(dlsym(Lib(), "cuLaunchKernel"));
  ASSERT_NE(fn, nullptr);
  ASSERT_EQ(fn(Gemm(), 100000, 1, 1, 128, 1, 1, kTile, nullptr, nullptr, nullptr), CUDA_SUCCESS);
  EXPECT_EQ(fake_last().shmem, Expected(kTile));
}

TEST(LaunchPaths, GetProcAddressV2AndPerThreadStream) {
  auto proc = reinterpret_cast<ProcV2>(dlsym(Lib(), "cuGetProcAddress_v2"));
  ASSERT_NE(proc, nullptr);
  void* fn = nullptr;
  ASSERT_EQ(proc("cuLaunchKernel", &fn, 13000, 0, nullptr), CUDA_SUCCESS);
  ASSERT_EQ(reinterpret_cast<LaunchFn>(fn)(Gemm(), 100000, 1, 1, 128, 1, 1, kTile, nullptr, nullptr, nullptr), CUDA_SUCCESS);
  EXPECT_STREQ(fake_last().api, "cuLaunchKernel");
  EXPECT_EQ(fake_last().shmem, Expected(kTile));
  ASSERT_EQ(proc("cuLaunchKernel", &fn, 13000, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, nullptr), CUDA_SUCCESS);
  ASSERT_EQ(reinterpret_cast<LaunchFn>(fn)(Gemm(), 100000, 1, 1, 128, 1, 1, kTile, nullptr, nullptr, nullptr), CUDA_SUCCESS);
  EXPECT_STREQ(fake_last().api, "cuLaunchKernel_ptsz");
  EXPECT_EQ(fake_last().shmem, Expected(kTile));
  // cuGetProcAddress asked for itself hands out something that still wraps.
  void* self = nullptr;
  ASSERT_EQ(proc("cuGetProcAddress", &self, 13000, 0, nullptr), CUDA_SUCCESS);
  ASSERT_EQ(reinterpret_cast<ProcV2>(self)("cuLaunchKernelEx", &fn, 13000, 0, nullptr), CUDA_SUCCESS);
  CUlaunchConfig c = Config(100000, 128, kTile, nullptr, 0);
  ASSERT_EQ(reinterpret_cast<LaunchExFn>(fn)(&c, Gemm(), nullptr, nullptr), CUDA_SUCCESS);
  EXPECT_STREQ(fake_last().api, "cuLaunchKernelEx");
  EXPECT_EQ(fake_last().shmem, Expected(kTile));
}

TEST(LaunchPaths, GetProcAddressV1) {
  auto proc = reinterpret_cast<ProcV1>(dlsym(Lib(), "cuGetProcAddress"));
  ASSERT_NE(proc, nullptr);
  void* fn = nullptr;
  ASSERT_EQ(proc("cuLaunchKernelEx", &fn, 11080, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM), CUDA_SUCCESS);
  CUlaunchConfig c = Config(100000, 128, kTile, nullptr, 0);
  ASSERT_EQ(reinterpret_cast<LaunchExFn>(fn)(&c, Gemm(), nullptr, nullptr), CUDA_SUCCESS);
  EXPECT_STREQ(fake_last().api, "cuLaunchKernelEx_ptsz");
  EXPECT_EQ(fake_last().shmem, Expected(kTile));
}

TEST(LaunchPaths, UnknownFunctionsPassThrough) {
  auto proc = reinterpret_cast<ProcV2>(dlsym(Lib(), "cuGetProcAddress_v2"));
  void* fn = nullptr;
  ASSERT_EQ(proc("cuMemAlloc", &fn, 13000, 0, nullptr), CUDA_SUCCESS);
  EXPECT_EQ(fn, dlsym(Lib(), "cuMemAlloc_v2"));
  EXPECT_NE(dlsym(Lib(), "cuMemAlloc_v2"), nullptr);
  EXPECT_EQ(dlsym(Lib(), "no_such_symbol"), nullptr);
}

TEST(Rules, CommunicationGetsTopPriority) {
  CUfunction nccl = fake_function("ncclDevKernel_AllReduce_Sum_bf16_RING_LL", 96, 21568, 0);
  ASSERT_EQ(cuLaunchKernel(nccl, 24, 1, 1, 544, 1, 1, 20000, nullptr, nullptr, nullptr), CUDA_SUCCESS);
  FakeLaunch l = fake_last();
  EXPECT_EQ(l.shmem, 20000u) << "communication kernels are never padded";
  EXPECT_EQ(l.has_prio, Preloaded() ? 1 : 0);
  if (Preloaded()) {
    EXPECT_STREQ(l.api, "cuLaunchKernelEx");
    EXPECT_EQ(l.prio, -5);
  }
  // Through cuLaunchKernelEx with attributes of its own: the priority is replaced, others kept.
  CUlaunchAttribute attrs[2] = {};
  attrs[0].id = CU_LAUNCH_ATTRIBUTE_MEM_SYNC_DOMAIN;
  attrs[1].id = CU_LAUNCH_ATTRIBUTE_PRIORITY;
  attrs[1].value.priority = 0;
  CUlaunchConfig c = Config(24, 544, 20000, attrs, 2);
  ASSERT_EQ(cuLaunchKernelEx(&c, nccl, nullptr, nullptr), CUDA_SUCCESS);
  l = fake_last();
  EXPECT_EQ(l.nattrs, 2);
  EXPECT_EQ(l.prio, Preloaded() ? -5 : 0);
  // More attributes than the wrapper keeps on its stack: none is dropped, the priority is added.
  std::vector<CUlaunchAttribute> many(20);
  for (CUlaunchAttribute& a : many) a.id = CU_LAUNCH_ATTRIBUTE_MEM_SYNC_DOMAIN;
  c = Config(24, 544, 20000, many.data(), static_cast<unsigned>(many.size()));
  ASSERT_EQ(cuLaunchKernelEx(&c, nccl, nullptr, nullptr), CUDA_SUCCESS);
  l = fake_last();
  EXPECT_EQ(l.nattrs, Preloaded() ? 21 : 20);
  EXPECT_EQ(l.has_prio, Preloaded() ? 1 : 0);
}

TEST(Rules, CooperativeAndClusterLaunchesAreNotPadded) {
  CUlaunchAttribute coop{};
  coop.id = CU_LAUNCH_ATTRIBUTE_COOPERATIVE;
  coop.value.cooperative = 1;
  CUlaunchConfig c = Config(100000, 128, kTile, &coop, 1);
  ASSERT_EQ(cuLaunchKernelEx(&c, Gemm(), nullptr, nullptr), CUDA_SUCCESS);
  EXPECT_EQ(fake_last().shmem, kTile);
  CUlaunchAttribute cl{};
  cl.id = CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION;
  cl.value.clusterDim.x = 2;
  cl.value.clusterDim.y = cl.value.clusterDim.z = 1;
  c = Config(100000, 128, kTile, &cl, 1);
  ASSERT_EQ(cuLaunchKernelEx(&c, Gemm(), nullptr, nullptr), CUDA_SUCCESS);
  EXPECT_EQ(fake_last().shmem, kTile);
  CUfunction clustered = fake_function("cluster_required_kernel", 80, 0, 1);
  ASSERT_EQ(cuLaunchKernel(clustered, 100000, 1, 1, 128, 1, 1, kTile, nullptr, nullptr, nullptr), CUDA_SUCCESS);
  EXPECT_EQ(fake_last().shmem, kTile);
}

TEST(Rules, FullyResidentGridsAreNotPadded) {
  // 132 SMs x 6 blocks: the whole grid is resident now; with a cap of 2 it would not be.
  ASSERT_EQ(cuLaunchKernel(Gemm(), 132 * 6, 1, 1, 128, 1, 1, kTile, nullptr, nullptr, nullptr), CUDA_SUCCESS);
  EXPECT_EQ(fake_last().shmem, kTile);
  // 132 x 2 blocks stay resident under the cap: padded.
  ASSERT_EQ(cuLaunchKernel(Gemm(), 132 * 2, 1, 1, 128, 1, 1, kTile, nullptr, nullptr, nullptr), CUDA_SUCCESS);
  EXPECT_EQ(fake_last().shmem, Expected(kTile));
}

TEST(Rules, DenyListAndAtCap) {
  CUfunction denied = fake_function("denied_gemm", 80, 0, 0);
  ASSERT_EQ(cuLaunchKernel(denied, 100000, 1, 1, 128, 1, 1, kTile, nullptr, nullptr, nullptr), CUDA_SUCCESS);
  EXPECT_EQ(fake_last().shmem, kTile);
  // 1024 threads: already 2 blocks/SM, nothing to pad.
  CUfunction big = fake_function("big_block_kernel", 32, 0, 0);
  ASSERT_EQ(cuLaunchKernel(big, 100000, 1, 1, 1024, 1, 1, 0, nullptr, nullptr, nullptr), CUDA_SUCCESS);
  EXPECT_EQ(fake_last().shmem, 0u);
}

TEST(Rules, AttributeRaisedOnceAcrossThreads) {
  CUfunction f = fake_function("threaded_kernel", 80, 0, 0);
  std::vector<std::thread> th;
  std::atomic<int> failures{0};
  for (int t = 0; t < 8; ++t)
    th.emplace_back([&] {
      for (int i = 0; i < 500; ++i)
        if (cuLaunchKernel(f, 100000, 1, 1, 128, 1, 1, kTile, nullptr, nullptr, nullptr) != CUDA_SUCCESS) ++failures;
    });
  for (auto& x : th) x.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(fake_setattr_count(f), Preloaded() ? 1 : 0);
}

int main(int argc, char** argv) {
  if (!dlsym(RTLD_DEFAULT, "fake_function")) {
    std::printf("skipped: a real libcuda.so.1 is loaded in place of the test driver\n");
    return 77;
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
