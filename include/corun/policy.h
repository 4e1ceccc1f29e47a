// Policies as values: every overlap knob corun knows, parsed from and printed to the strings used
// on the command line and in JSON ("shape:2+priority", "smtarget:116", "greenctx:16", ...).
#pragma once
#include <cstddef>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "corun/status.h"

namespace corun {

enum class ShapeMode { kNone, kCap, kPadBytes, kAuto };
// NCCL_PROTO values a policy can force (kDefault: NCCL's own choice per call).
enum class CommProto { kDefault, kSimple, kLL, kLL128 };

struct Policy {
  bool sequential = false;     // compute, then communication, on one stream
  bool comm_priority = false;  // communication stream at the device's highest priority
  ShapeMode shape = ShapeMode::kNone;
  int shape_cap = 0;           // kCap: resident compute blocks per SM
  size_t shape_pad = 0;        // kPadBytes: explicit pad per block
  int smtarget = 0;            // cuBLAS(Lt) SM-count target; 0 = off
  bool smtarget_auto = false;  // SMs minus the CTAs NCCL launches
  int ncclctas = 0;            // ncclConfig_t maxCTAs (+ CTAPolicy efficiency); 0 = off
  int greenctx = 0;            // SMs set aside for communication by a green-context split
  bool maxconn1 = false;       // CUDA_DEVICE_MAX_CONNECTIONS=1 (needs its own process)
  // Copy-engine collectives (runtime/ce_comm.h) instead of NCCL: data moved by copy engines, the
  // reduction in short kernels on a top-priority stream of their own, so "priority" adds nothing
  // and is folded into "ce". Ranks are threads of one process, or one process per rank with
  // CUDA_DEVICE_MAX_CONNECTIONS=32. Not in "all" (slower than NCCL beside long GEMMs); in the
  // tuner's search where it serves the collective.
  bool ce = false;
  // NCCL's own zero-CTA collectives (corun/nccl_zero.h): a communicator with CTAPolicy ZERO and
  // buffers in symmetric windows, AllGather/AlltoAll only, each row checked to have launched no
  // kernel. It takes no SM, so the terms that make room on the SMs for NCCL's kernel, or shape
  // that kernel, mean nothing beside it and are refused. Not in "all".
  bool ncclzero = false;
  // The communication kernel's geometry that NCCL takes only from its environment, read once per
  // process (NCCL_NTHREADS, NCCL_PROTO, NCCL_MIN_CTAS/NCCL_MAX_CTAS): the bench runs such rows in
  // a child process, the launcher exports the variables. They combine with every other term.
  int nthreads = 0;                      // NCCL_NTHREADS: threads per CTA (Simple, LL); 0 = NCCL's
  CommProto proto = CommProto::kDefault;  // NCCL_PROTO
  int ctas = 0;                          // exactly N CTAs: NCCL_MIN_CTAS = NCCL_MAX_CTAS = N; 0 = off

  // Canonical name: "sequential", "overlap", or knobs joined by '+' in a fixed order, priority last.
  std::string Name() const;
  bool uses_two_streams() const { return !sequential; }
  // Whether a term sets the communication kernel's geometry through NCCL's environment.
  bool has_env_geometry() const { return nthreads > 0 || proto != CommProto::kDefault || ctas > 0; }
  // The environment terms alone ("nthreads:256+proto:simple"; "" when none): rows of one geometry
  // share a process.
  std::string GeometryName() const;
  bool operator==(const Policy& o) const { return Name() == o.Name(); }
};

// Parses one policy ("shape:2+priority"). Errors name the bad term.
Status ParsePolicy(const std::string& text, Policy* out);

// The NCCL variables the geometry terms set, in a fixed order ({"NCCL_NTHREADS", "256"}, ...).
std::vector<std::pair<std::string, std::string>> CommGeometryEnv(const Policy& p);
// Every variable a geometry term can set (NCCL_NTHREADS, NCCL_PROTO, NCCL_MIN_CTAS, NCCL_MAX_CTAS).
const std::vector<std::string>& CommGeometryVars();
// Whether `get` (getenv, or a test's table) holds exactly the geometry of `p`: every variable of
// CommGeometryEnv(p) with its value, and none of the other CommGeometryVars().
bool CommGeometryEnvHolds(const Policy& p, const char* (*get)(const char*));

// Why a geometry term cannot apply in a process whose environment lacks its variables (one line
// naming them).
std::string GeometryNeedsEnv(const Policy& p);
// getenv with the signature CommGeometryEnvHolds takes.
inline const char* ProcessEnv(const char* name) { return std::getenv(name); }

// What NCCL launched against what the geometry terms asked for: "" when it matches or nothing was
// asked, else one line naming the term NCCL ignored or adjusted. `threads` and `ctas` are the
// probed kernel's (0: unknown, not checked); the protocol is read from the kernel's name when
// the name carries it (..._LL, _LL128, _SIMPLE), else it is left unchecked.
std::string CommGeometryMismatch(const Policy& p, int threads, int ctas, const std::string& kernel);
// The protocol a kernel name carries ("LL", "LL128", "SIMPLE"; "" when none).
std::string KernelProtocol(const std::string& kernel);

// One entry of a --policies list: a policy, or a set to be expanded per workload.
struct PolicyItem {
  // kGeom: compute-side policies x communication geometries (ExpandGeom).
  enum Kind { kPolicy, kAll, kTuned, kGeom } kind = kPolicy;
  Policy policy;
};
Status ParsePolicyList(const std::string& text, std::vector<PolicyItem>* out);

// The CTAs assumed for the communication kernel when the probe could not learn them (what NCCL
// 2.28 launches for a large allreduce on H100/H200).
constexpr int kFallbackCommCtas = 24;
inline int CommCtasOrFallback(int known) { return known > 0 ? known : kFallbackCommCtas; }
// The automatic SM target (smtarget:auto): every SM but those the communication kernel's CTAs
// occupy, at least one. The bench, the interposer and the tuner's first guess all use it.
inline int AutoSmTarget(int num_sms, int comm_ctas) {
  const int t = num_sms - (comm_ctas > 0 ? comm_ctas : 0);
  return t > 1 ? t : 1;
}

// What the planner needs to expand "all" for one workload.
struct PlanInputs {
  bool own_gemm = true;        // our tiled GEMM (shape applies) vs cuBLASLt (smtarget applies)
  int natural_blocks = 0;      // resident compute blocks/SM without a pad
  bool auto_cap_possible = false;
  int num_sms = 0;
  int nccl_ctas = 0;           // CTAs NCCL launches for this collective (probed; 0 = unknown)
  int greenctx_granularity = 8;
  bool single_process = true;  // maxconn1 needs to re-launch the benchmark as a child
  bool ce_connections = false; // CUDA_DEVICE_MAX_CONNECTIONS is high enough for ce in this process
  int max_shape_caps = 4;      // how many explicit caps to try
};
std::vector<Policy> ExpandAll(const PlanInputs& in);
// "geom": {sequential, priority, shape:4+priority (own GEMM)} x {NCCL's default, nthreads:256,
// nthreads:256+ctas:32, nthreads:256+proto:simple}. Not part of "all": each geometry needs a
// process of its own.
std::vector<Policy> ExpandGeom(const PlanInputs& in);

// Why a policy does not apply to a workload (empty: it applies).
std::string PolicyNotApplicable(const Policy& p, const PlanInputs& in);

}  // namespace corun
