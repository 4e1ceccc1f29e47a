#include <gtest/gtest.h>

#include "corun/coresidence.h"

using namespace corun;

namespace {
DeviceLimits H200() { return *LimitsForArch(9, 0, 132); }
KernelFootprint Fp(int threads, int regs, size_t ssm, size_t dsm) { return {threads, regs, ssm, dsm}; }
const KernelFootprint kTiled = Fp(128, 80, 0, 36864);           // corun's tiled GEMM block
const KernelFootprint kNccl288 = Fp(288, 96, 21568, 82240);     // NCCL_NTHREADS=256
const KernelFootprint kCublas = Fp(384, 168, 0, 200 * 1024);    // cuBLAS persistent Hopper GEMM
}  // namespace

TEST(CoResidence, RegisterQuarters) {
  // REFERENCE: 17 warps x 96 registers, 5 in one quarter = 15,360; a 4-warp, 80-register block 2,560.
  EXPECT_EQ(RegsInFullestQuarter(H200(), 17, 96), 15360);
  EXPECT_EQ(RegsInFullestQuarter(H200(), 4, 80), 2560);
  EXPECT_EQ(RegsInFullestQuarter(H200(), 9, 96), 9216);
  EXPECT_EQ(RegsInFullestQuarter(H200(), 0, 96), 0);
  EXPECT_EQ(WarpsPerBlock(H200(), 544), 17);
}

TEST(CoResidence, NcclDefaultCtaLeavesNoRoomForTiledGemm) {
  const CoResidence r = ComputeBesideComm(H200(), kTiled, kNcclCtaSm90);
  EXPECT_EQ(r.blocks, 0);
  EXPECT_EQ(r.by_regs, 0);   // 15,360 + 2,560 > 16,384
  EXPECT_EQ(r.by_smem, 3);   // (233,472 - 104,832) / 37,888
  EXPECT_EQ(r.limiter, Limiter::kRegisters);
  EXPECT_FALSE(r.why_zero.empty());
}

TEST(CoResidence, SmallerNcclCtaTakesTwoTiledBlocks) {
  // 3 warps x 3,072 + 2 x 2,560 <= 16,384 per quarter; a third block: 9,216 + 3 x 2,560 = 16,896.
  const CoResidence r = ComputeBesideComm(H200(), kTiled, kNccl288);
  EXPECT_EQ(r.blocks, 2);
  EXPECT_EQ(r.by_regs, 2);
  EXPECT_EQ(r.by_smem, 3);
  EXPECT_EQ(r.limiter, Limiter::kRegisters);
  EXPECT_EQ(MixExceeds(H200(), kTiled, 2, kNccl288, 1), Limiter::kNone);
  EXPECT_EQ(MixExceeds(H200(), kTiled, 3, kNccl288, 1), Limiter::kRegisters);
  // Two such CTAs: 18 warps, 5 in one quarter: no compute block.
  EXPECT_EQ(ComputeBesideComm(H200(), kTiled, kNccl288, 2).blocks, 0);
}

TEST(CoResidence, CublasPersistentLeavesNothing) {
  EXPECT_EQ(ComputeBesideComm(H200(), kCublas, kNcclCtaSm90).blocks, 0);
  EXPECT_EQ(ComputeBesideComm(H200(), kCublas, kNccl288).blocks, 0);
  EXPECT_EQ(CoResidenceByOrder(H200(), kCublas, kNcclCtaSm90).compute_first, 0);
  EXPECT_FALSE(CoResidenceByOrder(H200(), kCublas, kNccl288).shares_sm());
}

TEST(CoResidence, ThreadsLimit) {
  // 17 comm warps + 32 per compute block of 64: one block.
  const CoResidence r = ComputeBesideComm(H200(), Fp(1024, 16, 0, 0), Fp(544, 16, 0, 0));
  EXPECT_EQ(r.blocks, 1);
  EXPECT_EQ(r.limiter, Limiter::kThreads);
  EXPECT_EQ(MixExceeds(H200(), Fp(1024, 16, 0, 0), 2, Fp(544, 16, 0, 0), 1), Limiter::kThreads);
}

TEST(CoResidence, BlocksLimit) {
  const CoResidence r = ComputeBesideComm(H200(), Fp(32, 16, 0, 0), Fp(32, 16, 0, 0));
  EXPECT_EQ(r.blocks, 31);
  EXPECT_EQ(r.limiter, Limiter::kBlocks);
}

TEST(CoResidence, NoCommCtaIsTheKernelsOwnOccupancy) {
  for (const auto& k : {kTiled, kCublas, Fp(1024, 16, 0, 0), Fp(32, 16, 0, 0), Fp(256, 128, 0, 0)}) {
    const CoResidence r = ComputeBesideComm(H200(), k, kNcclCtaSm90, 0);
    EXPECT_EQ(r.blocks, ResidentBlocks(H200(), k).blocks) << k.threads;
    // The mix rule agrees with the single-kernel rule at its edge.
    EXPECT_EQ(MixExceeds(H200(), k, r.blocks, kNcclCtaSm90, 0), Limiter::kNone);
    EXPECT_NE(MixExceeds(H200(), k, r.blocks + 1, kNcclCtaSm90, 0), Limiter::kNone);
  }
  EXPECT_EQ(ComputeBesideComm(H200(), kTiled, kNcclCtaSm90, 0).blocks, 6);
}

