// corun tune on one workload: the search (core/tune.cpp) fed with measured policies and, with
// --sweep, the exhaustive sweep for comparison. Every rank runs its own Tuner: the timings it is
// fed are the rank maxima (identical everywhere) and every status is agreed, so all ranks propose
// the same candidates in the same order without further coordination. A candidate that needs
// another process environment (a communication-kernel geometry, ce without enough hardware
// queues) is measured in a child process of its own (bench/child.h), its whole wall time charged.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>

#include "../runtime/watchdog.h"
#include "child.h"
#include "corun/strings.h"
#include "rank.h"

namespace corun {
namespace {

// Children's rows, shared by the rank threads of this process: rank 0 starts each child, the
// others wait on the host (a collective would keep their GPUs busy under the child's
// measurement) and take the same row, so every rank's tuner is told the same. The n-th child a
// rank asks for is the n-th rank 0 starts: every rank proposes the same candidates in order.
struct ChildRows {
  std::mutex mu;
  std::condition_variable cv;
  std::map<int, long> asked;       // per rank: children asked for so far
  std::map<long, RunRecord> done;  // by sequence number
};
ChildRows& Children() {
  static ChildRows c;
  return c;
}

// One candidate in a child: its row, with the child's whole wall time (start-up, NCCL and cuBLAS
// set-up, the probe, every phase) as the run's wall time.
RunRecord MeasureInChild(const BenchOptions& o, const Workload& w, RunRecord rec, const Policy& p, int reps,
                         int ngpus) {
  const ChildSpec c = TuneChild(o, w, p, reps, ngpus);
  BenchOptions none = o;
  none.argv.clear();
  std::vector<RunRecord> rows;
  std::string why;
  const auto t0 = std::chrono::steady_clock::now();
  const bool ok = RunChild(none, c, &rows, &why);  // kicks the watchdog while the child runs in time
  Watchdog::Get().Kick();
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto it = std::find_if(rows.begin(), rows.end(), [&](const RunRecord& r) { return r.policy == p.Name(); });
  const std::string env = Join(c.env, " ");
  if (!ok || it == rows.end()) {
    rec.status = "error";
    rec.note = "error: policy " + p.Name() + ": own process with " + env + ": " +
               (ok ? "the child ran no row for this policy" : why);
    std::fprintf(stderr, "%s: %s\n", CommandName(o), rec.note.c_str());
  } else {
    const std::string policy = rec.policy;
    rec = *it;
    rec.policy = policy;
    if (!why.empty() && rec.status == "ok") rec.status = "error";  // exited non-zero with an ok row
    rec.note = "own process with " + env + (rec.note.empty() ? "" : "; " + rec.note) + (why.empty() ? "" : "; " + why);
  }
  rec.wall_s = std::round(wall * 1e6) / 1e6;
  return rec;
}

void PrintTuneSummary(const TuneSummary& ts) {
  std::printf("# tuned: %s  %.3f ms (overlap %.3f ms); %.1f s wall of a %.1f s budget (sweep estimated %.1f s); "
              "%d timed reps (sweep: %d); %s\n",
              ts.policy.c_str(), ts.t_ms, ts.overlap_ms, ts.wall_s, ts.budget_s, ts.sweep_wall_s_estimate, ts.trials,
              ts.sweep_trials, ts.stop.c_str());
  if (ts.has_sweep && ts.tuned_in_sweep_ms > 0)
    std::printf("# sweep: best %s %.3f ms; tuned policy in the sweep %.3f ms (%+.1f%%); overlap %.3f ms; %.1f s wall\n",
                ts.sweep_best_policy.c_str(), ts.sweep_best_ms, ts.tuned_in_sweep_ms,
                100 * RelativeChange(ts.tuned_in_sweep_ms, ts.sweep_best_ms), ts.overlap_in_sweep_ms, ts.sweep_wall_s);
  else if (ts.has_sweep)
    std::printf("# sweep: best %s %.3f ms; the tuned policy did not run in the sweep; overlap %.3f ms; %.1f s wall\n",
                ts.sweep_best_policy.c_str(), ts.sweep_best_ms, ts.overlap_in_sweep_ms, ts.sweep_wall_s);
}

}  // namespace

// One measured candidate of the search or the sweep, shown as a row tagged "tune" or "sweep".
Status Rank::TuneRun(const Workload& w, const RunRecord& proto, const Policy& p, int reps, const std::string& tag,
                     RowSink* rows, RunRecord* out) {
  RunRecord rec = proto;
  rec.policy = p.Name();
  if (rank_ == 0) {
    std::lock_guard<std::mutex> l(sh_.mu);
    ++sh_.total_runs;  // the search decides as it goes: count as we go
  }
  Progress(WorkloadKey(rec) + " : " + tag + " " + rec.policy + " x" + std::to_string(reps));
  if (!sh_.pm.multi_process() && PolicyNotApplicable(p, plan_).empty() && RunsInChild(p)) {
    // Every rank of this process takes this branch alike. Under mpirun/torchrun RunPolicy skips
    // such a candidate with the reason (no child can be started there) and the search rejects it.
    ChildRows& c = Children();
    std::unique_lock<std::mutex> l(c.mu);
    const long seq = ++c.asked[rank_];
    if (rank_ == 0) {
      l.unlock();
      RunRecord r = MeasureInChild(o_, w, rec, p, reps, sh_.nranks);
      if (r.status == "error") ++sh_.error_rows;  // as an in-process set-up error: the exit status says so
      l.lock();
      c.done[seq] = r;
      c.cv.notify_all();
    }
    // Rank 0 kicks the watchdog while its child runs in time and kills it past its deadline; the
    // others wait as long, plus a grace for rank 0 to reap and report, and no more.
    const int deadline = ChildDeadlineS(o_.watchdog_s, 1);
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(deadline + 30);
    while (!c.done.count(seq)) {
      if (deadline > 0 && c.cv.wait_until(l, until) == std::cv_status::timeout && !c.done.count(seq))
        CORUN_FAIL("rank 0 did not finish candidate " + p.Name() + " (own process) within " +
                   std::to_string(deadline + 30) + " s");
      if (deadline == 0) c.cv.wait(l);
    }
    rec = c.done.at(seq);
  } else {
    CORUN_CHECK(RunPolicy(w, p, &rec, reps));
  }
  // A child's failure keeps "error: " first.
  if (rec.note.rfind("error: ", 0) == 0)
    rec.note += "; " + tag;
  else
    rec.note = tag + (rec.note.empty() ? "" : "; " + rec.note);
  rows->Emit(rec);
  *out = rec;
  return Status::Ok();
}

// The exhaustive sweep, in the same process: every candidate with -n repetitions (and the tuned
// policy, should the space not hold it).
Status Rank::TuneSweep(const Workload& w, const RunRecord& proto, std::vector<Policy> sweep, RowSink* rows,
                       TuneSummary* ts) {
  Policy tuned;
  ParsePolicy(ts->policy, &tuned);
  if (std::find(sweep.begin(), sweep.end(), tuned) == sweep.end()) sweep.push_back(tuned);
  ts->has_sweep = true;
  for (const Policy& p : sweep) {
    RunRecord rec;
    CORUN_CHECK(TuneRun(w, proto, p, o_.reps, "sweep", rows, &rec));
    ts->sweep_wall_s += rec.wall_s;
    if (rec.status != "ok") continue;
    if (ts->sweep_best_policy.empty() || rec.t_total.median < ts->sweep_best_ms) {
      ts->sweep_best_ms = rec.t_total.median;
      ts->sweep_best_policy = rec.policy;
    }
    if (rec.policy == ts->policy) ts->tuned_in_sweep_ms = rec.t_total.median;
    if (rec.policy == "overlap") ts->overlap_in_sweep_ms = rec.t_total.median;
  }
  return Status::Ok();
}

Status Rank::TuneWorkload(const Workload& w, const RunRecord& proto, RowSink* rows) {
  SearchSpace sp;
  sp.own_gemm = w.own;
  sp.natural_blocks = plan_.natural_blocks;
  if (w.own && comm_fp_known_)
    if (auto k = AutoCap(info_.limits, comp_fp_, comm_fp_)) sp.auto_cap = *k;
  sp.num_sms = info_.sms;
  sp.nccl_ctas = comm_fp_known_ ? comm_ctas_ : 0;
  // The communication side. Geometries are always in the space: under mpirun/torchrun each is
  // rejected with the reason in its row. ce where it serves the collective and this run can use
  // it; the co-residence model gets the compute kernel's footprint (cuBLASLt's persistent GEMM
  // on sm_90, unknown elsewhere) and NCCL's probed CTA.
  sp.geometry = true;
  Policy ce;
  ce.ce = true;
  sp.ce = w.coll != Collective::kAllToAll && PolicyNotApplicable(ce, plan_).empty();
  sp.ce_in_process = sh_.pm.multi_process() || !NeedsQueuesChild(ce);
  sp.limits = info_.limits;
  if (w.own)
    sp.compute = comp_fp_;
  else if (info_.limits.sm_major == 9)
    sp.compute = kCublasPersistentGemmSm90;
  if (comm_fp_known_) sp.comm = comm_fp_;
  const std::vector<Policy> full = FullSpace(sp);
  TuneOptions topt;
  topt.budget_fraction = o_.tune_budget;  // of the sweep's wall time, every phase counted
  topt.sweep_reps = o_.reps;
  Tuner tuner(sp, topt);
  for (std::vector<Request> batch = tuner.Next(); !batch.empty(); batch = tuner.Next()) {
    for (const Request& r : batch) {
      RunRecord rec;
      CORUN_CHECK(TuneRun(w, proto, r.policy, r.reps, "tune", rows, &rec));
      // Wall times are rank maxima (identical on every rank, as the timings are).
      const RunCost cost{rec.wall_s, rec.timed_wall_s};
      if (rec.status == "ok")
        tuner.Report(r.policy, rec.samples, cost);
      else
        tuner.Reject(r.policy, cost);
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
  ts.sweep_trials = static_cast<int>(full.size()) * o_.reps;
  ts.candidates = static_cast<int>(tuner.All().size());
  ts.stop = tuner.Why();
  ts.wall_s = tuner.wall_s();
  ts.budget_s = tuner.BudgetS();
  ts.sweep_wall_s_estimate = tuner.SweepWallEstimate();
  if (o_.tune_sweep) CORUN_CHECK(TuneSweep(w, proto, full, rows, &ts));
  if (rank_ == 0) {
    PrintTuneSummary(ts);
    std::lock_guard<std::mutex> l(sh_.mu);
    sh_.tunes.push_back(ts);
  }
  return Status::Ok();
}

}  // namespace corun
