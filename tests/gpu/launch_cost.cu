// Launch-bound microbenchmark: host time per cudaLaunchKernel of an empty kernel. Run with and
// without the preload; the difference is the interposer's cost per launch.
//   launch_cost [launches_per_batch] [batches]   -> prints one JSON line
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

__global__ void Empty(int* p) {
  if (p && threadIdx.x == 1 << 30) *p = 0;
}

int main(int argc, char** argv) {
  const int per_batch = argc > 1 ? std::atoi(argv[1]) : 500;  // below the launch-queue depth: host cost only
  const int batches = argc > 2 ? std::atoi(argv[2]) : 200;
  cudaStream_t s;
  cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
  // 128 threads, a grid of many blocks: a compute launch the interposer shapes under shape:K.
  for (int i = 0; i < 1000; ++i) Empty<<<4096, 128, 0, s>>>(nullptr);
  cudaStreamSynchronize(s);
  std::vector<double> ns;
  for (int b = 0; b < batches; ++b) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < per_batch; ++i) Empty<<<4096, 128, 0, s>>>(nullptr);
    const auto t1 = std::chrono::steady_clock::now();
    cudaStreamSynchronize(s);
    ns.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count() / per_batch);
  }
  std::sort(ns.begin(), ns.end());
  const cudaError_t e = cudaGetLastError();
  std::printf("{\"ns_per_launch_median\": %.1f, \"min\": %.1f, \"max\": %.1f, \"batches\": %d, \"per_batch\": %d, "
              "\"error\": \"%s\"}\n",
              ns[ns.size() / 2], ns.front(), ns.back(), batches, per_batch, cudaGetErrorString(e));
  return e == cudaSuccess ? 0 : 1;
}
