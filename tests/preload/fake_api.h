// The fake driver's test API (fake_cuda.cpp) as the test programs call it, looked up at run time:
// on a machine whose real libcuda.so.1 is forced into every process, the fake cannot load and the
// tests report themselves skipped instead of failing to link.
#pragma once
#include <cuda.h>
#include <dlfcn.h>

#include "fake_cuda.h"

template <typename T>
T FakeApi(const char* name) {
  return reinterpret_cast<T>(dlsym(RTLD_DEFAULT, name));
}
inline CUfunction fake_function(const char* name, int regs, int static_smem, int cluster) {
  return FakeApi<CUfunction (*)(const char*, int, int, int)>("fake_function")(name, regs, static_smem, cluster);
}
inline CUkernel fake_kernel(const char* name, int regs, int static_smem) {
  return FakeApi<CUkernel (*)(const char*, int, int)>("fake_kernel")(name, regs, static_smem);
}
inline CUfunction fake_kernel_function(CUkernel k) {
  return FakeApi<CUfunction (*)(CUkernel)>("fake_kernel_function")(k);
}
inline FakeLaunch fake_last() { return FakeApi<FakeLaunch (*)()>("fake_last")(); }
inline int fake_launch_count() { return FakeApi<int (*)()>("fake_launch_count")(); }
inline int fake_refused_count() { return FakeApi<int (*)()>("fake_refused_count")(); }
inline int fake_setattr_count(CUfunction f) { return FakeApi<int (*)(CUfunction)>("fake_setattr_count")(f); }
inline void fake_set_device(int d) { FakeApi<void (*)(int)>("fake_set_device")(d); }
inline void fake_refuse_above(CUfunction f, int b) {
  FakeApi<void (*)(CUfunction, int)>("fake_refuse_above")(f, b);
}
inline void fake_cap_limit(CUfunction f, int b) { FakeApi<void (*)(CUfunction, int)>("fake_cap_limit")(f, b); }
inline void fake_refuse_priority(int on) { FakeApi<void (*)(int)>("fake_refuse_priority")(on); }
inline void fake_set_limit_unseen(CUfunction f, int b) {
  FakeApi<void (*)(CUfunction, int)>("fake_set_limit_unseen")(f, b);
}
inline int fake_limit(CUfunction f, int dev) { return FakeApi<int (*)(CUfunction, int)>("fake_limit")(f, dev); }
