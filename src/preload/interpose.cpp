// libcorun_preload.so: applies a corun policy to the kernels an unmodified program launches.
// Communication kernels (NCCL's, by name) get the device's highest priority through the
// per-launch priority attribute; compute kernels get the dynamic-shared-memory pad that caps
// them at K resident blocks/SM, except where that could break them (launch_rules.cpp); cuBLAS
// handles and cuBLASLt matmul descriptors get the SM-count target. Everything else passes
// through untouched. This file holds the exported hooks (one per entry of hooks.cpp's table);
// the stages live in config.cpp, facts.cpp, launch.cpp and report.cpp.
#include <cublasLt.h>
#include <cublas_api.h>
#include <cuda.h>

#include <cstring>

#include "preload.h"

#undef cuGetProcAddress  // cuda.h maps it to _v2; we export both names

#define CORUN_EXPORT extern "C" __attribute__((visibility("default")))

namespace corun {
namespace {

// Which of our wrappers replaces a driver function handed out by cuGetProcAddress.
void* WrapProc(const char* symbol, int version, cuuint64_t flags, void* fn) {
  if (!symbol || !fn) return fn;
  const bool ptds = (flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) != 0;
  HookId id;
  if (!std::strcmp(symbol, "cuGetProcAddress")) id = version >= 12000 ? kHookCuGetProcAddressV2 : kHookCuGetProcAddress;
  else if (!std::strcmp(symbol, "cuLaunchKernel")) id = ptds ? kHookCuLaunchKernelPtsz : kHookCuLaunchKernel;
  else if (!std::strcmp(symbol, "cuLaunchKernelEx")) id = ptds ? kHookCuLaunchKernelExPtsz : kHookCuLaunchKernelEx;
  else if (!std::strcmp(symbol, "cuFuncSetAttribute")) id = kHookCuFuncSetAttribute;
  else if (!std::strcmp(symbol, "cuKernelSetAttribute")) id = kHookCuKernelSetAttribute;
  else if (!std::strcmp(symbol, "cuFuncGetAttribute")) id = kHookCuFuncGetAttribute;
  else if (!std::strcmp(symbol, "cuKernelGetAttribute")) id = kHookCuKernelGetAttribute;
  else return fn;
  SetReal(id, fn);
  return kHooks[id].wrapper;
}

int SmTarget() {
  State& s = S();
  if (!s.enabled || (!s.cfg.policy.smtarget && !s.cfg.policy.smtarget_auto)) return 0;
  CUdevice dev = 0;
  int sms = 0;
  if (CurrentDevice(s, &dev)) sms = Device(s, dev).limits.num_sms;
  int ctas = g_count.nccl_ctas.load();
  if (ctas <= 0) ctas = s.cfg.nccl_ctas_hint;
  return SmTargetFor(s.cfg.policy, sms, ctas);
}

}  // namespace
}  // namespace corun

using namespace corun;

// ---- the exported hooks (names must match hooks.cpp's table) -------------------------------
CORUN_EXPORT CUresult cuGetProcAddress_v2(const char* symbol, void** pfn, int version, cuuint64_t flags,
                                           CUdriverProcAddressQueryResult* status) {
  using Fn = CUresult (*)(const char*, void**, int, cuuint64_t, CUdriverProcAddressQueryResult*);
  auto real = reinterpret_cast<Fn>(RealOf(kHookCuGetProcAddressV2));
  if (!real) return CUDA_ERROR_NOT_INITIALIZED;
  const CUresult r = real(symbol, pfn, version, flags, status);
  if (r == CUDA_SUCCESS && pfn) *pfn = WrapProc(symbol, version, flags, *pfn);
  return r;
}

CORUN_EXPORT CUresult cuGetProcAddress(const char* symbol, void** pfn, int version, cuuint64_t flags) {
  using Fn = CUresult (*)(const char*, void**, int, cuuint64_t);
  auto real = reinterpret_cast<Fn>(RealOf(kHookCuGetProcAddress));
  if (!real) return CUDA_ERROR_NOT_INITIALIZED;
  const CUresult r = real(symbol, pfn, version, flags);
  if (r == CUDA_SUCCESS && pfn) *pfn = WrapProc(symbol, version, flags, *pfn);
  return r;
}

CORUN_EXPORT CUresult cuLaunchKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                                      unsigned bz, unsigned shmem, CUstream st, void** params, void** extra) {
  return Launch(kHookCuLaunchKernel, kHookCuLaunchKernelEx, f, gx, gy, gz, bx, by, bz, shmem, st, params, extra);
}

CORUN_EXPORT CUresult cuLaunchKernel_ptsz(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                                           unsigned by, unsigned bz, unsigned shmem, CUstream st, void** params,
                                           void** extra) {
  return Launch(kHookCuLaunchKernelPtsz, kHookCuLaunchKernelExPtsz, f, gx, gy, gz, bx, by, bz, shmem, st, params,
                extra);
}

CORUN_EXPORT CUresult cuLaunchKernelEx(const CUlaunchConfig* config, CUfunction f, void** params, void** extra) {
  return LaunchEx(kHookCuLaunchKernelEx, config, f, params, extra);
}

CORUN_EXPORT CUresult cuLaunchKernelEx_ptsz(const CUlaunchConfig* config, CUfunction f, void** params, void** extra) {
  return LaunchEx(kHookCuLaunchKernelExPtsz, config, f, params, extra);
}

