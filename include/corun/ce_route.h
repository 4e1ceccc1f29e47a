// Which path serves one collective of an unmodified program under the `ce` policy: the
// copy-engine runtime or the program's NCCL (the interposer's rule, host-only). Every input is the
// same on every rank for the same call (no timing, no pointer, nothing rank-local), so every rank
// takes the same path: a rank on the CE path never waits for a peer that went to NCCL.
#pragma once
#include <cstdint>
#include <string>

#include "corun/ce_plan.h"

namespace corun {

// In the order they are checked; kServe: the CE path serves the call.
enum class CeRoute {
  kServe, kUntracked, kNonBlocking, kRanks, kGroup, kCapture, kDtype, kOp, kSmall, kChunks, kUnusable, kCount
};
// "served", "untracked", "nonblocking", "ranks", "group", "capture", "dtype", "op", "small",
// "chunks" (more than kCeMaxCallChunks), "unusable".
const char* CeRouteName(CeRoute r);

// The copy-engine communicator beside an NCCL one: not created yet (it is created collectively at
// the first call it would serve), created and usable, or not usable.
enum class CeState { kNotCreated, kUsable, kUnusable };

struct CeCallFacts {
  bool tracked = true;       // the communicator was created through a hooked call
  bool nonblocking = false;  // ... with ncclConfig_t blocking = 0 (not ready when created)
  int nranks = 2;            // ranks of the communicator
  int max_ranks = kCeInterposeMaxRanks;  // larger communicators go to NCCL
  bool in_group = false;     // between ncclGroupStart and ncclGroupEnd on this thread
  bool capturing = false;    // the stream is being captured into a graph
  std::string dtype;         // "bf16", "fp32", "fp16", ... (corun names)
  std::string op;            // "sum", "max", ...; "sum" for an all-gather
  uint64_t bytes = 0;        // the whole buffer: count x nranks x element for gather/scatter
  CeState state = CeState::kNotCreated;
};

// kServe with state kNotCreated means: create the CE communicator now, then ask again.
CeRoute CeRouteCall(const CeCallFacts& f, const CeConfig& cfg);

}  // namespace corun
