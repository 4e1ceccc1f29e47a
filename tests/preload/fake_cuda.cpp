// A stand-in libcuda.so.1 for the CPU tests of the interposer: it answers the few driver calls
// the interposer and the test programs make, as an H100 would, and records every launch.
#include <cuda.h>

#include "fake_cuda.h"

#include <atomic>
#include <cstring>
#include <mutex>

#undef cuGetProcAddress

struct FakeFunc {
  char name[96];
  int regs, static_smem, cluster;
  int max_dyn;
  std::atomic<int> setattr{0};
};


namespace {
std::mutex g_mu;
FakeLaunch g_last{};
std::atomic<int> g_count{0};

CUresult Record(const char* api, CUfunction f, unsigned grid, unsigned block, unsigned shmem,
                const CUlaunchAttribute* attrs, unsigned n) {
  auto* ff = reinterpret_cast<FakeFunc*>(f);
  if (!ff) return CUDA_ERROR_INVALID_HANDLE;
  // Like the driver: more dynamic smem than the function allows is an error.
  if (static_cast<int>(shmem) > ff->max_dyn) return CUDA_ERROR_INVALID_VALUE;
  std::lock_guard<std::mutex> l(g_mu);
  FakeLaunch x{};
  std::strncpy(x.api, api, sizeof(x.api) - 1);
  std::strncpy(x.name, ff->name, sizeof(x.name) - 1);
  x.grid = grid;
  x.block = block;
  x.shmem = shmem;
  x.nattrs = static_cast<int>(n);
  for (unsigned i = 0; i < n; ++i) {
    if (attrs[i].id == CU_LAUNCH_ATTRIBUTE_PRIORITY) {
      x.has_prio = 1;
      x.prio = attrs[i].value.priority;
    }
    if (attrs[i].id == CU_LAUNCH_ATTRIBUTE_COOPERATIVE) x.coop = attrs[i].value.cooperative;
  }
  g_last = x;
  g_count++;
  return CUDA_SUCCESS;
}
}  // namespace

