#include <gtest/gtest.h>

#include "corun/occupancy.h"

using namespace corun;

namespace {
DeviceLimits H100() { return *LimitsForArch(9, 0, 132); }
KernelFootprint Fp(int threads, int regs, size_t ssm, size_t dsm) { return {threads, regs, ssm, dsm}; }
}  // namespace

TEST(Occupancy, KnownArchitectures) {
  for (auto cc : {std::pair{8, 0}, {8, 6}, {8, 9}, {9, 0}}) {
    auto d = LimitsForArch(cc.first, cc.second);
    ASSERT_TRUE(d.has_value()) << cc.first << cc.second;
    EXPECT_GT(d->smem_per_sm, d->smem_per_block_optin);
  }
  EXPECT_FALSE(LimitsForArch(7, 0).has_value());
  EXPECT_EQ(LimitsForArch(9, 0)->smem_per_sm, 233472u);
  EXPECT_EQ(LimitsForArch(8, 6)->max_threads_per_sm, 1536);
}

TEST(Occupancy, ThreadsLimit) {
  // 1024 threads, few registers, no smem: 2 blocks on sm_90 (2048 threads), 1 on sm_86.
  const auto o = ResidentBlocks(H100(), Fp(1024, 16, 0, 0));
  EXPECT_EQ(o.blocks, 2);
  EXPECT_EQ(o.limiter, Limiter::kThreads);
  EXPECT_EQ(ResidentBlocks(*LimitsForArch(8, 6), Fp(1024, 16, 0, 0)).blocks, 1);
}

TEST(Occupancy, RegisterLimit) {
  // 256 threads x 128 regs = 8 warps x 4096 regs; a scheduler holds 16384 / 4096 = 4 warps,
  // 16 per SM -> 2 blocks.
  const auto o = ResidentBlocks(H100(), Fp(256, 128, 0, 0));
  EXPECT_EQ(o.blocks, 2);
  EXPECT_EQ(o.limiter, Limiter::kRegisters);
  // 255 registers round up to 256 per thread: 8192 per warp -> 2 warps per scheduler.
  EXPECT_EQ(ResidentBlocks(H100(), Fp(64, 255, 0, 0)).blocks, 4);
}

TEST(Occupancy, SharedMemoryLimitIncludesReservation) {
  // 48 KiB + 1 KiB reserved = 49 KiB: floor(228 / 49) = 4.
  const auto o = ResidentBlocks(H100(), Fp(128, 32, 0, 48 * 1024));
  EXPECT_EQ(o.blocks, 4);
  EXPECT_EQ(o.limiter, Limiter::kSharedMemory);
  // Without the reservation it would be floor(228/48) = 4 as well; 56 KiB + 1 -> 4 (228/57=4),
  // 56.5 KiB -> 3: the reservation and rounding matter at the edges.
  EXPECT_EQ(ResidentBlocks(H100(), Fp(128, 32, 0, 57 * 1024 - 1024)).blocks, 4);
  EXPECT_EQ(ResidentBlocks(H100(), Fp(128, 32, 0, 57 * 1024 - 1024 + 1)).blocks, 3);
}

TEST(Occupancy, BlockLimit) {
  EXPECT_EQ(ResidentBlocks(H100(), Fp(32, 16, 0, 0)).blocks, 32);
  EXPECT_EQ(ResidentBlocks(H100(), Fp(32, 16, 0, 0)).limiter, Limiter::kBlocks);
}

TEST(Occupancy, ImpossibleKernels) {
  EXPECT_EQ(ResidentBlocks(H100(), Fp(2048, 16, 0, 0)).blocks, 0);
  EXPECT_EQ(ResidentBlocks(H100(), Fp(128, 16, 0, 228 * 1024)).blocks, 0);
  EXPECT_FALSE(ResidentBlocks(H100(), Fp(128, 16, 0, 228 * 1024)).why_zero.empty());
  EXPECT_EQ(ResidentBlocks(H100(), Fp(1024, 255, 0, 0)).blocks, 0);  // 1024 x 256 regs > 64K
}

TEST(Occupancy, PadForCapReachesExactlyTheCap) {
  const DeviceLimits d = H100();
  const KernelFootprint k = Fp(128, 64, 0, 36864);  // the 64x64x64 tiled GEMM's tiles: 6 blocks
  ASSERT_EQ(ResidentBlocks(d, k).blocks, 6);
  for (int cap = 1; cap <= 5; ++cap) {
    auto pad = PadForCap(d, k, cap);
    ASSERT_TRUE(pad.has_value()) << cap;
    KernelFootprint p = k;
    p.dynamic_smem += *pad;
    EXPECT_EQ(ResidentBlocks(d, p).blocks, cap) << "cap " << cap << " pad " << *pad;
    // Minimal up to the allocation unit: one unit less no longer reaches the cap.
    if (*pad >= d.smem_alloc_unit) {
      p.dynamic_smem -= d.smem_alloc_unit;
      EXPECT_GT(ResidentBlocks(d, p).blocks, cap) << "cap " << cap;
    }
  }
  EXPECT_EQ(*PadForCap(d, k, 6), 0u);
  EXPECT_EQ(*PadForCap(d, k, 9), 0u);
  EXPECT_FALSE(PadForCap(d, k, 0).has_value());
}

