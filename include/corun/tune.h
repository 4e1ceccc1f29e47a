// corun tune's search, host-only: a first guess from the occupancy model, then a local search
// over neighbouring policies, with repetitions added only where two candidates' measurements
// still overlap. It asks for measurements and is told the results; who measures (the benchmark
// in a child process, an application run, a synthetic model in tests) is not its business.
#pragma once
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "corun/coresidence.h"
#include "corun/occupancy.h"
#include "corun/policy.h"
#include "corun/stats.h"

namespace corun {

struct SearchSpace {
  bool own_gemm = true;      // shape applies (own kernel) or smtarget (cuBLAS)
  bool app = false;          // an unmodified application (corun tune -- CMD): launcher policies only
  int natural_blocks = 0;    // resident compute blocks/SM without a pad
  int auto_cap = 0;          // the model's cap leaving room for a communication CTA (0: none)
  int num_sms = 0;
  int nccl_ctas = 0;         // CTAs NCCL launches (0: unknown)
  int greenctx_granularity = 8;
  // The communication side. geometry: NCCL kernel geometries (CommGeometries()) are searched;
  // ce: the copy-engine collectives serve this collective and the run can use them.
  bool geometry = false;
  bool ce = false;
  bool ce_in_process = false;  // ce runs in the tuner's own process (else, like geometry, in a child)
  // The co-residence model's inputs (coresidence.h), for deciding which compute-side policies a
  // geometry is combined with. compute.threads == 0 or limits.num_sms == 0: unknown, and a
  // geometry is then combined with priority alone. comm.threads == 0: kNcclCtaSm90.
  DeviceLimits limits{};
  KernelFootprint compute{};
  KernelFootprint comm{};
};

// The communication-kernel geometries the search tries beside NCCL's default (the same three as
// the bench's "geom" set; why these in tune.cpp).
const std::vector<Policy>& CommGeometries();
// The compute blocks that fit on an SM beside one CTA of the geometry `g` placed there first by
// priority (CoResidenceByOrder; a geometry keeps NCCL's registers and shared memory and changes
// the threads). -1 when the model's inputs are unknown.
int BlocksBesideGeometry(const SearchSpace& s, const Policy& g);
// The compute-side policies a geometry is combined with: priority (a geometry can change the
// communication's own speed) and, where the model says compute blocks co-reside with its CTA,
// each cap shape:K+priority whose K blocks all fit beside it. Never a policy without priority:
// co-residence by dispatch order needs the CTA on the SM first.
std::vector<Policy> GeometryPartners(const SearchSpace& s, const Policy& g);
// Whether a candidate is measured in a process of its own (the bench's child; its fixed cost is
// then a process start-up, estimated separately). Never in an application search.
bool NeedsOwnProcess(const SearchSpace& s, const Policy& p);

// The footprint of cuBLAS's persistent GEMM kernels on sm_90 (measured under PyTorch on H200:
// one 384-thread, 168-register block of about 200 KB shared memory per SM). The bench's cuBLASLt
// workloads are modelled with it where the compute footprint is not probed.
constexpr KernelFootprint kCublasPersistentGemmSm90{384, 168, 0, 200 * 1024};

// The model's first guesses, the baselines first ("overlap" is always measured: a tuned policy
// must not lose to it).
std::vector<Policy> FirstGuesses(const SearchSpace& s);
// Policies one step away: cap ±1, priority on/off, SM target / green split ±granularity, CTA cap,
// a geometry on, off or swapped, ce.
std::vector<Policy> Neighbours(const SearchSpace& s, const Policy& p);
// Every policy the search can reach (what an exhaustive sweep would measure).
std::vector<Policy> FullSpace(const SearchSpace& s);

struct TuneOptions {
  // The budget, in wall-clock seconds of every phase a candidate pays (set-up, warm-up, the
  // sustained phase, timed repetitions, verification): this fraction of the exhaustive sweep's
  // wall time, which is estimated from the search's own runs (each candidate at `sweep_reps`).
  // 0: no wall-clock limit. The first guesses always run (they give the estimate its data).
  double budget_fraction = 0;
  int sweep_reps = 10;
  int budget_trials = 0;  // a limit on timed repetitions as well (0: none)
  int first_reps = 2;     // repetitions of a new candidate (cheap screening)
  int more_reps = 3;      // added per refinement
  int max_reps = 15;      // per candidate
  int max_rounds = 20;
  // Step times of one policy drift between separate runs (measured on H200: up to ~10%, more
  // than the spread inside one run), so a candidate measured in a single run is given at least
  // this relative spread: it is not declared separated from a close rival until it runs again.
  double run_drift = 0.10;
};

struct Measured {
  Policy policy;
  std::vector<double> samples;  // step times, ms
  int runs = 0;                 // separate measurements (requests) the samples came from
  Summary summary;
};

// What one measurement cost in wall-clock seconds: all its phases, and the timed repetitions'
// part of it (the rest does not grow with the repetitions).
struct RunCost {
  double wall_s = 0;
  double timed_s = 0;
};

struct Request {
  Policy policy;
  int reps = 0;
};

class Tuner {
 public:
  Tuner(SearchSpace space, TuneOptions opt);
  // The next batch to measure; empty when the search is over.
  std::vector<Request> Next();
  // Results of a request (samples are appended to the candidate's) and what it cost.
  void Report(const Policy& p, const std::vector<double>& samples, const RunCost& cost = {});
  // A candidate that could not run (not applicable, failed): never proposed again.
  void Reject(const Policy& p, const RunCost& cost = {});
  const Measured* Best() const;
  const Measured* Baseline() const;  // overlap
  int trials() const { return trials_; }
  double wall_s() const { return wall_s_; }  // spent, all phases, rejected candidates included
  // The exhaustive sweep's wall time estimated from the runs so far (0 before the first cost):
  // every candidate of the space at sweep_reps (but those needing a process of their own that
  // were rejected: the sweep skips them too),
  // each paying its cost class's mean fixed cost of a run plus mean cost of a timed repetition.
  double SweepWallEstimate() const;
  double BudgetS() const { return opt_.budget_fraction * SweepWallEstimate(); }
  int Runs() const { return runs_; }  // measurements requested and reported or rejected
  std::vector<Measured> All() const;
  std::string Why() const { return why_; }

