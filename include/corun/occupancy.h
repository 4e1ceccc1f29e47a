// Host-only occupancy model: how many blocks of a kernel are resident on one SM, the smallest
// dynamic-shared-memory pad that caps a kernel at K blocks/SM (occupancy shaping), and how many
// communication CTAs still fit beside K compute blocks. No CUDA headers: tested in CI.
#pragma once
#include <cstddef>
#include <optional>
#include <string>

namespace corun {

// Per-SM limits of one architecture. Values follow the CUDA programming guide's per-compute-
// capability tables and the occupancy calculator's allocation rules.
struct DeviceLimits {
  int sm_major = 0, sm_minor = 0;
  int num_sms = 0;
  int warp_size = 32;
  int max_threads_per_sm = 0;
  int max_threads_per_block = 1024;
  int max_blocks_per_sm = 0;
  int regs_per_sm = 65536;
  int regs_per_block = 65536;
  int max_regs_per_thread = 255;
  int reg_alloc_unit = 256;        // registers are allocated per warp in units of this many
  int reg_subpartitions = 4;       // the register file is split among the SM's 4 schedulers
  size_t smem_per_sm = 0;          // largest shared-memory carveout
  size_t smem_per_block_optin = 0; // largest dynamic+static smem one block may opt in to
  size_t smem_reserved_per_block = 0;  // driver-reserved smem per resident block (1 KiB on sm_80+)
  size_t smem_alloc_unit = 128;
};

// Limits of a known architecture; nullopt for one the model does not know.
std::optional<DeviceLimits> LimitsForArch(int sm_major, int sm_minor, int num_sms = 0);

// The resources one block of a kernel asks for.
struct KernelFootprint {
  int threads = 0;
  int regs_per_thread = 0;
  size_t static_smem = 0;
  size_t dynamic_smem = 0;
};

enum class Limiter { kNone, kThreads, kRegisters, kSharedMemory, kBlocks };
const char* LimiterName(Limiter l);
// Which per-resource count binds `blocks` (their minimum); ties name shared memory, the resource a
// pad turns.
Limiter BindingLimiter(int blocks, int by_smem, int by_regs, int by_threads);

struct Occupancy {
  int blocks = 0;  // resident blocks per SM (0: the kernel cannot launch)
  int by_threads = 0, by_regs = 0, by_smem = 0, by_blocks = 0;
  Limiter limiter = Limiter::kNone;
  std::string why_zero;  // set when blocks == 0
};

// Shared memory one resident block takes from the SM, reservation and rounding included.
size_t SmemPerBlock(const DeviceLimits& d, const KernelFootprint& k);
// Registers one warp takes: regs/thread x warp size, rounded up to the allocation unit.
int RegsPerWarp(const DeviceLimits& d, int regs_per_thread);
// Registers one block takes (per-warp allocation, rounded).
int RegsPerBlock(const DeviceLimits& d, const KernelFootprint& k);
// Warps of one block.
int WarpsPerBlock(const DeviceLimits& d, int threads);
// Registers in the fullest of the SM's register quarters when `warps` warps of one kernel are
// dealt round-robin to the schedulers: ceil(warps / quarters) x RegsPerWarp. A warp's registers
// must fit inside one quarter (e.g. NCCL's 544-thread, 96-register CTA: 17 warps, 5 in one
// quarter = 15,360 of 16,384).
int RegsInFullestQuarter(const DeviceLimits& d, int warps, int regs_per_thread);

Occupancy ResidentBlocks(const DeviceLimits& d, const KernelFootprint& k);

// Dynamic shared memory every kernel may use without opting in; above it the function's
// max-dynamic-shared-memory attribute must be raised before the launch.
constexpr size_t kDefaultDynamicSmemLimit = 48 * 1024;
// Whether a launch with `bytes` of dynamic shared memory needs the function's limit raised from
// `current` (the limit as last set or read; 0 when never set). The runtime's tiled GEMM decides
// by this rule.
inline bool DynamicSmemRaiseNeeded(size_t bytes, size_t current) {
  return bytes > kDefaultDynamicSmemLimit && bytes > current;
}

// Smallest extra dynamic shared memory (bytes) that caps the kernel at `cap` resident blocks/SM.
// 0 when the kernel is already at or below the cap; nullopt when the cap cannot be reached
// within the per-block opt-in limit, or cap < 1.
std::optional<size_t> PadForCap(const DeviceLimits& d, const KernelFootprint& k, int cap);

// How many CTAs of `comm` fit on one SM beside `compute_blocks` resident blocks of `compute`.
int CommRoomBeside(const DeviceLimits& d, const KernelFootprint& compute, int compute_blocks,
                   const KernelFootprint& comm);

// The largest cap K (1..natural) that leaves room for at least one `comm` CTA per SM
// (shape:auto). nullopt when even K = 1 leaves no room.
std::optional<int> AutoCap(const DeviceLimits& d, const KernelFootprint& compute,
                           const KernelFootprint& comm);

}  // namespace corun
