// The launch path: decide what a launch gets (launch_rules.cpp), issue it, and fall back to the
// program's own launch whenever the driver refuses what we changed; count what the driver accepted.
#include <string>
#include <vector>

#include "preload.h"

namespace corun {
namespace {

struct Plan {
  LaunchDecision d;
  int priority = 0;
  FuncInfo* fi = nullptr;
};

// After this many refused priority launches (the original then accepted) priority is not tried again.
constexpr int kMaxPriorityRefusals = 2;
std::atomic<int> g_priority_refusals{0};

SkipReason SkipFor(Fit fit) {
  switch (fit) {
    case Fit::kOverProgram: return SkipReason::kOverProgramLimit;
    case Fit::kRefused: return SkipReason::kRefusedBefore;  // no padded launch was tried this time
    default: return SkipReason::kRaiseFailed;
  }
}

// Looks at one launch and decides; fills `plan`. Returns false when the launch must pass
// through untouched (disabled, no context, unknown device).
bool Analyze(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
             unsigned shmem, const CUlaunchAttribute* attrs, unsigned nattrs, Plan* plan) {
  State& s = S();
  g_count.launches.fetch_add(1, std::memory_order_relaxed);
  if (!s.enabled) return false;
  CUdevice dev = 0;
  if (!CurrentDevice(s, &dev)) return false;
  const DevInfo& di = Device(s, dev);
  if (!di.ok) return false;
  FuncInfo* fi = Func(s, f, dev);
  plan->fi = fi;
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
    g_count.nccl_ctas.store(static_cast<int>(facts.grid_blocks), std::memory_order_relaxed);
    return true;
  }
  if (plan->d.shaped) {
    const Fit fit = PrepareShaped(s, f, fi, dev, shmem, plan->d.pad);
    if (fit != Fit::kOk) {
      plan->d.shaped = false;
      plan->d.pad = 0;
      plan->d.skip = SkipFor(fit);
    }
  }
  return true;
}

// Issues the launch as planned and falls back to the program's own launch when the driver refuses
// ours. `issue(pad, priority)` makes one driver call: with the pad, with the priority attribute.
template <typename Issue>
CUresult Run(State& s, const Plan& p, bool can_prioritise, Issue issue) {
  if (p.d.comm) {
    const bool want = p.d.prioritise;
    can_prioritise = can_prioritise && g_priority_refusals.load(std::memory_order_relaxed) < kMaxPriorityRefusals;
    if (want && can_prioritise) {
      const CUresult r = issue(false, true);
      if (r == CUDA_SUCCESS) {
        g_count.comm.fetch_add(1, std::memory_order_relaxed);
        g_count.prioritised.fetch_add(1, std::memory_order_relaxed);
        if (s.verbose) LogOnce(s, p.fi, "communication: priority " + std::to_string(p.priority));
        return r;
      }
    }
    const CUresult r = issue(false, false);
    if (r != CUDA_SUCCESS) {
      g_count.failed.fetch_add(1, std::memory_order_relaxed);
      return r;
    }
    g_count.comm.fetch_add(1, std::memory_order_relaxed);
    if (want) {
      g_count.priority_dropped.fetch_add(1, std::memory_order_relaxed);
      if (can_prioritise) g_priority_refusals.fetch_add(1, std::memory_order_relaxed);
      if (s.verbose) LogOnce(s, p.fi, can_prioritise ? "communication: the driver refused the priority, launched without it"
                                      : "communication: launched without priority (no cuLaunchKernelEx, or refused before)");
    }
    return r;
  }
  const bool counting = s.cfg.policy.shape != ShapeMode::kNone;
  if (p.d.shaped) {
    CUresult r = issue(true, false);
    if (r == CUDA_SUCCESS) {
      g_count.shaped.fetch_add(1, std::memory_order_relaxed);
      if (s.verbose) LogOnce(s, p.fi, "shaped: +" + std::to_string(p.d.pad) + " B dynamic smem");
      return r;
    }
    // Never fail a launch the program would have had accepted: re-issue it as it was made.
    r = issue(false, false);
    PaddedLaunchRefused(p.fi, r == CUDA_SUCCESS);
    if (r != CUDA_SUCCESS) {
      g_count.failed.fetch_add(1, std::memory_order_relaxed);
      return r;
    }
    g_count.skip[static_cast<int>(SkipReason::kRefused)].fetch_add(1, std::memory_order_relaxed);
    if (s.verbose) LogOnce(s, p.fi, "not shaped: the driver refused the padded launch, launched as made");
    return r;
  }
  const CUresult r = issue(false, false);
  if (r != CUDA_SUCCESS) {
    g_count.failed.fetch_add(1, std::memory_order_relaxed);
  } else if (counting) {
    g_count.skip[static_cast<int>(p.d.skip)].fetch_add(1, std::memory_order_relaxed);
    if (s.verbose && p.fi) LogOnce(s, p.fi, std::string("not shaped: ") + SkipReasonName(p.d.skip));
  }
  return r;
}

using LaunchFn = CUresult (*)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                              CUstream, void**, void**);
using LaunchExFn = CUresult (*)(const CUlaunchConfig*, CUfunction, void**, void**);

}  // namespace

CUresult Launch(HookId self, HookId ex_id, CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                unsigned by, unsigned bz, unsigned shmem, CUstream st, void** params, void** extra) {
  auto real = reinterpret_cast<LaunchFn>(RealOf(self));
  if (!real) return CUDA_ERROR_NOT_INITIALIZED;
  Plan p;
  if (!Analyze(f, gx, gy, gz, bx, by, bz, shmem, nullptr, 0, &p)) return real(f, gx, gy, gz, bx, by, bz, shmem, st, params, extra);
  // cuLaunchKernel has no attributes: a prioritised launch goes through cuLaunchKernelEx.
  auto real_ex = p.d.comm && p.d.prioritise ? reinterpret_cast<LaunchExFn>(RealOf(ex_id)) : nullptr;
  return Run(S(), p, real_ex != nullptr, [&](bool pad, bool prio) {
    if (prio) {
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
    return real(f, gx, gy, gz, bx, by, bz, shmem + (pad ? static_cast<unsigned>(p.d.pad) : 0u), st, params, extra);
  });
}

CUresult LaunchEx(HookId self, const CUlaunchConfig* config, CUfunction f, void** params, void** extra) {
  auto real = reinterpret_cast<LaunchExFn>(RealOf(self));
  if (!real) return CUDA_ERROR_NOT_INITIALIZED;
  if (!config) return real(config, f, params, extra);
  Plan p;
  if (!Analyze(f, config->gridDimX, config->gridDimY, config->gridDimZ, config->blockDimX, config->blockDimY,
               config->blockDimZ, config->sharedMemBytes, config->attrs, config->numAttrs, &p))
    return real(config, f, params, extra);
  return Run(S(), p, true, [&](bool pad, bool prio) {
    if (prio) {
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
    if (pad) {
      CUlaunchConfig c = *config;
      c.sharedMemBytes += static_cast<unsigned>(p.d.pad);
      return real(&c, f, params, extra);
    }
    return real(config, f, params, extra);
  });
}

}  // namespace corun
