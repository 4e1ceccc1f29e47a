// A program that sets its kernel's dynamic-shared-memory limit to exactly what the next launch
// needs before every launch (as CUTLASS's initialize() does), lowering it as often as raising it,
// also around a CUDA graph. Under `corun -p shape:2+priority` every launch must succeed, every
// result must equal the host reference, and the program must read back the limit it set.
// Exit 0 only if all hold; CTest runs it plain and under corun (then checks the report's counts).
#include <cuda_runtime.h>

#include <cstdio>
#include <vector>

static int g_failed = 0;
#define CHECK(cond, ...)                    \
  do {                                      \
    if (!(cond)) {                          \
      std::printf("FAIL ");                 \
      std::printf(__VA_ARGS__);             \
      std::printf(" (line %d)\n", __LINE__); \
      ++g_failed;                           \
    }                                       \
  } while (0)

constexpr int kThreads = 128, kBlocks = 4096, kN = kThreads * kBlocks;

// Touches the whole dynamic shared memory it was given: a launch with less than it asks for
// would compute something else.
__global__ void UsesDynamicSmem(const float* x, float* out, int floats) {
  extern __shared__ float smem[];
  const int t = threadIdx.x;
  const size_t base = static_cast<size_t>(blockIdx.x) * blockDim.x;
  for (int j = t; j < floats; j += blockDim.x) smem[j] = x[base + (j % blockDim.x)] + float(j);
  __syncthreads();
  out[base + t] = smem[t] + smem[floats - 1 - t];
}

static float Reference(const std::vector<float>& x, int i, int floats) {
  const int t = i % kThreads, base = i - t;
  const int j = floats - 1 - t;
  return (x[base + t] + float(t)) + (x[base + j % kThreads] + float(j));
}

static int g_launches = 0;

// Sets the limit to `bytes` and checks that the program reads it back.
static void SetLimit(int bytes) {
  CHECK(cudaFuncSetAttribute(UsesDynamicSmem, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes) == cudaSuccess,
        "cudaFuncSetAttribute(%d)", bytes);
  cudaFuncAttributes a{};
  CHECK(cudaFuncGetAttributes(&a, UsesDynamicSmem) == cudaSuccess && a.maxDynamicSharedSizeBytes == bytes,
        "read back limit %d, want %d", a.maxDynamicSharedSizeBytes, bytes);
}

static void Launch(const float* x, float* out, int bytes, cudaStream_t s) {
  UsesDynamicSmem<<<kBlocks, kThreads, bytes, s>>>(x, out, bytes / 4);
  const cudaError_t e = cudaGetLastError();
  CHECK(e == cudaSuccess, "launch %d with %d B: %s", g_launches, bytes, cudaGetErrorString(e));
  ++g_launches;
}

static void Verify(const std::vector<float>& hx, const float* out, int bytes, const char* what) {
  std::vector<float> h(kN);
  cudaMemcpy(h.data(), out, kN * sizeof(float), cudaMemcpyDeviceToHost);
  int wrong = 0;
  for (int i = 0; i < kN; ++i) wrong += h[i] != Reference(hx, i, bytes / 4);
  CHECK(wrong == 0, "%s: %d of %d results differ from the reference", what, wrong, kN);
}

int main() {
  std::vector<float> hx(kN);
  for (int i = 0; i < kN; ++i) hx[i] = float(i % 13);
  float *x, *out, *gout;
  cudaMalloc(&x, kN * sizeof(float));
  cudaMalloc(&out, kN * sizeof(float));
  cudaMalloc(&gout, kN * sizeof(float));
  cudaMemcpy(x, hx.data(), kN * sizeof(float), cudaMemcpyHostToDevice);
  cudaStream_t s;
  cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);

  // Direct launches, the limit set before each: up, down, up, down.
  const int sizes[] = {64 * 1024, 40 * 1024, 64 * 1024, 48 * 1024, 96 * 1024, 32 * 1024};
  for (int round = 0; round < 2; ++round)
    for (int bytes : sizes) {
      cudaMemsetAsync(out, 0, kN * sizeof(float), s);
      SetLimit(bytes);
      Launch(x, out, bytes, s);
      CHECK(cudaStreamSynchronize(s) == cudaSuccess, "sync after %d B", bytes);
      Verify(hx, out, bytes, "direct launch");
    }

  // A graph captured at 64 KiB, replayed after the program lowered the limit for a direct launch
  // and set it back.
  cudaGraph_t g = nullptr;
  cudaGraphExec_t ge = nullptr;
  SetLimit(64 * 1024);
  CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal) == cudaSuccess, "begin capture");
  Launch(x, gout, 64 * 1024, s);
  CHECK(cudaStreamEndCapture(s, &g) == cudaSuccess, "end capture");
  CHECK(cudaGraphInstantiate(&ge, g, 0) == cudaSuccess, "instantiate");
  CHECK(cudaGraphLaunch(ge, s) == cudaSuccess, "graph launch 1");
  SetLimit(40 * 1024);
  Launch(x, out, 40 * 1024, s);
  SetLimit(64 * 1024);
  CHECK(cudaGraphLaunch(ge, s) == cudaSuccess, "graph launch 2");
  CHECK(cudaStreamSynchronize(s) == cudaSuccess, "sync after the graph");
  Verify(hx, out, 40 * 1024, "direct launch between graph replays");
  Verify(hx, gout, 64 * 1024, "graph replays");
  if (ge) cudaGraphExecDestroy(ge);
  if (g) cudaGraphDestroy(g);

  std::printf("%d launches, %d failed checks\n", g_launches, g_failed);
  cudaStreamDestroy(s);
  cudaFree(x);
  cudaFree(out);
  cudaFree(gout);
  return g_failed ? 1 : 0;
}
