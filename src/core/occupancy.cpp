#include "corun/occupancy.h"

#include <algorithm>

namespace corun {
namespace {
size_t RoundUp(size_t v, size_t unit) { return unit ? (v + unit - 1) / unit * unit : v; }
int CeilDiv(int a, int b) { return (a + b - 1) / b; }
}  // namespace

std::optional<DeviceLimits> LimitsForArch(int major, int minor, int num_sms) {
  DeviceLimits d;
  d.sm_major = major;
  d.sm_minor = minor;
  d.num_sms = num_sms;
  d.smem_reserved_per_block = 1024;
  d.smem_alloc_unit = 128;
  const int cc = major * 10 + minor;
  switch (cc) {
    case 80:  // A100
      d.max_threads_per_sm = 2048; d.max_blocks_per_sm = 32;
      d.smem_per_sm = 164 * 1024; d.smem_per_block_optin = 163 * 1024;
      break;
    case 86:  // A40, RTX 30xx
      d.max_threads_per_sm = 1536; d.max_blocks_per_sm = 16;
      d.smem_per_sm = 100 * 1024; d.smem_per_block_optin = 99 * 1024;
      break;
    case 87:  // Orin
      d.max_threads_per_sm = 1536; d.max_blocks_per_sm = 16;
      d.smem_per_sm = 164 * 1024; d.smem_per_block_optin = 163 * 1024;
      break;
    case 89:  // L40, RTX 40xx
      d.max_threads_per_sm = 1536; d.max_blocks_per_sm = 24;
      d.smem_per_sm = 100 * 1024; d.smem_per_block_optin = 99 * 1024;
      break;
    case 90:  // H100, H200
      d.max_threads_per_sm = 2048; d.max_blocks_per_sm = 32;
      d.smem_per_sm = 228 * 1024; d.smem_per_block_optin = 227 * 1024;
      break;
    default:
      return std::nullopt;
  }
  return d;
}

const char* LimiterName(Limiter l) {
  switch (l) {
    case Limiter::kThreads: return "threads";
    case Limiter::kRegisters: return "registers";
    case Limiter::kSharedMemory: return "shared-memory";
    case Limiter::kBlocks: return "blocks";
    default: return "none";
  }
}

size_t SmemPerBlock(const DeviceLimits& d, const KernelFootprint& k) {
  return RoundUp(k.static_smem + k.dynamic_smem + d.smem_reserved_per_block, d.smem_alloc_unit);
}

int RegsPerWarp(const DeviceLimits& d, int regs_per_thread) {
  return static_cast<int>(RoundUp(static_cast<size_t>(std::max(regs_per_thread, 1)) * d.warp_size, d.reg_alloc_unit));
}

int RegsPerBlock(const DeviceLimits& d, const KernelFootprint& k) {
  return CeilDiv(k.threads, d.warp_size) * RegsPerWarp(d, k.regs_per_thread);
}

int WarpsPerBlock(const DeviceLimits& d, int threads) { return CeilDiv(std::max(threads, 0), d.warp_size); }

int RegsInFullestQuarter(const DeviceLimits& d, int warps, int regs_per_thread) {
  return warps <= 0 ? 0 : CeilDiv(warps, std::max(1, d.reg_subpartitions)) * RegsPerWarp(d, regs_per_thread);
}

Occupancy ResidentBlocks(const DeviceLimits& d, const KernelFootprint& k) {
  Occupancy o;
  if (k.threads <= 0 || k.threads > d.max_threads_per_block) {
    o.why_zero = "block size out of range";
    return o;
  }
  if (k.regs_per_thread > d.max_regs_per_thread) {
    o.why_zero = "too many registers per thread";
    return o;
  }
  if (k.static_smem + k.dynamic_smem > d.smem_per_block_optin) {
    o.why_zero = "shared memory per block above the opt-in limit";
    return o;
  }
  const int warps = CeilDiv(k.threads, d.warp_size);
  o.by_threads = (d.max_threads_per_sm / d.warp_size) / warps;
  o.by_blocks = d.max_blocks_per_sm;
  // Registers: each warp's allocation must fit inside one scheduler's share of the file.
  const int per_warp = RegsPerWarp(d, k.regs_per_thread);
  if (RegsPerBlock(d, k) > d.regs_per_block) {
    o.why_zero = "too many registers per block";
    return o;
  }
  const int warps_per_part = (d.regs_per_sm / d.reg_subpartitions) / per_warp;
  o.by_regs = (warps_per_part * d.reg_subpartitions) / warps;
  o.by_smem = static_cast<int>(d.smem_per_sm / SmemPerBlock(d, k));
  o.blocks = std::min({o.by_threads, o.by_regs, o.by_smem, o.by_blocks});
  o.limiter = BindingLimiter(o.blocks, o.by_smem, o.by_regs, o.by_threads);
  if (o.blocks == 0) o.why_zero = std::string("no block fits (") + LimiterName(o.limiter) + ")";
  return o;
}

Limiter BindingLimiter(int blocks, int by_smem, int by_regs, int by_threads) {
  if (blocks == by_smem) return Limiter::kSharedMemory;
  if (blocks == by_regs) return Limiter::kRegisters;
  if (blocks == by_threads) return Limiter::kThreads;
  return Limiter::kBlocks;
}

std::optional<size_t> PadForCap(const DeviceLimits& d, const KernelFootprint& k, int cap) {
  if (cap < 1) return std::nullopt;
  const Occupancy now = ResidentBlocks(d, k);
  if (now.blocks == 0) return std::nullopt;
  if (now.blocks <= cap) return size_t{0};
  // floor(S / b) <= cap  <=>  b > S / (cap + 1): the rounded per-block footprint must reach need.
  const size_t need = d.smem_per_sm / static_cast<size_t>(cap + 1) + 1;
  const size_t base = k.static_smem + k.dynamic_smem + d.smem_reserved_per_block;
  // The rounded footprint is a multiple of the unit, so the pad that fills the unit reaching
  // `need` gives the same occupancy as the smallest one; it reads better in a table.
  const size_t target = RoundUp(need, d.smem_alloc_unit);
  const size_t pad = target > base ? target - base : 0;
  KernelFootprint padded = k;
  padded.dynamic_smem += pad;
  if (padded.static_smem + padded.dynamic_smem > d.smem_per_block_optin) return std::nullopt;
  if (ResidentBlocks(d, padded).blocks > cap) return std::nullopt;  // cannot happen; guards the algebra
  return pad;
}

int CommRoomBeside(const DeviceLimits& d, const KernelFootprint& compute, int compute_blocks,
                   const KernelFootprint& comm) {
  const int warp_c = CeilDiv(compute.threads, d.warp_size) * compute_blocks;
  const int warp_m = CeilDiv(comm.threads, d.warp_size);
  if (warp_m == 0) return 0;
  const int max_warps = d.max_threads_per_sm / d.warp_size;
  const int by_threads = std::max(0, max_warps - warp_c) / warp_m;
  const int by_blocks = std::max(0, d.max_blocks_per_sm - compute_blocks);
  const long smem_left = static_cast<long>(d.smem_per_sm) -
                         static_cast<long>(SmemPerBlock(d, compute)) * compute_blocks;
  if (comm.static_smem + comm.dynamic_smem > d.smem_per_block_optin) return 0;
  const int by_smem = smem_left <= 0 ? 0 : static_cast<int>(smem_left / static_cast<long>(SmemPerBlock(d, comm)));
  // Registers per scheduler: warps are dealt round-robin to the SM's sub-partitions, each with a
  // quarter of the register file. The fullest sub-partition decides whether a CTA fits; this is
  // why a 544-thread, 96-register NCCL CTA (5 warps x 3072 registers in one quarter) finds no
  // room beside almost any compute block.
  const int parts = std::max(1, d.reg_subpartitions);
  const int per_part = d.regs_per_sm / parts;
  const int used = RegsInFullestQuarter(d, warp_c, compute.regs_per_thread);
  int by_regs = 0;
  while (by_regs < 64 && used + RegsInFullestQuarter(d, (by_regs + 1) * warp_m, comm.regs_per_thread) <= per_part)
    ++by_regs;
  return std::max(0, std::min({by_threads, by_blocks, by_smem, by_regs}));
}

std::optional<int> AutoCap(const DeviceLimits& d, const KernelFootprint& compute,
                           const KernelFootprint& comm) {
  const int natural = ResidentBlocks(d, compute).blocks;
  for (int k = natural; k >= 1; --k) {
    auto pad = PadForCap(d, compute, k);
    if (!pad) continue;
    KernelFootprint padded = compute;
    padded.dynamic_smem += *pad;
    if (CommRoomBeside(d, padded, k, comm) >= 1) return k;
  }
  return std::nullopt;
}

}  // namespace corun
