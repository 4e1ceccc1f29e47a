// Per workload: inputs, the cuBLASLt plan, the NCCL kernel probe, the plan for "all", the host
// references of the sampled outputs, the policy list (with `tuned` agreed across ranks), and the
// walk over the policies.
#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "../runtime/checks.h"
#include "../runtime/data.h"
#include "../runtime/watchdog.h"
#include "corun/gemm_check.h"
#include "corun/occupancy.h"
#include "child.h"
#include "rank.h"

namespace corun {

Status Rank::ProbeComm(const Workload& w) {
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
    // Not fatal: without the footprint the policies that need it are skipped.
    Status ps = base_.ProbeKernel(w.coll, send_, recv_, cshape_.count, dtype_, comm_lo_, &comm_fp_, &comm_ctas_,
                                  &comm_kernel_, ProbeAgreement("probe"));
    int any_fail = 0;
    CORUN_CHECK(Barrier(ps.ok() ? 0 : 1, &any_fail));
    comm_fp_known_ = any_fail == 0;
    if (!ps.ok() && rank_ == 0) {
      std::lock_guard<std::mutex> l(sh_.mu);
      sh_.meta.notes.push_back("communication kernel probe failed: " + ps.message());
    }
  }
  return Status::Ok();
}

Status Rank::PrepareWorkload(size_t wi, const Workload& w) {
  const int64_t M = w.g[0], N = w.g[1], K = w.g[2];
  Watchdog::Get().Phase("preparing " + w.compute + " " + FormatGemm(w.g));
  cshape_ = ShapeOf(w.coll, w.bytes, dtype_, sh_.nranks);
  // A failure in these steps (on any rank) ends the run on every rank.
  CORUN_CHECK(Agreed("inputs", [&]() -> Status {
    CORUN_CHECK(FillGemmInput(a_, M * K, kSeedA, comp_));
    CORUN_CHECK(FillGemmInput(b_, N * K, kSeedB, comp_));
    // Rank r's send buffer: allreduce/allgather send element i = index i; reduce-scatter and
    // alltoall send the whole nranks*count pattern.
    CORUN_CHECK(FillCollective(send_, dtype_, cshape_.send_elems, rank_, 0, kSeedColl, comp_));
    CUDACHECK(cudaStreamSynchronize(comp_));
    return Status::Ok();
  }));
  CORUN_CHECK(Agreed("cublaslt", [&]() -> Status {
    if (w.own || lts_.count(w.g)) return Status::Ok();
    auto lt = std::make_unique<CublasLtGemm>();
    CORUN_CHECK(lt->Init(M, N, K));
    lts_[w.g] = std::move(lt);
    return Status::Ok();
  }));
  // Learn the communication kernel's footprint from a captured call (agreed across ranks).
  CORUN_CHECK(ProbeComm(w));
  // Compute footprint and the plan for "all".
  plan_ = PlanInputs{};
  plan_.own_gemm = w.own;
  plan_.num_sms = info_.sms;
  plan_.nccl_ctas = comm_fp_known_ ? comm_ctas_ : 0;
  plan_.single_process = !sh_.pm.multi_process();
  plan_.ce_connections = CeConnectionsHere();
  plan_.max_shape_caps = o_.max_shape_caps;
  if (w.own) {
    CORUN_CHECK(Agreed("footprint", [&] { return TiledGemm::Footprint(w.tile, &comp_fp_); }));
    plan_.natural_blocks = ResidentBlocks(info_.limits, comp_fp_).blocks;
    plan_.auto_cap_possible = comm_fp_known_ && AutoCap(info_.limits, comp_fp_, comm_fp_).has_value();
  }
  // Host references for the sampled GEMM outputs, once per workload.
  sample_idx_ = GemmSampleIndices(M, N, o_.gemm_samples, 7 + static_cast<uint32_t>(wi));
  sample_ref_.clear();
  for (uint64_t i : sample_idx_)
    sample_ref_.push_back(GemmReference(static_cast<int64_t>(i / N), static_cast<int64_t>(i % N), K, kSeedA, kSeedB));
  return Status::Ok();
}

RunRecord Rank::Proto(const Workload& w) const {
  RunRecord proto;
  proto.compute = w.compute;
  proto.m = w.g[0];
  proto.n = w.g[1];
  proto.k = w.g[2];
  proto.gemms = o_.gemms_per_step;
  proto.collective = CollectiveName(w.coll);
  proto.dtype = DTypeName(dtype_);
  proto.bytes = w.bytes;
  return proto;
}

