// A program that manages its kernels' dynamic-shared-memory limit itself (CUTLASS's initialize()
// sets it to what the next launch needs), against the fake libcuda that enforces the limit as the
// driver does. Every launch must succeed with and without the preload; under
// CORUN_POLICY=shape:2+priority the padded launches are really padded, and what the program saw
// arrive at the driver is written to $CORUN_TEST_OBSERVED for check_report.py to compare with the
// interposer's report and summary line.
#include <cuda.h>
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "fake_api.h"

#undef cuGetProcAddress

namespace {

bool Preloaded() {
  const char* e = std::getenv("CORUN_TEST_EXPECT");
  return e && std::string(e) == "shaped";
}

constexpr int k64K = 64 * 1024;
constexpr CUfunction_attribute kMaxDyn = CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES;

using LaunchFn = CUresult (*)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                              CUstream, void**, void**);
using LaunchExFn = CUresult (*)(const CUlaunchConfig*, CUfunction, void**, void**);
using ProcV2 = CUresult (*)(const char*, void**, int, cuuint64_t, CUdriverProcAddressQueryResult*);

// The driver functions as the CUDA runtime finds them: through cuGetProcAddress.
template <typename T>
T Proc(const char* name) {
  static void* lib = dlopen("libcuda.so.1", RTLD_NOW);
  static auto proc = reinterpret_cast<ProcV2>(dlsym(lib, "cuGetProcAddress_v2"));
  void* fn = nullptr;
  if (!proc || proc(name, &fn, 13000, 0, nullptr) != CUDA_SUCCESS) return nullptr;
  return reinterpret_cast<T>(fn);
}

// What arrived at the driver, as the program sees it.
struct Seen {
  int launches = 0, failed = 0, shaped = 0, comm = 0, prioritised = 0, dropped = 0;
} g_seen;

// One launch of 100000 blocks x `block` threads; returns its result and what the driver got.
CUresult Do(CUfunction f, unsigned block, unsigned shmem, bool comm = false, FakeLaunch* got = nullptr) {
  static auto launch = Proc<LaunchFn>("cuLaunchKernel");
  const int before = fake_launch_count();
  const CUresult r = launch(f, comm ? 24 : 100000, 1, 1, block, 1, 1, shmem, nullptr, nullptr, nullptr);
  ++g_seen.launches;
  if (r != CUDA_SUCCESS) {
    ++g_seen.failed;
    return r;
  }
  EXPECT_EQ(fake_launch_count(), before + 1) << "one accepted launch per launch call";
  const FakeLaunch l = fake_last();
  if (got) *got = l;
  if (l.shmem > shmem) ++g_seen.shaped;
  if (comm) {
    ++g_seen.comm;
    if (l.has_prio) ++g_seen.prioritised;
    else if (Preloaded()) ++g_seen.dropped;
  }
  return r;
}

}  // namespace

// The report of issue 12: set 64 KiB, launch, three times. Fine without the preload; calls 2 and
// 3 used to fail under shape:2 because the interposer's cached limit hid the program's lowering.
TEST(ProgramLimit, SetBeforeEveryLaunch) {
  CUfunction f = fake_function("cutlass_like_kernel", 80, 0, 0);
  auto set = Proc<CUresult (*)(CUfunction, CUfunction_attribute, int)>("cuFuncSetAttribute");
  auto get = Proc<CUresult (*)(int*, CUfunction_attribute, CUfunction)>("cuFuncGetAttribute");
  ASSERT_NE(set, nullptr);
  ASSERT_NE(get, nullptr);
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(set(f, kMaxDyn, k64K), CUDA_SUCCESS) << "call " << i;
    FakeLaunch l{};
    ASSERT_EQ(Do(f, 128, k64K, false, &l), CUDA_SUCCESS) << "call " << i;
    if (Preloaded())
      EXPECT_GT(l.shmem, static_cast<unsigned>(k64K)) << "call " << i << " not padded";
    else
      EXPECT_EQ(l.shmem, static_cast<unsigned>(k64K));
    int v = 0;
    ASSERT_EQ(get(&v, kMaxDyn, f), CUDA_SUCCESS);
    EXPECT_EQ(v, k64K) << "the program reads its own limit back";
  }
}

