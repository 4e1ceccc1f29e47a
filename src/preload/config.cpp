// The interposer's configuration: CORUN_* read once, checked when the library loads (a bad
// setting is one line on stderr, once per process tree, and the preload passes everything
// through), and the driver functions the interposer calls itself.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <type_traits>

#include <fmt/format.h>

#include "preload.h"

namespace corun {
namespace {
const char* GetEnv(const char* k) { return std::getenv(k); }

// Set for the children of the process that reported a bad setting, so that a process tree
// (torchrun, a shell script, a Python shim) prints the line once.
constexpr const char* kWarnedVar = "CORUN_PRELOAD_WARNED";
}  // namespace

State& S() {
  static State* s = [] {
    auto* st = new State;  // lives as long as the process: hooks can run during exit
    Status cs = ConfigFromEnv(&GetEnv, &st->cfg);
    if (!cs.ok()) {
      st->enabled = false;
      st->error = cs.message();  // one line: the messages quote the environment through Printable
    }
    const char* v = std::getenv("CORUN_VERBOSE");
    st->verbose = v && *v && std::strcmp(v, "0") != 0;
    if (const char* r = std::getenv("CORUN_REPORT")) st->report = r;
    return st;
  }();
  return *s;
}

void EnsureDriver(State& s) {
  if (s.driver_ready.load(std::memory_order_acquire)) return;
  static std::mutex mu;
  std::lock_guard<std::mutex> l(mu);
  if (s.driver_ready.load(std::memory_order_relaxed)) return;
  auto sym = [](auto* fn, const char* name) {
    *fn = reinterpret_cast<std::remove_pointer_t<decltype(fn)>>(NextSym("libcuda.so", name));
  };
  sym(&s.ctx_get_device, "cuCtxGetDevice");
  sym(&s.dev_attr, "cuDeviceGetAttribute");
  sym(&s.func_name, "cuFuncGetName");
  sym(&s.kern_name, "cuKernelGetName");
  sym(&s.func_attr, "cuFuncGetAttribute");
  sym(&s.kern_attr, "cuKernelGetAttribute");
  sym(&s.func_set, "cuFuncSetAttribute");
  sym(&s.kern_set, "cuKernelSetAttribute");
  sym(&s.prio_range, "cuCtxGetStreamPriorityRange");
  s.driver_ready.store(s.ctx_get_device != nullptr && s.dev_attr != nullptr, std::memory_order_release);
}

bool CurrentDevice(State& s, CUdevice* dev) {
  EnsureDriver(s);
  return s.ctx_get_device && s.ctx_get_device(dev) == CUDA_SUCCESS;
}

namespace {
// At load, before the program runs (its stderr is still open): the one line about a bad setting.
__attribute__((constructor)) void CheckAtLoad() {
  State& s = S();
  if (s.enabled || std::getenv(kWarnedVar)) return;
  fmt::print(stderr, "corun: preload disabled, the program runs unchanged: {}\n", s.error);
  setenv(kWarnedVar, "1", 1);
}
}  // namespace

}  // namespace corun
