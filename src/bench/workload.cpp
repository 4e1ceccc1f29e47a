// Workload expansion: the options' cross product, in the order every rank runs it.
#include "workload.h"

namespace corun {

std::vector<Workload> Workloads(const BenchOptions& o) {
  std::vector<Workload> out;
  for (const auto& c : o.computes)
    for (const auto& g : o.gemms)
      for (const auto& cn : o.collectives)
        for (uint64_t b : o.sizes) {
          Workload w;
          w.compute = c;
          w.own = ParseTileConfig(c, &w.tile);
          if (w.own) w.compute = TileConfigName(w.tile);
          w.g = g;
          ParseCollective(cn, &w.coll);
          w.bytes = b;
          out.push_back(w);
        }
  return out;
}

ProfileKey BenchProfileKey(const Meta& m, const std::string& workload) {
  return ProfileKey{m.card, m.sms, m.gpus, m.nccl, m.cuda_runtime, workload};
}

}  // namespace corun
