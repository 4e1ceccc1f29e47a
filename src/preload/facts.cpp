// What the interposer knows about devices and kernels, and the dynamic-shared-memory limit it
// shares with the program: the driver holds max(program's own limit, our raise), the program
// reads and sets its own value, and a padded launch raises only what it needs.
#include <climits>
#include <cstdio>
#include <memory>
#include <shared_mutex>
#include <unordered_map>

#include <fmt/format.h>

#include "preload.h"

namespace corun {
namespace {
constexpr CUfunction_attribute kMaxDyn = CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES;
// After this many refused padded launches (the limit fitting) a function is no longer padded.
constexpr int kMaxRefusals = 2;
// Marks a function's `limit` as unknown: no epoch reaches it.
constexpr uint64_t kStale = ~uint64_t{0};

// Bumped when the program sets a limit through a handle we have no entry for (a CUkernel and the
// CUfunction it was resolved to share one limit): every entry re-reads its limit once.
std::atomic<uint64_t> g_epoch{0};

// ---- devices -------------------------------------------------------------------------------
constexpr int kMaxDevices = 256;
std::atomic<const DevInfo*> g_devices[kMaxDevices];

// ---- functions -------------------------------------------------------------------------------
struct Key {
  CUfunction f;
  CUdevice dev;
  bool operator==(const Key& o) const { return f == o.f && dev == o.dev; }
};
struct KeyHash {
  size_t operator()(const Key& k) const {
    return std::hash<const void*>()(k.f) ^ (static_cast<size_t>(k.dev) * 0x9e3779b97f4a7c15ull);
  }
};
// Entries are never removed and live behind a pointer, so a FuncInfo* stays valid.
std::shared_mutex g_fmu;
std::unordered_map<Key, std::unique_ptr<FuncInfo>, KeyHash> g_funcs;
// The program's last limit set through a handle that has no entry (it launches through an alias:
// a CUkernel set, its CUfunction launched), so that reading it back gives the program's value.
std::unordered_map<Key, int, KeyHash> g_alias_sets;  // under g_fmu

bool GetAttr(State& s, CUfunction f, FuncInfo* fi, CUdevice dev, CUfunction_attribute a, int* v) {
  if (!fi->kernel_handle && s.func_attr && s.func_attr(v, a, f) == CUDA_SUCCESS) return true;
  if (s.kern_attr && s.kern_attr(v, a, reinterpret_cast<CUkernel>(f), dev) == CUDA_SUCCESS) {
    fi->kernel_handle = true;
    return true;
  }
  return false;
}

std::unique_ptr<FuncInfo> QueryFunc(State& s, CUfunction f, CUdevice dev) {
  auto fi = std::make_unique<FuncInfo>();
  const char* name = nullptr;
  if (s.func_name && s.func_name(&name, f) == CUDA_SUCCESS && name) {
    fi->name = name;
  } else if (s.kern_name && s.kern_name(&name, reinterpret_cast<CUkernel>(f)) == CUDA_SUCCESS && name) {
    fi->name = name;
    fi->kernel_handle = true;
  }
  int must = 0, width = 0, max_dyn = 0;
  const uint64_t epoch = g_epoch.load(std::memory_order_acquire);  // before the read: a later set re-reads
  fi->known = GetAttr(s, f, fi.get(), dev, CU_FUNC_ATTRIBUTE_NUM_REGS, &fi->regs) &&
              GetAttr(s, f, fi.get(), dev, CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES, &fi->static_smem) &&
              GetAttr(s, f, fi.get(), dev, kMaxDyn, &max_dyn);
  fi->limit.store(max_dyn, std::memory_order_relaxed);
  fi->program.store(max_dyn, std::memory_order_relaxed);
  fi->epoch.store(epoch, std::memory_order_relaxed);
  GetAttr(s, f, fi.get(), dev, CU_FUNC_ATTRIBUTE_CLUSTER_SIZE_MUST_BE_SET, &must);
  GetAttr(s, f, fi.get(), dev, CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_WIDTH, &width);
  fi->cluster = must != 0 || width > 0;
  if (fi->name.empty()) fi->name = "?";
  fi->comm = IsComm(s.cfg, fi->name);
  fi->denied = IsDenied(s.cfg, fi->name);
  return fi;
}

bool SetLimit(State& s, CUfunction f, FuncInfo* fi, CUdevice dev, int bytes) {
  CUresult r = CUDA_ERROR_NOT_SUPPORTED;
  if (!fi->kernel_handle && s.func_set) r = s.func_set(f, kMaxDyn, bytes);
  if (r != CUDA_SUCCESS && s.kern_set) r = s.kern_set(kMaxDyn, bytes, reinterpret_cast<CUkernel>(f), dev);
  return r == CUDA_SUCCESS;
}

// Under fi->mu: re-reads the driver's limit when it may have changed behind our back. A value
// other than the one we last saw was set by the program (through another handle).
bool RefreshLocked(State& s, CUfunction f, FuncInfo* fi, CUdevice dev) {
  const uint64_t e = g_epoch.load(std::memory_order_acquire);
  if (fi->epoch.load(std::memory_order_relaxed) == e) return true;
  int now = 0;
  if (!GetAttr(s, f, fi, dev, kMaxDyn, &now)) return false;
  if (now != fi->limit.load(std::memory_order_relaxed)) {
    fi->program.store(now, std::memory_order_relaxed);
    fi->limit.store(now, std::memory_order_relaxed);
  }
  fi->epoch.store(e, std::memory_order_release);
  return true;
}
}  // namespace

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

FuncInfo* FindFunc(CUfunction f, CUdevice dev) {
  std::shared_lock<std::shared_mutex> l(g_fmu);
  auto it = g_funcs.find(Key{f, dev});
  return it == g_funcs.end() ? nullptr : it->second.get();
}

FuncInfo* Func(State& s, CUfunction f, CUdevice dev) {
  if (FuncInfo* fi = FindFunc(f, dev)) return fi;
  std::unique_ptr<FuncInfo> fi = QueryFunc(s, f, dev);
  std::unique_lock<std::shared_mutex> l(g_fmu);
  return g_funcs.emplace(Key{f, dev}, std::move(fi)).first->second.get();  // another thread's entry if it won
}

Fit PrepareShaped(State& s, CUfunction f, FuncInfo* fi, CUdevice dev, unsigned shmem, size_t pad) {
  if (fi->refusals.load(std::memory_order_relaxed) >= kMaxRefusals) return Fit::kRefused;
  const long long need = static_cast<long long>(shmem) + static_cast<long long>(pad);
  if (need > INT_MAX) return Fit::kRaiseFailed;
  // The common case, no lock: the limit is known, the program allows this launch, the pad fits.
  if (fi->epoch.load(std::memory_order_acquire) == g_epoch.load(std::memory_order_acquire) &&
      shmem <= static_cast<unsigned>(fi->program.load(std::memory_order_relaxed)) &&
      need <= fi->limit.load(std::memory_order_relaxed))
    return Fit::kOk;
  std::lock_guard<std::mutex> l(fi->mu);
  if (!RefreshLocked(s, f, fi, dev)) return Fit::kRaiseFailed;
  // A launch over the program's own limit is the program's: the driver answers it unchanged.
  if (static_cast<long long>(shmem) > fi->program.load(std::memory_order_relaxed)) return Fit::kOverProgram;
  if (need <= fi->limit.load(std::memory_order_relaxed)) return Fit::kOk;
  if (!SetLimit(s, f, fi, dev, static_cast<int>(need))) return Fit::kRaiseFailed;
  fi->limit.store(static_cast<int>(need), std::memory_order_release);
  return Fit::kOk;
}

void PaddedLaunchRefused(FuncInfo* fi, bool unpadded_ok) {
  fi->epoch.store(kStale, std::memory_order_release);  // re-read before the next padded launch
  if (unpadded_ok) fi->refusals.fetch_add(1, std::memory_order_relaxed);
}

CUresult ProgramSetsLimit(CUfunction f, CUdevice dev, bool dev_known, bool by_kernel, int value) {
  auto set = [&](int v) -> CUresult {
    if (by_kernel) {
      using Fn = CUresult (*)(CUfunction_attribute, int, CUkernel, CUdevice);
      auto fn = reinterpret_cast<Fn>(RealOf(kHookCuKernelSetAttribute));
      return fn ? fn(kMaxDyn, v, reinterpret_cast<CUkernel>(f), dev) : CUDA_ERROR_NOT_INITIALIZED;
    }
    using Fn = CUresult (*)(CUfunction, CUfunction_attribute, int);
    auto fn = reinterpret_cast<Fn>(RealOf(kHookCuFuncSetAttribute));
    return fn ? fn(f, kMaxDyn, v) : CUDA_ERROR_NOT_INITIALIZED;
  };
  State& s = S();
  FuncInfo* fi = s.enabled && dev_known ? FindFunc(f, dev) : nullptr;
  if (!fi) {
    const CUresult r = set(value);
    if (r == CUDA_SUCCESS && s.enabled && dev_known) {
      std::unique_lock<std::shared_mutex> l(g_fmu);
      g_alias_sets[Key{f, dev}] = value;
    }
    if (r == CUDA_SUCCESS) g_epoch.fetch_add(1, std::memory_order_acq_rel);
    return r;
  }
  std::lock_guard<std::mutex> l(fi->mu);
  RefreshLocked(s, f, fi, dev);
  const int limit = fi->limit.load(std::memory_order_relaxed);
  if (value >= 0 && value < limit && limit > fi->program.load(std::memory_order_relaxed)) {
    // Our raise is in force and covers the program's value: record it, keep the driver's limit
    // (lowering it would fail padded launches already captured into CUDA graphs).
    fi->program.store(value, std::memory_order_relaxed);
    return CUDA_SUCCESS;
  }
  const CUresult r = set(value);
  if (r == CUDA_SUCCESS) {
    fi->program.store(value, std::memory_order_relaxed);
    fi->limit.store(value, std::memory_order_release);
  }
  return r;
}

int ProgramView(CUfunction f, CUdevice dev, int driver_value) {
  FuncInfo* fi = FindFunc(f, dev);
  if (!fi) {
    // Above what the program set here: our raise through the alias it launches by.
    std::shared_lock<std::shared_mutex> l(g_fmu);
    auto it = g_alias_sets.find(Key{f, dev});
    return it != g_alias_sets.end() && driver_value > it->second ? it->second : driver_value;
  }
  std::lock_guard<std::mutex> l(fi->mu);
  const int limit = fi->limit.load(std::memory_order_relaxed), program = fi->program.load(std::memory_order_relaxed);
  return limit > program && driver_value == limit ? program : driver_value;
}

void LogOnce(State& s, FuncInfo* fi, const std::string& what) {
  if (!s.verbose || fi->logged.exchange(true)) return;
  fmt::print(stderr, "corun: {}: {}\n", fi->name, what);
}

}  // namespace corun
