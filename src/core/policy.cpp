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

const char* ProtoTerm(CommProto p) {
  switch (p) {
    case CommProto::kSimple: return "simple";
    case CommProto::kLL: return "ll";
    case CommProto::kLL128: return "ll128";
    default: return "";
  }
}

// NCCL_PROTO's spelling of each protocol.
const char* ProtoEnv(CommProto p) {
  switch (p) {
    case CommProto::kSimple: return "Simple";
    case CommProto::kLL: return "LL";
    case CommProto::kLL128: return "LL128";
    default: return "";
  }
}

std::string Upper(std::string s) {
  for (char& c : s)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return s;
}

}  // namespace

std::string Policy::GeometryName() const {
  std::vector<std::string> parts;
  if (nthreads > 0) parts.push_back("nthreads:" + std::to_string(nthreads));
  if (ctas > 0) parts.push_back("ctas:" + std::to_string(ctas));
  if (proto != CommProto::kDefault) parts.push_back(std::string("proto:") + ProtoTerm(proto));
  std::string s;
  for (const std::string& x : parts) s += (s.empty() ? "" : "+") + x;
  return s;
}

std::string Policy::Name() const {
  // The compute side first, priority, then the communication kernel's geometry
  // ("shape:4+priority+nthreads:256").
  const std::string geom = GeometryName();
  if (sequential) return geom.empty() ? "sequential" : "sequential+" + geom;
  std::vector<std::string> parts;
  if (ce) parts.push_back("ce");
  if (ncclzero) parts.push_back("ncclzero");
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
  if (!geom.empty()) parts.push_back(geom);
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
    } else if (key == "ncclzero" && !has_val) {
      saw_other = true;
      p.ncclzero = true;
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
    } else if (key == "nthreads" && has_val) {
      // NCCL takes 64..512 (Simple and LL), a multiple of the warp size; outside that it falls
      // back to its own value, and the run would silently measure another geometry.
      if (!ParseInt(val, 64, 512, &v) || v % 32 != 0)
        return TermError(text, term, "needs N = 64..512 threads, a multiple of 32 (NCCL_NTHREADS)");
      p.nthreads = static_cast<int>(v);
    } else if (key == "proto" && has_val) {
      const std::string u = Upper(val);
      if (u == "SIMPLE") p.proto = CommProto::kSimple;
      else if (u == "LL") p.proto = CommProto::kLL;
      else if (u == "LL128") p.proto = CommProto::kLL128;
      else return TermError(text, term, "needs simple, ll or ll128 (NCCL_PROTO)");
    } else if (key == "ctas" && has_val) {
      if (!ParseInt(val, 1, 64, &v))
        return TermError(text, term, "needs N = 1..64 CTAs (NCCL_MIN_CTAS = NCCL_MAX_CTAS)");
      p.ctas = static_cast<int>(v);
    } else if (key == "greenctx" && has_val) {
      saw_other = true;
      if (!ParseInt(val, 1, 4096, &v)) return TermError(text, term, "needs N = 1..4096 SMs");
      p.greenctx = static_cast<int>(v);
    } else {
      return TermError(text, term,
                       "is not a policy term (sequential, overlap, priority, shape:K|NK|auto, "
                       "smtarget:N|auto, ncclctas:N, greenctx:N, maxconn1, ce, ncclzero, nthreads:N, proto:P, "
                       "ctas:N, tuned)");
    }
  }
  if (saw_sequential && saw_other)
    return TermError(text, "sequential",
                     "runs on one stream and takes no other term but nthreads, proto and ctas");
  if (p.ce && p.has_env_geometry())
    return TermError(text, p.GeometryName(), "sets NCCL's kernel, which ce does not use");
  if (p.ctas > 0 && p.ncclctas > 0)
    return TermError(text, "ctas", "and ncclctas both set NCCL's CTA count: give one");
  // LL128 kernels take their width from NCCL_LL128_NTHREADS, not NCCL_NTHREADS.
  if (p.nthreads > 0 && p.proto == CommProto::kLL128)
    return TermError(text, "nthreads", "is ignored by LL128 kernels (they read NCCL_LL128_NTHREADS)");
  if (p.ce && p.ncclctas > 0) return TermError(text, "ncclctas", "caps NCCL's CTAs, which ce does not use");
  if (p.ce && p.maxconn1)
    return TermError(text, "maxconn1", "leaves one hardware queue; ce needs one per copy stream");
  if (p.ncclzero) {
    // Every other term shapes NCCL's kernel or makes room for it on the SMs; ncclzero has none.
    if (p.ce) return TermError(text, "ce", "and ncclzero are two communication backends: give one");
    if (p.has_env_geometry())
      return TermError(text, p.GeometryName(), "sets NCCL's kernel, which ncclzero does not launch");
    if (p.ncclctas > 0) return TermError(text, "ncclctas", "caps NCCL's CTAs, and ncclzero launches none");
    if (p.shape != ShapeMode::kNone)
      return TermError(text, "shape", "makes room on the SMs for NCCL's kernel, and ncclzero launches none");
    if (p.smtarget > 0 || p.smtarget_auto)
      return TermError(text, "smtarget", "leaves SMs to NCCL's kernel, and ncclzero launches none");
    if (p.greenctx > 0)
      return TermError(text, "greenctx", "leaves SMs to NCCL's kernel, and ncclzero launches none");
    if (p.comm_priority)
      return TermError(text, "priority", "ranks NCCL's kernel before compute blocks, and ncclzero launches none");
    if (p.maxconn1)
      return TermError(text, "maxconn1", "queues ncclzero's copies behind the compute kernels in one hardware queue");
  }
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
    } else if (item == "geom") {
      it.kind = PolicyItem::kGeom;
    } else if (item == "tuned") {
      it.kind = PolicyItem::kTuned;
    } else {
      CORUN_CHECK(ParsePolicy(item, &it.policy));
    }
    out->push_back(it);
  }
  return Status::Ok();
}

