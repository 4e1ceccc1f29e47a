// Host-only co-residence model: compute blocks and communication CTAs on the same SM. Counts
// warps (threads), blocks, registers per scheduler quarter and shared memory (reservation
// included) with the allocation rules of occupancy.h. No CUDA headers: tested in CI.
#pragma once
#include <string>
#include <vector>

#include "corun/occupancy.h"

namespace corun {

// NCCL 2.28's default allreduce CTA on sm_90 (measured on H200): 544 threads x 96 registers,
// 21,568 B static + 82,240 B dynamic shared memory. Used where no probed footprint exists.
constexpr KernelFootprint kNcclCtaSm90{544, 96, 21568, 82240};

// Whether `n` blocks of `compute` and `c` CTAs of `comm` fit on one SM together; kNone when they
// do, else the first resource exceeded (threads, blocks, registers, shared memory, in that order).
// Registers: each kernel's warps are dealt round-robin to the register quarters, and the fullest
// quarters of both add up (RegsInFullestQuarter).
Limiter MixExceeds(const DeviceLimits& d, const KernelFootprint& compute, int n, const KernelFootprint& comm,
                   int c);

struct CoResidence {
  int blocks = 0;  // compute blocks that fit on one SM beside the communication CTAs
  int by_threads = 0, by_regs = 0, by_smem = 0, by_blocks = 0;
  Limiter limiter = Limiter::kNone;  // the resource that stops one more compute block
  std::string why_zero;              // set when blocks == 0
};

// (a) How many `compute` blocks fit on one SM beside `comm_ctas` CTAs of `comm`. With
// comm_ctas == 0 this is ResidentBlocks. An invalid kernel, or a communication footprint that
// does not fit on an SM alone, gives 0 with why_zero.
CoResidence ComputeBesideComm(const DeviceLimits& d, const KernelFootprint& compute, const KernelFootprint& comm,
                              int comm_ctas = 1);

// One K of the shared-memory pad argument: K padded compute blocks of per-block footprint S
// (reservation and rounding included) such that a (K+1)-th does not fit, (K+1)*S > smem_per_sm,
// and the communication CTAs still do, K*S + CTA smem <= smem_per_sm.
struct PadWindow {
  int k = 0;
  size_t min_block_smem = 0, max_block_smem = 0;  // the range of S (multiples of the unit)
  size_t pad = 0;                                 // extra dynamic smem that reaches min_block_smem
  Limiter other = Limiter::kNone;  // what still stops the CTAs beside K padded blocks (kNone: fits)
};

struct PadRoom {
  std::vector<PadWindow> windows;  // every K for which some pad satisfies both inequalities
  std::vector<int> ks;             // the K of windows where nothing else stops the CTAs
  Limiter limiter = Limiter::kNone;  // when ks is empty: what stops co-residence
  std::string why;                   // when ks is empty: one line naming it
};

// (b) Whether a shared-memory pad on `compute` can keep room for `comm_ctas` CTAs of `comm`.
// On H200 with NCCL's ~104 KB CTA only K = 1 has a window.
PadRoom PadKeepsRoom(const DeviceLimits& d, const KernelFootprint& compute, const KernelFootprint& comm,
                     int comm_ctas = 1);

// (c) Co-residence by dispatch order. A high-priority communication CTA reaching an SM first
// leaves the rest to compute blocks; compute blocks reaching it first fill it to their occupancy
// and leave room for comm CTAs only if that occupancy does.
struct DispatchOrder {
  CoResidence comm_first;   // compute blocks beside one comm CTA placed first
  int compute_first = 0;    // comm CTAs beside a full SM of compute blocks
  bool shares_sm() const { return comm_first.blocks > 0 || compute_first > 0; }
};
DispatchOrder CoResidenceByOrder(const DeviceLimits& d, const KernelFootprint& compute, const KernelFootprint& comm);

}  // namespace corun