// The policies of --policies for this workload ("all" expanded, "tuned" resolved), repeats
// dropped in order; `pre` gets the rows decided without running (a missing tuned profile).
Status Rank::PoliciesFor(const RunRecord& proto, std::vector<Policy>* uniq, std::vector<RunRecord>* pre) {
  std::vector<PolicyItem> items;
  CORUN_CHECK(ParsePolicyList(o_.policies, &items));
  std::vector<Policy> policies;
  for (const PolicyItem& it : items) {
    if (it.kind == PolicyItem::kAll) {
      for (const Policy& p : ExpandAll(plan_)) policies.push_back(p);
    } else if (it.kind == PolicyItem::kGeom) {
      for (const Policy& p : ExpandGeom(plan_)) policies.push_back(p);
    } else if (it.kind == PolicyItem::kPolicy) {
      policies.push_back(it.policy);
    } else {
      CORUN_CHECK(AgreeOnTuned(proto, &policies, pre));
    }
  }
  for (const Policy& p : policies)
    if (std::find(uniq->begin(), uniq->end(), p) == uniq->end()) uniq->push_back(p);
  return Status::Ok();
}

Status Rank::RunWorkload(size_t wi, const Workload& w) {
  CORUN_CHECK(PrepareWorkload(wi, w));
  const RunRecord proto = Proto(w);
  std::vector<Policy> uniq;
  std::vector<RunRecord> pre;
  CORUN_CHECK(PoliciesFor(proto, &uniq, &pre));
  if (rank_ == 0) {
    std::lock_guard<std::mutex> l(sh_.mu);
    sh_.total_runs += static_cast<int>(uniq.size());
  }
  RowSink rows(rank_ == 0, [&, proto] {
    PrintWorkloadLine(stdout, proto);
    if (comm_fp_known_)
      std::printf("# comm kernel %s: %d CTAs x %d threads, %d regs, %zu B static + %zu B dynamic smem\n",
                  comm_kernel_.c_str(), comm_ctas_, comm_fp_.threads, comm_fp_.regs_per_thread, comm_fp_.static_smem,
                  comm_fp_.dynamic_smem);
    if (w.own)
      std::printf("# compute kernel: %d threads, %d regs, %zu B smem/block -> %d blocks/SM (%s-limited)\n",
                  comp_fp_.threads, comp_fp_.regs_per_thread, comp_fp_.static_smem + comp_fp_.dynamic_smem,
                  plan_.natural_blocks, LimiterName(ResidentBlocks(info_.limits, comp_fp_).limiter));
    PrintTableHeader(stdout);
  });
  for (const RunRecord& r : pre) rows.Emit(r);
  if (o_.tune) {
    CORUN_CHECK(TuneWorkload(w, proto, &rows));
  } else {
    for (const Policy& p : uniq) {
      RunRecord rec = proto;
      rec.policy = p.Name();
      Progress(WorkloadKey(rec) + " : " + rec.policy);
      if (NeedsGeometryChild(p) && PolicyNotApplicable(p, plan_).empty() && !sh_.pm.multi_process()) {
        // NCCL reads the geometry's variables once per process: the rows of one geometry run
        // later in a child of their own (bench/child.h); every rank takes this branch alike.
        // With a process per rank no child can be started: RunPolicy skips the row and says why.
        if (rank_ == 0) {
          std::lock_guard<std::mutex> l(sh_.mu);
          const std::string g = p.GeometryName();
          auto it = std::find_if(sh_.deferred_geom.begin(), sh_.deferred_geom.end(),
                                 [&](const auto& e) { return e.first == g; });
          if (it == sh_.deferred_geom.end()) it = sh_.deferred_geom.insert(sh_.deferred_geom.end(), {g, {}});
          if (std::find(it->second.begin(), it->second.end(), rec.policy) == it->second.end())
            it->second.push_back(rec.policy);
        }
        continue;
      } else if (p.maxconn1 && !o_.child_maxconn1) {
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
      } else if (NeedsQueuesChild(p) && (p.ce || !sh_.pm.multi_process()) && PolicyNotApplicable(p, plan_).empty()) {
        // Runs later in a child process with enough hardware queues (bench/child.h); every rank
        // of this process takes this branch alike, so no collective is left unmatched. ncclzero
        // too: its check holds every SM with a kernel while NCCL's copies must still run, which
        // they cannot when they share the kernel's hardware queue (a test with 2 GPUs in one
        // process and the default 8 queues saw "not taken" where 2 processes saw the path taken).
        // With one process per rank the row runs here (checked there with the default queues).
        if (rank_ == 0) {
          std::lock_guard<std::mutex> l(sh_.mu);
          if (std::find(sh_.deferred_ce.begin(), sh_.deferred_ce.end(), rec.policy) == sh_.deferred_ce.end())
            sh_.deferred_ce.push_back(rec.policy);
        }
        continue;
      } else {
        CORUN_CHECK(RunPolicy(w, p, &rec, o_.reps));
      }
      rows.Emit(rec);
    }
  }
  if (rank_ == 0) {
    std::lock_guard<std::mutex> l(sh_.mu);
    for (const auto& r : rows.rows()) sh_.records.push_back(r);
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

}  // namespace corun
