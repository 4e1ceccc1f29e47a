// The interposer's routing rule for collectives under the `ce` policy (see corun/ce_route.h).
#include "corun/ce_route.h"

namespace corun {

const char* CeRouteName(CeRoute r) {
  switch (r) {
    case CeRoute::kServe: return "served";
    case CeRoute::kUntracked: return "untracked";
    case CeRoute::kNonBlocking: return "nonblocking";
    case CeRoute::kRanks: return "ranks";
    case CeRoute::kGroup: return "group";
    case CeRoute::kCapture: return "capture";
    case CeRoute::kDtype: return "dtype";
    case CeRoute::kOp: return "op";
    case CeRoute::kSmall: return "small";
    case CeRoute::kChunks: return "chunks";
    case CeRoute::kUnusable: return "unusable";
    case CeRoute::kCount: break;
  }
  return "?";
}

CeRoute CeRouteCall(const CeCallFacts& f, const CeConfig& cfg) {
  if (!f.tracked) return CeRoute::kUntracked;
  if (f.nonblocking) return CeRoute::kNonBlocking;
  if (f.nranks > f.max_ranks) return CeRoute::kRanks;
  // Calls inside a group are fused by NCCL at ncclGroupEnd; serving one of them here would
  // reorder it against the others.
  if (f.in_group) return CeRoute::kGroup;
  // A captured graph replays NCCL's kernels; the CE path's stream waits and flag sequence numbers
  // are not replayable.
  if (f.capturing) return CeRoute::kCapture;
  // The per-call rules are CeCallDecision's (dtype, then op, then size), told apart here.
  if (!CeCallDecision(f.dtype, f.op, f.bytes, cfg).empty()) {
    if (!CeCallDecision(f.dtype, "sum", ~uint64_t{0}, cfg).empty()) return CeRoute::kDtype;
    if (!CeCallDecision(f.dtype, f.op, ~uint64_t{0}, cfg).empty()) return CeRoute::kOp;
    return CeRoute::kSmall;
  }
  if (!CeChunksDecision(f.bytes, cfg).empty()) return CeRoute::kChunks;
  if (f.state == CeState::kUnusable) return CeRoute::kUnusable;
  return CeRoute::kServe;
}

}  // namespace corun