// Lowered where the interposer cannot see it: the padded launch is refused, re-issued as the
// program made it, and the next one re-reads the limit and is padded again.
TEST(ProgramLimit, LoweredUnseen) {
  CUfunction f = fake_function("lowered_unseen_kernel", 80, 0, 0);
  ASSERT_EQ(cuFuncSetAttribute(f, kMaxDyn, k64K), CUDA_SUCCESS);
  FakeLaunch l{};
  ASSERT_EQ(Do(f, 128, k64K, false, &l), CUDA_SUCCESS);
  EXPECT_EQ(l.shmem > static_cast<unsigned>(k64K), Preloaded());
  fake_set_limit_unseen(f, k64K);
  ASSERT_EQ(Do(f, 128, k64K, false, &l), CUDA_SUCCESS);
  EXPECT_EQ(l.shmem, static_cast<unsigned>(k64K)) << "the refused padded launch is re-issued unpadded";
  ASSERT_EQ(Do(f, 128, k64K, false, &l), CUDA_SUCCESS);
  EXPECT_EQ(l.shmem > static_cast<unsigned>(k64K), Preloaded()) << "padded again after re-reading the limit";
}

// A CUkernel has one limit per device: each device's is followed and raised on its own.
TEST(ProgramLimit, KernelHandlePerDevice) {
  CUkernel k = fake_kernel("library_kernel", 80, 0);
  auto kf = reinterpret_cast<CUfunction>(k);
  auto set = Proc<CUresult (*)(CUfunction_attribute, int, CUkernel, CUdevice)>("cuKernelSetAttribute");
  auto get = Proc<CUresult (*)(int*, CUfunction_attribute, CUkernel, CUdevice)>("cuKernelGetAttribute");
  ASSERT_NE(set, nullptr);
  ASSERT_NE(get, nullptr);
  const int want[2] = {k64K, 40000};
  for (int round = 0; round < 2; ++round)
    for (int dev = 0; dev < 2; ++dev) {
      fake_set_device(dev);
      ASSERT_EQ(set(kMaxDyn, want[dev], k, dev), CUDA_SUCCESS);
      FakeLaunch l{};
      ASSERT_EQ(Do(kf, 128, want[dev], false, &l), CUDA_SUCCESS) << "device " << dev;
      EXPECT_EQ(l.shmem > static_cast<unsigned>(want[dev]), Preloaded()) << "device " << dev;
    }
  fake_set_device(0);
  for (int dev = 0; dev < 2; ++dev) {
    int v = 0;
    ASSERT_EQ(get(&v, kMaxDyn, k, dev), CUDA_SUCCESS);
    EXPECT_EQ(v, want[dev]) << "the program reads its own limit back on device " << dev;
    if (Preloaded()) EXPECT_GT(fake_limit(kf, dev), want[dev]) << "raised on device " << dev;
  }
}

// Set through the CUkernel, launched through the CUfunction resolved from it (one limit for both):
// padded, never refused, and both handles read back the program's value.
TEST(ProgramLimit, SetThroughKernelLaunchedThroughFunction) {
  CUkernel k = fake_kernel("aliased_kernel", 80, 0);
  CUfunction f = fake_kernel_function(k);
  const int refused0 = fake_refused_count();
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(cuKernelSetAttribute(kMaxDyn, k64K, k, 0), CUDA_SUCCESS);
    FakeLaunch l{};
    ASSERT_EQ(Do(f, 128, k64K, false, &l), CUDA_SUCCESS) << "call " << i;
    EXPECT_EQ(l.shmem > static_cast<unsigned>(k64K), Preloaded()) << "call " << i;
    int vk = 0, vf = 0;
    ASSERT_EQ(cuKernelGetAttribute(&vk, kMaxDyn, k, 0), CUDA_SUCCESS);
    ASSERT_EQ(cuFuncGetAttribute(&vf, kMaxDyn, f), CUDA_SUCCESS);
    EXPECT_EQ(vk, k64K);
    EXPECT_EQ(vf, k64K);
  }
  EXPECT_EQ(fake_refused_count(), refused0) << "no padded launch refused";
}