 private:
  bool Separated(const Measured& a, const Measured& b) const;
  void Account(const Policy& p, int reps, const RunCost& cost);
  // Wall seconds a request of `reps` repetitions of `p` will take: the mean of the runs of its
  // cost class (this process, or a process of its own), the other class's until it has one.
  double Predict(const Policy& p, int reps) const;
  SearchSpace space_;
  TuneOptions opt_;
  std::map<std::string, Measured> seen_;
  std::set<std::string> rejected_;
  std::string phase_ = "seed";
  std::set<std::string> explored_;  // candidates whose neighbours were proposed
  int rounds_ = 0;
  int trials_ = 0;
  int runs_ = 0;
  std::vector<Policy> full_;          // FullSpace(space_)
  double wall_s_ = 0;
  // Per cost class (0: this process, 1: a process of its own): runs whose cost split is known.
  int costed_[2] = {0, 0};
  double fixed_sum_[2] = {0, 0}, per_rep_sum_[2] = {0, 0};
  std::string why_;
};

// Drives a tuner to the end with a measuring function (tests, and callers that measure one
// policy at a time). `measure` returns false when the policy cannot run.
using MeasureFn = std::function<bool(const Policy&, int reps, std::vector<double>* samples)>;
const Measured* RunTuner(Tuner* t, const MeasureFn& measure);
// The same, with the wall-clock cost of each measurement (the wall-clock budget needs it).
using CostedMeasureFn = std::function<bool(const Policy&, int reps, std::vector<double>* samples, RunCost* cost)>;
const Measured* RunTunerWithCost(Tuner* t, const CostedMeasureFn& measure);

// corun tune -- CMD, a run under a ce policy: the interposer's report files of its processes
// (JSON texts). The reason to reject the run when every report that counts copy-engine calls
// says none was served (the interposer handed every call to NCCL, e.g. communicators of more
// than CORUN_CE_MAX_RANKS ranks): the run measured stock NCCL. "" when one was served or no
// report tells (none written, unreadable, no ce counts).
std::string CeServedNothing(const std::vector<std::string>& reports);

}  // namespace corun