TEST(CoResidence, EdgeCases) {
  const CoResidence zero = ComputeBesideComm(H200(), kTiled, Fp(0, 0, 0, 0));
  EXPECT_EQ(zero.blocks, 0);
  EXPECT_NE(zero.why_zero.find("communication CTA"), std::string::npos) << zero.why_zero;
  const CoResidence big = ComputeBesideComm(H200(), kTiled, Fp(128, 32, 0, 228 * 1024));
  EXPECT_EQ(big.blocks, 0);
  EXPECT_NE(big.why_zero.find("communication CTA"), std::string::npos) << big.why_zero;
  const CoResidence huge = ComputeBesideComm(H200(), Fp(2048, 16, 0, 0), kNccl288);
  EXPECT_EQ(huge.blocks, 0);
  EXPECT_NE(huge.why_zero.find("compute kernel"), std::string::npos) << huge.why_zero;
  // Three default NCCL CTAs do not fit on one SM together.
  const CoResidence three = ComputeBesideComm(H200(), kTiled, kNcclCtaSm90, 3);
  EXPECT_EQ(three.blocks, 0);
  EXPECT_NE(three.limiter, Limiter::kNone);
  EXPECT_EQ(ComputeBesideComm(H200(), kTiled, kNcclCtaSm90, -1).blocks, 0);
  EXPECT_FALSE(PadKeepsRoom(H200(), kTiled, Fp(0, 0, 0, 0)).why.empty());
  EXPECT_TRUE(PadKeepsRoom(H200(), kTiled, Fp(0, 0, 0, 0)).windows.empty());
  EXPECT_FALSE(PadKeepsRoom(H200(), kTiled, kNcclCtaSm90, 3).why.empty());
}

TEST(CoResidence, PadArgumentOnlyKOne) {
  // (K+1)*S > 233,472 and K*S + 104,832 <= 233,472: only K = 1, S in [116,864, 128,640].
  const PadRoom p = PadKeepsRoom(H200(), kTiled, kNcclCtaSm90);
  ASSERT_EQ(p.windows.size(), 1u);
  EXPECT_EQ(p.windows[0].k, 1);
  EXPECT_EQ(p.windows[0].min_block_smem, 116864u);
  EXPECT_EQ(p.windows[0].max_block_smem, 128640u);
  EXPECT_EQ(p.windows[0].pad, 116864u - 37888u);
  // Shared memory would leave room at K = 1, registers do not.
  EXPECT_EQ(p.windows[0].other, Limiter::kRegisters);
  EXPECT_TRUE(p.ks.empty());
  EXPECT_EQ(p.limiter, Limiter::kRegisters);
  EXPECT_NE(p.why.find("registers"), std::string::npos) << p.why;
  // The padded block really caps the kernel at 1 and leaves the CTA's smem.
  KernelFootprint padded = kTiled;
  padded.dynamic_smem += p.windows[0].pad;
  EXPECT_EQ(ResidentBlocks(H200(), padded).blocks, 1);
  // With 288-thread CTAs the same single window works.
  const PadRoom q = PadKeepsRoom(H200(), kTiled, kNccl288);
  EXPECT_EQ(q.ks, std::vector<int>{1});
  EXPECT_EQ(q.limiter, Limiter::kNone);
}

TEST(CoResidence, PadWindowsForSmallCommCta) {
  const KernelFootprint small = Fp(288, 32, 0, 20 * 1024);  // 21,504 B with the reservation
  const PadRoom p = PadKeepsRoom(H200(), kTiled, small);
  ASSERT_GE(p.windows.size(), 2u);
  const size_t S = H200().smem_per_sm, C = SmemPerBlock(H200(), small);
  for (const PadWindow& w : p.windows) {
    EXPECT_GT((w.k + 1) * w.min_block_smem, S) << w.k;
    EXPECT_LE(w.k * w.max_block_smem + C, S) << w.k;
    KernelFootprint padded = kTiled;
    padded.dynamic_smem += w.pad;
    EXPECT_EQ(ResidentBlocks(H200(), padded).blocks, w.k) << w.k;
  }
  EXPECT_EQ(p.windows.back().k, 5);  // K = 6 needs S > 33,353 but leaves only 35,328 each: base is 37,888
  // No window: a 151 KB CTA leaves 78,848 B, below the 116,864 B that caps the kernel at 1.
  const PadRoom none = PadKeepsRoom(H200(), kTiled, Fp(128, 32, 0, 150 * 1024));
  EXPECT_TRUE(none.windows.empty());
  EXPECT_EQ(none.limiter, Limiter::kSharedMemory);
}

TEST(CoResidence, DispatchOrder) {
  const DispatchOrder small = CoResidenceByOrder(H200(), kTiled, kNccl288);
  EXPECT_EQ(small.comm_first.blocks, 2);
  EXPECT_EQ(small.compute_first, 0);  // six tiled blocks leave 6,144 B
  EXPECT_TRUE(small.shares_sm());
  const DispatchOrder dflt = CoResidenceByOrder(H200(), kTiled, kNcclCtaSm90);
  EXPECT_EQ(dflt.comm_first.blocks, 0);
  EXPECT_FALSE(dflt.shares_sm());
  // A register-light compute kernel limited by threads leaves room either way.
  const DispatchOrder light = CoResidenceByOrder(H200(), Fp(512, 32, 0, 0), Fp(160, 64, 0, 20 * 1024));
  EXPECT_GT(light.comm_first.blocks, 0);
}
