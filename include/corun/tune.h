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
};

// The model's first guesses, the baselines first ("overlap" is always measured: a tuned policy
// must not lose to it).
std::vector<Policy> FirstGuesses(const SearchSpace& s);
// Policies one step away: cap ±1, priority on/off, SM target / green split ±granularity, CTA cap.
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
  // every candidate of the space at sweep_reps, each paying the mean fixed cost of a run plus
  // the mean cost of a timed repetition.
  double SweepWallEstimate() const;
  double BudgetS() const { return opt_.budget_fraction * SweepWallEstimate(); }
  int Runs() const { return runs_; }  // measurements requested and reported or rejected
  std::vector<Measured> All() const;
  std::string Why() const { return why_; }

 private:
  bool Separated(const Measured& a, const Measured& b) const;
  void Account(int reps, const RunCost& cost);
  double Predict(int reps) const;  // wall seconds a request of `reps` repetitions will take
  SearchSpace space_;
  TuneOptions opt_;
  std::map<std::string, Measured> seen_;
  std::set<std::string> rejected_;
  std::string phase_ = "seed";
  std::set<std::string> explored_;  // candidates whose neighbours were proposed
  int rounds_ = 0;
  int trials_ = 0;
  int runs_ = 0;
  int space_size_ = 0;
  double wall_s_ = 0;
  int costed_ = 0;                     // runs whose cost split is known
  double fixed_sum_ = 0, per_rep_sum_ = 0;
  std::string why_;
};

// Drives a tuner to the end with a measuring function (tests, and callers that measure one
// policy at a time). `measure` returns false when the policy cannot run.
using MeasureFn = std::function<bool(const Policy&, int reps, std::vector<double>* samples)>;
const Measured* RunTuner(Tuner* t, const MeasureFn& measure);
// The same, with the wall-clock cost of each measurement (the wall-clock budget needs it).
using CostedMeasureFn = std::function<bool(const Policy&, int reps, std::vector<double>* samples, RunCost* cost)>;
const Measured* RunTunerWithCost(Tuner* t, const CostedMeasureFn& measure);

}  // namespace corun
