// One rank of the benchmark (a thread per GPU in single-process mode, or the one rank of this
// process under mpirun/torchrun) and the state the rank threads of one process share. Each stage
// of a rank's work lives in its own file:
//   rank.cpp          resource lifecycle: streams, events, base communicator, buffers, release
//   prepare.cpp       per workload: inputs, cuBLASLt plan, NCCL kernel probe, plan for "all",
//                     host references, the policy list (and `tuned` agreement), the policy loop
//   policy_setup.cpp  per policy: pad, SM target, communication backend (CTA-capped NCCL
//                     communicator), green context; each step agreed across ranks
//   measure.cpp       the measurement cycle: warm-up, sustained phase, timed repetitions
//   smid_probe.cpp    --smid-probe: one stamped, untimed step; do compute and communication share SMs
//   verify.cpp        one more step on poisoned outputs, checked
//   tune_driver.cpp   corun tune: the search fed with measured policies, the optional sweep
//   rows.cpp          result rows: the table as rows complete, the baseline columns
//   run_bench.cpp     the process model, run metadata, maxconn1 child, profile cache, JSON
#pragma once
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "../runtime/bootstrap.h"
#include "../runtime/ce_comm.h"
#include "../runtime/comm.h"
#include "../runtime/device.h"
#include "../runtime/gemm_cublaslt.h"
#include "../runtime/nccl_zero.h"
#include "../runtime/greenctx.h"
#include "../runtime/nvml.h"
#include "corun/agree.h"
#include "corun/launch_rules.h"
#include "corun/policy.h"
#include "corun/profile.h"
#include "corun/report.h"
#include "corun/tune.h"
#include "probe.h"
#include "workload.h"

namespace corun {

// State shared by the rank threads of this process.
struct Shared {
  const BenchOptions* o = nullptr;
  ProcessModel pm;
  int nranks = 1;
  ncclUniqueId id{};
  FailureInjection inject;  // test-only (CORUN_TEST_FAIL_SETUP)
  std::mutex mu;
  std::vector<RunRecord> records;         // rank 0's
  std::vector<size_t> deferred_maxconn1;  // workload indices needing the child
  std::vector<std::string> deferred_ce;   // ce policies for the child (enough hardware queues)
  // Policies with a geometry term for the child of their geometry, in order of first appearance.
  std::vector<std::pair<std::string, std::vector<std::string>>> deferred_geom;
  std::atomic<int> error_rows{0};         // rows with status "error" seen by this process's ranks
  Meta meta;
  ProfileCache cache;
  std::string cache_path;
  std::vector<TuneSummary> tunes;
  int total_runs = 0;
  int done_runs = 0;
  // Single-process mode with several GPUs: NCCL cannot be graph-captured there (the capture
  // poisons the communicator), so the kernel footprints come from child processes.
  bool external_probes = false;
  std::map<std::string, ProbedKernel> probes;
};

// How the communication side of a step runs. A new backend adds a value here, its set-up in
// policy_setup.cpp (SetupComm) and its call in Rank::Communicate.
enum class CommBackend { kNccl, kCe, kNcclZero };

// What one policy's set-up produced: the streams, the communication backend and the knobs.
struct PolicyCtx {
  cudaStream_t cs = nullptr, ms = nullptr;
  CommBackend backend = CommBackend::kNccl;
  Comm* comm = nullptr;  // kNccl: the base or a CTA-capped communicator
  CeComm* ce = nullptr;  // kCe: the rank's copy-engine communicator
  NcclZero* zero = nullptr;  // kNcclZero: NCCL's zero-CTA communicator, on its own buffers
  void* recv = nullptr;      // the collective's output when not the rank's recv_ (kNcclZero)
  std::string skip;      // set-up found the policy inapplicable (agreed on every rank): the reason
  size_t pad = 0;
  int blocks = 0;
  int smtarget = 0;
  int compute_sms = 0;
  int comm_ctas = 0;
  std::string note;
};

class RowSink;

class Rank {
 public:
  Rank(Shared& sh, int rank, int device) : sh_(sh), o_(*sh.o), rank_(rank), device_(device) {}
  ~Rank() { Release(); }
  Status Run();

