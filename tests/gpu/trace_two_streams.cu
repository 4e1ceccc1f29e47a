// A small traced program: a compute kernel on one stream beside a device-to-device copy on
// another (a peer copy to GPU 1 when there are two GPUs with peer access), repeated, with an NVTX
// range per step. corun trace must see both kinds, overlapping.
#include <cuda_runtime.h>
#include <nvtx3/nvToolsExt.h>

#include <cstdio>

#define CK(x)                                                                           \
  do {                                                                                  \
    cudaError_t e = (x);                                                                \
    if (e != cudaSuccess) {                                                             \
      std::fprintf(stderr, "trace_two_streams: %s: %s\n", #x, cudaGetErrorString(e));  \
      return 1;                                                                         \
    }                                                                                   \
  } while (0)

__global__ void Spin(float* x, int n, int iters) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  float v = x[i];
  for (int k = 0; k < iters; ++k) v = v * 0.999f + 0.001f;
  x[i] = v;
}

int main() {
  int ndev = 0;
  CK(cudaGetDeviceCount(&ndev));
  int peer = 0;
  if (ndev > 1) CK(cudaDeviceCanAccessPeer(&peer, 0, 1));
  CK(cudaSetDevice(0));
  if (peer) CK(cudaDeviceEnablePeerAccess(1, 0));
  const int n = 1 << 22;
  const size_t bytes = 256u << 20;
  float* x = nullptr;
  char *src = nullptr, *dst = nullptr;
  CK(cudaMalloc(&x, n * sizeof(float)));
  CK(cudaMemset(x, 1, n * sizeof(float)));
  CK(cudaMalloc(&src, bytes));
  CK(cudaMemset(src, 3, bytes));
  if (peer) {
    CK(cudaSetDevice(1));
    CK(cudaMalloc(&dst, bytes));
    CK(cudaSetDevice(0));
  } else {
    CK(cudaMalloc(&dst, bytes));
  }
  cudaStream_t a, b;
  CK(cudaStreamCreateWithFlags(&a, cudaStreamNonBlocking));
  CK(cudaStreamCreateWithFlags(&b, cudaStreamNonBlocking));
  for (int step = 0; step < 12; ++step) {
    nvtxRangePushA("step");
    Spin<<<n / 256, 256, 0, a>>>(x, n, 2000);
    if (peer)
      CK(cudaMemcpyPeerAsync(dst, 1, src, 0, bytes, b));
    else
      CK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, b));
    CK(cudaStreamSynchronize(a));
    CK(cudaStreamSynchronize(b));
    nvtxRangePop();
  }
  CK(cudaGetLastError());
  std::printf("trace_two_streams: %d steps, %s copy\n", 12, peer ? "peer" : "local");
  return 0;
}
