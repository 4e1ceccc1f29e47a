// The interposer's own cost per launch, without GPU noise: launches of a compute and a
// communication kernel through cuGetProcAddress (the CUDA runtime's path) into the fake driver.
// Run it plain and under `corun -p shape:2+priority --`; the difference is the hook's cost.
//   hook_cost [launches] -> one JSON line, ns per launch (median of 15 batches)
#include <cuda.h>
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>


int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 200000;
  using FakeFn = CUfunction (*)(const char*, int, int, int);
  auto fake_function = reinterpret_cast<FakeFn>(dlsym(RTLD_DEFAULT, "fake_function"));
  if (!fake_function) {
    std::printf("{\"skipped\": \"a real libcuda.so.1 is loaded in place of the test driver\"}\n");
    return 0;
  }
  using ProcV2 = CUresult (*)(const char*, void**, int, cuuint64_t, CUdriverProcAddressQueryResult*);
  using LaunchFn = CUresult (*)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                                CUstream, void**, void**);
  auto proc = reinterpret_cast<ProcV2>(dlsym(dlopen("libcuda.so.1", RTLD_NOW), "cuGetProcAddress_v2"));
  void* fn = nullptr;
  if (!proc || proc("cuLaunchKernel", &fn, 13000, 0, nullptr) != CUDA_SUCCESS) return 1;
  auto launch = reinterpret_cast<LaunchFn>(fn);
  CUfunction gemm = fake_function("gemm_like_kernel", 80, 0, 0);
  CUfunction nccl = fake_function("ncclDevKernel_AllReduce", 96, 21568, 0);
  std::vector<double> ns;
  for (int b = 0; b < 15; ++b) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i) {
      if (launch(i % 8 ? gemm : nccl, 100000, 1, 1, i % 8 ? 128 : 544, 1, 1, i % 8 ? 36864 : 20000, nullptr, nullptr, nullptr) != CUDA_SUCCESS)
        return 1;
    }
    ns.push_back(std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() / n);
  }
  std::sort(ns.begin(), ns.end());
  std::printf("{\"ns_per_launch_median\": %.1f, \"min\": %.1f, \"max\": %.1f, \"launches\": %d}\n", ns[7], ns[0], ns[14], n);
  return 0;
}
