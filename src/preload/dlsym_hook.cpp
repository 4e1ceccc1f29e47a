// dlsym interposition. The CUDA runtime (and through it cuBLAS and NCCL) finds the driver's
// functions with dlsym(libcuda, "cuGetProcAddress_v2") and then cuGetProcAddress: handing out
// our wrappers here is what makes every launch visible. No <dlfcn.h> in this file: its dlsym
// declaration would clash with our definition.
#include "hooks.h"

extern "C" void* dlvsym(void* handle, const char* symbol, const char* version);

namespace corun {
namespace {
using DlsymFn = void* (*)(void*, const char*);
DlsymFn RealDlsymFn() {
  static DlsymFn fn = [] {
    void* next = reinterpret_cast<void*>(-1l);  // RTLD_NEXT
    void* p = dlvsym(next, "dlsym", "GLIBC_2.34");
    if (!p) p = dlvsym(next, "dlsym", "GLIBC_2.2.5");
    return reinterpret_cast<DlsymFn>(p);
  }();
  return fn;
}
}  // namespace

void* RealDlsym(void* handle, const char* symbol) {
  DlsymFn f = RealDlsymFn();
  return f ? f(handle, symbol) : nullptr;
}

}  // namespace corun

extern "C" __attribute__((visibility("default"))) void* dlsym(void* handle, const char* symbol) {
  void* real = corun::RealDlsym(handle, symbol);
  const int i = corun::HookIndexOf(symbol);
  if (i < 0 || !real) return real;
  corun::SetReal(static_cast<corun::HookId>(i), real);
  return corun::kHooks[i].wrapper;
}