// ---- the program's own dynamic-shared-memory limit --------------------------------------------
// Sets go through ProgramSetsLimit (the program's value is recorded, our raise kept); reads of
// that attribute answer the program's own value.
CORUN_EXPORT CUresult cuFuncSetAttribute(CUfunction f, CUfunction_attribute attr, int value) {
  using Fn = CUresult (*)(CUfunction, CUfunction_attribute, int);
  auto real = reinterpret_cast<Fn>(RealOf(kHookCuFuncSetAttribute));
  if (!real) return CUDA_ERROR_NOT_INITIALIZED;
  if (attr != CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES || !S().TracksLimits()) return real(f, attr, value);
  CUdevice dev = 0;
  const bool known = CurrentDevice(S(), &dev);
  return ProgramSetsLimit(f, dev, known, false, value);
}

CORUN_EXPORT CUresult cuKernelSetAttribute(CUfunction_attribute attr, int value, CUkernel k, CUdevice dev) {
  using Fn = CUresult (*)(CUfunction_attribute, int, CUkernel, CUdevice);
  auto real = reinterpret_cast<Fn>(RealOf(kHookCuKernelSetAttribute));
  if (!real) return CUDA_ERROR_NOT_INITIALIZED;
  if (attr != CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES || !S().TracksLimits()) return real(attr, value, k, dev);
  return ProgramSetsLimit(reinterpret_cast<CUfunction>(k), dev, true, true, value);
}

CORUN_EXPORT CUresult cuFuncGetAttribute(int* value, CUfunction_attribute attr, CUfunction f) {
  using Fn = CUresult (*)(int*, CUfunction_attribute, CUfunction);
  auto real = reinterpret_cast<Fn>(RealOf(kHookCuFuncGetAttribute));
  if (!real) return CUDA_ERROR_NOT_INITIALIZED;
  const CUresult r = real(value, attr, f);
  CUdevice dev = 0;
  if (r == CUDA_SUCCESS && value && attr == CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES && S().TracksLimits() &&
      CurrentDevice(S(), &dev))
    *value = ProgramView(f, dev, *value);
  return r;
}

CORUN_EXPORT CUresult cuKernelGetAttribute(int* value, CUfunction_attribute attr, CUkernel k, CUdevice dev) {
  using Fn = CUresult (*)(int*, CUfunction_attribute, CUkernel, CUdevice);
  auto real = reinterpret_cast<Fn>(RealOf(kHookCuKernelGetAttribute));
  if (!real) return CUDA_ERROR_NOT_INITIALIZED;
  const CUresult r = real(value, attr, k, dev);
  if (r == CUDA_SUCCESS && value && attr == CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES && S().TracksLimits())
    *value = ProgramView(reinterpret_cast<CUfunction>(k), dev, *value);
  return r;
}

CORUN_EXPORT cublasStatus_t cublasCreate_v2(cublasHandle_t* handle) {
  using Fn = cublasStatus_t (*)(cublasHandle_t*);
  auto real = reinterpret_cast<Fn>(RealOf(kHookCublasCreateV2));
  if (!real) return CUBLAS_STATUS_NOT_INITIALIZED;
  const cublasStatus_t r = real(handle);
  if (r == CUBLAS_STATUS_SUCCESS && handle) {
    if (const int t = SmTarget()) {
      using SetFn = cublasStatus_t (*)(cublasHandle_t, int);
      auto set = reinterpret_cast<SetFn>(NextSym("libcublas.so", "cublasSetSmCountTarget"));
      if (set && set(*handle, t) == CUBLAS_STATUS_SUCCESS) g_count.sm_targets.fetch_add(1);
    }
  }
  return r;
}

namespace {
void SetDescTarget(cublasLtMatmulDesc_t desc) {
  const int32_t t = SmTarget();
  if (!t || !desc) return;
  using SetFn = cublasStatus_t (*)(cublasLtMatmulDesc_t, cublasLtMatmulDescAttributes_t, const void*, size_t);
  static auto set = reinterpret_cast<SetFn>(NextSym("libcublasLt.so", "cublasLtMatmulDescSetAttribute"));
  if (set && set(desc, CUBLASLT_MATMUL_DESC_SM_COUNT_TARGET, &t, sizeof(t)) == CUBLAS_STATUS_SUCCESS)
    g_count.sm_targets.fetch_add(1);
}
}  // namespace

CORUN_EXPORT cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* desc, cublasComputeType_t compute,
                                                      cudaDataType_t scale) {
  using Fn = cublasStatus_t (*)(cublasLtMatmulDesc_t*, cublasComputeType_t, cudaDataType_t);
  auto real = reinterpret_cast<Fn>(RealOf(kHookCublasLtMatmulDescCreate));
  if (!real) return CUBLAS_STATUS_NOT_INITIALIZED;
  const cublasStatus_t r = real(desc, compute, scale);
  if (r == CUBLAS_STATUS_SUCCESS && desc) SetDescTarget(*desc);
  return r;
}

CORUN_EXPORT cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t desc,
                                                            cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                                                            cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d,
                                                            cublasLtMatmulPreference_t pref, int requested,
                                                            cublasLtMatmulHeuristicResult_t results[], int* count) {
  using Fn = cublasStatus_t (*)(cublasLtHandle_t, cublasLtMatmulDesc_t, cublasLtMatrixLayout_t, cublasLtMatrixLayout_t,
                                cublasLtMatrixLayout_t, cublasLtMatrixLayout_t, cublasLtMatmulPreference_t, int,
                                cublasLtMatmulHeuristicResult_t*, int*);
  auto real = reinterpret_cast<Fn>(RealOf(kHookCublasLtMatmulAlgoGetHeuristic));
  if (!real) return CUBLAS_STATUS_NOT_INITIALIZED;
  // Re-applied here: smtarget:auto learns NCCL's CTA count only once NCCL has launched.
  SetDescTarget(desc);
  return real(h, desc, a, b, c, d, pref, requested, results, count);
}