 private:
  // rank.cpp
  Status Setup();
  Status Allocate();
  void Release();
  void Progress(const std::string& what);
  Status Barrier(int flag = 0, int* any = nullptr) { return base_.Barrier(comm_lo_, flag, any); }
  // A set-up step that may fail on this rank only: agreed before and after (corun/agree.h).
  Status Agreed(const std::string& step, const std::function<Status()>& fn);
  // prepare.cpp
  Status RunWorkload(size_t wi, const Workload& w);
  Status PrepareWorkload(size_t wi, const Workload& w);
  Status ProbeComm(const Workload& w);
  Status PoliciesFor(const RunRecord& proto, std::vector<Policy>* policies, std::vector<RunRecord>* pre);
  Status AgreeOnTuned(const RunRecord& proto, std::vector<Policy>* policies, std::vector<RunRecord>* pre);
  RunRecord Proto(const Workload& w) const;
  // policy_setup.cpp
  Status SetupPolicy(const Workload& w, const Policy& p, PolicyCtx* ctx);
  Status SetupShape(const Workload& w, const Policy& p, PolicyCtx* ctx);
  Status SetupComm(const Workload& w, const Policy& p, PolicyCtx* ctx);
  Status SetupCe(const Workload& w, PolicyCtx* ctx);
  Status SetupNcclZero(const Workload& w, PolicyCtx* ctx);
  Status SetupGreen(const Policy& p, PolicyCtx* ctx);
  void CommGeometryNote(const Policy& p, PolicyCtx* ctx);
  Status CommWithCtas(int ctas, Comm** out);
  Status BroadcastId(ncclUniqueId* id);
  Comm::ProbeAgreeFn ProbeAgreement(const std::string& step);
  // stamps: the %smid probe's per-block stamps (own GEMM), null when not probing.
  Status Compute(const Workload& w, const PolicyCtx& c, cudaStream_t s, BlockStamp* stamps = nullptr);
  Status Communicate(const Workload& w, const PolicyCtx& c, cudaStream_t s);
  // measure.cpp
  Status RunPolicy(const Workload& w, const Policy& p, RunRecord* rec, int reps);
  Status Measure(const Workload& w, const Policy& p, const PolicyCtx& ctx, RunRecord* rec, int reps, double* timed_s);
  Status AgreeWall(double wall_s, double timed_s, RunRecord* rec);
  Status TimeCompute(const Workload& w, const PolicyCtx& c, float* ms);
  Status TimeComm(const Workload& w, const PolicyCtx& c, float* ms);
  Status TimeTogether(const Workload& w, const PolicyCtx& c, const Policy& p, float* total, float* c_end,
                      float* m_end);
  // smid_probe.cpp
  Status SmidProbe(const Workload& w, const Policy& p, const PolicyCtx& c, RunRecord* rec);
  // verify.cpp
  Status Verify(const Workload& w, const PolicyCtx& c, const Policy& p, int64_t* wrong, std::string* what);
  // tune_driver.cpp
  Status TuneWorkload(const Workload& w, const RunRecord& proto, RowSink* rows);
  Status TuneRun(const Workload& w, const RunRecord& proto, const Policy& p, int reps, const std::string& tag,
                 RowSink* rows, RunRecord* out);
  Status TuneSweep(const Workload& w, const RunRecord& proto, std::vector<Policy> sweep, RowSink* rows,
                   TuneSummary* ts);

  Shared& sh_;
  const BenchOptions& o_;
  int rank_, device_;
  DeviceInfo info_;
  DType dtype_ = DType::kBf16;
  cudaStream_t comp_ = nullptr, comm_lo_ = nullptr, comm_hi_ = nullptr;
  cudaEvent_t e0_ = nullptr, ec_ = nullptr, em_ = nullptr;
  Comm base_;
  std::map<int, std::unique_ptr<Comm>> cta_comms_;
  std::unique_ptr<CeComm> ce_;  // created at the first ce policy, kept for the run
  CeConfig ce_cfg_;              // its protocol settings (CeConfigFromEnv)
  std::unique_ptr<NcclZero> zero_;  // created at the first ncclzero row it serves, kept for the run
  std::string zero_broken_;         // why zero_ is no longer used (a failed path check), same on every rank
  std::map<int, std::unique_ptr<GreenSplit>> greens_;
  std::map<GemmShape, std::unique_ptr<CublasLtGemm>> lts_;
  __nv_bfloat16 *a_ = nullptr, *b_ = nullptr, *c_ = nullptr;
  void *send_ = nullptr, *recv_ = nullptr;
  uint64_t recv_bytes_ = 0;
  float* d_times_ = nullptr;
  int64_t* d_counts_ = nullptr;
  unsigned long long* d_wrong_ = nullptr;
  BlockStamp* d_stamps_ = nullptr;  // the %smid probe's stamps, grown to the largest step
  size_t stamps_cap_ = 0;
  std::unique_ptr<ClockSampler> sampler_;
  // per workload
  CollectiveShape cshape_;
  KernelFootprint comp_fp_{}, comm_fp_{};
  bool comm_fp_known_ = false;
  int comm_ctas_ = 0;
  std::string comm_kernel_;
  PlanInputs plan_;
  std::vector<uint64_t> sample_idx_;
  std::vector<double> sample_ref_;
};

// Rank 0 prints each row of a workload as it completes (the workload's header before the first),
// with its change against the baselines measured so far; every rank keeps the rows.
class RowSink {
 public:
  RowSink(bool print, std::function<void()> header) : print_(print), header_(std::move(header)) {}
  void Emit(RunRecord rec);
  const std::vector<RunRecord>& rows() const { return rows_; }

 private:
  bool print_;
  bool printed_header_ = false;
  std::function<void()> header_;
  std::vector<RunRecord> rows_;
};

}  // namespace corun
