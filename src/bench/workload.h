// Workload expansion: the (compute, GEMM shape, collective, size) list every rank walks in the
// same order, the data seeds both sides generate, and a workload's profile-cache key.
#pragma once
#include <string>
#include <vector>

#include "../runtime/gemm_tiled.h"
#include "bench.h"
#include "corun/collective.h"
#include "corun/profile.h"

namespace corun {

constexpr uint32_t kSeedA = 11, kSeedB = 23, kSeedColl = 37;

struct Workload {
  std::string compute;
  bool own = true;  // corun's tiled GEMM (else cuBLASLt)
  TileConfig tile = TileConfig::k64x64x64;
  GemmShape g{};
  Collective coll = Collective::kAllReduce;
  uint64_t bytes = 0;
};

// Every workload of the options, in the order all ranks run them.
std::vector<Workload> Workloads(const BenchOptions& o);

// The profile-cache key of a bench workload on this run's machine and libraries.
ProfileKey BenchProfileKey(const Meta& m, const std::string& workload);

}  // namespace corun
