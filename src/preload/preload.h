// What the interposer's stages share: the configuration (config.cpp), the per-device and
// per-function facts with the program's own shared-memory limit (facts.cpp), the launch path
// (launch.cpp), the counters and the report (report.cpp). The exported hooks are in interpose.cpp,
// NCCL's in nccl.cpp (the copy-engine collectives under `ce`).
#pragma once
#include <cuda.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <string>

#include "corun/ce_route.h"
#include "corun/launch_rules.h"
#include "hooks.h"

namespace corun {

// ---- configuration, read once (config.cpp) ------------------------------------------------
struct State {
  InterposeConfig cfg;
  bool enabled = true;
  std::string error;  // why the preload is disabled (a bad CORUN_* setting)
  bool verbose = false;
  std::string report;
  // Driver functions the interposer itself needs (resolved from libcuda, past our hooks).
  CUresult (*ctx_get_device)(CUdevice*) = nullptr;
  CUresult (*dev_attr)(int*, CUdevice_attribute, CUdevice) = nullptr;
  CUresult (*func_name)(const char**, CUfunction) = nullptr;
  CUresult (*kern_name)(const char**, CUkernel) = nullptr;
  CUresult (*func_attr)(int*, CUfunction_attribute, CUfunction) = nullptr;
  CUresult (*kern_attr)(int*, CUfunction_attribute, CUkernel, CUdevice) = nullptr;
  CUresult (*func_set)(CUfunction, CUfunction_attribute, int) = nullptr;
  CUresult (*kern_set)(CUfunction_attribute, int, CUkernel, CUdevice) = nullptr;
  CUresult (*prio_range)(int*, int*) = nullptr;
  std::atomic<bool> driver_ready{false};
  // Only a shaping policy ever raises a kernel's limit, so only then is the program's own limit
  // followed (its attribute sets and reads pass straight through otherwise).
  bool TracksLimits() const { return enabled && cfg.policy.shape != ShapeMode::kNone; }
};

State& S();
// Resolves the driver functions above; until libcuda is loaded nothing resolves and the next call
// tries again.
void EnsureDriver(State& s);
// The current context's device; false without a context (or before the driver is loaded).
bool CurrentDevice(State& s, CUdevice* dev);

// ---- counters (report.cpp): what the driver accepted ---------------------------------------
struct Counters {
  std::atomic<uint64_t> launches{0};          // every launch seen
  std::atomic<uint64_t> shaped{0};            // padded launches the driver accepted
  std::atomic<uint64_t> comm{0};              // communication launches the driver accepted
  std::atomic<uint64_t> prioritised{0};       // ... of them carrying the priority attribute
  std::atomic<uint64_t> priority_dropped{0};  // ... wanted the priority, ran without it
  std::atomic<uint64_t> failed{0};            // launches the driver rejected as the program made them
  std::atomic<uint64_t> sm_targets{0};
  std::atomic<uint64_t> skip[static_cast<int>(SkipReason::kCount)]{};
  std::atomic<int> nccl_ctas{0};
};
extern Counters g_count;

// ---- per-device and per-function facts (facts.cpp) ----------------------------------------
struct DevInfo {
  DeviceLimits limits;
  int prio_greatest = 0;
  bool ok = false;
};
const DevInfo& Device(State& s, CUdevice dev);

// One kernel on one device (a CUkernel has one dynamic-shared-memory limit per device).
struct FuncInfo {
  std::string name;
  int regs = 0, static_smem = 0;
  bool cluster = false;
  bool known = false;
  bool kernel_handle = false;  // a CUkernel passed as CUfunction (library-managed kernels)
  bool comm = false, denied = false;
  // The dynamic-shared-memory limit. The driver holds max(program, our raise); `limit` is that
  // value as last read or set, valid while `epoch` equals the global limit epoch (bumped when the
  // program sets a limit through a handle we have no entry for: it may alias this one).
  std::mutex mu;                  // raises and the program's own sets; never on the common path
  std::atomic<int> limit{0};
  std::atomic<int> program{0};    // the program's own limit: what it set last, or what it found
  std::atomic<uint64_t> epoch{0};
  std::atomic<int> refusals{0};   // padded launches the driver refused although the limit fit
  std::atomic<bool> logged{false};
};

// The entry for (f, dev), created on first sight; never removed.
FuncInfo* Func(State& s, CUfunction f, CUdevice dev);
// The entry for (f, dev) if there is one.
FuncInfo* FindFunc(CUfunction f, CUdevice dev);

// Whether a padded launch of shmem + pad bytes can go ahead: raises the limit when needed.
enum class Fit { kOk, kOverProgram, kRaiseFailed, kRefused };
Fit PrepareShaped(State& s, CUfunction f, FuncInfo* fi, CUdevice dev, unsigned shmem, size_t pad);
// A padded launch was refused: the limit is re-read before the next one; after a few refusals
// the function is no longer padded.
void PaddedLaunchRefused(FuncInfo* fi, bool unpadded_ok);

// The program's own cuFuncSetAttribute / cuKernelSetAttribute of the dynamic-shared-memory limit.
CUresult ProgramSetsLimit(CUfunction f, CUdevice dev, bool dev_known, bool by_kernel, int value);
// The value the program would read for the limit without the preload, given the driver's answer.
int ProgramView(CUfunction f, CUdevice dev, int driver_value);

void LogOnce(State& s, FuncInfo* fi, const std::string& what);

// ---- the NCCL stage's counts (nccl_count.cpp): what nccl.cpp served, passed to NCCL and
// created under `ce`, and the report's part of them (empty when the stage saw no collective).
bool CeOn();  // the `ce` policy is on (else every NCCL hook passes straight through)
void CeCountServed(uint64_t bytes, uint64_t enqueue_ns);  // one collective served by copy engines
void CeCountDirect(uint64_t calls);  // allreduces queued with direct copies since the last count
void CeCountToNccl(CeRoute why);     // one collective NCCL accepted after the CE path declined it
void CeRecordComm(int rank, int nranks, bool usable, const std::string& why);  // a CeComm's creation
void CeReportJson(nlohmann::ordered_json* j);
std::string CeSummaryLine();

// ---- the launch path (launch.cpp) -----------------------------------------------------------
CUresult Launch(HookId self, HookId ex_id, CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                unsigned by, unsigned bz, unsigned shmem, CUstream st, void** params, void** extra);
CUresult LaunchEx(HookId self, const CUlaunchConfig* config, CUfunction f, void** params, void** extra);

}  // namespace corun