TEST(Occupancy, PadForCapRespectsOptInLimit) {
  // 200 KiB of tiles: 1 block already; a cap of 1 needs no pad, nothing can reach 0.
  const DeviceLimits d = H100();
  EXPECT_EQ(*PadForCap(d, Fp(128, 32, 0, 200 * 1024), 1), 0u);
  // 2 blocks of 100 KiB: cap 1 needs > 114 KiB per block, within 227 KiB.
  auto pad = PadForCap(d, Fp(128, 32, 0, 100 * 1024), 1);
  ASSERT_TRUE(pad.has_value());
  EXPECT_LE(100 * 1024 + *pad, d.smem_per_block_optin);
  // sm_86: 99 KiB opt-in; 10 KiB blocks capped to 1 needs > 50 KiB: fine; on a kernel with
  // 95 KiB static smem nothing more fits.
  const DeviceLimits a40 = *LimitsForArch(8, 6);
  EXPECT_TRUE(PadForCap(a40, Fp(128, 32, 0, 10 * 1024), 1).has_value());
  // A device whose per-block opt-in (100 KiB) is well below half its SM's shared memory
  // (228 KiB): a cap of 1 needs more than 114 KiB per block, more than a block may have, so
  // there is no pad; a cap of 2 needs more than 76 KiB, which fits.
  DeviceLimits small_optin = H100();
  small_optin.smem_per_block_optin = 100 * 1024;
  const KernelFootprint k = Fp(128, 32, 0, 10 * 1024);
  EXPECT_FALSE(PadForCap(small_optin, k, 1).has_value());
  auto two = PadForCap(small_optin, k, 2);
  ASSERT_TRUE(two.has_value());
  EXPECT_LE(10 * 1024 + *two, small_optin.smem_per_block_optin);
  KernelFootprint padded = k;
  padded.dynamic_smem += *two;
  EXPECT_EQ(ResidentBlocks(small_optin, padded).blocks, 2);
  // 99 KiB of static smem: 2 blocks/SM, already at a cap of 2; a cap of 1 would need some
  // 14 KiB more than a block may have.
  EXPECT_EQ(*PadForCap(small_optin, Fp(128, 32, 99 * 1024, 0), 2), 0u);
  EXPECT_FALSE(PadForCap(small_optin, Fp(128, 32, 99 * 1024, 0), 1).has_value());
  // Caps below 1 never get a pad.
  EXPECT_FALSE(PadForCap(d, k, 0).has_value());
}

TEST(Occupancy, NcclSizedCtaNeedsAnAlmostEmptySm) {
  const DeviceLimits d = H100();
  // NCCL-like CTA: 544 threads (17 warps), 96 registers, ~101 KiB smem. Its fullest register
  // quarter holds 5 warps x 3072 = 15360 of 16384 registers.
  const KernelFootprint comm = Fp(544, 96, 0, 101 * 1024);
  const KernelFootprint comp = Fp(128, 64, 0, 36864);
  EXPECT_EQ(CommRoomBeside(d, comp, 0, comm), 1);
  // One compute block puts a 2048-register warp in every quarter: 2048 + 15360 > 16384.
  EXPECT_EQ(CommRoomBeside(d, comp, 1, comm), 0);
  EXPECT_EQ(CommRoomBeside(d, comp, 6, comm), 0);
  EXPECT_FALSE(AutoCap(d, comp, comm).has_value());
  // A 32-register compute warp (1024 registers) leaves exactly enough.
  EXPECT_EQ(CommRoomBeside(d, Fp(128, 32, 0, 36864), 1, comm), 1);
}

TEST(Occupancy, AutoCapLeavesRoomForOneCta) {
  const DeviceLimits d = H100();
  const KernelFootprint comm = Fp(256, 64, 0, 32 * 1024);
  const KernelFootprint comp = Fp(128, 64, 0, 36864);  // 6 blocks/SM
  // Shared memory decides: 228 KiB - 5 x 37 KiB = 43 KiB >= 33 KiB; with 6 blocks 6 KiB are left.
  EXPECT_EQ(CommRoomBeside(d, comp, 6, comm), 0);
  EXPECT_EQ(CommRoomBeside(d, comp, 5, comm), 1);
  auto k = AutoCap(d, comp, comm);
  ASSERT_TRUE(k.has_value());
  EXPECT_EQ(*k, 5);
  auto pad = PadForCap(d, comp, *k);
  KernelFootprint padded = comp;
  padded.dynamic_smem += *pad;
  EXPECT_GE(CommRoomBeside(d, padded, *k, comm), 1);
}

TEST(Occupancy, OneRegisterAndSharedMemoryRule) {
  const DeviceLimits d = H100();
  // 80 registers x 32 threads = 2560, rounded up to the 256-register unit: 2560; 81 -> 2816.
  EXPECT_EQ(RegsPerWarp(d, 80), 2560);
  EXPECT_EQ(RegsPerWarp(d, 81), 2816);
  EXPECT_EQ(RegsPerWarp(d, 0), 256);  // at least one register per thread
  EXPECT_EQ(RegsPerBlock(d, Fp(544, 96, 0, 0)), 17 * 3072);
  // The dynamic-smem limit needs raising only above 48 KiB and above what was set.
  EXPECT_FALSE(DynamicSmemRaiseNeeded(48 * 1024, 0));
  EXPECT_TRUE(DynamicSmemRaiseNeeded(48 * 1024 + 1, 0));
  EXPECT_FALSE(DynamicSmemRaiseNeeded(100 * 1024, 100 * 1024));
  EXPECT_TRUE(DynamicSmemRaiseNeeded(100 * 1024 + 128, 100 * 1024));
}
