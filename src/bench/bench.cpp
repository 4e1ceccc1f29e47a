// The benchmark harness. Every rank (a thread per GPU in single-process mode, or the one rank of
// this process under mpirun/torchrun) walks the same workloads and policies in the same order,
// so every collective call, communicator creation and barrier matches across ranks.
//
// Per (workload, policy): set the policy up (agreed across ranks), warm up, run sustained (power
// and clocks settle), then time `reps` repetitions, each of compute alone, communication alone
// and both together, with a barrier before each (warm-up and the sustained phase run that same
// cycle untimed); take the rank maximum
// per repetition, the median and spread; run one more step on poisoned outputs and check it.
#include "bench.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>

#include "corun/gemm_check.h"
#include "corun/launch_rules.h"
#include "corun/occupancy.h"
#include "corun/policy.h"
#include "corun/profile.h"
#include "corun/tune.h"
#include "../runtime/bootstrap.h"
#include "../runtime/checks.h"
#include "../runtime/comm.h"
#include "../runtime/data.h"
#include "../runtime/device.h"
#include "../runtime/gemm_cublaslt.h"
#include "../runtime/gemm_tiled.h"
#include "../runtime/greenctx.h"
#include "../runtime/nvml.h"
#include "../runtime/watchdog.h"
#include "child.h"
#include "probe.h"

namespace corun {
namespace {

constexpr uint32_t kSeedA = 11, kSeedB = 23, kSeedColl = 37;

struct Workload {
  std::string compute;
  bool own = true;
  TileConfig tile = TileConfig::k64x64x64;
  GemmShape g{};
  Collective coll = Collective::kAllReduce;
  uint64_t bytes = 0;
};

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

// The profile-cache key of a bench workload on this run's machine and libraries.
ProfileKey BenchProfileKey(const Meta& m, const std::string& workload) {
  return ProfileKey{m.card, m.sms, m.gpus, m.nccl, m.cuda_runtime, workload};
}

// State shared by the rank threads of this process.
struct Shared {
  const BenchOptions* o = nullptr;
  ProcessModel pm;
  int nranks = 1;
  ncclUniqueId id{};
  std::mutex mu;
  std::vector<RunRecord> records;  // rank 0's
  std::vector<size_t> deferred_maxconn1;  // workload indices needing the child
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

struct PolicyCtx {
  cudaStream_t cs = nullptr, ms = nullptr;
  Comm* comm = nullptr;
  size_t pad = 0;
  int blocks = 0;
  int smtarget = 0;
  int compute_sms = 0;
  int comm_ctas = 0;
  std::string note;
};

class Rank {
 public:
  Rank(Shared& sh, int rank, int device) : sh_(sh), o_(*sh.o), rank_(rank), device_(device) {}
  ~Rank() { Release(); }
  Status Run();

 private:
  Status Setup();
  void Release();
  Status RunWorkload(size_t wi, const Workload& w);
  Status RunPolicy(const Workload& w, const Policy& p, RunRecord* rec, int reps);
  Status TuneWorkload(const Workload& w, const RunRecord& proto, const std::function<void(RunRecord)>& emit);
  Status SetupPolicy(const Workload& w, const Policy& p, PolicyCtx* ctx);
  Status CommWithCtas(int ctas, Comm** out);
  Status BroadcastId(ncclUniqueId* id);
  Status Barrier(int flag = 0, int* any = nullptr) { return base_.Barrier(comm_lo_, flag, any); }
  Status Compute(const Workload& w, const PolicyCtx& c, cudaStream_t s);
  Status Communicate(const Workload& w, const PolicyCtx& c, cudaStream_t s);
  Status TimeCompute(const Workload& w, const PolicyCtx& c, float* ms);
  Status TimeComm(const Workload& w, const PolicyCtx& c, float* ms);
  Status TimeTogether(const Workload& w, const PolicyCtx& c, const Policy& p, float* total, float* c_end,
                      float* m_end);
  Status Verify(const Workload& w, const PolicyCtx& c, const Policy& p, int64_t* wrong, std::string* what);
  void Progress(const std::string& what);
  Status AgreeOnTuned(const RunRecord& proto, std::vector<Policy>* policies, std::vector<RunRecord>* pre);

