// Where overlap is lost: attribution of one process's trace records (host-only, no CUDA).
//
// A lane is one GPU of one process (a process driving two GPUs gives two lanes). Over a window
// (the whole run after a warm-up, or steps the program marks) it splits the time into: only
// compute running, only communication, both, neither; follows each collective from the moment it
// could start (its launch call returned and its stream's previous work finished) to its first
// CTA, with the compute kernels that held the GPU meanwhile; compares each kernel's duration
// alone with its duration beside the other side; and names the largest loss.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "corun/status.h"
#include "corun/trace_records.h"

namespace corun {

struct AttributionOptions {
  // Steps: "" (none), "nvtx:TEXT" (NVTX ranges whose name contains TEXT), "kernel:TEXT" (each
  // launch of a kernel whose name contains TEXT starts a step).
  std::string steps;
  int skip_steps = 1;          // warm-up steps left out of the window
  double warmup_frac = 0.1;    // without steps: the first part of the GPU-busy span left out
  double window_begin_ms = -1, window_end_ms = -1;  // explicit window, ms after t0 (both >= 0)
  int64_t t0 = 0;              // origin of the explicit window (first GPU record of all files)
  double alone_overlap = 0.01; // a kernel counts as alone when < this fraction of it overlaps the other side
};

Status ParseStepsSpec(const std::string& spec);                      // checks "nvtx:X" / "kernel:X"
Status ParseWindowSpec(const std::string& spec, double* begin_ms, double* end_ms);  // "A:B" in ms

// "Compute" is the program's own GPU work: kernels, memsets and device-to-device copies (DDP's
// bucket copies are cudaMemcpyAsync D2D: the GPU is busy with them, and a collective beside them is
// not exposed). Host<->device copies count as neither.
struct Breakdown {
  double window_ms = 0, compute_only_ms = 0, comm_only_ms = 0, both_ms = 0, idle_ms = 0;
  double dtod_copy_ms = 0;  // union of device-to-device copies in the window (inside compute_only/both)
};

// One collective launch (NCCL kernel or peer copy) in the window.
struct CollectiveLaunch {
  std::string name;
  int64_t ready = 0, start = 0, end = 0;  // ns
  bool has_api = false;                   // the launch call was found (else ready = stream predecessor)
  double wait_ms = 0;                     // start - ready (>= 0)
  double wait_behind_compute_ms = 0;      // part of the wait with compute kernels running
  double overlap_ms = 0;                  // compute running during the collective
  std::vector<std::pair<std::string, double>> blockers;  // compute kernels during the wait, ms, largest first
};

// Per name: durations alone vs beside the other side.
// Per name and launch shape (grid/block): one name can cover GEMMs of several sizes.
struct KernelStat {
  std::string name, grid;
  bool comm = false;
  int count = 0, n_alone = 0, n_beside = 0;
  double total_ms = 0, alone_median_ms = 0, beside_median_ms = 0;
  double extra_ms = 0;  // sum over beside runs of (duration - alone median); 0 without alone runs
  // collectives only
  double wait_ms = 0, wait_behind_compute_ms = 0;
};

struct LaneReport {
  std::string label;  // "r0" / "p1234", plus ".g1" when the process drives several GPUs
  int rank = -1, pid = 0, device = 0;
  std::string host;
  int64_t begin = 0, end = 0;  // window, ns
  int steps = 0;               // steps in the window (0: no steps)
  std::vector<std::pair<int64_t, int64_t>> step_bounds;
  double step_median_ms = 0;
  Breakdown bd;
  std::vector<CollectiveLaunch> launches;
  std::vector<KernelStat> kernels;  // by total time, largest first
  std::vector<std::pair<std::string, double>> blockers;  // compute kernels behind collective waits, ms
  double coll_wait_ms = 0, coll_wait_behind_compute_ms = 0;
  double compute_extra_ms = 0, comm_extra_ms = 0;
  std::vector<double> mixed_busy_ms;  // busy periods holding both sides (bench's together-steps)
  int64_t records = 0;
  std::string verdict;
};

// Attributes every GPU of one file. t0 of the options applies to an explicit window.
Status Attribute(const TraceFile& f, const AttributionOptions& o, std::vector<LaneReport>* lanes);

// Interval helpers (exposed for tests): union length of [s,e) intervals clipped to [b,e).
double UnionMs(std::vector<std::pair<int64_t, int64_t>> iv, int64_t begin, int64_t end);

}  // namespace corun
