// corun info: the facts a policy depends on, per GPU.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "../runtime/device.h"
#include "../runtime/gemm_tiled.h"
#include "../runtime/nvml.h"
#include "cli.h"
#include "corun/coresidence.h"
#include "corun/occupancy.h"

namespace corun {

int RunInfo(bool as_json) {
  int n = 0;
  Status s = CountDevices(&n);
  if (!s.ok()) {
    fmt::print(stderr, "corun info: {}\n", s.message());
    return 2;
  }
  nlohmann::json j;
  j["nccl"] = NcclVersion();
  j["cuda_runtime"] = CudaRuntimeVersion();
  j["cuda_driver"] = CudaDriverVersion();
  j["driver"] = Nvml::Get().DriverVersion();
  if (!as_json)
    fmt::print("corun info: NCCL {}, CUDA runtime {}, driver API {}, driver {}, {} GPU(s)\n", NcclVersion(),
               CudaRuntimeVersion(), CudaDriverVersion(), Nvml::Get().DriverVersion(), n);
  for (int i = 0; i < n; ++i) {
    DeviceInfo d;
    if (!(s = QueryDevice(i, &d)).ok()) {
      fmt::print(stderr, "corun info: GPU {}: {}\n", i, s.message());
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
      fmt::print("GPU {}: {}  sm_{}{}  {} SMs  {:.1f} GiB  pci {}\n", i, d.name, d.sm_major, d.sm_minor, d.sms,
                 d.memory / 1073741824.0, d.pci);
      fmt::print("  per SM: {} threads, {} blocks, {} registers, {} B shared memory (opt-in {} B/block, {} B reserved/block)\n",
                 L.max_threads_per_sm, L.max_blocks_per_sm, L.regs_per_sm, L.smem_per_sm, L.smem_per_block_optin,
                 L.smem_reserved_per_block);
      fmt::print("  stream priorities: lowest {}, highest {}\n", d.priority_lowest, d.priority_highest);
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
        fmt::print("  {}: {} threads, {} regs, {} B smem -> {} blocks/SM ({}-limited; runtime says {}); pads:",
                   TileConfigName(t), fp.threads, fp.regs_per_thread, fp.static_smem + fp.dynamic_smem, o.blocks,
                   LimiterName(o.limiter), rt);
        for (int k = o.blocks - 1; k >= 1; --k)
          if (auto pad = PadForCap(L, fp, k)) fmt::print(" K={}:{}B", k, *pad);
        fmt::print("\n");
      }
      // Dispatch-order co-residence beside NCCL's default sm_90 CTA (the only one measured).
      if (L.sm_major == 9 && L.sm_minor == 0) {
        const CoResidence cr = ComputeBesideComm(L, fp, kNcclCtaSm90);
        g["kernels"][TileConfigName(t)]["beside_nccl_cta"] = {{"blocks", cr.blocks},
                                                              {"limiter", LimiterName(cr.limiter)}};
        if (!as_json)
          fmt::print("    beside NCCL's CTA ({} threads x {} regs, {} B smem): {} blocks (limited by {})\n",
                     kNcclCtaSm90.threads, kNcclCtaSm90.regs_per_thread,
                     kNcclCtaSm90.static_smem + kNcclCtaSm90.dynamic_smem, cr.blocks, LimiterName(cr.limiter));
      }
    }
    j["gpus"].push_back(g);
  }
  if (as_json) fmt::print("{}\n", j.dump(1));
  return 0;
}

}  // namespace corun
