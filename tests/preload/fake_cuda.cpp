// A stand-in libcuda.so.1 for the CPU tests of the interposer: it answers the few driver calls
// the interposer and the test programs make, as an H100 would, and records every launch. Like the
// real driver it refuses a launch whose dynamic shared memory exceeds the function's limit (per
// device for a CUkernel); test controls make it refuse padded or prioritised launches and limit
// raises, to exercise the interposer's fallbacks.
#include <cuda.h>

#include "fake_cuda.h"

#include <atomic>
#include <cstring>
#include <mutex>

#undef cuGetProcAddress

constexpr int kFakeDevices = 4;
struct FakeFunc {
  char name[96];
  int regs, static_smem, cluster;
  int max_dyn;                 // a CUfunction's limit
  int is_kernel;               // a CUkernel: one limit per device
  int max_dyn_dev[kFakeDevices];
  int refuse_above;            // > 0: launches with more dynamic smem get OUT_OF_RESOURCES
  int set_cap;                 // > 0: limits above it are refused
  FakeFunc* alias;             // a CUfunction resolved from a CUkernel: shares the kernel's limits
  std::atomic<int> setattr{0};
};


namespace {
std::mutex g_mu;
FakeLaunch g_last{};
std::atomic<int> g_count{0}, g_refused{0}, g_device{0}, g_refuse_priority{0};

int& Limit(FakeFunc* ff, int dev) {
  if (ff->alias) ff = ff->alias;
  return ff->is_kernel ? ff->max_dyn_dev[dev] : ff->max_dyn;
}

bool HasPriority(const CUlaunchAttribute* attrs, unsigned n) {
  for (unsigned i = 0; i < n; ++i)
    if (attrs[i].id == CU_LAUNCH_ATTRIBUTE_PRIORITY) return true;
  return false;
}

CUresult Record(const char* api, CUfunction f, unsigned grid, unsigned block, unsigned shmem,
                const CUlaunchAttribute* attrs, unsigned n) {
  auto* ff = reinterpret_cast<FakeFunc*>(f);
  if (!ff) return CUDA_ERROR_INVALID_HANDLE;
  // Like the driver: more dynamic smem than the function allows is an error.
  CUresult refuse = CUDA_SUCCESS;
  if (static_cast<int>(shmem) > Limit(ff, g_device.load())) refuse = CUDA_ERROR_INVALID_VALUE;
  else if (ff->refuse_above > 0 && static_cast<int>(shmem) > ff->refuse_above) refuse = CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES;
  else if (g_refuse_priority.load() && HasPriority(attrs, n)) refuse = CUDA_ERROR_INVALID_VALUE;
  if (refuse != CUDA_SUCCESS) {
    g_refused++;
    return refuse;
  }
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
  for (int& d : f->max_dyn_dev) d = f->max_dyn;
  return reinterpret_cast<CUfunction>(f);
}
// A library-managed kernel (CUkernel), as the CUDA runtime hands them to the driver.
CUkernel fake_kernel(const char* name, int regs, int static_smem) {
  auto* f = reinterpret_cast<FakeFunc*>(fake_function(name, regs, static_smem, 0));
  f->is_kernel = 1;
  return reinterpret_cast<CUkernel>(f);
}
// The CUfunction of a CUkernel in the current context (cuKernelGetFunction): one limit for both.
CUfunction fake_kernel_function(CUkernel k) {
  auto* kf = reinterpret_cast<FakeFunc*>(k);
  auto* f = reinterpret_cast<FakeFunc*>(fake_function(kf->name, kf->regs, kf->static_smem, 0));
  f->alias = kf;
  return reinterpret_cast<CUfunction>(f);
}
int fake_refused_count() { return g_refused.load(); }
void fake_set_device(int dev) { g_device = dev; }
void fake_refuse_above(CUfunction f, int bytes) { reinterpret_cast<FakeFunc*>(f)->refuse_above = bytes; }
void fake_cap_limit(CUfunction f, int bytes) { reinterpret_cast<FakeFunc*>(f)->set_cap = bytes; }
void fake_refuse_priority(int on) { g_refuse_priority = on; }
// Changes the limit the way a path the interposer cannot see would.
void fake_set_limit_unseen(CUfunction f, int bytes) { Limit(reinterpret_cast<FakeFunc*>(f), g_device.load()) = bytes; }
int fake_limit(CUfunction f, int dev) { return Limit(reinterpret_cast<FakeFunc*>(f), dev); }
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
  if (reinterpret_cast<FakeFunc*>(f)->is_kernel) return CUDA_ERROR_INVALID_HANDLE;
  *name = reinterpret_cast<FakeFunc*>(f)->name;
  return CUDA_SUCCESS;
}
}  // extern "C"

