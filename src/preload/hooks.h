// The interposer's hook table, HAMi-core style: one enum, one table (hooks.cpp), and
// scripts/check_hooks.py to check that they agree and that every wrapper exists.
#pragma once

namespace corun {

enum HookId {
  kHookCuGetProcAddress,
  kHookCuGetProcAddressV2,
  kHookCuLaunchKernel,
  kHookCuLaunchKernelPtsz,
  kHookCuLaunchKernelEx,
  kHookCuLaunchKernelExPtsz,
  kHookCuFuncSetAttribute,
  kHookCuKernelSetAttribute,
  kHookCuFuncGetAttribute,
  kHookCuKernelGetAttribute,
  kHookCublasCreateV2,
  kHookCublasLtMatmulDescCreate,
  kHookCublasLtMatmulAlgoGetHeuristic,
  // NCCL (nccl.cpp): communicators and the collectives the copy-engine path serves under `ce`.
  kHookNcclCommInitRank,
  kHookNcclCommInitRankConfig,
  kHookNcclCommInitAll,
  kHookNcclCommSplit,
  kHookNcclCommDestroy,
  kHookNcclCommAbort,
  kHookNcclGroupStart,
  kHookNcclGroupEnd,
  kHookNcclAllReduce,
  kHookNcclReduceScatter,
  kHookNcclAllGather,
  kHookCount
};

struct HookEntry {
  HookId id;
  const char* symbol;   // exported name
  void* wrapper;        // our function of that name
  const char* library;  // where the real one lives (searched when RTLD_NEXT cannot see it)
};

extern const HookEntry kHooks[kHookCount];

// -1 when `symbol` is not hooked.
int HookIndexOf(const char* symbol);
// The real function behind a hook: as handed out by dlsym / cuGetProcAddress, else the next
// definition after this library.
void* RealOf(HookId id);
void SetReal(HookId id, void* fn);
// dlsym that bypasses our own dlsym hook.
void* RealDlsym(void* handle, const char* symbol);
// `symbol` from an already loaded library whose file name contains `lib` — also one loaded with
// RTLD_LOCAL (Python extensions load their CUDA libraries so), which RTLD_NEXT cannot see.
void* LoadedSym(const char* lib, const char* symbol);
// The next definition of a symbol after this library: RTLD_NEXT, else the loaded `lib`.
void* NextSym(const char* lib, const char* symbol);

}  // namespace corun
