#include "corun/launch_rules.h"

#include "corun/parse.h"

#include <algorithm>
#include <cstdlib>
#include <string>

#include "corun/strings.h"

namespace corun {

const char* SkipReasonName(SkipReason r) {
  switch (r) {
    case SkipReason::kNoShape: return "no_shape";
    case SkipReason::kAtCap: return "at_cap";
    case SkipReason::kCooperative: return "cooperative";
    case SkipReason::kCluster: return "cluster";
    case SkipReason::kResident: return "fully_resident";
    case SkipReason::kOptIn: return "over_optin";
    case SkipReason::kDenied: return "denied";
    case SkipReason::kUnknown: return "unknown_function";
    case SkipReason::kOverProgramLimit: return "over_program_limit";
    case SkipReason::kRaiseFailed: return "raise_failed";
    case SkipReason::kRefused: return "launch_refused";
    case SkipReason::kRefusedBefore: return "refused_before";
    default: return "?";
  }
}

std::vector<std::string> SplitPatterns(const std::string& s) { return Split(s, ',', /*keep_empty=*/false); }

bool MatchesAny(const std::string& name, const std::vector<std::string>& patterns) {
  for (const auto& p : patterns)
    if (!p.empty() && name.find(p) != std::string::npos) return true;
  return false;
}

Status CheckInterposable(const Policy& p) {
  if (p.sequential) return Status::Error("policy 'sequential' cannot be applied to a program");
  if (p.greenctx) return Status::Error("greenctx needs the program's own streams: use corun bench");
  if (p.ncclzero)
    return Status::Error("ncclzero needs buffers NCCL allocated and registered as symmetric windows: use corun bench");
  if (p.shape == ShapeMode::kAuto)
    return Status::Error("shape:auto is for corun bench (it needs the NCCL kernel's footprint first); use shape:K");
  return Status::Ok();
}

std::optional<size_t> ShapePad(const Policy& p, const DeviceLimits& d, const KernelFootprint& k) {
  if (p.shape == ShapeMode::kCap) return PadForCap(d, k, p.shape_cap);
  if (p.shape == ShapeMode::kPadBytes) {
    if (k.static_smem + k.dynamic_smem + p.shape_pad > d.smem_per_block_optin) return std::nullopt;
    return p.shape_pad;
  }
  return size_t{0};
}

Status ConfigFromEnv(const char* (*get)(const char*), InterposeConfig* cfg) {
  if (const char* p = get("CORUN_POLICY")) {
    if (*p) CORUN_CHECK(ParsePolicy(p, &cfg->policy));
    CORUN_CHECK(CheckInterposable(cfg->policy));
  }
  if (const char* p = get("CORUN_COMM_PATTERNS"); p && *p) cfg->comm_patterns = SplitPatterns(p);
  if (const char* p = get("CORUN_ALLOW"); p && *p) cfg->allow = SplitPatterns(p);
  if (const char* p = get("CORUN_DENY"); p && *p) cfg->deny = SplitPatterns(p);
  if (const char* p = get("CORUN_NCCL_CTAS"); p && *p) {
    char* end = nullptr;
    const long v = std::strtol(p, &end, 10);
    if (*end != '\0' || v < 0 || v > 4096)
      return Status::Error(std::string("CORUN_NCCL_CTAS must be a CTA count (0-4096), not '") + Printable(p) + "'");
    cfg->nccl_ctas_hint = static_cast<int>(v);
  }
  if (const std::string e = CeConfigFromEnv(get, &cfg->ce); !e.empty()) return Status::Error(e);
  if (const char* p = get("CORUN_CE_MAX_RANKS"); p && *p) {
    char* end = nullptr;
    const long v = std::strtol(p, &end, 10);
    if (*end != '\0' || v < 2 || v > 8)
      return Status::Error(std::string("CORUN_CE_MAX_RANKS must be a rank count (2-8), not '") + Printable(p) + "'");
    cfg->ce_max_ranks = static_cast<int>(v);
  }
  return Status::Ok();
}

bool IsComm(const InterposeConfig& cfg, const std::string& name) { return MatchesAny(name, cfg.comm_patterns); }

bool IsDenied(const InterposeConfig& cfg, const std::string& name) {
  return (!cfg.allow.empty() && !MatchesAny(name, cfg.allow)) || MatchesAny(name, cfg.deny);
}

LaunchDecision DecideLaunch(const InterposeConfig& cfg, const DeviceLimits& dev, const LaunchFacts& f) {
  LaunchDecision d;
  d.comm = f.is_comm >= 0 ? f.is_comm != 0 : IsComm(cfg, f.name);
  if (d.comm) {
    d.prioritise = cfg.policy.comm_priority;
    return d;
  }
  const Policy& p = cfg.policy;
  if (p.shape == ShapeMode::kNone) return d;
  if (f.is_denied >= 0 ? f.is_denied != 0 : IsDenied(cfg, f.name)) {
    d.skip = SkipReason::kDenied;
    return d;
  }
  if (!f.attrs_known) {
    d.skip = SkipReason::kUnknown;
    return d;
  }
  if (f.cooperative) {
    d.skip = SkipReason::kCooperative;
    return d;
  }
  if (f.cluster) {
    d.skip = SkipReason::kCluster;
    return d;
  }
  const Occupancy now = ResidentBlocks(dev, f.fp);
  const std::optional<size_t> need = ShapePad(p, dev, f.fp);
  if (!need) {
    d.skip = SkipReason::kOptIn;
    return d;
  }
  const size_t pad = *need;
  KernelFootprint padded = f.fp;
  padded.dynamic_smem += pad;
  const int cap = ResidentBlocks(dev, padded).blocks;
  if (pad == 0 || cap >= now.blocks) {
    d.skip = SkipReason::kAtCap;
    return d;
  }
  // A grid that fits on the GPU at once may rely on it (grid barriers, persistent kernels):
  // never let the pad push part of it into a second wave.
  const uint64_t sms = static_cast<uint64_t>(std::max(dev.num_sms, 1));
  if (f.grid_blocks <= static_cast<uint64_t>(now.blocks) * sms && f.grid_blocks > static_cast<uint64_t>(cap) * sms) {
    d.skip = SkipReason::kResident;
    return d;
  }
  d.pad = pad;
  d.shaped = true;
  return d;
}

int SmTargetFor(const Policy& p, int num_sms, int nccl_ctas) {
  if (p.smtarget > 0) return std::min(p.smtarget, num_sms > 0 ? num_sms : p.smtarget);
  if (p.smtarget_auto) return AutoSmTarget(num_sms, nccl_ctas);
  return 0;
}

}  // namespace corun
