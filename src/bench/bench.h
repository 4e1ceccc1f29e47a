// corun bench: one shared harness that runs every (compute, GEMM shape, collective, size) workload
// under every policy, side by side, with correctness checks — the nccl-tests model.
#pragma once
#include <string>
#include <vector>

#include "corun/parse.h"
#include "corun/report.h"

namespace corun {

struct BenchOptions {
  std::vector<std::string> computes{"tiled64x64x64", "cublaslt"};
  std::vector<GemmShape> gemms{{8192, 8192, 8192}, {8192, 57344, 8192}};
  int gemms_per_step = 1;
  std::vector<std::string> collectives{"allreduce"};
  std::string dtype = "bf16";
  std::vector<uint64_t> sizes{896ull << 20};
  std::string policies = "all";
  int warmup = 3;
  int reps = 10;
  double sustain_s = 2.0;
  int watchdog_s = 600;
  int ngpus = 0;  // 0: every visible GPU (single-process mode)
  int gemm_samples = 512;
  int max_shape_caps = 4;
  bool probe_comm = true;
  bool smid_probe = false;  // --smid-probe: per row, do compute blocks and communication CTAs share SMs
  std::string json_path;
  std::string command_line;
  std::vector<std::string> argv;  // for re-launching a child (maxconn1)
  bool child_maxconn1 = false;    // internal: this process is the maxconn1 child
  std::string probe_only;         // internal: probe NCCL kernels, write them to this file, exit
  // corun tune
  bool tune = false;
  double tune_budget = 0.5;       // budget: this fraction of the exhaustive sweep's wall time (all phases)
  bool tune_sweep = false;        // also run the exhaustive sweep and compare
  std::string cache_path;         // profile cache (default: DefaultProfilePath())
};

// Checks the options before any GPU work; the message names the bad input.
Status ValidateBenchOptions(const BenchOptions& o);

// Runs the benchmark; returns the process exit code (0 ok, 1 wrong results or errors).
int RunBench(const BenchOptions& o);

// "corun tune" or "corun bench": what RunBench's messages on stderr begin with.
const char* CommandName(const BenchOptions& o);

}  // namespace corun
