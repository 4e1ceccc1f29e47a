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

// Evidence 1: the collective captured into a CUDA graph, its nodes as classified by the runtime
// (child graphs flattened). kOpaque: a node whose contents the check cannot see (conditional).
enum class ZeroNode { kKernel, kCopy, kMemset, kMemOp, kHost, kEvent, kEmpty, kOther, kOpaque };
struct ZeroCapture {
  std::vector<ZeroNode> nodes;
  std::vector<std::string> kernels;  // names of the kernel nodes, where known
};

// Evidence 2, where capture is unsafe (several GPUs in one process): every SM held by a blocker
// kernel whose blocks leave no room for any other block, the collective enqueued behind them, and
// each block watching for a flag a copy written after the collective sets. A collective that
// completes while every SM is held ran no kernel.
struct ZeroHold {
  std::string cannot_hold;  // why every SM could not be held ("" when it could)
  int blocks = 0;           // blocker blocks (one per SM)
  int resident = 0;         // of them, resident at once before the collective was enqueued
  int saw_done = 0;         // of them, saw the collective finish while still holding their SM
  double timeout_s = 0;     // how long each block held its SM at most
};

enum class ZeroPath { kTaken, kNotTaken, kUnknown };
struct ZeroVerdict {
  ZeroPath path = ZeroPath::kUnknown;
  std::string why;  // one line: what was seen
};

ZeroVerdict ZeroVerdictFromCapture(const ZeroCapture& c);
ZeroVerdict ZeroVerdictFromHold(const ZeroHold& h);

// The row's note: "zero-CTA path checked: ..." when taken; else the reason the row is skipped
// ("NCCL launched a kernel: zero-CTA path not taken (...)" or "zero-CTA path unchecked: ...").
std::string ZeroVerdictNote(const ZeroVerdict& v);

}  // namespace corun
