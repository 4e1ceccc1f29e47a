#include "hooks.h"

#include <dlfcn.h>
#include <link.h>

#include <atomic>
#include <cstring>
#include <string>

// The wrappers (interpose.cpp), declared by their exported names.
extern "C" {
int cuGetProcAddress();
int cuGetProcAddress_v2();
int cuLaunchKernel();
int cuLaunchKernel_ptsz();
int cuLaunchKernelEx();
int cuLaunchKernelEx_ptsz();
int cuFuncSetAttribute();
int cuKernelSetAttribute();
int cuFuncGetAttribute();
int cuKernelGetAttribute();
int cublasCreate_v2();
int cublasLtMatmulDescCreate();
int cublasLtMatmulAlgoGetHeuristic();
int ncclCommInitRank();
int ncclCommInitRankConfig();
int ncclCommInitAll();
int ncclCommSplit();
int ncclCommDestroy();
int ncclCommAbort();
int ncclGroupStart();
int ncclGroupEnd();
int ncclAllReduce();
int ncclReduceScatter();
int ncclAllGather();
}

namespace corun {

#define CORUN_HOOK(id, name, lib) {id, #name, reinterpret_cast<void*>(&::name), lib}
const HookEntry kHooks[kHookCount] = {
    CORUN_HOOK(kHookCuGetProcAddress, cuGetProcAddress, "libcuda.so"),
    CORUN_HOOK(kHookCuGetProcAddressV2, cuGetProcAddress_v2, "libcuda.so"),
    CORUN_HOOK(kHookCuLaunchKernel, cuLaunchKernel, "libcuda.so"),
    CORUN_HOOK(kHookCuLaunchKernelPtsz, cuLaunchKernel_ptsz, "libcuda.so"),
    CORUN_HOOK(kHookCuLaunchKernelEx, cuLaunchKernelEx, "libcuda.so"),
    CORUN_HOOK(kHookCuLaunchKernelExPtsz, cuLaunchKernelEx_ptsz, "libcuda.so"),
    CORUN_HOOK(kHookCuFuncSetAttribute, cuFuncSetAttribute, "libcuda.so"),
    CORUN_HOOK(kHookCuKernelSetAttribute, cuKernelSetAttribute, "libcuda.so"),
    CORUN_HOOK(kHookCuFuncGetAttribute, cuFuncGetAttribute, "libcuda.so"),
    CORUN_HOOK(kHookCuKernelGetAttribute, cuKernelGetAttribute, "libcuda.so"),
    CORUN_HOOK(kHookCublasCreateV2, cublasCreate_v2, "libcublas.so"),
    CORUN_HOOK(kHookCublasLtMatmulDescCreate, cublasLtMatmulDescCreate, "libcublasLt.so"),
    CORUN_HOOK(kHookCublasLtMatmulAlgoGetHeuristic, cublasLtMatmulAlgoGetHeuristic, "libcublasLt.so"),
    CORUN_HOOK(kHookNcclCommInitRank, ncclCommInitRank, "libnccl.so"),
    CORUN_HOOK(kHookNcclCommInitRankConfig, ncclCommInitRankConfig, "libnccl.so"),
    CORUN_HOOK(kHookNcclCommInitAll, ncclCommInitAll, "libnccl.so"),
    CORUN_HOOK(kHookNcclCommSplit, ncclCommSplit, "libnccl.so"),
    CORUN_HOOK(kHookNcclCommDestroy, ncclCommDestroy, "libnccl.so"),
    CORUN_HOOK(kHookNcclCommAbort, ncclCommAbort, "libnccl.so"),
    CORUN_HOOK(kHookNcclGroupStart, ncclGroupStart, "libnccl.so"),
    CORUN_HOOK(kHookNcclGroupEnd, ncclGroupEnd, "libnccl.so"),
    CORUN_HOOK(kHookNcclAllReduce, ncclAllReduce, "libnccl.so"),
    CORUN_HOOK(kHookNcclReduceScatter, ncclReduceScatter, "libnccl.so"),
    CORUN_HOOK(kHookNcclAllGather, ncclAllGather, "libnccl.so"),
};
#undef CORUN_HOOK

namespace {
std::atomic<void*> g_real[kHookCount];
}

int HookIndexOf(const char* symbol) {
  if (!symbol) return -1;
  for (int i = 0; i < kHookCount; ++i)
    if (std::strcmp(kHooks[i].symbol, symbol) == 0) return i;
  return -1;
}

void SetReal(HookId id, void* fn) {
  // Never record one of our own wrappers as the real function (that would recurse).
  if (!fn || fn == kHooks[id].wrapper) return;
  void* expected = nullptr;
  g_real[id].compare_exchange_strong(expected, fn);
}

void* LoadedSym(const char* lib, const char* symbol) {
  struct Search {
    const char* lib;
    std::string path;
  } s{lib, {}};
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) {
        auto* s = static_cast<Search*>(data);
        if (info->dlpi_name && std::strstr(info->dlpi_name, s->lib)) {
          s->path = info->dlpi_name;
          return 1;
        }
        return 0;
      },
      &s);
  if (s.path.empty()) return nullptr;
  void* h = dlopen(s.path.c_str(), RTLD_LAZY | RTLD_NOLOAD);
  return h ? RealDlsym(h, symbol) : nullptr;
}

void* NextSym(const char* lib, const char* symbol) {
  void* f = RealDlsym(RTLD_NEXT, symbol);
  return f ? f : LoadedSym(lib, symbol);
}

void* RealOf(HookId id) {
  void* f = g_real[id].load(std::memory_order_acquire);
  if (f) return f;
  SetReal(id, NextSym(kHooks[id].library, kHooks[id].symbol));
  return g_real[id].load(std::memory_order_acquire);
}

}  // namespace corun
