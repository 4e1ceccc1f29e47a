// The occupancy model against values the CUDA runtime reported on real GPUs
// (tests/fixtures/occupancy_*.json, written by the GPU test GpuOccupancy.MatchesRuntime).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "corun/occupancy.h"

using namespace corun;
namespace fs = std::filesystem;

TEST(OccupancyFixture, ModelMatchesMeasuredRuntime) {
  int files = 0, cases = 0;
  for (const auto& e : fs::directory_iterator(CORUN_FIXTURE_DIR)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("occupancy_", 0) != 0 || e.path().extension() != ".json") continue;
    ++files;
    std::ifstream f(e.path());
    const nlohmann::json j = nlohmann::json::parse(f);
    const auto& L = j.at("limits");
    DeviceLimits d = *LimitsForArch(L.at("sm_major").get<int>(), L.at("sm_minor").get<int>());
    // The device's own reported limits win over the table.
    d.max_threads_per_sm = L.at("max_threads_per_sm");
    d.max_blocks_per_sm = L.at("max_blocks_per_sm");
    d.regs_per_sm = L.at("regs_per_sm");
    d.regs_per_block = L.at("regs_per_block");
    d.smem_per_sm = L.at("smem_per_sm");
    d.smem_per_block_optin = L.at("smem_per_block_optin");
    d.smem_reserved_per_block = L.at("smem_reserved_per_block");
    // And the table must agree with the device.
    const DeviceLimits t = *LimitsForArch(d.sm_major, d.sm_minor);
    EXPECT_EQ(t.smem_per_sm, d.smem_per_sm) << name;
    EXPECT_EQ(t.smem_per_block_optin, d.smem_per_block_optin) << name;
    EXPECT_EQ(t.max_threads_per_sm, d.max_threads_per_sm) << name;
    EXPECT_EQ(t.max_blocks_per_sm, d.max_blocks_per_sm) << name;
    for (const auto& c : j.at("cases")) {
      KernelFootprint k{c.at("threads").get<int>(), c.at("regs").get<int>(), c.at("static_smem").get<size_t>(),
                        c.at("dynamic_smem").get<size_t>()};
      const int measured = c.at("blocks").get<int>();
      EXPECT_EQ(ResidentBlocks(d, k).blocks, measured)
          << name << ": " << c.at("kernel").get<std::string>() << " threads " << k.threads << " regs "
          << k.regs_per_thread << " static " << k.static_smem << " dynamic " << k.dynamic_smem;
      ++cases;
    }
  }
  ASSERT_GE(files, 1) << "no occupancy fixture in " << CORUN_FIXTURE_DIR;
  EXPECT_GE(cases, 20);
}