// The driver refuses the padded launch although the limit fits: re-issued unpadded, counted as
// not shaped; after two refusals the function is no longer padded.
TEST(Fallback, RefusedPaddedLaunchIsReissued) {
  CUfunction f = fake_function("refused_when_padded", 80, 0, 0);
  fake_refuse_above(f, k64K);
  ASSERT_EQ(cuFuncSetAttribute(f, kMaxDyn, k64K), CUDA_SUCCESS);
  const int refused0 = fake_refused_count();
  for (int i = 0; i < 3; ++i) {
    FakeLaunch l{};
    ASSERT_EQ(Do(f, 128, k64K, false, &l), CUDA_SUCCESS) << "call " << i;
    EXPECT_EQ(l.shmem, static_cast<unsigned>(k64K));
  }
  EXPECT_EQ(fake_refused_count() - refused0, Preloaded() ? 2 : 0);
}

// The driver refuses to raise the limit: the launch goes as made, with its own skip reason.
TEST(Fallback, FailedRaiseIsItsOwnReason) {
  CUfunction f = fake_function("raise_refused", 80, 0, 0);
  fake_cap_limit(f, k64K);
  ASSERT_EQ(cuFuncSetAttribute(f, kMaxDyn, k64K), CUDA_SUCCESS);
  FakeLaunch l{};
  ASSERT_EQ(Do(f, 128, k64K, false, &l), CUDA_SUCCESS);
  EXPECT_EQ(l.shmem, static_cast<unsigned>(k64K));
}

// A launch over the program's own limit fails as it would without the preload, and is counted failed.
TEST(Fallback, ProgramsOwnFailure) {
  CUfunction f = fake_function("over_its_own_limit", 80, 0, 0);  // limit 48 KiB
  EXPECT_EQ(Do(f, 128, 60000), CUDA_ERROR_INVALID_VALUE);
}

// prioritised counts launches that carried the attribute and were accepted, nothing else.
TEST(Priority, CountsWhatCarriedIt) {
  CUfunction nccl = fake_function("ncclDevKernel_AllReduce_Sum_f32_RING_LL", 96, 21568, 0);
  FakeLaunch l{};
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(Do(nccl, 544, 20000, true, &l), CUDA_SUCCESS);
    EXPECT_EQ(l.has_prio, Preloaded() ? 1 : 0);
  }
  fake_refuse_priority(1);
  ASSERT_EQ(Do(nccl, 544, 20000, true, &l), CUDA_SUCCESS) << "a refused priority never fails the launch";
  EXPECT_EQ(l.has_prio, 0);
  fake_refuse_priority(0);
  ASSERT_EQ(Do(nccl, 544, 20000, true, &l), CUDA_SUCCESS);
  EXPECT_EQ(l.has_prio, Preloaded() ? 1 : 0);
}

int main(int argc, char** argv) {
  if (!dlsym(RTLD_DEFAULT, "fake_kernel")) {
    std::printf("skipped: a real libcuda.so.1 is loaded in place of the test driver\n");
    return 77;
  }
  ::testing::InitGoogleTest(&argc, argv);
  const int rc = RUN_ALL_TESTS();
  if (const char* path = std::getenv("CORUN_TEST_OBSERVED")) {
    FILE* f = std::fopen(path, "w");
    if (!f) return 1;
    std::fprintf(f,
                 "{\"launches\": %d, \"failed\": %d, \"shaped\": %d, \"communication\": %d, \"prioritised\": %d, "
                 "\"priority_dropped\": %d}\n",
                 g_seen.launches, g_seen.failed, g_seen.shaped, g_seen.comm, g_seen.prioritised, g_seen.dropped);
    std::fclose(f);
  }
  return rc;
}
