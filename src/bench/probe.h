// The launch footprint of NCCL's kernels (CTAs, threads, registers, shared memory), learned by
// capturing one collective into a CUDA graph and reading the kernel node. With several GPUs in
// one process the capture breaks NCCL, so `corun bench` then probes in one child process per
// GPU (the mpirun/torchrun path, bootstrapped over loopback) and reads their answer.
#pragma once
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <string>

#include "../runtime/bootstrap.h"
#include "../runtime/comm.h"
#include "bench.h"

namespace corun {

struct ProbedKernel {
  KernelFootprint fp;
  int ctas = 0;
  std::string kernel;
};

// The probe file: {"<collective>/<bytes>/<dtype>": {ctas, threads, regs, static_smem, dynamic_smem, kernel}}.
void to_json(nlohmann::json& j, const ProbedKernel& k);
void from_json(const nlohmann::json& j, ProbedKernel& k);

std::string ProbeKey(Collective c, uint64_t bytes, const std::string& dtype);

// Child side: probe every (collective, size) of the options, rank 0 writes o.probe_only.
int RunProbeOnly(const BenchOptions& o, const ProcessModel& pm, int device);

// Parent side: spawn `nranks` children on GPUs 0..nranks-1 and collect their results.
bool ProbeInChildren(const BenchOptions& o, int nranks, std::map<std::string, ProbedKernel>* out, std::string* why);

}  // namespace corun
