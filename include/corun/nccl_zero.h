// NCCL's own zero-CTA collectives (NCCL >= 2.28.3: CTAPolicy ZERO, buffers in symmetric windows,
// data moved by copy engines): which rows can use them, and the verdict of the check that NCCL
// really took that path (no kernel) — host-only, so the decision is tested without a GPU. The
// CUDA side that gathers the evidence is runtime/nccl_zero.
#pragma once
#include <string>
#include <vector>

#include "corun/collective.h"

namespace corun {

// The oldest stack with the zero-CTA path: NCCL 2.28.3 (its version code), CUDA driver 12.5.
constexpr int kNcclZeroMinNccl = 22803;
constexpr int kNcclZeroMinDriver = 12050;

// Why the zero-CTA path cannot serve this collective ("" when NCCL offers it: AllGather, AlltoAll).
std::string NcclZeroNotApplicable(Collective c);
// Why this NCCL / CUDA driver (version codes: 22809, 12080) has no zero-CTA path ("" when it has).
std::string NcclZeroStackMissing(int nccl_version, int driver_version);

// The evidence that a call launched no kernel: every SM held by a blocker kernel whose blocks
// leave no room for any other block, the collective enqueued behind them, and each block watching
// for a flag a copy written after the collective sets. A collective that completes while every SM
// is held ran no kernel. (A captured graph cannot tell: NCCL's zero-CTA call holds a conditional
// node whose body is not readable, and capture breaks a multi-GPU process's communicators.)
struct ZeroHold {
  std::string cannot_hold;  // why every SM could not be held ("" when it could)
  int blocks = 0;           // blocker blocks (one per SM)
  int resident = 0;         // of them, resident at once before the collective was enqueued
  int saw_done = 0;         // of them, saw the collective finish while still holding their SM
  double timeout_s = 0;     // how long each block held its SM at most
  // A collective finishes only once every rank has enqueued its side, so one that did not finish
  // within the hold is evidence of a kernel only when the ranks met right before their blockers
  // and this rank enqueued its side well inside its hold (a late peer cannot be told apart).
  bool met = false;         // every rank met right before the blocker launch (or there is one rank)
  double enqueued_s = -1;   // seconds from the blocker launch to this rank's enqueue (< 0: unknown)
};

// How long before the end of the hold the collective must have been enqueued on this rank for an
// unfinished one to read as "not taken" (the peers met first, so theirs came at about that time).
constexpr double kZeroMinMarginSeconds = 1.0;

enum class ZeroPath { kTaken, kNotTaken, kUnknown };
struct ZeroVerdict {
  ZeroPath path = ZeroPath::kUnknown;
  std::string why;  // one line: what was seen
};

ZeroVerdict ZeroVerdictFromHold(const ZeroHold& h);

// The row's note: "zero-CTA path checked: ..." when taken; else the reason the row is skipped
// ("NCCL launched a kernel: zero-CTA path not taken (...)" or "zero-CTA path unchecked: ...").
std::string ZeroVerdictNote(const ZeroVerdict& v);

}  // namespace corun
