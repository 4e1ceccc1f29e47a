// Host-only analysis of the %smid probe: do communication CTAs and compute blocks share SMs?
// NCCL's kernel cannot be instrumented; corun's own tiled GEMM can. Each GEMM block stamps its SM
// and %globaltimer at start and end; two one-thread marker kernels on the communication stream
// stamp the collective's window. A communication CTA on an SM shows as a drop of that SM's GEMM
// residency while the collective runs (the dispatcher refills a free slot at once while blocks
// remain to dispatch); on those SMs, GEMM blocks still resident beside the drop are blocks that
// ran beside a communication CTA. No CUDA headers: tested in CI with synthetic stamps.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace corun {

// One block's stamp as the device writes it (layout shared with gemm_tiled.cu): %globaltimer
// (ns) at the block's first instruction and after its last store, %smid at both. A marker kernel
// writes start == end.
struct BlockStamp {
  uint64_t start_ns = 0, end_ns = 0;
  uint32_t smid = 0, smid_end = 0;
};
static_assert(sizeof(BlockStamp) == 24, "device layout");

struct SmidInputs {
  int num_sms = 0;
  int natural = 0;     // resident GEMM blocks/SM under the policy (runtime occupancy); <= 0: the most seen
  int comm_ctas = 0;   // CTAs NCCL launches (probe), 0 when unknown
  double reduced_by = 0.5;  // an SM whose mean residency in the window is this far below natural
};

struct SmidReport {
  std::string status;   // "shared", "not shared", "no verdict"
  std::string verdict;  // one line, for the row's note
  int natural = 0, comm_ctas = 0;
  int sms_unused = 0;   // SMs no GEMM block ran on (e.g. outside a green context): left out
  int sms_reduced = 0;  // SMs whose GEMM residency dropped while the collective ran
  int sms_shared = 0;   // of those, SMs where compute blocks stayed beside the drop most of the time
  // Time-weighted mean GEMM blocks on the reduced SMs while below natural residency (0: the
  // communication CTAs had their SMs alone).
  double blocks_beside = 0;
  // Time-weighted mean GEMM residency in the window: on the reduced SMs, on the others; and
  // outside the window (every SM used, while blocks were still being dispatched).
  double residency_reduced = 0, residency_others = 0, residency_outside = 0;
  double window_ms = 0;   // the collective's window (markers)
  double overlap_ms = 0;  // its part while GEMM blocks were still being dispatched
  int64_t blocks = 0, blocks_in_window = 0;
  std::vector<int> reduced_sms, shared_sms;
  bool ran() const { return !status.empty(); }
};

// The first bad stamp (block never stamped, end before start, SM id out of range, block moved
// between SMs), or "" when all are sound.
std::string CheckStamps(const std::vector<BlockStamp>& blocks, int num_sms);

// The analysis. `before` and `after` are the markers around the collective.
SmidReport AnalyzeSmid(const std::vector<BlockStamp>& blocks, const BlockStamp& before, const BlockStamp& after,
                       const SmidInputs& in);

void to_json(nlohmann::json& j, const SmidReport& r);
void from_json(const nlohmann::json& j, SmidReport& r);

}  // namespace corun
