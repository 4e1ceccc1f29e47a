#include "corun/policy.h"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <set>

#include "corun/parse.h"
#include "corun/strings.h"

namespace corun {
namespace {

bool ParseInt(const std::string& s, long lo, long hi, long* out) {
  if (s.empty() || s.size() > 9) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  long v = std::strtol(s.c_str(), nullptr, 10);
  if (v < lo || v > hi) return false;
  *out = v;
  return true;
}

Status TermError(const std::string& policy, const std::string& term, const std::string& why) {
  return Status::Error("bad policy '" + Printable(policy) + "': " + (term.empty() ? "" : "'" + Printable(term) + "' ") + why);
}

}  // namespace

std::string Policy::Name() const {
  if (sequential) return "sequential";
  std::vector<std::string> parts;
  if (ce) parts.push_back("ce");
  if (maxconn1) parts.push_back("maxconn1");
  switch (shape) {
    case ShapeMode::kCap: parts.push_back("shape:" + std::to_string(shape_cap)); break;
    case ShapeMode::kPadBytes:
      parts.push_back(shape_pad % 1024 == 0 ? "shape:" + std::to_string(shape_pad / 1024) + "K"
                                            : "shape:" + std::to_string(shape_pad) + "B");
      break;
    case ShapeMode::kAuto: parts.push_back("shape:auto"); break;
    default: break;
  }
  if (smtarget_auto) parts.push_back("smtarget:auto");
  else if (smtarget > 0) parts.push_back("smtarget:" + std::to_string(smtarget));
  if (ncclctas > 0) parts.push_back("ncclctas:" + std::to_string(ncclctas));
  if (greenctx > 0) parts.push_back("greenctx:" + std::to_string(greenctx));
  if (comm_priority) parts.push_back("priority");
  if (parts.empty()) return "overlap";
  std::string s = parts[0];
  for (size_t i = 1; i < parts.size(); ++i) s += "+" + parts[i];
  return s;
}

Status ParsePolicy(const std::string& text, Policy* out) {
  Policy p;
  if (text.empty()) return TermError(text, "", "is empty");
  bool saw_sequential = false, saw_other = false;
  std::set<std::string> seen;
  for (const std::string& term : Split(text, '+')) {
    if (term.empty()) return TermError(text, term, "has an empty term");
    const size_t colon = term.find(':');
    const std::string key = term.substr(0, colon);
    const std::string val = colon == std::string::npos ? "" : term.substr(colon + 1);
    const bool has_val = colon != std::string::npos;
    // A repeated term would silently mean its last value (smtarget:8+smtarget:16).
    if (!seen.insert(key).second) return TermError(text, term, "repeats " + key);
    long v = 0;
    if (key == "sequential" && !has_val) {
      saw_sequential = true;
      p.sequential = true;
    } else if (key == "overlap" && !has_val) {
      saw_other = true;
    } else if (key == "priority" && !has_val) {
      saw_other = true;
      p.comm_priority = true;
    } else if (key == "ce" && !has_val) {
      saw_other = true;
      p.ce = true;
    } else if (key == "maxconn1" && !has_val) {
      saw_other = true;
      p.maxconn1 = true;
    } else if (key == "shape" && has_val) {
      saw_other = true;
      if (val == "auto") {
        p.shape = ShapeMode::kAuto;
      } else if (!val.empty() && (val.back() == 'K' || val.back() == 'k')) {
        if (!ParseInt(val.substr(0, val.size() - 1), 1, 227, &v))
          return TermError(text, term, "needs a pad of 1..227 KiB (e.g. shape:96K)");
        p.shape = ShapeMode::kPadBytes;
        p.shape_pad = static_cast<size_t>(v) * 1024;
      } else if (!val.empty() && (val.back() == 'B' || val.back() == 'b')) {
        if (!ParseInt(val.substr(0, val.size() - 1), 1, 227 * 1024, &v))
          return TermError(text, term, "needs a pad of 1..232448 bytes");
        p.shape = ShapeMode::kPadBytes;
        p.shape_pad = static_cast<size_t>(v);
      } else {
        if (!ParseInt(val, 1, 32, &v))
          return TermError(text, term, "needs K = 1..32 blocks/SM, a pad like 96K, or auto");
        p.shape = ShapeMode::kCap;
        p.shape_cap = static_cast<int>(v);
      }
    } else if (key == "smtarget" && has_val) {
      saw_other = true;
      if (val == "auto") {
        p.smtarget_auto = true;
      } else if (!ParseInt(val, 1, 4096, &v)) {
        return TermError(text, term, "needs N = 1..4096 SMs or auto");
      } else {
        p.smtarget = static_cast<int>(v);
      }
    } else if (key == "ncclctas" && has_val) {
      saw_other = true;
      if (!ParseInt(val, 1, 64, &v)) return TermError(text, term, "needs N = 1..64 CTAs");
      p.ncclctas = static_cast<int>(v);
    } else if (key == "greenctx" && has_val) {
      saw_other = true;
      if (!ParseInt(val, 1, 4096, &v)) return TermError(text, term, "needs N = 1..4096 SMs");
      p.greenctx = static_cast<int>(v);
    } else {
      return TermError(text, term,
                       "is not a policy term (sequential, overlap, priority, shape:K|NK|auto, "
                       "smtarget:N|auto, ncclctas:N, greenctx:N, maxconn1, ce, tuned)");
    }
  }
  if (saw_sequential && saw_other)
    return TermError(text, "sequential", "runs on one stream and takes no other term");
  if (p.ce && p.ncclctas > 0) return TermError(text, "ncclctas", "caps NCCL's CTAs, which ce does not use");
  if (p.ce && p.maxconn1)
    return TermError(text, "maxconn1", "leaves one hardware queue; ce needs one per copy stream");
  // The copy-engine reduction already runs at the device's top priority on its own stream.
  if (p.ce) p.comm_priority = false;
  *out = p;
  return Status::Ok();
}

Status ParsePolicyList(const std::string& text, std::vector<PolicyItem>* out) {
  out->clear();
  if (text.empty()) return Status::Error("empty --policies list");
  for (const std::string& item : Split(text, ',')) {
    PolicyItem it;
    if (item == "all") {
      it.kind = PolicyItem::kAll;
    } else if (item == "tuned") {
      it.kind = PolicyItem::kTuned;
    } else {
      CORUN_CHECK(ParsePolicy(item, &it.policy));
    }
    out->push_back(it);
  }
  return Status::Ok();
}

std::string PolicyNotApplicable(const Policy& p, const PlanInputs& in) {
  if (p.shape != ShapeMode::kNone && !in.own_gemm)
    return "shape needs a kernel whose launch corun controls (cuBLASLt picks its own; use corun -- for it)";
  if (p.shape == ShapeMode::kAuto && !in.auto_cap_possible)
    return "shape:auto: no cap leaves room for a communication CTA beside the compute blocks";
  if ((p.smtarget > 0 || p.smtarget_auto) && in.own_gemm)
    return "smtarget applies to cuBLAS/cuBLASLt GEMMs only";
  if (p.smtarget_auto && in.nccl_ctas <= 0)
    return "smtarget:auto needs the number of CTAs NCCL launches (the kernel probe found none)";
  if (p.smtarget > in.num_sms && in.num_sms > 0)
    return "smtarget:" + std::to_string(p.smtarget) + " exceeds the " + std::to_string(in.num_sms) + " SMs";
  if (p.greenctx > 0 && in.num_sms > 0 && p.greenctx >= in.num_sms)
    return "greenctx:" + std::to_string(p.greenctx) + " leaves no SM for compute";
  if (p.ce && !in.single_process && !in.ce_connections)
    return "ce with a process per rank needs CUDA_DEVICE_MAX_CONNECTIONS=32 in every rank's environment "
           "(mpirun -x CUDA_DEVICE_MAX_CONNECTIONS=32; one process re-launches itself with it)";
  if (p.maxconn1 && !in.single_process)
    return "maxconn1 re-launches the benchmark as a child, which only the single-process mode can do";
  return "";
}

std::vector<Policy> ExpandAll(const PlanInputs& in) {
  std::vector<Policy> out;
  auto add = [&](const std::string& s) {
    Policy p;
    if (ParsePolicy(s, &p).ok() && PolicyNotApplicable(p, in).empty()) out.push_back(p);
  };
  add("sequential");
  add("overlap");
  add("priority");
  if (in.own_gemm) {
    const int top = std::min(in.natural_blocks - 1, in.max_shape_caps);
    for (int k = 1; k <= top; ++k) {
      add("shape:" + std::to_string(k));
      add("shape:" + std::to_string(k) + "+priority");
    }
    add("shape:auto");
    add("shape:auto+priority");
  } else {
    add("smtarget:auto");
    add("smtarget:auto+priority");
  }
  const int ctas = CommCtasOrFallback(in.nccl_ctas);
  add("ncclctas:" + std::to_string(std::max(1, ctas / 2)));
  const int g = std::max(1, in.greenctx_granularity);
  add("greenctx:" + std::to_string((ctas + g - 1) / g * g));
  add("maxconn1");
  // "ce" stays out until a GPU run has validated it in the bench (ask for it by name: -p ce).
  return out;
}

}  // namespace corun