  Shared& sh_;
  const BenchOptions& o_;
  int rank_, device_;
  DeviceInfo info_;
  DType dtype_ = DType::kBf16;
  cudaStream_t comp_ = nullptr, comm_lo_ = nullptr, comm_hi_ = nullptr;
  cudaEvent_t e0_ = nullptr, ec_ = nullptr, em_ = nullptr;
  Comm base_;
  std::map<int, std::unique_ptr<Comm>> cta_comms_;
  std::map<int, std::unique_ptr<GreenSplit>> greens_;
  std::map<GemmShape, std::unique_ptr<CublasLtGemm>> lts_;
  __nv_bfloat16 *a_ = nullptr, *b_ = nullptr, *c_ = nullptr;
  void *send_ = nullptr, *recv_ = nullptr;
  uint64_t recv_bytes_ = 0;
  float* d_times_ = nullptr;
  int64_t* d_counts_ = nullptr;
  unsigned long long* d_wrong_ = nullptr;
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

Status Rank::Setup() {
  CUDACHECK(cudaSetDevice(device_));
  CORUN_CHECK(QueryDevice(device_, &info_));
  ParseDType(o_.dtype, &dtype_);
  CUDACHECK(cudaStreamCreateWithPriority(&comp_, cudaStreamNonBlocking, info_.priority_lowest));
  CUDACHECK(cudaStreamCreateWithPriority(&comm_lo_, cudaStreamNonBlocking, info_.priority_lowest));
  CUDACHECK(cudaStreamCreateWithPriority(&comm_hi_, cudaStreamNonBlocking, info_.priority_highest));
  CUDACHECK(cudaEventCreate(&e0_));
  CUDACHECK(cudaEventCreate(&ec_));
  CUDACHECK(cudaEventCreate(&em_));
  CORUN_CHECK(base_.Init(sh_.id, sh_.nranks, rank_, CommConfig{}));
  // Buffers sized for the largest workload.
  uint64_t a_elems = 0, b_elems = 0, c_elems = 0, send_b = 0;
  for (const Workload& w : Workloads(o_)) {
    a_elems = std::max<uint64_t>(a_elems, w.g[0] * w.g[2]);
    b_elems = std::max<uint64_t>(b_elems, w.g[1] * w.g[2]);
    c_elems = std::max<uint64_t>(c_elems, w.g[0] * w.g[1]);
    const CollectiveShape s = ShapeOf(w.coll, w.bytes, dtype_, sh_.nranks);
    send_b = std::max<uint64_t>(send_b, s.send_elems * DTypeSize(dtype_));
    recv_bytes_ = std::max<uint64_t>(recv_bytes_, s.recv_elems * DTypeSize(dtype_));
  }
  CUDACHECK(cudaMalloc(&a_, a_elems * 2));
  CUDACHECK(cudaMalloc(&b_, b_elems * 2));
  CUDACHECK(cudaMalloc(&c_, c_elems * 2));
  CUDACHECK(cudaMalloc(&send_, std::max<uint64_t>(send_b, 16)));
  CUDACHECK(cudaMalloc(&recv_, std::max<uint64_t>(recv_bytes_, 16)));
  CUDACHECK(cudaMalloc(&d_times_, sizeof(float) * 5 * std::max({o_.reps, TuneOptions{}.max_reps, 1})));
  CUDACHECK(cudaMalloc(&d_counts_, sizeof(int64_t) * 2));
  CUDACHECK(cudaMalloc(&d_wrong_, sizeof(unsigned long long)));
  sampler_ = std::make_unique<ClockSampler>(std::vector<void*>{Nvml::Get().DeviceByPci(info_.pci)});
  return Status::Ok();
}

void Rank::Release() {
  cudaSetDevice(device_);
  cudaDeviceSynchronize();
  lts_.clear();
  greens_.clear();
  cta_comms_.clear();
  for (void* p : {static_cast<void*>(a_), static_cast<void*>(b_), static_cast<void*>(c_), send_, recv_,
                  static_cast<void*>(d_times_), static_cast<void*>(d_counts_), static_cast<void*>(d_wrong_)})
    if (p) cudaFree(p);
  a_ = b_ = c_ = nullptr;
  send_ = recv_ = nullptr;
  d_times_ = nullptr;
  d_counts_ = nullptr;
  d_wrong_ = nullptr;
}

void Rank::Progress(const std::string& what) {
  Watchdog::Get().Phase(what);
  if (rank_ != 0) return;
  std::lock_guard<std::mutex> l(sh_.mu);
  ++sh_.done_runs;
  std::fprintf(stderr, "corun: [%d/%d] %s\n", sh_.done_runs, sh_.total_runs, what.c_str());
}

Status Rank::BroadcastId(ncclUniqueId* id) {
  if (rank_ == 0) NCCLCHECK(ncclGetUniqueId(id));
  void* buf = nullptr;
  CUDACHECK(cudaMalloc(&buf, sizeof(*id)));
  CUDACHECK(cudaMemcpyAsync(buf, id, sizeof(*id), cudaMemcpyHostToDevice, comm_lo_));
  NCCLCHECK(ncclBroadcast(buf, buf, sizeof(*id), ncclUint8, 0, base_.get(), comm_lo_));
  CUDACHECK(cudaMemcpyAsync(id, buf, sizeof(*id), cudaMemcpyDeviceToHost, comm_lo_));
  CUDACHECK(cudaStreamSynchronize(comm_lo_));
  CUDACHECK(cudaFree(buf));
  return Status::Ok();
}

Status Rank::CommWithCtas(int ctas, Comm** out) {
  auto it = cta_comms_.find(ctas);
  if (it == cta_comms_.end()) {
    ncclUniqueId id;
    CORUN_CHECK(BroadcastId(&id));
    auto c = std::make_unique<Comm>();
    CORUN_CHECK(c->Init(id, sh_.nranks, rank_, CommConfig{ctas}));
    it = cta_comms_.emplace(ctas, std::move(c)).first;
  }
  *out = it->second.get();
  return Status::Ok();
}

Status Rank::Run() {
  CORUN_CHECK(Setup());
  const auto ws = Workloads(o_);
  for (size_t i = 0; i < ws.size(); ++i) CORUN_CHECK(RunWorkload(i, ws[i]));
  CUDACHECK(cudaDeviceSynchronize());
  return Status::Ok();
}

Status Rank::RunWorkload(size_t wi, const Workload& w) {
  const int64_t M = w.g[0], N = w.g[1], K = w.g[2];
  Watchdog::Get().Phase("preparing " + w.compute + " " + FormatGemm(w.g));
  CORUN_CHECK(FillGemmInput(a_, M * K, kSeedA, comp_));
  CORUN_CHECK(FillGemmInput(b_, N * K, kSeedB, comp_));
  cshape_ = ShapeOf(w.coll, w.bytes, dtype_, sh_.nranks);
  // Rank r's send buffer: allreduce/allgather send element i = index i; reduce-scatter and
  // alltoall send the whole nranks*count pattern.
  CORUN_CHECK(FillCollective(send_, dtype_, cshape_.send_elems, rank_, 0, kSeedColl, comp_));
  CUDACHECK(cudaStreamSynchronize(comp_));
  if (!w.own) {
    auto& lt = lts_[w.g];
    if (!lt) {
      lt = std::make_unique<CublasLtGemm>();
      CORUN_CHECK(lt->Init(M, N, K));
    }
  }
  // Learn the communication kernel's footprint from a captured call (agreed across ranks).
  comm_fp_known_ = false;
  comm_ctas_ = 0;
  comm_kernel_.clear();
  if (sh_.external_probes) {
    auto it = sh_.probes.find(ProbeKey(w.coll, w.bytes, DTypeName(dtype_)));
    if (it != sh_.probes.end()) {
      comm_fp_known_ = true;
      comm_fp_ = it->second.fp;
      comm_ctas_ = it->second.ctas;
      comm_kernel_ = it->second.kernel;
    }
  } else if (o_.probe_comm) {
    Status ps = base_.ProbeKernel(w.coll, send_, recv_, cshape_.count, dtype_, comm_lo_, &comm_fp_, &comm_ctas_,
                                  &comm_kernel_);
    int any_fail = 0;
    CORUN_CHECK(Barrier(ps.ok() ? 0 : 1, &any_fail));
    comm_fp_known_ = any_fail == 0;
    if (!ps.ok() && rank_ == 0) {
      std::lock_guard<std::mutex> l(sh_.mu);
      sh_.meta.notes.push_back("communication kernel probe failed: " + ps.message());
    }
  }
  // Compute footprint and the plan for "all".
  plan_ = PlanInputs{};
  plan_.own_gemm = w.own;
  plan_.num_sms = info_.sms;
  plan_.nccl_ctas = comm_fp_known_ ? comm_ctas_ : 0;
  plan_.single_process = !sh_.pm.multi_process();
  plan_.max_shape_caps = o_.max_shape_caps;
  if (w.own) {
    CORUN_CHECK(TiledGemm::Footprint(w.tile, &comp_fp_));
    plan_.natural_blocks = ResidentBlocks(info_.limits, comp_fp_).blocks;
    plan_.auto_cap_possible = comm_fp_known_ && AutoCap(info_.limits, comp_fp_, comm_fp_).has_value();
  }
  // Host references for the sampled GEMM outputs, once per workload.
  sample_idx_ = GemmSampleIndices(M, N, o_.gemm_samples, 7 + static_cast<uint32_t>(wi));
  sample_ref_.clear();
  for (uint64_t i : sample_idx_)
    sample_ref_.push_back(GemmReference(static_cast<int64_t>(i / N), static_cast<int64_t>(i % N), K, kSeedA, kSeedB));

  std::vector<PolicyItem> items;
  CORUN_CHECK(ParsePolicyList(o_.policies, &items));
  RunRecord proto;
  proto.compute = w.compute;
  proto.m = M;
  proto.n = N;
  proto.k = K;
  proto.gemms = o_.gemms_per_step;
  proto.collective = CollectiveName(w.coll);
  proto.dtype = DTypeName(dtype_);
  proto.bytes = w.bytes;
  std::vector<Policy> policies;
  std::vector<RunRecord> pre;  // rows decided without running (a missing tuned profile)
  for (const PolicyItem& it : items) {
    if (it.kind == PolicyItem::kAll) {
      for (const Policy& p : ExpandAll(plan_)) policies.push_back(p);
    } else if (it.kind == PolicyItem::kPolicy) {
      policies.push_back(it.policy);
    } else {
      CORUN_CHECK(AgreeOnTuned(proto, &policies, &pre));
    }
  }
  // Drop repeats, keep order.
  std::vector<Policy> uniq;
  for (const Policy& p : policies)
    if (std::find(uniq.begin(), uniq.end(), p) == uniq.end()) uniq.push_back(p);

  std::vector<RunRecord> recs;
  if (rank_ == 0) {
    std::lock_guard<std::mutex> l(sh_.mu);
    sh_.total_runs += static_cast<int>(uniq.size());
  }
  bool printed_header = false;
  // Rank 0 prints each row as it completes, with its change against the baselines so far.
  auto emit = [&](RunRecord rec) {
    if (rank_ != 0) return;
    if (!printed_header) {
      PrintWorkloadLine(stdout, rec);
      if (comm_fp_known_)
        std::printf("# comm kernel %s: %d CTAs x %d threads, %d regs, %zu B static + %zu B dynamic smem\n",
                    comm_kernel_.c_str(), comm_ctas_, comm_fp_.threads, comm_fp_.regs_per_thread,
                    comm_fp_.static_smem, comm_fp_.dynamic_smem);
      if (w.own)
        std::printf("# compute kernel: %d threads, %d regs, %zu B smem/block -> %d blocks/SM (%s-limited)\n",
                    comp_fp_.threads, comp_fp_.regs_per_thread, comp_fp_.static_smem + comp_fp_.dynamic_smem,
                    plan_.natural_blocks, LimiterName(ResidentBlocks(info_.limits, comp_fp_).limiter));
      PrintTableHeader(stdout);
      printed_header = true;
    }
    for (const RunRecord& b : recs) {
      if (b.status != "ok" && b.status != "wrong") continue;
      if (b.policy == "sequential") {
        rec.vs_sequential = RelativeChange(rec.t_total.median, b.t_total.median);
        rec.has_vs_sequential = rec.status == "ok" || rec.status == "wrong";
      }
      if (b.policy == "overlap") {
        rec.vs_overlap = RelativeChange(rec.t_total.median, b.t_total.median);
        rec.has_vs_overlap = rec.status == "ok" || rec.status == "wrong";
      }
    }
    PrintRow(stdout, rec);
    std::fflush(stdout);
    recs.push_back(rec);
  };
  for (const RunRecord& r : pre) emit(r);
  if (o_.tune) {
    CORUN_CHECK(TuneWorkload(w, proto, emit));
  } else {
    for (const Policy& p : uniq) {
      RunRecord rec = proto;
      rec.policy = p.Name();
      Progress(WorkloadKey(rec) + " : " + rec.policy);
      if (p.maxconn1 && !o_.child_maxconn1) {
        // Runs later in a child process with CUDA_DEVICE_MAX_CONNECTIONS=1.
        std::string na = PolicyNotApplicable(p, plan_);
        if (!na.empty()) {
          rec.status = "skipped";
          rec.note = na;
        } else {
          if (rank_ == 0) {
            std::lock_guard<std::mutex> l(sh_.mu);
            sh_.deferred_maxconn1.push_back(wi);
          }
          continue;
        }
      } else {
        CORUN_CHECK(RunPolicy(w, p, &rec, o_.reps));
      }
      emit(rec);
    }
  }
  if (rank_ == 0) {
    std::lock_guard<std::mutex> l(sh_.mu);
    for (auto& r : recs) sh_.records.push_back(r);
  }
  return Status::Ok();
}

// `--policies tuned`: the cached policy for this workload. Every rank reads its own process's
// cache (another node may hold another file), so the ranks agree first: a profile that some rank
// lacks or holds differently is applied nowhere — running different policies would hang the
// collectives.
Status Rank::AgreeOnTuned(const RunRecord& proto, std::vector<Policy>* policies, std::vector<RunRecord>* pre) {
  std::string stale;
  const ProfileEntry* e = sh_.cache.Find(BenchProfileKey(sh_.meta, WorkloadKey(proto)), &stale);
  Policy tp;
  const bool found = e && ParsePolicy(e->policy, &tp).ok();
  const int mine = found ? static_cast<int>(std::hash<std::string>{}(tp.Name()) & 0x3fffffff) + 1 : 0;
  int hi = 0, neg_lo = 0;
  CORUN_CHECK(Barrier(mine, &hi));
  CORUN_CHECK(Barrier(-mine, &neg_lo));
  if (found && hi == mine && -neg_lo == mine) {
    policies->push_back(tp);
    return Status::Ok();
  }
  RunRecord r = proto;
  r.policy = "tuned";
  r.status = "skipped";
  if (found || hi != 0)
    r.note = "the tuned profile is missing or different on some rank (each reads " + sh_.cache_path +
             " on its own node): applied nowhere";
  else
    r.note = !stale.empty() ? stale : "no tuned profile for this workload in " + sh_.cache_path + " (run corun tune)";
  pre->push_back(r);
  return Status::Ok();
}

// corun tune on one workload. Every rank runs its own Tuner: the timings it is fed are the rank
// maxima (identical everywhere) and every status is agreed, so all ranks propose the same
// candidates in the same order without further coordination.
Status Rank::TuneWorkload(const Workload& w, const RunRecord& proto, const std::function<void(RunRecord)>& emit) {
  SearchSpace sp;
  sp.own_gemm = w.own;
  sp.natural_blocks = plan_.natural_blocks;
  if (w.own && comm_fp_known_)
    if (auto k = AutoCap(info_.limits, comp_fp_, comm_fp_)) sp.auto_cap = *k;
  sp.num_sms = info_.sms;
  sp.nccl_ctas = comm_fp_known_ ? comm_ctas_ : 0;
  const std::vector<Policy> full = FullSpace(sp);
  const int sweep_trials = static_cast<int>(full.size()) * o_.reps;
  TuneOptions topt;
  topt.budget_trials = std::max(4, static_cast<int>(o_.tune_budget * sweep_trials));
  Tuner tuner(sp, topt);
  auto run = [&](const Policy& p, int reps, const std::string& tag, RunRecord* out) -> Status {
    RunRecord rec = proto;
    rec.policy = p.Name();
    if (rank_ == 0) {
      std::lock_guard<std::mutex> l(sh_.mu);
      ++sh_.total_runs;  // the search decides as it goes: count as we go
    }
    Progress(WorkloadKey(rec) + " : " + tag + " " + rec.policy + " x" + std::to_string(reps));
    CORUN_CHECK(RunPolicy(w, p, &rec, reps));
    rec.note = tag + (rec.note.empty() ? "" : "; " + rec.note);
    emit(rec);
    *out = rec;
    return Status::Ok();
  };
  for (std::vector<Request> batch = tuner.Next(); !batch.empty(); batch = tuner.Next()) {
    for (const Request& r : batch) {
      RunRecord rec;
      CORUN_CHECK(run(r.policy, r.reps, "tune", &rec));
      if (rec.status == "ok")
        tuner.Report(r.policy, rec.samples);
      else
        tuner.Reject(r.policy);
    }
  }
  const Measured* best = tuner.Best();
  const Measured* base = tuner.Baseline();
  if (!best) CORUN_FAIL("corun tune: no candidate could run for " + WorkloadKey(proto));
  TuneSummary ts;
  ts.workload = WorkloadKey(proto);
  ts.policy = best->policy.Name();
  ts.t_ms = best->summary.median;
  ts.overlap_ms = base ? base->summary.median : 0;
  ts.trials = tuner.trials();
  ts.budget = topt.budget_trials;
  ts.sweep_trials = sweep_trials;
  ts.candidates = static_cast<int>(tuner.All().size());
  ts.stop = tuner.Why();
  if (o_.tune_sweep) {
    // The exhaustive sweep, in the same process: every candidate with -n repetitions.
    double sweep_best = 0, tuned_in_sweep = 0, overlap_in_sweep = 0;
    std::string sweep_best_policy;
    std::vector<Policy> sweep = full;
    if (std::find(sweep.begin(), sweep.end(), best->policy) == sweep.end()) sweep.push_back(best->policy);
    for (const Policy& p : sweep) {
      RunRecord rec;
      CORUN_CHECK(run(p, o_.reps, "sweep", &rec));
      if (rec.status != "ok") continue;
      if (sweep_best_policy.empty() || rec.t_total.median < sweep_best) {
        sweep_best = rec.t_total.median;
        sweep_best_policy = rec.policy;
      }
      if (rec.policy == ts.policy) tuned_in_sweep = rec.t_total.median;
      if (rec.policy == "overlap") overlap_in_sweep = rec.t_total.median;
    }
    ts.has_sweep = true;
    ts.sweep_best_policy = sweep_best_policy;
    ts.sweep_best_ms = sweep_best;
    ts.tuned_in_sweep_ms = tuned_in_sweep;
    ts.overlap_in_sweep_ms = overlap_in_sweep;
  }
  if (rank_ == 0) {
    std::printf("# tuned: %s  %.3f ms (overlap %.3f ms); %d trials of a %d-trial budget (sweep: %d); %s\n",
                ts.policy.c_str(), ts.t_ms, ts.overlap_ms, ts.trials, ts.budget, ts.sweep_trials, ts.stop.c_str());
    if (ts.has_sweep && ts.tuned_in_sweep_ms > 0)
      std::printf("# sweep: best %s %.3f ms; tuned policy in the sweep %.3f ms (%+.1f%%); overlap %.3f ms\n",
                  ts.sweep_best_policy.c_str(), ts.sweep_best_ms, ts.tuned_in_sweep_ms,
                  100 * RelativeChange(ts.tuned_in_sweep_ms, ts.sweep_best_ms), ts.overlap_in_sweep_ms);
    else if (ts.has_sweep)
      std::printf("# sweep: best %s %.3f ms; the tuned policy did not run in the sweep; overlap %.3f ms\n",
                  ts.sweep_best_policy.c_str(), ts.sweep_best_ms, ts.overlap_in_sweep_ms);
    std::lock_guard<std::mutex> l(sh_.mu);
    sh_.tunes.push_back(ts);
  }
  return Status::Ok();
}

Status Rank::SetupPolicy(const Workload& w, const Policy& p, PolicyCtx* c) {
  c->cs = comp_;
  c->ms = p.comm_priority ? comm_hi_ : comm_lo_;
  c->comm = &base_;
  c->comm_ctas = comm_fp_known_ ? comm_ctas_ : 0;
  c->compute_sms = info_.sms;
  if (w.own) {
    std::optional<size_t> pad;
    if (p.shape == ShapeMode::kAuto) {
      if (!comm_fp_known_) CORUN_FAIL("shape:auto needs the communication kernel's footprint (probe failed)");
      auto k = AutoCap(info_.limits, comp_fp_, comm_fp_);
      if (!k) CORUN_FAIL("shape:auto: no cap leaves room for a communication CTA");
      pad = PadForCap(info_.limits, comp_fp_, *k);
      c->note = "auto cap " + std::to_string(*k);
    } else {
      pad = ShapePad(p, info_.limits, comp_fp_);  // the same rule the interposer applies
    }
    if (!pad) CORUN_FAIL("policy " + p.Name() + ": the pad would exceed the per-block shared-memory limit");
    c->pad = *pad;
    KernelFootprint padded = comp_fp_;
    padded.dynamic_smem += c->pad;
    const int model = ResidentBlocks(info_.limits, padded).blocks;
    int rt = 0;
    CORUN_CHECK(TiledGemm::RuntimeOccupancy(w.tile, c->pad, &rt));
    c->blocks = rt;
    if (rt != model) c->note += (c->note.empty() ? "" : "; ") + std::string("model said ") + std::to_string(model) + " blocks/SM";
  }
  if (p.smtarget_auto) {
    if (!comm_fp_known_) CORUN_FAIL("smtarget:auto needs the number of CTAs NCCL launches (probe failed)");
    c->smtarget = std::max(1, info_.sms - comm_ctas_);
  } else if (p.smtarget > 0) {
    c->smtarget = p.smtarget;
  }
  if (c->smtarget) c->compute_sms = c->smtarget;
  if (p.ncclctas > 0) {
    CORUN_CHECK(CommWithCtas(p.ncclctas, &c->comm));
    // What NCCL actually launches under the cap.
    KernelFootprint fp;
    int ctas = 0;
    std::string name;
    c->comm_ctas = 0;  // unknown unless probed below
    if (!sh_.external_probes && o_.probe_comm &&
        c->comm->ProbeKernel(w.coll, send_, recv_, cshape_.count, dtype_, comm_lo_, &fp, &ctas, &name).ok())
      c->comm_ctas = ctas;
  }
  if (p.greenctx > 0) {
    auto& g = greens_[p.greenctx];
    if (!g) {
      g = std::make_unique<GreenSplit>();
      Status s = g->Create(device_, p.greenctx);
      if (!s.ok()) {
        greens_.erase(p.greenctx);
        return s.At(__FILE__, __LINE__);
      }
    }
    c->cs = g->compute_stream();
    c->compute_sms = g->compute_sms();
    c->note += (c->note.empty() ? "" : "; ") + std::string("compute on ") + std::to_string(g->compute_sms()) +
               " SMs (green ctx), NCCL on the primary ctx";
  }
  return Status::Ok();
}

Status Rank::Compute(const Workload& w, const PolicyCtx& c, cudaStream_t s) {
  for (int r = 0; r < o_.gemms_per_step; ++r) {
    if (w.own)
      CORUN_CHECK(TiledGemm::Launch(w.tile, a_, b_, c_, w.g[0], w.g[1], w.g[2], c.pad, s));
    else
      CORUN_CHECK(lts_[w.g]->Run(a_, b_, c_, c.smtarget, s));
  }
  return Status::Ok();
}

Status Rank::Communicate(const Workload& w, const PolicyCtx& c, cudaStream_t s) {
  return c.comm->Run(w.coll, send_, recv_, cshape_.count, dtype_, s);
}

Status Rank::TimeCompute(const Workload& w, const PolicyCtx& c, float* ms) {
  CUDACHECK(cudaEventRecord(e0_, c.cs));
  CORUN_CHECK(Compute(w, c, c.cs));
  CUDACHECK(cudaEventRecord(ec_, c.cs));
  CUDACHECK(cudaEventSynchronize(ec_));
  CUDACHECK(cudaEventElapsedTime(ms, e0_, ec_));
  return Status::Ok();
}

Status Rank::TimeComm(const Workload& w, const PolicyCtx& c, float* ms) {
  CUDACHECK(cudaEventRecord(e0_, c.ms));
  CORUN_CHECK(Communicate(w, c, c.ms));
  CUDACHECK(cudaEventRecord(em_, c.ms));
  CUDACHECK(cudaEventSynchronize(em_));
  CUDACHECK(cudaEventElapsedTime(ms, e0_, em_));
  return Status::Ok();
}

Status Rank::TimeTogether(const Workload& w, const PolicyCtx& c, const Policy& p, float* total, float* c_end,
                          float* m_end) {
  CUDACHECK(cudaEventRecord(e0_, c.cs));
  if (p.sequential) {
    CORUN_CHECK(Compute(w, c, c.cs));
    CUDACHECK(cudaEventRecord(ec_, c.cs));
    CORUN_CHECK(Communicate(w, c, c.cs));
    CUDACHECK(cudaEventRecord(em_, c.cs));
  } else {
    CUDACHECK(cudaStreamWaitEvent(c.ms, e0_, 0));
    CORUN_CHECK(Compute(w, c, c.cs));
    CUDACHECK(cudaEventRecord(ec_, c.cs));
    CORUN_CHECK(Communicate(w, c, c.ms));
    CUDACHECK(cudaEventRecord(em_, c.ms));
  }
  CUDACHECK(cudaEventSynchronize(ec_));
  CUDACHECK(cudaEventSynchronize(em_));
  CUDACHECK(cudaEventElapsedTime(c_end, e0_, ec_));
  CUDACHECK(cudaEventElapsedTime(m_end, e0_, em_));
  *total = std::max(*c_end, *m_end);
  return Status::Ok();
}

Status Rank::Verify(const Workload& w, const PolicyCtx& c, const Policy& p, int64_t* wrong, std::string* what) {
  // Poison both outputs so that a step which writes nothing cannot pass.
  CUDACHECK(cudaMemsetAsync(c_, 0xFF, static_cast<size_t>(w.g[0] * w.g[1]) * 2, comp_));
  CUDACHECK(cudaMemsetAsync(recv_, 0xFF, cshape_.recv_elems * DTypeSize(dtype_), comp_));
  CUDACHECK(cudaStreamSynchronize(comp_));
  CORUN_CHECK(Barrier());
  float t, ce, me;
  CORUN_CHECK(TimeTogether(w, c, p, &t, &ce, &me));
  std::vector<float> got;
  CORUN_CHECK(GatherSamples(c_, sample_idx_, &got, comp_));
  double worst = 0;
  const int64_t gemm_bad = CountGemmMismatchesRef(sample_ref_, got, &worst);
  CUDACHECK(cudaMemsetAsync(d_wrong_, 0, sizeof(unsigned long long), comp_));
  CORUN_CHECK(VerifyCollective(recv_, dtype_, cshape_.verify, cshape_.count, rank_, sh_.nranks, kSeedColl, d_wrong_, comp_));
  unsigned long long coll_bad = 0;
  CUDACHECK(cudaMemcpyAsync(&coll_bad, d_wrong_, sizeof(coll_bad), cudaMemcpyDeviceToHost, comp_));
  CUDACHECK(cudaStreamSynchronize(comp_));
  int64_t counts[2] = {gemm_bad, static_cast<int64_t>(coll_bad)};
  CUDACHECK(cudaMemcpyAsync(d_counts_, counts, sizeof(counts), cudaMemcpyHostToDevice, comm_lo_));
  CORUN_CHECK(base_.SumInt64(d_counts_, 2, comm_lo_));
  CUDACHECK(cudaMemcpyAsync(counts, d_counts_, sizeof(counts), cudaMemcpyDeviceToHost, comm_lo_));
  CUDACHECK(cudaStreamSynchronize(comm_lo_));
  *wrong = counts[0] + counts[1];
  if (*wrong) {
    std::ostringstream os;
    os << counts[0] << " GEMM samples wrong (of " << sample_idx_.size() * sh_.nranks << ", tolerance 2^-8 rel, worst "
       << worst << " on rank " << rank_ << "), " << counts[1] << " collective elements wrong";
    *what = os.str();
  }
  return Status::Ok();
}

Status Rank::RunPolicy(const Workload& w, const Policy& p, RunRecord* rec, int reps) {
  const std::string na = PolicyNotApplicable(p, plan_);
  if (!na.empty()) {
    rec->status = "skipped";
    rec->note = na;
    return Status::Ok();
  }
  PolicyCtx ctx;
  Status setup = SetupPolicy(w, p, &ctx);
  int any_fail = 0;
  CORUN_CHECK(Barrier(setup.ok() ? 0 : 1, &any_fail));
  if (any_fail) {
    rec->status = "error";
    rec->note = setup.ok() ? "set-up failed on another rank" : setup.ToString(true);
    return Status::Ok();
  }
  rec->pad_bytes = ctx.pad;
  rec->blocks_per_sm = w.own ? ctx.blocks : 0;
  rec->comm_ctas = ctx.comm_ctas;
  rec->compute_sms = ctx.compute_sms;
  rec->note = ctx.note;

  // One repetition: compute alone, communication alone, both together, a barrier before each.
  // Warm-up and the sustained phase run the same cycle as the timed repetitions: a phase of
  // back-to-back together-steps draws more power than the cycle, and the first timed
  // repetitions after it ran slower (own GEMM on 2x H200: the first 2.0% above the run's median
  // on average, up to 7.8%), which biased short runs such as corun tune's.
  auto cycle = [&](float* tc, float* tm, float* t, float* ce, float* me) -> Status {
    CORUN_CHECK(Barrier());
    CORUN_CHECK(TimeCompute(w, ctx, tc));
    CORUN_CHECK(Barrier());
    CORUN_CHECK(TimeComm(w, ctx, tm));
    CORUN_CHECK(Barrier());
    CORUN_CHECK(TimeTogether(w, ctx, p, t, ce, me));
    Watchdog::Get().Kick();
    return Status::Ok();
  };
  float t, ce, me, tc, tm;
  for (int i = 0; i < o_.warmup; ++i) CORUN_CHECK(cycle(&tc, &tm, &t, &ce, &me));
  // Sustained: the GPU reaches its power/clock steady state before timing.
  const auto t0 = std::chrono::steady_clock::now();
  for (int more = 1; more;) {
    CORUN_CHECK(cycle(&tc, &tm, &t, &ce, &me));
    const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    CORUN_CHECK(Barrier(el < o_.sustain_s ? 1 : 0, &more));
  }
  const int R = reps;
  std::vector<float> v(5 * R);
  sampler_->Start();
  for (int r = 0; r < R; ++r) CORUN_CHECK(cycle(&v[0 * R + r], &v[1 * R + r], &v[2 * R + r], &v[3 * R + r], &v[4 * R + r]));
  rec->clocks = sampler_->Stop();
  // The step of a repetition is as slow as its slowest rank.
  CUDACHECK(cudaMemcpyAsync(d_times_, v.data(), v.size() * sizeof(float), cudaMemcpyHostToDevice, comm_lo_));
  CORUN_CHECK(base_.MaxFloats(d_times_, v.size(), comm_lo_));
  CUDACHECK(cudaMemcpyAsync(v.data(), d_times_, v.size() * sizeof(float), cudaMemcpyDeviceToHost, comm_lo_));
  CUDACHECK(cudaStreamSynchronize(comm_lo_));
  auto part = [&](int i) { return Summarize(std::vector<double>(v.begin() + i * R, v.begin() + (i + 1) * R)); };
  rec->t_comp = part(0);
  rec->t_comm = part(1);
  rec->t_total = part(2);
  rec->samples.assign(v.begin() + 2 * R, v.begin() + 3 * R);
  rec->t_comp_end = part(3);
  rec->t_comm_end = part(4);
  rec->efficiency = OverlapEfficiency(rec->t_comp.median, rec->t_comm.median, rec->t_total.median);
  if (!p.sequential) {
    rec->comp_slowdown = RelativeChange(rec->t_comp_end.median, rec->t_comp.median);
    rec->comm_slowdown = RelativeChange(rec->t_comm_end.median, rec->t_comm.median);
  }
  const double gb = static_cast<double>(w.bytes) / 1e9;
  rec->algbw = rec->t_comm.median > 0 ? gb / (rec->t_comm.median / 1e3) : 0;
  rec->busbw = rec->algbw * cshape_.busbw_factor;
  rec->tflops = rec->t_comp.median > 0 ? 2.0 * w.g[0] * w.g[1] * w.g[2] * o_.gemms_per_step /
                                             (rec->t_comp.median / 1e3) / 1e12
                                       : 0;
  std::string what;
  CORUN_CHECK(Verify(w, ctx, p, &rec->wrong, &what));
  if (rec->wrong) {
    rec->status = "wrong";
    rec->note += (rec->note.empty() ? "" : "; ") + what;
  }
  return Status::Ok();
}

}  // namespace

Status ValidateBenchOptions(const BenchOptions& o) {
  if (o.computes.empty()) CORUN_FAIL("no compute kernel given");
  for (const auto& c : o.computes) {
    TileConfig t;
    if (c != "cublaslt" && !ParseTileConfig(c, &t))
      CORUN_FAIL("unknown compute kernel '" + c + "' (tiled64x64x32, tiled64x64x64, cublaslt)");
    for (const auto& g : o.gemms) {
      if (ParseTileConfig(c, &t)) {
        const std::string e = TiledGemm::CheckShape(g[0], g[1], g[2], t);
        if (!e.empty()) CORUN_FAIL("GEMM " + FormatGemm(g) + ": " + e);
      } else if (g[0] > (1 << 30) || g[1] > (1 << 30) || g[2] > (1 << 30)) {
        CORUN_FAIL("GEMM " + FormatGemm(g) + " is too large");
      }
    }
  }
  for (const auto& c : o.collectives) {
    Collective col;
    if (!ParseCollective(c, &col))
      CORUN_FAIL("unknown collective '" + c + "' (allreduce, allgather, reducescatter, alltoall)");
  }
  DType t;
  if (!ParseDType(o.dtype, &t)) CORUN_FAIL("unknown data type '" + o.dtype + "' (bf16, fp32)");
  for (uint64_t b : o.sizes)
    if (b < 1024) CORUN_FAIL("collective size " + std::to_string(b) + " B is below 1 KiB");
  std::vector<PolicyItem> items;
  CORUN_CHECK(ParsePolicyList(o.policies, &items));
  if (o.tune_budget <= 0 || o.tune_budget > 1) CORUN_FAIL("--budget must be in (0, 1] (a fraction of the sweep's trials)");
  if (o.reps < 1 || o.reps > 100000) CORUN_FAIL("-n/--iters must be 1..100000");
  if (o.warmup < 0) CORUN_FAIL("-w/--warmup must be >= 0");
  if (o.gemms_per_step < 1 || o.gemms_per_step > 1000) CORUN_FAIL("--gemms must be 1..1000");
  if (o.sustain_s < 0) CORUN_FAIL("--sustain must be >= 0");
  if (o.gemm_samples < 4) CORUN_FAIL("--samples must be >= 4");
  return Status::Ok();
}

int RunBench(const BenchOptions& o) {
  Status v = ValidateBenchOptions(o);
  if (!v.ok()) {
    std::fprintf(stderr, "corun bench: %s\n", v.message().c_str());
    return 2;
  }
  Shared sh;
  sh.o = &o;
  Status s = DetectProcessModel(&sh.pm);
  int ndev = 0;
  if (s.ok()) s = CountDevices(&ndev);
  if (!s.ok()) {
    std::fprintf(stderr, "corun bench: %s\n", s.message().c_str());
    return 2;
  }
  std::vector<int> devices;
  if (sh.pm.multi_process()) {
    sh.nranks = sh.pm.world;
    devices.push_back(DeviceForLocalRank(sh.pm.local_rank, ndev));
  } else {
    const int n = o.ngpus > 0 ? o.ngpus : ndev;
    if (n > ndev) {
      std::fprintf(stderr, "corun bench: -g %d asks for more GPUs than the %d visible\n", n, ndev);
      return 2;
    }
    sh.nranks = n;
    for (int i = 0; i < n; ++i) devices.push_back(i);
  }
  const int my_first_rank = sh.pm.multi_process() ? sh.pm.rank : 0;
  if (!o.probe_only.empty()) return RunProbeOnly(o, sh.pm, devices[0]);
  if (!sh.pm.multi_process() && sh.nranks > 1 && o.probe_comm) {
    std::string why;
    sh.external_probes = true;
    if (!ProbeInChildren(o, sh.nranks, &sh.probes, &why))
      sh.meta.notes.push_back("communication kernel probe (child processes) failed: " + why);
    else
      sh.meta.notes.push_back("communication kernels probed in " + std::to_string(sh.nranks) +
                              " child processes (graph capture is unsafe with several GPUs in one process)");
  }
  s = ExchangeUniqueId(sh.pm, &sh.id, 120);
  if (!s.ok()) {
    std::fprintf(stderr, "corun bench: %s\n", s.ToString(true).c_str());
    return 1;
  }
  DeviceInfo d0;
  if (!(s = QueryDevice(devices[0], &d0)).ok()) {
    std::fprintf(stderr, "corun bench: %s\n", s.ToString(true).c_str());
    return 1;
  }
  Meta& m = sh.meta;
  m.card = d0.name;
  m.gpus = sh.nranks;
  m.sms = d0.sms;
  m.nccl = NcclVersion();
  m.cuda_runtime = CudaRuntimeVersion();
  m.cuda_driver = CudaDriverVersion();
  m.driver = Nvml::Get().DriverVersion();
  m.date = NowIsoUtc();
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  m.host = host;
  m.process_model = sh.pm.kind;
  m.priority_lowest = d0.priority_lowest;
  m.priority_highest = d0.priority_highest;
  m.sustain_s = o.sustain_s;
  m.warmup = o.warmup;
  m.reps = o.reps;
  m.command_line = o.command_line;
  if (!Nvml::Get().ok()) m.notes.push_back("NVML unavailable (" + Nvml::Get().why() + "): no clock/power columns");
  sh.cache_path = o.cache_path.empty() ? DefaultProfilePath() : o.cache_path;
  if (Status cs = sh.cache.Load(sh.cache_path); !cs.ok()) {
    std::fprintf(stderr, "corun: warning: %s (ignored)\n", cs.message().c_str());
    sh.cache = ProfileCache();
  }
  const bool lead = my_first_rank == 0 && !o.child_maxconn1;
  if (lead) {
    std::printf("# corun bench: %d x %s (%d SMs), NCCL %s, CUDA runtime %s / driver %s, %s, %s\n", m.gpus,
                m.card.c_str(), m.sms, m.nccl.c_str(), m.cuda_runtime.c_str(), m.cuda_driver.c_str(),
                m.process_model.c_str(), m.date.c_str());
    std::printf("# stream priorities: lowest %d, highest %d; warm-up %d, sustain %.1f s, %d timed reps (median, rank max)\n",
                m.priority_lowest, m.priority_highest, o.warmup, o.sustain_s, o.reps);
  }
  Watchdog::Get().Start(o.watchdog_s);
  std::vector<std::thread> threads;
  std::vector<Status> results(devices.size());
  for (size_t i = 0; i < devices.size(); ++i) {
    threads.emplace_back([&, i] {
      Rank r(sh, my_first_rank + static_cast<int>(i), devices[i]);
      results[i] = r.Run();
    });
  }
  for (auto& t : threads) t.join();
  Watchdog::Get().Stop();
  int code = 0;
  for (size_t i = 0; i < results.size(); ++i) {
    if (!results[i].ok()) {
      std::fprintf(stderr, "corun bench: rank %d: %s\n", my_first_rank + static_cast<int>(i),
                   results[i].ToString(true).c_str());
      code = 1;
    }
  }
  if (code == 0 && !sh.deferred_maxconn1.empty() && my_first_rank == 0) {
    std::vector<RunRecord> child;
    std::string why;
    std::fprintf(stderr, "corun: maxconn1: re-running %zu workload(s) in a child with CUDA_DEVICE_MAX_CONNECTIONS=1\n",
                 sh.deferred_maxconn1.size());
    if (!RunMaxConn1Child(o, &child, &why)) {
      std::fprintf(stderr, "corun bench: maxconn1 child failed: %s\n", why.c_str());
      code = 1;
    } else {
      std::printf("#\n# maxconn1: own process with CUDA_DEVICE_MAX_CONNECTIONS=1; vs columns against the rows above\n");
      PrintTableHeader(stdout);
      for (RunRecord& r : child) {
        for (const RunRecord& b : sh.records) {
          if (WorkloadKey(b) != WorkloadKey(r) || (b.status != "ok" && b.status != "wrong")) continue;
          if (b.policy == "sequential") {
            r.vs_sequential = RelativeChange(r.t_total.median, b.t_total.median);
            r.has_vs_sequential = true;
          }
          if (b.policy == "overlap") {
            r.vs_overlap = RelativeChange(r.t_total.median, b.t_total.median);
            r.has_vs_overlap = true;
          }
        }
        std::printf("# workload: %s\n", WorkloadKey(r).c_str());
        PrintRow(stdout, r);
        sh.records.push_back(r);
      }
    }
  }
  if (my_first_rank != 0) return code;
  int64_t wrong = 0, errors = 0;
  for (const RunRecord& r : sh.records) {
    wrong += r.wrong;
    if (r.status == "error") ++errors;
  }
  if (o.child_maxconn1) {
    // The child reports its rows under the maxconn1 name.
    for (RunRecord& r : sh.records) r.policy = "maxconn1";
  }
  if (o.tune && !sh.tunes.empty()) {
    for (const TuneSummary& t : sh.tunes) {
      ProfileEntry e;
      e.key = BenchProfileKey(m, t.workload);
      e.policy = t.policy;
      e.t_ms = t.t_ms;
      e.overlap_ms = t.overlap_ms;
      e.date = m.date;
      sh.cache.Put(e);
    }
    if (Status cs = sh.cache.Save(sh.cache_path); !cs.ok()) {
      std::fprintf(stderr, "corun tune: %s\n", cs.message().c_str());
      code = 1;
    } else {
      std::printf("# %zu tuned profile(s) saved in %s\n", sh.tunes.size(), sh.cache_path.c_str());
    }
  }
  if (!o.json_path.empty()) {
    std::ofstream f(o.json_path);
    f << RecordsToJson(sh.meta, sh.records, 1, sh.tunes) << "\n";
    if (!f) {
      std::fprintf(stderr, "corun bench: cannot write %s\n", o.json_path.c_str());
      code = 1;
    }
  }
  if (!o.child_maxconn1) {
    std::printf("#\n# Out of bounds values : %lld %s\n", static_cast<long long>(wrong), wrong ? "FAILED" : "OK");
    std::printf("# Runs: %zu, errors: %lld\n#\n", sh.records.size(), static_cast<long long>(errors));
  }
  if (wrong || errors) code = 1;
  return code;
}

}  // namespace corun
