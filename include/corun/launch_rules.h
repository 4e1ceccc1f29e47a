// What the interposer does with one kernel launch of an unmodified program: the rules, host-only
// so that CI tests every one of them. The interposer gathers the facts, these rules decide.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "corun/occupancy.h"
#include "corun/ce_plan.h"
#include "corun/policy.h"
#include "corun/status.h"

namespace corun {

// Why a compute launch was left as it was. kCount ends the list (array sizes).
enum class SkipReason {
  kNoShape,       // the policy shapes nothing
  kAtCap,         // already at or below the cap: no pad needed
  kCooperative,   // cooperative launch: fewer resident blocks could deadlock it
  kCluster,       // cluster launch (attribute or compiled-in cluster size)
  kResident,      // fully resident now, would not be with the pad (grid-barrier kernels)
  kOptIn,         // the pad would exceed the per-block shared-memory opt-in limit
  kDenied,        // on the deny list, or not on the allow list
  kUnknown,       // the function's attributes could not be read
  // Found at launch time by the interposer (never by DecideLaunch):
  kOverProgramLimit,  // the launch asks more than the program's own limit: left to the driver as made
  kRaiseFailed,       // the driver refused to raise the function's dynamic-shared-memory limit
  kRefused,           // the driver refused the padded launch: re-issued as the program made it
  kRefusedBefore,     // not padded: the driver refused two padded launches of this function already
  kCount
};
const char* SkipReasonName(SkipReason r);

struct InterposeConfig {
  Policy policy;
  // CeReduceKernel: the copy-engine path's reduction (ce), communication like NCCL's kernels.
  std::vector<std::string> comm_patterns{"ncclDevKernel", "ncclKernel", "CeReduceKernel"};
  std::vector<std::string> allow;  // if non-empty: only these (substrings) are shaped
  std::vector<std::string> deny;   // never shaped
  int nccl_ctas_hint = 0;          // for smtarget:auto before the first NCCL launch is seen
  // Under `ce`: the protocol and the threshold below which NCCL serves (CORUN_CE_*, CeConfigFromEnv).
  CeConfig ce = [] {
    CeConfig c;
    c.min_bytes = kCeInterposeMinBytes;
    return c;
  }();
  int ce_max_ranks = kCeInterposeMaxRanks;       // under `ce`: larger communicators go to NCCL
};

// Whether a policy can be applied to an unmodified program (the launcher checks before exec,
// the library again when it loads).
Status CheckInterposable(const Policy& p);

// The pad a shape:K or shape:NK policy gives a kernel of footprint `k` (0 when it is already at
// or below the cap); nullopt when the pad would exceed the per-block opt-in limit.
std::optional<size_t> ShapePad(const Policy& p, const DeviceLimits& d, const KernelFootprint& k);

// Reads CORUN_POLICY, CORUN_COMM_PATTERNS, CORUN_ALLOW, CORUN_DENY, CORUN_NCCL_CTAS from `get`.
Status ConfigFromEnv(const char* (*get)(const char*), InterposeConfig* cfg);

std::vector<std::string> SplitPatterns(const std::string& s);
bool MatchesAny(const std::string& name, const std::vector<std::string>& patterns);

struct LaunchFacts {
  std::string name;          // matched against the patterns unless the two fields below are set
  int is_comm = -1;          // cached classification (-1: match `name`)
  int is_denied = -1;        // cached allow/deny verdict (-1: match `name`)
  KernelFootprint fp;        // block threads, registers, static smem, dynamic smem of this launch
  uint64_t grid_blocks = 0;
  bool cooperative = false;
  bool cluster = false;
  bool attrs_known = true;
};

struct LaunchDecision {
  bool comm = false;        // communication kernel
  bool prioritise = false;  // give it the highest priority
  size_t pad = 0;           // extra dynamic shared memory for a compute launch
  bool shaped = false;
  SkipReason skip = SkipReason::kNoShape;
};

LaunchDecision DecideLaunch(const InterposeConfig& cfg, const DeviceLimits& dev, const LaunchFacts& f);

// The per-function verdicts, computed once per kernel by the interposer.
bool IsComm(const InterposeConfig& cfg, const std::string& name);
bool IsDenied(const InterposeConfig& cfg, const std::string& name);

// The SM-count target the interposer sets on cuBLAS handles and matmul descriptors (0: none).
int SmTargetFor(const Policy& p, int num_sms, int nccl_ctas);

}  // namespace corun