extern "C" {

CUfunction fake_function(const char* name, int regs, int static_smem, int cluster) {
  auto* f = new FakeFunc{};
  std::strncpy(f->name, name, sizeof(f->name) - 1);
  f->regs = regs;
  f->static_smem = static_smem;
  f->cluster = cluster;
  f->max_dyn = 48 * 1024 - static_smem;
  return reinterpret_cast<CUfunction>(f);
}
FakeLaunch fake_last() {
  std::lock_guard<std::mutex> l(g_mu);
  return g_last;
}
int fake_launch_count() { return g_count.load(); }
int fake_setattr_count(CUfunction f) { return reinterpret_cast<FakeFunc*>(f)->setattr.load(); }

CUresult cuLaunchKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                        unsigned shmem, CUstream, void**, void**) {
  return Record("cuLaunchKernel", f, gx * gy * gz, bx * by * bz, shmem, nullptr, 0);
}
CUresult cuLaunchKernel_ptsz(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                             unsigned bz, unsigned shmem, CUstream, void**, void**) {
  return Record("cuLaunchKernel_ptsz", f, gx * gy * gz, bx * by * bz, shmem, nullptr, 0);
}
CUresult cuLaunchKernelEx(const CUlaunchConfig* c, CUfunction f, void**, void**) {
  return Record("cuLaunchKernelEx", f, c->gridDimX * c->gridDimY * c->gridDimZ, c->blockDimX * c->blockDimY * c->blockDimZ,
                c->sharedMemBytes, c->attrs, c->numAttrs);
}
CUresult cuLaunchKernelEx_ptsz(const CUlaunchConfig* c, CUfunction f, void**, void**) {
  return Record("cuLaunchKernelEx_ptsz", f, c->gridDimX * c->gridDimY * c->gridDimZ,
                c->blockDimX * c->blockDimY * c->blockDimZ, c->sharedMemBytes, c->attrs, c->numAttrs);
}
CUresult cuFuncGetName(const char** name, CUfunction f) {
  *name = reinterpret_cast<FakeFunc*>(f)->name;
  return CUDA_SUCCESS;
}
CUresult cuFuncGetAttribute(int* v, CUfunction_attribute a, CUfunction f) {
  auto* ff = reinterpret_cast<FakeFunc*>(f);
  switch (a) {
    case CU_FUNC_ATTRIBUTE_NUM_REGS: *v = ff->regs; return CUDA_SUCCESS;
    case CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES: *v = ff->static_smem; return CUDA_SUCCESS;
    case CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES: *v = ff->max_dyn; return CUDA_SUCCESS;
    case CU_FUNC_ATTRIBUTE_CLUSTER_SIZE_MUST_BE_SET: *v = ff->cluster; return CUDA_SUCCESS;
    case CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_WIDTH: *v = ff->cluster ? 2 : 0; return CUDA_SUCCESS;
    default: return CUDA_ERROR_NOT_SUPPORTED;
  }
}
CUresult cuFuncSetAttribute(CUfunction f, CUfunction_attribute a, int v) {
  auto* ff = reinterpret_cast<FakeFunc*>(f);
  if (a != CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES) return CUDA_ERROR_NOT_SUPPORTED;
  if (v + ff->static_smem > 227 * 1024) return CUDA_ERROR_INVALID_VALUE;
  ff->max_dyn = v;
  ff->setattr++;
  return CUDA_SUCCESS;
}
CUresult cuKernelGetName(const char**, CUkernel) { return CUDA_ERROR_INVALID_HANDLE; }
CUresult cuCtxGetDevice(CUdevice* d) {
  *d = 0;
  return CUDA_SUCCESS;
}
CUresult cuCtxGetStreamPriorityRange(int* least, int* greatest) {
  *least = 0;
  *greatest = -5;
  return CUDA_SUCCESS;
}
CUresult cuDeviceGetAttribute(int* v, CUdevice_attribute a, CUdevice) {
  switch (a) {
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR: *v = 9; break;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR: *v = 0; break;
    case CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT: *v = 132; break;
    case CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR: *v = 2048; break;
    case CU_DEVICE_ATTRIBUTE_MAX_BLOCKS_PER_MULTIPROCESSOR: *v = 32; break;
    case CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_MULTIPROCESSOR: *v = 65536; break;
    case CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_BLOCK: *v = 65536; break;
    case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR: *v = 233472; break;
    case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN: *v = 232448; break;
    case CU_DEVICE_ATTRIBUTE_RESERVED_SHARED_MEMORY_PER_BLOCK: *v = 1024; break;
    default: return CUDA_ERROR_INVALID_VALUE;
  }
  return CUDA_SUCCESS;
}
CUresult cuMemAlloc_v2(CUdeviceptr*, size_t) { return CUDA_ERROR_OUT_OF_MEMORY; }

CUresult cuGetProcAddress_v2(const char* symbol, void** pfn, int version, cuuint64_t flags,
                             CUdriverProcAddressQueryResult* status);
CUresult cuGetProcAddress(const char* symbol, void** pfn, int version, cuuint64_t flags) {
  return cuGetProcAddress_v2(symbol, pfn, version, flags, nullptr);
}
CUresult cuGetProcAddress_v2(const char* symbol, void** pfn, int version, cuuint64_t flags,
                             CUdriverProcAddressQueryResult* status) {
  const bool ptds = flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM;
  struct {
    const char* name;
    void* fn;
  } table[] = {
      {"cuLaunchKernel", ptds ? reinterpret_cast<void*>(&cuLaunchKernel_ptsz) : reinterpret_cast<void*>(&cuLaunchKernel)},
      {"cuLaunchKernelEx", ptds ? reinterpret_cast<void*>(&cuLaunchKernelEx_ptsz) : reinterpret_cast<void*>(&cuLaunchKernelEx)},
      {"cuGetProcAddress", version >= 12000 ? reinterpret_cast<void*>(&cuGetProcAddress_v2) : reinterpret_cast<void*>(&cuGetProcAddress)},
      {"cuMemAlloc", reinterpret_cast<void*>(&cuMemAlloc_v2)},
      {"cuFuncGetName", reinterpret_cast<void*>(&cuFuncGetName)},
  };
  for (const auto& e : table)
    if (std::strcmp(e.name, symbol) == 0) {
      *pfn = e.fn;
      if (status) *status = CU_GET_PROC_ADDRESS_SUCCESS;
      return CUDA_SUCCESS;
    }
  *pfn = nullptr;
  if (status) *status = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
  return CUDA_ERROR_NOT_FOUND;
}

}  // extern "C"