namespace {
CUresult GetAttr(FakeFunc* ff, int dev, int* v, CUfunction_attribute a) {
  switch (a) {
    case CU_FUNC_ATTRIBUTE_NUM_REGS: *v = ff->regs; return CUDA_SUCCESS;
    case CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES: *v = ff->static_smem; return CUDA_SUCCESS;
    case CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES: *v = Limit(ff, dev); return CUDA_SUCCESS;
    case CU_FUNC_ATTRIBUTE_CLUSTER_SIZE_MUST_BE_SET: *v = ff->cluster; return CUDA_SUCCESS;
    case CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_WIDTH: *v = ff->cluster ? 2 : 0; return CUDA_SUCCESS;
    default: return CUDA_ERROR_NOT_SUPPORTED;
  }
}
CUresult SetAttr(FakeFunc* ff, int dev, CUfunction_attribute a, int v) {
  if (a != CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES) return CUDA_ERROR_NOT_SUPPORTED;
  if (v < 0 || v + ff->static_smem > 227 * 1024) return CUDA_ERROR_INVALID_VALUE;
  if (ff->set_cap > 0 && v > ff->set_cap) return CUDA_ERROR_INVALID_VALUE;
  Limit(ff, dev) = v;
  ff->setattr++;
  return CUDA_SUCCESS;
}
}  // namespace

extern "C" {
CUresult cuFuncGetAttribute(int* v, CUfunction_attribute a, CUfunction f) {
  auto* ff = reinterpret_cast<FakeFunc*>(f);
  if (ff->is_kernel) return CUDA_ERROR_INVALID_HANDLE;
  return GetAttr(ff, g_device.load(), v, a);
}
CUresult cuFuncSetAttribute(CUfunction f, CUfunction_attribute a, int v) {
  auto* ff = reinterpret_cast<FakeFunc*>(f);
  if (ff->is_kernel) return CUDA_ERROR_INVALID_HANDLE;
  return SetAttr(ff, g_device.load(), a, v);
}
CUresult cuKernelGetName(const char** name, CUkernel k) {
  auto* ff = reinterpret_cast<FakeFunc*>(k);
  if (!ff->is_kernel) return CUDA_ERROR_INVALID_HANDLE;
  *name = ff->name;
  return CUDA_SUCCESS;
}
CUresult cuKernelGetAttribute(int* v, CUfunction_attribute a, CUkernel k, CUdevice dev) {
  auto* ff = reinterpret_cast<FakeFunc*>(k);
  if (!ff->is_kernel || dev < 0 || dev >= kFakeDevices) return CUDA_ERROR_INVALID_HANDLE;
  return GetAttr(ff, dev, v, a);
}
CUresult cuKernelSetAttribute(CUfunction_attribute a, int v, CUkernel k, CUdevice dev) {
  auto* ff = reinterpret_cast<FakeFunc*>(k);
  if (!ff->is_kernel || dev < 0 || dev >= kFakeDevices) return CUDA_ERROR_INVALID_HANDLE;
  return SetAttr(ff, dev, a, v);
}
CUresult cuCtxGetDevice(CUdevice* d) {
  *d = g_device.load();
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
      {"cuFuncSetAttribute", reinterpret_cast<void*>(&cuFuncSetAttribute)},
      {"cuFuncGetAttribute", reinterpret_cast<void*>(&cuFuncGetAttribute)},
      {"cuKernelSetAttribute", reinterpret_cast<void*>(&cuKernelSetAttribute)},
      {"cuKernelGetAttribute", reinterpret_cast<void*>(&cuKernelGetAttribute)},
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
