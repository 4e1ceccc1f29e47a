#include "corun/coresidence.h"

#include <algorithm>
#include <string>

namespace corun {
namespace {
size_t RoundDown(size_t v, size_t unit) { return unit ? v / unit * unit : v; }
size_t RoundUp(size_t v, size_t unit) { return unit ? (v + unit - 1) / unit * unit : v; }
int MaxWarps(const DeviceLimits& d) { return d.max_threads_per_sm / d.warp_size; }
int QuarterRegs(const DeviceLimits& d) { return d.regs_per_sm / std::max(1, d.reg_subpartitions); }

// Why a kernel cannot run at all, or "" when it can.
std::string Invalid(const DeviceLimits& d, const KernelFootprint& k, const char* what) {
  if (k.threads <= 0 || k.threads > d.max_threads_per_block)
    return std::string(what) + ": block size " + std::to_string(k.threads) + " out of range";
  const Occupancy o = ResidentBlocks(d, k);
  if (o.blocks == 0) return std::string(what) + ": " + o.why_zero;
  return "";
}

// Whether `c` communication CTAs fit on one SM by themselves; else what stops them, and why.
Limiter CommAlone(const DeviceLimits& d, const KernelFootprint& comm, int c, std::string* why) {
  const Limiter l = MixExceeds(d, KernelFootprint{}, 0, comm, c);
  if (l != Limiter::kNone)
    *why = std::to_string(c) + " communication CTAs do not fit on one SM (" + LimiterName(l) + ")";
  return l;
}
}  // namespace

Limiter MixExceeds(const DeviceLimits& d, const KernelFootprint& compute, int n, const KernelFootprint& comm,
                   int c) {
  n = std::max(n, 0);
  c = std::max(c, 0);
  const int wc = WarpsPerBlock(d, compute.threads) * n, wm = WarpsPerBlock(d, comm.threads) * c;
  if (wc + wm > MaxWarps(d)) return Limiter::kThreads;
  if (n + c > d.max_blocks_per_sm) return Limiter::kBlocks;
  if (RegsInFullestQuarter(d, wc, compute.regs_per_thread) + RegsInFullestQuarter(d, wm, comm.regs_per_thread) >
      QuarterRegs(d))
    return Limiter::kRegisters;
  const size_t smem = (n ? SmemPerBlock(d, compute) * n : 0) + (c ? SmemPerBlock(d, comm) * c : 0);
  if (smem > d.smem_per_sm) return Limiter::kSharedMemory;
  return Limiter::kNone;
}

CoResidence ComputeBesideComm(const DeviceLimits& d, const KernelFootprint& compute, const KernelFootprint& comm,
                              int comm_ctas) {
  CoResidence r;
  if (std::string why = Invalid(d, compute, "compute kernel"); !why.empty()) {
    r.why_zero = why;
    return r;
  }
  if (comm_ctas < 0) {
    r.why_zero = "communication CTA count " + std::to_string(comm_ctas) + " is negative";
    return r;
  }
  if (comm_ctas == 0) {  // nothing beside: the compute kernel's own occupancy
    const Occupancy o = ResidentBlocks(d, compute);
    r.blocks = o.blocks;
    r.by_threads = o.by_threads, r.by_regs = o.by_regs, r.by_smem = o.by_smem, r.by_blocks = o.by_blocks;
    r.limiter = o.limiter;
    return r;
  }
  if (std::string why = Invalid(d, comm, "communication CTA"); !why.empty()) {
    r.why_zero = why;
    return r;
  }
  if (Limiter l = CommAlone(d, comm, comm_ctas, &r.why_zero); l != Limiter::kNone) {
    r.limiter = l;
    return r;
  }
  const int wc = WarpsPerBlock(d, compute.threads), wm = WarpsPerBlock(d, comm.threads) * comm_ctas;
  r.by_threads = (MaxWarps(d) - wm) / wc;
  r.by_blocks = d.max_blocks_per_sm - comm_ctas;
  r.by_smem = static_cast<int>((d.smem_per_sm - SmemPerBlock(d, comm) * comm_ctas) / SmemPerBlock(d, compute));
  const int comm_regs = RegsInFullestQuarter(d, wm, comm.regs_per_thread);
  while (r.by_regs < d.max_blocks_per_sm &&
         comm_regs + RegsInFullestQuarter(d, (r.by_regs + 1) * wc, compute.regs_per_thread) <= QuarterRegs(d))
    ++r.by_regs;
  r.blocks = std::min({r.by_threads, r.by_regs, r.by_smem, r.by_blocks});
  r.limiter = BindingLimiter(r.blocks, r.by_smem, r.by_regs, r.by_threads);
  if (r.blocks == 0) r.why_zero = std::string("no compute block fits beside (") + LimiterName(r.limiter) + ")";
  return r;
}

PadRoom PadKeepsRoom(const DeviceLimits& d, const KernelFootprint& compute, const KernelFootprint& comm,
                     int comm_ctas) {
  PadRoom p;
  std::string why = Invalid(d, compute, "compute kernel");
  if (why.empty()) why = Invalid(d, comm, "communication CTA");
  if (why.empty() && comm_ctas < 1) why = "communication CTA count " + std::to_string(comm_ctas) + " below 1";
  if (!why.empty()) {
    p.why = why;
    return p;
  }
  if (Limiter l = CommAlone(d, comm, comm_ctas, &p.why); l != Limiter::kNone) {
    p.limiter = l;
    return p;
  }
  const size_t S = d.smem_per_sm, C = SmemPerBlock(d, comm) * comm_ctas;
  const size_t base = SmemPerBlock(d, compute);
  KernelFootprint biggest = compute;  // the largest block the opt-in limit allows
  biggest.dynamic_smem = d.smem_per_block_optin - std::min(d.smem_per_block_optin, compute.static_smem);
  const size_t s_max = SmemPerBlock(d, biggest);
  const int natural = ResidentBlocks(d, compute).blocks;  // a pad only lowers occupancy
  for (int k = 1; k <= natural; ++k) {
    // (k+1)*s > S: s >= S/(k+1) + 1; k*s + C <= S: s <= (S - C)/k; both on the allocation unit.
    const size_t lo = std::max(base, RoundUp(S / (k + 1) + 1, d.smem_alloc_unit));
    const size_t hi = std::min(s_max, RoundDown((S - C) / k, d.smem_alloc_unit));
    if (lo > hi) continue;
    PadWindow w;
    w.k = k, w.min_block_smem = lo, w.max_block_smem = hi, w.pad = lo - base;
    KernelFootprint padded = compute;
    padded.dynamic_smem += w.pad;
    w.other = MixExceeds(d, padded, k, comm, comm_ctas);
    if (w.other == Limiter::kNone) p.ks.push_back(k);
    p.windows.push_back(w);
  }
  if (!p.ks.empty()) return p;
  if (p.windows.empty()) {
    p.limiter = Limiter::kSharedMemory;
    p.why = "no pad caps the compute kernel at K blocks and leaves " + std::to_string(C) +
            " B for the communication CTAs";
  } else {
    p.limiter = p.windows.front().other;
    p.why = "a pad to K=" + std::to_string(p.windows.front().k) + " leaves the shared memory, but " +
            LimiterName(p.limiter) + " stop the communication CTAs";
  }
  return p;
}

DispatchOrder CoResidenceByOrder(const DeviceLimits& d, const KernelFootprint& compute, const KernelFootprint& comm) {
  DispatchOrder o;
  o.comm_first = ComputeBesideComm(d, compute, comm, 1);
  const int natural = ResidentBlocks(d, compute).blocks;
  if (natural > 0 && comm.threads > 0 && comm.threads <= d.max_threads_per_block)
    o.compute_first = CommRoomBeside(d, compute, natural, comm);
  return o;
}

}  // namespace corun
