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
  int budget_trials = 0;  // timed repetitions in all (0: no limit)
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

struct Request {
  Policy policy;
  int reps = 0;
};

class Tuner {
 public:
  Tuner(SearchSpace space, TuneOptions opt);
  // The next batch to measure; empty when the search is over.
  std::vector<Request> Next();
  // Results of a request (samples are appended to the candidate's).
  void Report(const Policy& p, const std::vector<double>& samples);
  // A candidate that could not run (not applicable, failed): never proposed again.
  void Reject(const Policy& p);
  const Measured* Best() const;
  const Measured* Baseline() const;  // overlap
  int trials() const { return trials_; }
  std::vector<Measured> All() const;
  std::string Why() const { return why_; }

 private:
  bool Separated(const Measured& a, const Measured& b) const;
  SearchSpace space_;
  TuneOptions opt_;
  std::map<std::string, Measured> seen_;
  std::set<std::string> rejected_;
  std::string phase_ = "seed";
  std::set<std::string> explored_;  // candidates whose neighbours were proposed
  int rounds_ = 0;
  int trials_ = 0;
  std::string why_;
};

// Drives a tuner to the end with a measuring function (tests, and callers that measure one
// policy at a time). `measure` returns false when the policy cannot run.
using MeasureFn = std::function<bool(const Policy&, int reps, std::vector<double>* samples)>;
const Measured* RunTuner(Tuner* t, const MeasureFn& measure);

}  // namespace corun
