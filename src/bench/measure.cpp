// The measurement cycle of one policy: set-up (agreed), warm-up, the sustained phase, the timed
// repetitions (compute alone, communication alone, both together, a barrier before each), the
// rank maximum per repetition, medians and spread, then verification.
#include <chrono>
#include <cmath>
#include <cstdio>

#include "../runtime/checks.h"
#include "../runtime/watchdog.h"
#include "rank.h"

namespace corun {

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

namespace {
double Since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

// The wall-clock times of a run, as the slowest rank saw them: identical on every rank, so that
// every rank's tuner spends the same budget.
Status Rank::AgreeWall(double wall_s, double timed_s, RunRecord* rec) {
  float v[2] = {static_cast<float>(wall_s), static_cast<float>(timed_s)};
  CUDACHECK(cudaMemcpyAsync(d_times_, v, sizeof(v), cudaMemcpyHostToDevice, comm_lo_));
  CORUN_CHECK(base_.MaxFloats(d_times_, 2, comm_lo_));
  CUDACHECK(cudaMemcpyAsync(v, d_times_, sizeof(v), cudaMemcpyDeviceToHost, comm_lo_));
  CUDACHECK(cudaStreamSynchronize(comm_lo_));
  // Microseconds are plenty (and read better in JSON than a float widened to double).
  rec->wall_s = std::round(static_cast<double>(v[0]) * 1e6) / 1e6;
  rec->timed_wall_s = std::round(static_cast<double>(v[1]) * 1e6) / 1e6;
  return Status::Ok();
}

Status Rank::RunPolicy(const Workload& w, const Policy& p, RunRecord* rec, int reps) {
  const std::string na = PolicyNotApplicable(p, plan_);
  if (!na.empty()) {
    rec->status = "skipped";
    rec->note = na;
    return Status::Ok();
  }
  if (p.has_env_geometry() && !CommGeometryEnvHolds(p, ProcessEnv)) {
    // Run here, it would measure NCCL's geometry of this process, not the one asked for.
    rec->status = "skipped";
    rec->note = GeometryNeedsEnv(p);
    return Status::Ok();
  }
  const auto t0 = std::chrono::steady_clock::now();
  PolicyCtx ctx;
  Status setup = SetupPolicy(w, p, &ctx);
  if (!setup.ok()) {
    // Every rank got here together (each step of the set-up is agreed); the failing rank says why.
    rec->status = "error";
    rec->note = setup.ToString(true);
    ++sh_.error_rows;
    std::fprintf(stderr, "%s: rank %d: policy %s: %s\n", CommandName(o_), rank_, p.Name().c_str(),
                 setup.ToString(true).c_str());
    return AgreeWall(Since(t0), 0, rec);
  }
  if (!ctx.skip.empty()) {  // agreed on every rank (e.g. the copy-engine path is unusable here)
    rec->status = "skipped";
    rec->note = ctx.skip;
    return Status::Ok();
  }
  rec->pad_bytes = ctx.pad;
  rec->blocks_per_sm = w.own ? ctx.blocks : 0;
  rec->comm_ctas = ctx.comm_ctas;
  rec->compute_sms = ctx.compute_sms;
  rec->note = ctx.note;
  double timed_s = 0;
  CORUN_CHECK(Measure(w, p, ctx, rec, reps, &timed_s));
  if (o_.smid_probe) CORUN_CHECK(SmidProbe(w, p, ctx, rec));  // untimed, after the repetitions
  std::string what;
  CORUN_CHECK(Verify(w, ctx, p, &rec->wrong, &what));
  if (rec->wrong) {
    rec->status = "wrong";
    rec->note += (rec->note.empty() ? "" : "; ") + what;
  }
  return AgreeWall(Since(t0), timed_s, rec);
}

Status Rank::Measure(const Workload& w, const Policy& p, const PolicyCtx& ctx, RunRecord* rec, int reps,
                     double* timed_s) {
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
    CORUN_CHECK(Barrier(Since(t0) < o_.sustain_s ? 1 : 0, &more));
  }
  const int R = reps;
  std::vector<float> v(5 * R);
  sampler_->Start();
  const auto timed0 = std::chrono::steady_clock::now();
  for (int r = 0; r < R; ++r) CORUN_CHECK(cycle(&v[0 * R + r], &v[1 * R + r], &v[2 * R + r], &v[3 * R + r], &v[4 * R + r]));
  *timed_s = Since(timed0);
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
  return Status::Ok();
}

}  // namespace corun
