// Per policy: the compute side (pad from the occupancy model checked against the runtime, SM
// target, green context) and the communication backend (today NCCL: the base communicator or one
// with a CTA cap, created once per cap). The compute kernels and the collective are launched
// from here (Compute, Communicate), so a new backend is one case in SetupComm and Communicate.
#include <cstdlib>
#include <algorithm>
#include <cstdio>

#include "../runtime/checks.h"
#include "corun/occupancy.h"
#include "rank.h"

namespace corun {

// A fresh NCCL unique id from rank 0 to every rank, over the base communicator. Two agreed
// steps: rank 0 making the id (and each rank its buffer), then the broadcast itself.
Status Rank::BroadcastId(ncclUniqueId* id) {
  void* buf = nullptr;
  Status s = Agreed("unique_id", [&]() -> Status {
    if (rank_ == 0) NCCLCHECK(ncclGetUniqueId(id));
    CUDACHECK(cudaMalloc(&buf, sizeof(*id)));
    return Status::Ok();
  });
  if (s.ok())
    s = Agreed("broadcast", [&]() -> Status {
      CUDACHECK(cudaMemcpyAsync(buf, id, sizeof(*id), cudaMemcpyHostToDevice, comm_lo_));
      NCCLCHECK(ncclBroadcast(buf, buf, sizeof(*id), ncclUint8, 0, base_.get(), comm_lo_));
      CUDACHECK(cudaMemcpyAsync(id, buf, sizeof(*id), cudaMemcpyDeviceToHost, comm_lo_));
      CUDACHECK(cudaStreamSynchronize(comm_lo_));
      return Status::Ok();
    });
  if (buf) cudaFree(buf);
  return s;
}

// The communicator with a CTA cap, created once per cap; kept only when every rank has it.
Status Rank::CommWithCtas(int ctas, Comm** out) {
  auto it = cta_comms_.find(ctas);
  if (it == cta_comms_.end()) {
    ncclUniqueId id{};
    CORUN_CHECK(BroadcastId(&id));
    auto c = std::make_unique<Comm>();
    CORUN_CHECK(Agreed("ncclctas", [&] { return c->Init(id, sh_.nranks, rank_, CommConfig{ctas}); }));
    it = cta_comms_.emplace(ctas, std::move(c)).first;
  }
  *out = it->second.get();
  return Status::Ok();
}

// The probe's replay agreement: a rank whose capture failed (or that is told to fail, as a test)
// keeps every rank from replaying.
Comm::ProbeAgreeFn Rank::ProbeAgreement(const std::string& step) {
  return [this, step](bool ok_here, bool* all_ok) -> Status {
    if (sh_.inject.Hits(rank_, step)) ok_here = false;
    int worst = 0;
    CORUN_CHECK(Barrier(ok_here ? 0 : rank_ + 1, &worst));
    *all_ok = worst == 0;
    return Status::Ok();
  };
}

// Own GEMM: the pad that caps its residency (shape:K, shape:NK, shape:auto), checked against
// cudaOccupancyMaxActiveBlocksPerMultiprocessor.
Status Rank::SetupShape(const Workload& w, const Policy& p, PolicyCtx* c) {
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
  return Status::Ok();
}

// The copy-engine backend: one CeComm per rank beside the base communicator, created at the first
// ce policy (collectively: every rank runs the same policy list) and kept for the run. Whether it
// serves a workload is the same answer on every rank (Init agrees; the rest is the workload's).
Status Rank::SetupCe(const Workload& w, PolicyCtx* c) {
  if (!ce_) {
    // CORUN_CE_* tune the protocol (ce_plan.h); the same environment on every rank.
    const std::string bad = CeConfigFromEnv(ProcessEnv, &ce_cfg_);
    if (!bad.empty()) CORUN_FAIL(bad);
    // Unless CORUN_CE_SLOTS says otherwise, the bench's staging holds its largest collective
    // whole (CeSlotsToHold), as a program could set for its own sizes: beside a long GEMM the
    // pushes then run to the end while every reduction waits (ce_plan.h).
    if (!ProcessEnv("CORUN_CE_SLOTS")) {
      uint64_t most = 0;
      for (uint64_t b : o_.sizes) most = std::max(most, b);
      ce_cfg_.slots = CeSlotsToHold(ce_cfg_, most);
    }
    auto ce = std::make_unique<CeComm>();
    CORUN_CHECK(Agreed("ce", [&] { return ce->Init(base_.get(), ce_cfg_, comm_lo_); }));
    ce_ = std::move(ce);
    if (!ce_->usable() && rank_ == 0) std::fprintf(stderr, "corun: ce: %s\n", ce_->why().c_str());
  }
  c->backend = CommBackend::kCe;
  c->ce = ce_.get();
  c->comm_ctas = 0;
  if (!ce_->usable()) {
    c->skip = "ce " + ce_->why();
  } else if (!ce_->Serves(w.coll)) {
    c->skip = std::string("ce does not serve ") + CollectiveName(w.coll) + " (NCCL's own zero-CTA path is not wired yet)";
  } else {
    std::string why = CeCallDecision(dtype_ == DType::kFp32 ? "fp32" : "bf16", "sum", w.bytes, ce_cfg_);
    if (why.empty()) why = CeChunksDecision(w.bytes, ce_cfg_);  // the interposer's chunk bound too
    if (!why.empty()) c->skip = "ce " + why;
  }
  if (c->skip.empty()) c->note += (c->note.empty() ? "" : "; ") + std::string("copy engines, no NCCL");
  return Status::Ok();
}

// NCCL's own zero-CTA path (ncclzero): a communicator split with CTAPolicy ZERO and buffers in
// symmetric windows, created at the first row it serves (sized for the largest such row) and
// kept. Each row copies its inputs into the window and checks that one call launches no kernel,
// by holding every SM while the call runs (threads or processes alike). A row whose call is not
// seen to finish without a kernel (not taken, or unchecked) is skipped with what the check saw.
Status Rank::SetupNcclZero(const Workload& w, PolicyCtx* c) {
  c->backend = CommBackend::kNcclZero;
  c->comm_ctas = 0;
  int nccl_version = 0, driver_version = 0;
  ncclGetVersion(&nccl_version);
  cudaDriverGetVersion(&driver_version);
  c->skip = NcclZeroNotApplicable(w.coll);
  if (c->skip.empty()) c->skip = NcclZeroStackMissing(nccl_version, driver_version);
  if (c->skip.empty()) c->skip = zero_broken_;
  if (!c->skip.empty()) return Status::Ok();
  if (!zero_) {
    uint64_t sb = 0, rb = 0;
    for (const Workload& x : Workloads(o_)) {
      if (!NcclZeroNotApplicable(x.coll).empty()) continue;
      const CollectiveShape xs = ShapeOf(x.coll, x.bytes, dtype_, sh_.nranks);
      sb = std::max<uint64_t>(sb, xs.send_elems * DTypeSize(dtype_));
      rb = std::max<uint64_t>(rb, xs.recv_elems * DTypeSize(dtype_));
    }
    auto z = std::make_unique<NcclZero>();
    const Status s = Agreed("ncclzero", [&] { return z->Init(base_.get(), sb, rb); });
    if (!s.ok()) {
      zero_broken_ = "ncclzero: the zero-CTA communicator could not be set up";
      return s;
    }
    zero_ = std::move(z);
  }
  // The row's inputs, copied into the window (the rank's own send buffer holds them).
  CORUN_CHECK(Agreed("ncclzero_inputs", [&]() -> Status {
    CUDACHECK(cudaMemcpyAsync(zero_->send(), send_, cshape_.send_elems * DTypeSize(dtype_), cudaMemcpyDeviceToDevice,
                              comm_lo_));
    CUDACHECK(cudaStreamSynchronize(comm_lo_));
    return Status::Ok();
  }));
  // The ranks meet (the harness barrier) right before their blockers, so each one's side of the
  // checked call is enqueued inside every peer's hold.
  ZeroVerdict v;
  const Status cs = zero_->CheckPath(w.coll, cshape_.count, dtype_, comm_lo_, &v, [this] { return Barrier(); });
  // 0: every rank took the path; 1: some rank did not, or could not tell; 2: a check failed.
  const int mine = !cs.ok() ? 2 : v.path == ZeroPath::kTaken ? 0 : 1;
  int worst = 0;
  CORUN_CHECK(Barrier(mine, &worst));
  if (worst == 2) {
    zero_broken_ = "ncclzero: the zero-CTA path check failed (" + (cs.ok() ? std::string("on another rank") : cs.message()) +
                   "); not used for the rest of the run";
    c->skip = zero_broken_;
    return Status::Ok();
  }
  if (worst == 1) {
    c->skip = v.path == ZeroPath::kTaken ? "zero-CTA path not taken or unchecked on another rank" : ZeroVerdictNote(v);
    return Status::Ok();
  }
  c->zero = zero_.get();
  c->recv = zero_->recv();
  c->note += (c->note.empty() ? "" : "; ") + ZeroVerdictNote(v);
  return Status::Ok();
}

// The communication backend of the policy.
Status Rank::SetupComm(const Workload& w, const Policy& p, PolicyCtx* c) {
  if (p.ce) return SetupCe(w, c);
  if (p.ncclzero) return SetupNcclZero(w, c);
  c->backend = CommBackend::kNccl;
  c->comm = &base_;
  c->comm_ctas = comm_fp_known_ ? comm_ctas_ : 0;
  if (p.ncclctas > 0) {
    CORUN_CHECK(CommWithCtas(p.ncclctas, &c->comm));
    // What NCCL actually launches under the cap (unknown when the probe fails: not an error).
    c->comm_ctas = 0;
    if (!sh_.external_probes && o_.probe_comm) {
      KernelFootprint fp;
      int ctas = 0;
      std::string name;
      const Status ps = c->comm->ProbeKernel(w.coll, send_, recv_, cshape_.count, dtype_, comm_lo_, &fp, &ctas, &name,
                                             ProbeAgreement("ncclctas_probe"));
      int worst = 0;
      CORUN_CHECK(Barrier(ps.ok() ? 0 : rank_ + 1, &worst));
      if (worst == 0) c->comm_ctas = ctas;
    }
  }
  if (p.has_env_geometry()) CommGeometryNote(p, c);
  return Status::Ok();
}

// The geometry NCCL launched for a row that asked for one: CTAs x threads (and the kernel, whose
// name may carry the protocol), and one line when NCCL ignored or adjusted a term. Child rows
// print without their process's workload header, so the row itself carries it.
void Rank::CommGeometryNote(const Policy& p, PolicyCtx* c) {
  std::string n;
  if (!comm_fp_known_) {
    n = "geometry unchecked (no kernel probe)";
  } else {
    // A CTA-capped communicator not probed here (several GPUs in one process): its cap, unchecked.
    const bool capped_unknown = c->comm_ctas <= 0 && p.ncclctas > 0;
    const int ctas = c->comm_ctas > 0 ? c->comm_ctas : capped_unknown ? 0 : comm_ctas_;
    n = "comm " + (capped_unknown ? "<=" + std::to_string(p.ncclctas) : std::to_string(ctas)) + " CTAs x " + std::to_string(comm_fp_.threads) + " threads " + comm_kernel_;
    const std::string off = CommGeometryMismatch(p, comm_fp_.threads, ctas, comm_kernel_);
    if (!off.empty()) {
      n += "; " + off;
      if (rank_ == 0) std::fprintf(stderr, "%s: policy %s: %s\n", CommandName(o_), p.Name().c_str(), off.c_str());
    }
  }
  c->note += (c->note.empty() ? "" : "; ") + n;
}

Status Rank::SetupGreen(const Policy& p, PolicyCtx* c) {
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
  return Status::Ok();
}

// Every step that can fail on one rank is agreed before and after (corun/agree.h), so a failure
// anywhere ends the set-up on every rank, with the reason on the failing one.
Status Rank::SetupPolicy(const Workload& w, const Policy& p, PolicyCtx* c) {
  c->cs = comp_;
  c->ms = p.comm_priority ? comm_hi_ : comm_lo_;
  c->compute_sms = info_.sms;
  CORUN_CHECK(Agreed("shape", [&] { return w.own ? SetupShape(w, p, c) : Status::Ok(); }));
  CORUN_CHECK(Agreed("smtarget", [&]() -> Status {
    if (p.smtarget_auto && !comm_fp_known_)
      CORUN_FAIL("smtarget:auto needs the number of CTAs NCCL launches (probe failed)");
    c->smtarget = SmTargetFor(p, info_.sms, comm_ctas_);  // the rule the interposer applies
    if (!c->smtarget) return Status::Ok();
    c->compute_sms = c->smtarget;
    // cuBLASLt plans for a target on first use: do it here, where a failure is agreed.
    CORUN_CHECK(Compute(w, *c, comp_));
    CUDACHECK(cudaStreamSynchronize(comp_));
    return Status::Ok();
  }));
  CORUN_CHECK(SetupComm(w, p, c));
  if (p.greenctx > 0) CORUN_CHECK(Agreed("greenctx", [&] { return SetupGreen(p, c); }));
  return Status::Ok();
}

Status Rank::Compute(const Workload& w, const PolicyCtx& c, cudaStream_t s, BlockStamp* stamps) {
  for (int r = 0; r < o_.gemms_per_step; ++r) {
    if (w.own)
      CORUN_CHECK(TiledGemm::Launch(w.tile, a_, b_, c_, w.g[0], w.g[1], w.g[2], c.pad, s,
                                    stamps ? stamps + r * TiledGemm::Blocks(w.g[0], w.g[1]) : nullptr));
    else
      CORUN_CHECK(lts_[w.g]->Run(a_, b_, c_, c.smtarget, s));
  }
  return Status::Ok();
}

Status Rank::Communicate(const Workload& w, const PolicyCtx& c, cudaStream_t s) {
  switch (c.backend) {
    case CommBackend::kNccl: return c.comm->Run(w.coll, send_, recv_, cshape_.count, dtype_, s);
    case CommBackend::kCe: return c.ce->Run(w.coll, send_, recv_, cshape_.count, dtype_, s);
    case CommBackend::kNcclZero: return c.zero->Run(w.coll, cshape_.count, dtype_, s);
  }
  CORUN_FAIL("unknown communication backend");
}

}  // namespace corun
