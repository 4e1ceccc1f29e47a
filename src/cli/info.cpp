// corun info: the facts a policy depends on, per GPU.
#include <cstdio>

#include <nlohmann/json.hpp>

#include "../runtime/device.h"
#include "../runtime/gemm_tiled.h"
#include "../runtime/nvml.h"
#include "corun/occupancy.h"

namespace corun {

int RunInfo(bool as_json) {
  int n = 0;
  Status s = CountDevices(&n);
  if (!s.ok()) {
    std::fprintf(stderr, "corun info: %s\n", s.message().c_str());
    return 2;
  }
  nlohmann::json j;
  j["nccl"] = NcclVersion();
  j["cuda_runtime"] = CudaRuntimeVersion();
  j["cuda_driver"] = CudaDriverVersion();
  j["driver"] = Nvml::Get().DriverVersion();
  if (!as_json)
    std::printf("corun info: NCCL %s, CUDA runtime %s, driver API %s, driver %s, %d GPU(s)\n",
                NcclVersion().c_str(), CudaRuntimeVersion().c_str(), CudaDriverVersion().c_str(),
                Nvml::Get().DriverVersion().c_str(), n);
  for (int i = 0; i < n; ++i) {
    DeviceInfo d;
    if (!(s = QueryDevice(i, &d)).ok()) {
      std::fprintf(stderr, "corun info: GPU %d: %s\n", i, s.message().c_str());
      return 1;
    }
    cudaSetDevice(i);
    const DeviceLimits& L = d.limits;
    nlohmann::json g = {{"index", i},
                        {"name", d.name},
                        {"pci", d.pci},
                        {"sm", std::to_string(d.sm_major) + "." + std::to_string(d.sm_minor)},
                        {"sms", d.sms},
                        {"memory_bytes", d.memory},
                        {"priority_lowest", d.priority_lowest},
                        {"priority_highest", d.priority_highest},
                        {"max_threads_per_sm", L.max_threads_per_sm},
                        {"max_blocks_per_sm", L.max_blocks_per_sm},
                        {"regs_per_sm", L.regs_per_sm},
                        {"smem_per_sm", L.smem_per_sm},
                        {"smem_per_block_optin", L.smem_per_block_optin},
                        {"smem_reserved_per_block", L.smem_reserved_per_block}};
    if (!as_json) {
      std::printf("GPU %d: %s  sm_%d%d  %d SMs  %.1f GiB  pci %s\n", i, d.name.c_str(), d.sm_major, d.sm_minor, d.sms,
                  d.memory / 1073741824.0, d.pci.c_str());
      std::printf("  per SM: %d threads, %d blocks, %d registers, %zu B shared memory (opt-in %zu B/block, %zu B reserved/block)\n",
                  L.max_threads_per_sm, L.max_blocks_per_sm, L.regs_per_sm, L.smem_per_sm, L.smem_per_block_optin,
                  L.smem_reserved_per_block);
      std::printf("  stream priorities: lowest %d, highest %d\n", d.priority_lowest, d.priority_highest);
    }
    for (TileConfig t : {TileConfig::k64x64x32, TileConfig::k64x64x64}) {
      KernelFootprint fp;
      if (!TiledGemm::Footprint(t, &fp).ok()) continue;
      const Occupancy o = ResidentBlocks(L, fp);
      int rt = 0;
      TiledGemm::RuntimeOccupancy(t, 0, &rt);
      g["kernels"][TileConfigName(t)] = {{"threads", fp.threads}, {"regs", fp.regs_per_thread},
                                         {"smem", fp.static_smem + fp.dynamic_smem}, {"blocks_model", o.blocks},
                                         {"blocks_runtime", rt}, {"limiter", LimiterName(o.limiter)}};
      if (!as_json) {
        std::printf("  %s: %d threads, %d regs, %zu B smem -> %d blocks/SM (%s-limited; runtime says %d); pads:",
                    TileConfigName(t), fp.threads, fp.regs_per_thread, fp.static_smem + fp.dynamic_smem, o.blocks,
                    LimiterName(o.limiter), rt);
        for (int k = o.blocks - 1; k >= 1; --k)
          if (auto pad = PadForCap(L, fp, k)) std::printf(" K=%d:%zuB", k, *pad);
        std::printf("\n");
      }
    }
    j["gpus"].push_back(g);
  }
  if (as_json) std::printf("%s\n", j.dump(1).c_str());
  return 0;
}

}  // namespace corun
