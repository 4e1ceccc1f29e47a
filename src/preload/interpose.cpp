// libcorun_preload.so: applies a corun policy to the kernels an unmodified program launches.
// Communication kernels (NCCL's, by name) get the device's highest priority through the
// per-launch priority attribute; compute kernels get the dynamic-shared-memory pad that caps
// them at K resident blocks/SM, except where that could break them (launch_rules.cpp); cuBLAS
// handles and cuBLASLt matmul descriptors get the SM-count target. Everything else passes
// through untouched.
#include <cublasLt.h>
#include <cublas_api.h>
#include <cuda.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "corun/launch_rules.h"
#include "hooks.h"

#undef cuGetProcAddress  // cuda.h maps it to _v2; we export both names

#define CORUN_EXPORT extern "C" __attribute__((visibility("default")))

namespace corun {
namespace {

// ---- configuration, read once ------------------------------------------------------------
struct State {
  InterposeConfig cfg;
  bool enabled = true;
  bool verbose = false;
  std::string report;
  // Driver functions the interposer itself needs (resolved from libcuda, past our hooks).
  CUresult (*ctx_get_device)(CUdevice*) = nullptr;
  CUresult (*dev_attr)(int*, CUdevice_attribute, CUdevice) = nullptr;
  CUresult (*func_name)(const char**, CUfunction) = nullptr;
  CUresult (*kern_name)(const char**, CUkernel) = nullptr;
  CUresult (*func_attr)(int*, CUfunction_attribute, CUfunction) = nullptr;
  CUresult (*kern_attr)(int*, CUfunction_attribute, CUkernel, CUdevice) = nullptr;
  CUresult (*func_set)(CUfunction, CUfunction_attribute, int) = nullptr;
  CUresult (*kern_set)(CUfunction_attribute, int, CUkernel, CUdevice) = nullptr;
  CUresult (*prio_range)(int*, int*) = nullptr;
  std::atomic<bool> driver_ready{false};
};

const char* GetEnv(const char* k) { return std::getenv(k); }

State& S() {
  static State* s = [] {
    auto* st = new State;
    Status cs = ConfigFromEnv(&GetEnv, &st->cfg);
    if (!cs.ok()) {
      std::fprintf(stderr, "corun: preload disabled: %s\n", cs.message().c_str());
      st->enabled = false;
    }
    const char* v = std::getenv("CORUN_VERBOSE");
    st->verbose = v && *v && std::strcmp(v, "0") != 0;
    if (const char* r = std::getenv("CORUN_REPORT")) st->report = r;
    return st;
  }();
  return *s;
}

// Resolves the driver functions the interposer needs. Until libcuda is loaded (a cuBLAS hook can
// run first) nothing resolves, and the next call tries again.
void EnsureDriver(State& s) {
  if (s.driver_ready.load(std::memory_order_acquire)) return;
  static std::mutex mu;
  std::lock_guard<std::mutex> l(mu);
  if (s.driver_ready.load(std::memory_order_relaxed)) return;
  auto DriverSym = [](const char* name) { return NextSym("libcuda.so", name); };
  {
    s.ctx_get_device = reinterpret_cast<decltype(s.ctx_get_device)>(DriverSym("cuCtxGetDevice"));
    s.dev_attr = reinterpret_cast<decltype(s.dev_attr)>(DriverSym("cuDeviceGetAttribute"));
    s.func_name = reinterpret_cast<decltype(s.func_name)>(DriverSym("cuFuncGetName"));
    s.kern_name = reinterpret_cast<decltype(s.kern_name)>(DriverSym("cuKernelGetName"));
    s.func_attr = reinterpret_cast<decltype(s.func_attr)>(DriverSym("cuFuncGetAttribute"));
    s.kern_attr = reinterpret_cast<decltype(s.kern_attr)>(DriverSym("cuKernelGetAttribute"));
    s.func_set = reinterpret_cast<decltype(s.func_set)>(DriverSym("cuFuncSetAttribute"));
    s.kern_set = reinterpret_cast<decltype(s.kern_set)>(DriverSym("cuKernelSetAttribute"));
    s.prio_range = reinterpret_cast<decltype(s.prio_range)>(DriverSym("cuCtxGetStreamPriorityRange"));
  }
  s.driver_ready.store(s.ctx_get_device != nullptr && s.dev_attr != nullptr, std::memory_order_release);
}

// ---- counters ------------------------------------------------------------------------------
std::atomic<uint64_t> g_launches{0}, g_shaped{0}, g_comm{0}, g_comm_prio{0}, g_sm_targets{0};
std::atomic<uint64_t> g_skip[static_cast<int>(SkipReason::kCount)];
std::atomic<int> g_nccl_ctas{0};

// ---- per-device limits and per-function facts ----------------------------------------------
struct DevInfo {
  DeviceLimits limits;
  int prio_greatest = 0;
  bool ok = false;
};

// Per-device facts, filled once per device; the launch path reads them without a lock.
constexpr int kMaxDevices = 256;
std::atomic<const DevInfo*> g_devices[kMaxDevices];

const DevInfo& Device(State& s, CUdevice dev) {
  static const DevInfo kNone;
  if (dev < 0 || dev >= kMaxDevices) return kNone;
  if (const DevInfo* d = g_devices[dev].load(std::memory_order_acquire)) return *d;
  static std::mutex mu;
  std::lock_guard<std::mutex> l(mu);
  if (const DevInfo* d = g_devices[dev].load(std::memory_order_acquire)) return *d;
  auto* info = new DevInfo;  // lives as long as the process
  DevInfo& d = *info;
  auto attr = [&](CUdevice_attribute a) {
    int v = 0;
    if (s.dev_attr) s.dev_attr(&v, a, dev);
    return v;
  };
  const int major = attr(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
  const int minor = attr(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
  d.limits = LimitsForArch(major, minor).value_or(DeviceLimits{});
  d.limits.sm_major = major;
  d.limits.sm_minor = minor;
  d.limits.num_sms = attr(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
  d.limits.max_threads_per_sm = attr(CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR);
  d.limits.max_blocks_per_sm = attr(CU_DEVICE_ATTRIBUTE_MAX_BLOCKS_PER_MULTIPROCESSOR);
  d.limits.regs_per_sm = attr(CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_MULTIPROCESSOR);
  d.limits.regs_per_block = attr(CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_BLOCK);
  d.limits.smem_per_sm = static_cast<size_t>(attr(CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR));
  d.limits.smem_per_block_optin = static_cast<size_t>(attr(CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN));
  d.limits.smem_reserved_per_block = static_cast<size_t>(attr(CU_DEVICE_ATTRIBUTE_RESERVED_SHARED_MEMORY_PER_BLOCK));
  d.ok = d.limits.num_sms > 0 && d.limits.max_threads_per_sm > 0 && d.limits.smem_per_sm > 0;
  int least = 0, greatest = 0;
  if (s.prio_range && s.prio_range(&least, &greatest) == CUDA_SUCCESS) d.prio_greatest = greatest;
  g_devices[dev].store(info, std::memory_order_release);
  return d;
}

struct FuncInfo {
  std::string name;
  int regs = 0, static_smem = 0;
  std::atomic<int> max_dyn{0};  // raised under g_fmu; read on every shaped launch without it
  bool cluster = false;
  bool known = false;
  bool kernel_handle = false;  // a CUkernel passed as CUfunction (library-managed kernels)
  bool comm = false, denied = false;
  bool logged = false;         // under g_fmu
};

// Entries are never removed and live behind a pointer, so a FuncInfo* stays valid.
std::shared_mutex g_fmu;
std::unordered_map<CUfunction, std::unique_ptr<FuncInfo>> g_funcs;

std::unique_ptr<FuncInfo> QueryFunc(State& s, CUfunction f, CUdevice dev) {
  auto fi = std::make_unique<FuncInfo>();
  const char* name = nullptr;
  if (s.func_name && s.func_name(&name, f) == CUDA_SUCCESS && name) {
    fi->name = name;
  } else if (s.kern_name && s.kern_name(&name, reinterpret_cast<CUkernel>(f)) == CUDA_SUCCESS && name) {
    fi->name = name;
    fi->kernel_handle = true;
  }
  auto get = [&](CUfunction_attribute a, int* v) {
    if (!fi->kernel_handle && s.func_attr && s.func_attr(v, a, f) == CUDA_SUCCESS) return true;
    if (s.kern_attr && s.kern_attr(v, a, reinterpret_cast<CUkernel>(f), dev) == CUDA_SUCCESS) {
      fi->kernel_handle = true;
      return true;
    }
    return false;
  };
  int must = 0, width = 0, max_dyn = 0;
  fi->known = get(CU_FUNC_ATTRIBUTE_NUM_REGS, &fi->regs) && get(CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES, &fi->static_smem) &&
              get(CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, &max_dyn);
  fi->max_dyn.store(max_dyn, std::memory_order_relaxed);
  get(CU_FUNC_ATTRIBUTE_CLUSTER_SIZE_MUST_BE_SET, &must);
  get(CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_WIDTH, &width);
  fi->cluster = must != 0 || width > 0;
  if (fi->name.empty()) fi->name = "?";
  fi->comm = IsComm(s.cfg, fi->name);
  fi->denied = IsDenied(s.cfg, fi->name);
  return fi;
}

FuncInfo* Func(State& s, CUfunction f, CUdevice dev) {
  {
    std::shared_lock<std::shared_mutex> l(g_fmu);
    auto it = g_funcs.find(f);
    if (it != g_funcs.end()) return it->second.get();
  }
  std::unique_ptr<FuncInfo> fi = QueryFunc(s, f, dev);
  std::unique_lock<std::shared_mutex> l(g_fmu);
  return g_funcs.emplace(f, std::move(fi)).first->second.get();  // another thread's entry if it won
}

// Raises the function's dynamic-shared-memory limit once, monotonically. The common case (raised
// already) is one relaxed load, no lock.
bool RaiseDynSmem(State& s, CUfunction f, FuncInfo* fi, CUdevice dev, int bytes) {
  if (bytes <= fi->max_dyn.load(std::memory_order_acquire)) return true;
  std::unique_lock<std::shared_mutex> l(g_fmu);
  if (bytes <= fi->max_dyn.load(std::memory_order_relaxed)) return true;
  CUresult r = CUDA_ERROR_NOT_SUPPORTED;
  if (!fi->kernel_handle && s.func_set) r = s.func_set(f, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes);
  if (r != CUDA_SUCCESS && s.kern_set)
    r = s.kern_set(CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes, reinterpret_cast<CUkernel>(f), dev);
  if (r != CUDA_SUCCESS) return false;
  fi->max_dyn.store(bytes, std::memory_order_release);  // after the driver has the new limit
  return true;
}

void LogOnce(State& s, FuncInfo* fi, const char* what) {
  if (!s.verbose) return;
  std::unique_lock<std::shared_mutex> l(g_fmu);
  if (fi->logged) return;
  fi->logged = true;
  std::fprintf(stderr, "corun: %s: %s\n", fi->name.c_str(), what);
}

struct Plan {
  LaunchDecision d;
  int priority = 0;
};

// Looks at one launch and decides; fills `plan`. Returns false when the launch must pass
// through untouched (disabled, no context, unknown device).
bool Analyze(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
             unsigned shmem, const CUlaunchAttribute* attrs, unsigned nattrs, Plan* plan) {
  State& s = S();
  g_launches.fetch_add(1, std::memory_order_relaxed);
  if (!s.enabled) return false;
  EnsureDriver(s);
  CUdevice dev = 0;
  if (!s.ctx_get_device || s.ctx_get_device(&dev) != CUDA_SUCCESS) return false;
  const DevInfo& di = Device(s, dev);
  if (!di.ok) return false;
  FuncInfo* fi = Func(s, f, dev);
  LaunchFacts facts;
  facts.is_comm = fi->comm;
  facts.is_denied = fi->denied;
  facts.fp = KernelFootprint{static_cast<int>(bx * by * bz), fi->regs, static_cast<size_t>(fi->static_smem), shmem};
  facts.grid_blocks = static_cast<uint64_t>(gx) * gy * gz;
  facts.cluster = fi->cluster;
  facts.attrs_known = fi->known;
  for (unsigned i = 0; i < nattrs; ++i) {
    if (attrs[i].id == CU_LAUNCH_ATTRIBUTE_COOPERATIVE && attrs[i].value.cooperative) facts.cooperative = true;
    if (attrs[i].id == CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION &&
        attrs[i].value.clusterDim.x * attrs[i].value.clusterDim.y * attrs[i].value.clusterDim.z > 1)
      facts.cluster = true;
  }
  plan->d = DecideLaunch(s.cfg, di.limits, facts);
  plan->priority = di.prio_greatest;
  if (plan->d.comm) {
    g_comm.fetch_add(1, std::memory_order_relaxed);
    g_nccl_ctas.store(static_cast<int>(facts.grid_blocks), std::memory_order_relaxed);
    if (plan->d.prioritise) {
      g_comm_prio.fetch_add(1, std::memory_order_relaxed);
      if (s.verbose) LogOnce(s, fi, ("communication: priority " + std::to_string(plan->priority)).c_str());
    }
    return true;
  }
  if (plan->d.shaped) {
    if (!RaiseDynSmem(s, f, fi, dev, static_cast<int>(shmem + plan->d.pad))) {
      plan->d.shaped = false;
      plan->d.pad = 0;
      plan->d.skip = SkipReason::kUnknown;
    }
  }
  if (plan->d.shaped) {
    g_shaped.fetch_add(1, std::memory_order_relaxed);
    if (s.verbose) LogOnce(s, fi, ("shaped: +" + std::to_string(plan->d.pad) + " B dynamic smem").c_str());
  } else if (s.cfg.policy.shape != ShapeMode::kNone) {
    g_skip[static_cast<int>(plan->d.skip)].fetch_add(1, std::memory_order_relaxed);
    if (s.verbose) LogOnce(s, fi, (std::string("not shaped: ") + SkipReasonName(plan->d.skip)).c_str());
  }
  return true;
}

using LaunchFn = CUresult (*)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                              CUstream, void**, void**);
using LaunchExFn = CUresult (*)(const CUlaunchConfig*, CUfunction, void**, void**);

CUresult Launch(HookId self, HookId ex_id, CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                unsigned by, unsigned bz, unsigned shmem, CUstream st, void** params, void** extra) {
  auto real = reinterpret_cast<LaunchFn>(RealOf(self));
  if (!real) return CUDA_ERROR_NOT_INITIALIZED;
  Plan p;
  if (!Analyze(f, gx, gy, gz, bx, by, bz, shmem, nullptr, 0, &p)) return real(f, gx, gy, gz, bx, by, bz, shmem, st, params, extra);
  if (p.d.comm && p.d.prioritise) {
    // cuLaunchKernel has no attributes: the same launch through cuLaunchKernelEx + priority.
    auto real_ex = reinterpret_cast<LaunchExFn>(RealOf(ex_id));
    if (real_ex) {
      CUlaunchAttribute a{};
      a.id = CU_LAUNCH_ATTRIBUTE_PRIORITY;
      a.value.priority = p.priority;
      CUlaunchConfig c{};
      c.gridDimX = gx; c.gridDimY = gy; c.gridDimZ = gz;
      c.blockDimX = bx; c.blockDimY = by; c.blockDimZ = bz;
      c.sharedMemBytes = shmem;
      c.hStream = st;
      c.attrs = &a;
      c.numAttrs = 1;
      return real_ex(&c, f, params, extra);
    }
  }
  return real(f, gx, gy, gz, bx, by, bz, shmem + static_cast<unsigned>(p.d.pad), st, params, extra);
}

CUresult LaunchEx(HookId self, const CUlaunchConfig* config, CUfunction f, void** params, void** extra) {
  auto real = reinterpret_cast<LaunchExFn>(RealOf(self));
  if (!real) return CUDA_ERROR_NOT_INITIALIZED;
  if (!config) return real(config, f, params, extra);
  Plan p;
  if (!Analyze(f, config->gridDimX, config->gridDimY, config->gridDimZ, config->blockDimX, config->blockDimY,
               config->blockDimZ, config->sharedMemBytes, config->attrs, config->numAttrs, &p))
    return real(config, f, params, extra);
  if (p.d.comm && p.d.prioritise) {
    // The caller's attributes, with the priority replaced or appended.
    const unsigned n0 = config->numAttrs;
    CUlaunchAttribute local[16];
    std::vector<CUlaunchAttribute> heap;  // only for launches with more than 15 attributes
    CUlaunchAttribute* a = local;
    if (n0 >= 16) {
      heap.resize(n0 + 1);
      a = heap.data();
    }
    unsigned n = 0;
    bool replaced = false;
    for (; n < n0; ++n) {
      a[n] = config->attrs[n];
      if (a[n].id == CU_LAUNCH_ATTRIBUTE_PRIORITY) {
        a[n].value.priority = p.priority;
        replaced = true;
      }
    }
    if (!replaced) {
      a[n] = CUlaunchAttribute{};
      a[n].id = CU_LAUNCH_ATTRIBUTE_PRIORITY;
      a[n].value.priority = p.priority;
      ++n;
    }
    CUlaunchConfig c = *config;
    c.attrs = a;
    c.numAttrs = n;
    return real(&c, f, params, extra);
  }
  if (p.d.shaped) {
    CUlaunchConfig c = *config;
    c.sharedMemBytes += static_cast<unsigned>(p.d.pad);
    return real(&c, f, params, extra);
  }
  return real(config, f, params, extra);
}

// Which of our wrappers replaces a driver function handed out by cuGetProcAddress.
void* WrapProc(const char* symbol, int version, cuuint64_t flags, void* fn) {
  if (!symbol || !fn) return fn;
  const bool ptds = (flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) != 0;
  HookId id;
  if (!std::strcmp(symbol, "cuGetProcAddress")) id = version >= 12000 ? kHookCuGetProcAddressV2 : kHookCuGetProcAddress;
  else if (!std::strcmp(symbol, "cuLaunchKernel")) id = ptds ? kHookCuLaunchKernelPtsz : kHookCuLaunchKernel;
  else if (!std::strcmp(symbol, "cuLaunchKernelEx")) id = ptds ? kHookCuLaunchKernelExPtsz : kHookCuLaunchKernelEx;
  else return fn;
  SetReal(id, fn);
  return kHooks[id].wrapper;
}

int SmTarget() {
  State& s = S();
  if (!s.enabled || (!s.cfg.policy.smtarget && !s.cfg.policy.smtarget_auto)) return 0;
  EnsureDriver(s);
  CUdevice dev = 0;
  int sms = 0;
  if (s.ctx_get_device && s.ctx_get_device(&dev) == CUDA_SUCCESS) sms = Device(s, dev).limits.num_sms;
  int ctas = g_nccl_ctas.load();
  if (ctas <= 0) ctas = s.cfg.nccl_ctas_hint;
  return SmTargetFor(s.cfg.policy, sms, ctas);
}

void Summary() {
  State& s = S();
  std::string skips;
  uint64_t skipped = 0;
  for (int i = 0; i < static_cast<int>(SkipReason::kCount); ++i) {
    const uint64_t n = g_skip[i].load();
    if (!n) continue;
    skipped += n;
    skips += std::string(skips.empty() ? "" : ", ") + SkipReasonName(static_cast<SkipReason>(i)) + " " + std::to_string(n);
  }
  const std::string policy = s.enabled ? s.cfg.policy.Name() : "disabled";
  std::fprintf(stderr,
               "corun: pid %d policy %s: %llu launches, %llu shaped, %llu not shaped (%s), %llu communication "
               "(%llu prioritised), %llu cuBLAS SM targets set\n",
               static_cast<int>(getpid()), policy.c_str(), static_cast<unsigned long long>(g_launches.load()),
               static_cast<unsigned long long>(g_shaped.load()), static_cast<unsigned long long>(skipped),
               skips.empty() ? "-" : skips.c_str(), static_cast<unsigned long long>(g_comm.load()),
               static_cast<unsigned long long>(g_comm_prio.load()), static_cast<unsigned long long>(g_sm_targets.load()));
  if (s.report.empty()) return;
  std::string path = s.report;
  const size_t at = path.find("%p");
  if (at != std::string::npos) path.replace(at, 2, std::to_string(getpid()));
  if (FILE* f = std::fopen(path.c_str(), "w")) {
    std::fprintf(f, "{\"pid\": %d, \"policy\": \"%s\", \"launches\": %llu, \"shaped\": %llu, \"skipped\": {",
                 static_cast<int>(getpid()), policy.c_str(), static_cast<unsigned long long>(g_launches.load()),
                 static_cast<unsigned long long>(g_shaped.load()));
    bool first = true;
    for (int i = 0; i < static_cast<int>(SkipReason::kCount); ++i) {
      std::fprintf(f, "%s\"%s\": %llu", first ? "" : ", ", SkipReasonName(static_cast<SkipReason>(i)),
                   static_cast<unsigned long long>(g_skip[i].load()));
      first = false;
    }
    std::fprintf(f, "}, \"communication\": %llu, \"prioritised\": %llu, \"sm_targets\": %llu, \"nccl_ctas\": %d}\n",
                 static_cast<unsigned long long>(g_comm.load()), static_cast<unsigned long long>(g_comm_prio.load()),
                 static_cast<unsigned long long>(g_sm_targets.load()), g_nccl_ctas.load());
    std::fclose(f);
  }
}

// One line per process that launched kernels (helper processes such as compilers stay quiet);
// CORUN_QUIET=1 silences the line, not the report file.
__attribute__((destructor)) void AtExit() {
  const bool quiet = std::getenv("CORUN_QUIET") != nullptr;
  if ((g_launches.load() > 0 && !quiet) || S().verbose || !S().report.empty()) Summary();
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

CORUN_EXPORT cublasStatus_t cublasCreate_v2(cublasHandle_t* handle) {
  using Fn = cublasStatus_t (*)(cublasHandle_t*);
  auto real = reinterpret_cast<Fn>(RealOf(kHookCublasCreateV2));
  if (!real) return CUBLAS_STATUS_NOT_INITIALIZED;
  const cublasStatus_t r = real(handle);
  if (r == CUBLAS_STATUS_SUCCESS && handle) {
    if (const int t = SmTarget()) {
      using SetFn = cublasStatus_t (*)(cublasHandle_t, int);
      auto set = reinterpret_cast<SetFn>(NextSym("libcublas.so", "cublasSetSmCountTarget"));
      if (set && set(*handle, t) == CUBLAS_STATUS_SUCCESS) g_sm_targets.fetch_add(1);
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
    g_sm_targets.fetch_add(1);
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
