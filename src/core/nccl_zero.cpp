#include "corun/nccl_zero.h"

#include <cstdio>

namespace corun {

std::string NcclZeroNotApplicable(Collective c) {
  if (c == Collective::kAllGather || c == Collective::kAllToAll) return "";
  return std::string("ncclzero: NCCL has no zero-CTA ") + CollectiveName(c) +
         " (its copy-engine collectives are allgather and alltoall)";
}

std::string NcclZeroStackMissing(int nccl_version, int driver_version) {
  auto dotted = [](int v, int major_div, int minor_div) {
    return std::to_string(v / major_div) + "." + std::to_string(v % major_div / minor_div);
  };
  if (nccl_version < kNcclZeroMinNccl)
    return "ncclzero needs NCCL >= 2.28.3 (this is " + dotted(nccl_version, 10000, 100) + "." +
           std::to_string(nccl_version % 100) + ")";
  if (driver_version < kNcclZeroMinDriver)
    return "ncclzero needs a CUDA driver >= 12.5 (this is " + dotted(driver_version, 1000, 10) + ")";
  return "";
}

ZeroVerdict ZeroVerdictFromHold(const ZeroHold& h) {
  ZeroVerdict v;
  if (!h.cannot_hold.empty()) {
    v.why = h.cannot_hold;
    return v;
  }
  if (h.blocks <= 0 || h.resident < h.blocks) {
    v.why = "only " + std::to_string(h.resident) + " of " + std::to_string(h.blocks) +
            " SMs could be held before the collective (another kernel on the GPU?)";
    return v;
  }
  if (h.saw_done >= h.blocks) {
    v.path = ZeroPath::kTaken;
    v.why = "the collective finished while all " + std::to_string(h.blocks) + " SMs were held";
    return v;
  }
  // Unfinished: a kernel waiting for an SM, or a peer that enqueued its side too late.
  if (!h.met) {
    v.why = "the collective did not finish while every SM was held, but the ranks did not meet right before the "
            "hold (a late peer cannot be told from a kernel)";
    return v;
  }
  char t[32];
  if (h.enqueued_s < 0 || h.timeout_s - h.enqueued_s < kZeroMinMarginSeconds) {
    char e[32];
    std::snprintf(e, sizeof e, "%.2f", h.enqueued_s);
    std::snprintf(t, sizeof t, "%.1f", kZeroMinMarginSeconds);
    v.why = h.enqueued_s < 0 ? std::string("the collective did not finish while every SM was held, and when it was "
                                           "enqueued is unknown")
                             : "the collective did not finish while every SM was held, but it was enqueued " +
                                   std::string(e) + " s into the hold, less than " + t +
                                   " s before its end (a late peer cannot be told from a kernel)";
    return v;
  }
  // Enqueued well inside the hold after the ranks met: it waited for a kernel to be scheduled.
  v.path = ZeroPath::kNotTaken;
  std::snprintf(t, sizeof t, "%.1f", h.timeout_s);
  v.why = "the collective did not finish within " + std::string(t) + " s while every SM was held";
  return v;
}

std::string ZeroVerdictNote(const ZeroVerdict& v) {
  switch (v.path) {
    case ZeroPath::kTaken: return "zero-CTA path checked: " + v.why;
    case ZeroPath::kNotTaken: return "NCCL launched a kernel: zero-CTA path not taken (" + v.why + ")";
    case ZeroPath::kUnknown: break;
  }
  return "zero-CTA path unchecked: " + v.why;
}

}  // namespace corun