std::vector<std::pair<std::string, std::string>> CommGeometryEnv(const Policy& p) {
  std::vector<std::pair<std::string, std::string>> env;
  if (p.nthreads > 0) env.emplace_back("NCCL_NTHREADS", std::to_string(p.nthreads));
  if (p.proto != CommProto::kDefault) env.emplace_back("NCCL_PROTO", ProtoEnv(p.proto));
  if (p.ctas > 0) {
    env.emplace_back("NCCL_MIN_CTAS", std::to_string(p.ctas));
    env.emplace_back("NCCL_MAX_CTAS", std::to_string(p.ctas));
  }
  return env;
}

const std::vector<std::string>& CommGeometryVars() {
  static const std::vector<std::string> v = {"NCCL_NTHREADS", "NCCL_PROTO", "NCCL_MIN_CTAS", "NCCL_MAX_CTAS"};
  return v;
}

bool CommGeometryEnvHolds(const Policy& p, const char* (*get)(const char*)) {
  const auto want = CommGeometryEnv(p);
  for (const std::string& k : CommGeometryVars()) {
    const char* have = get(k.c_str());
    const auto it = std::find_if(want.begin(), want.end(), [&](const auto& kv) { return kv.first == k; });
    if (it == want.end()) {
      if (have && *have) return false;  // set, but not by this geometry
      continue;
    }
    if (!have) return false;
    // NCCL_PROTO is read without regard to case.
    if (k == "NCCL_PROTO" ? Upper(have) != Upper(it->second) : it->second != have) return false;
  }
  return true;
}

std::string GeometryNeedsEnv(const Policy& p) {
  std::string vars;
  for (const auto& [k, v] : CommGeometryEnv(p)) vars += (vars.empty() ? "" : " ") + k + "=" + v;
  return p.GeometryName() + " is read by NCCL from the environment once per process: export " + vars +
         " (and none of the other NCCL_NTHREADS/NCCL_PROTO/NCCL_MIN_CTAS/NCCL_MAX_CTAS) to every rank (corun -p " +
         p.Name() + " -- CMD does)";
}

std::string KernelProtocol(const std::string& kernel) {
  // NCCL's specialised kernels end in the protocol (ncclDevKernel_AllReduce_Sum_bf16_RING_LL);
  // the generic kernel's name carries none.
  const std::string u = Upper(kernel);
  for (const char* proto : {"LL128", "SIMPLE", "LL"}) {
    const std::string tag = std::string("_") + proto;
    const size_t at = u.rfind(tag);
    if (at == std::string::npos) continue;
    const size_t end = at + tag.size();
    if (end == u.size() || u[end] == '_' || u[end] == '(') return proto;
  }
  return "";
}

std::string CommGeometryMismatch(const Policy& p, int threads, int ctas, const std::string& kernel) {
  std::vector<std::string> off;
  // Simple kernels carry one extra warp for synchronisation: N asked runs N + 32.
  if (p.nthreads > 0 && threads > 0 && threads != p.nthreads && threads != p.nthreads + 32)
    off.push_back("nthreads:" + std::to_string(p.nthreads) + " (kernel runs " + std::to_string(threads) + " threads)");
  if (p.ctas > 0 && ctas > 0 && ctas != p.ctas)
    off.push_back("ctas:" + std::to_string(p.ctas) + " (kernel runs " + std::to_string(ctas) + " CTAs)");
  if (p.proto != CommProto::kDefault) {
    const std::string got = KernelProtocol(kernel);
    if (!got.empty() && got != Upper(ProtoEnv(p.proto)))
      off.push_back(std::string("proto:") + ProtoTerm(p.proto) + " (kernel " + kernel + " is " + got + ")");
  }
  if (off.empty()) return "";
  std::string s = "NCCL ignored or adjusted ";
  for (size_t i = 0; i < off.size(); ++i) s += (i ? ", " : "") + off[i];
  return s;
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
  if (p.maxconn1 && p.has_env_geometry())
    return "maxconn1 and " + p.GeometryName() +
           " each need a process of their own here: combine them in the launcher (corun -p " + p.Name() + " -- CMD)";
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
  // "ce" stays out: correct, but behind NCCL's best policy on every workload measured (README; ask for it: -p ce).
  return out;
}

std::vector<Policy> ExpandGeom(const PlanInputs& in) {
  // shape rows only where they apply (our own GEMM): PolicyNotApplicable decides, as for "all".
  std::vector<Policy> out;
  for (const char* g : {"", "+nthreads:256", "+nthreads:256+ctas:32", "+nthreads:256+proto:simple"})
    for (const char* side : {"sequential", "priority", "shape:4+priority"}) {
      Policy p;
      if (ParsePolicy(std::string(side) + g, &p).ok() && PolicyNotApplicable(p, in).empty()) out.push_back(p);
    }
  return out;
}

}  // namespace corun
