#include "corun/tune.h"

#include <algorithm>
#include <set>

namespace corun {
namespace {

Policy P(const std::string& s) {
  Policy p;
  ParsePolicy(s, &p);
  return p;
}

int RoundUp(int v, int g) { return g > 0 ? (v + g - 1) / g * g : v; }

// SM target the model suggests: smtarget:auto's rule, at least one granule (the step of the
// search around it).
int SmGuess(const SearchSpace& s) {
  return std::max(s.greenctx_granularity, AutoSmTarget(s.num_sms, CommCtasOrFallback(s.nccl_ctas)));
}

int GreenGuess(const SearchSpace& s) { return RoundUp(CommCtasOrFallback(s.nccl_ctas), s.greenctx_granularity); }

int CtaCapGuess(const SearchSpace& s) { return std::max(1, CommCtasOrFallback(s.nccl_ctas) / 2); }

void Add(std::vector<Policy>* out, const Policy& p) {
  if (std::find(out->begin(), out->end(), p) == out->end()) out->push_back(p);
}

Policy WithPriority(Policy p, bool on) {
  p.comm_priority = on;
  return p;
}

int MaxCap(const SearchSpace& s) { return s.app ? 6 : std::max(1, s.natural_blocks - 1); }

}  // namespace

// "ce" (copy-engine collectives) is not searched until a GPU run has validated it in the bench.
std::vector<Policy> FirstGuesses(const SearchSpace& s) {
  std::vector<Policy> out;
  Add(&out, P("overlap"));
  Add(&out, P("priority"));
  if (s.app) {
    Add(&out, P("shape:4+priority"));
    Add(&out, P("smtarget:auto+priority"));
  } else if (s.own_gemm) {
    // The cap that leaves room for one communication CTA; where none does (NCCL's CTAs need a
    // nearly empty SM), two below the natural residency, which keeps most of the throughput.
    const int k = s.auto_cap > 0 ? s.auto_cap : std::max(1, s.natural_blocks - 2);
    if (k < s.natural_blocks) Add(&out, P("shape:" + std::to_string(k) + "+priority"));
  } else {
    Add(&out, P("smtarget:" + std::to_string(SmGuess(s))));
    Add(&out, P("greenctx:" + std::to_string(GreenGuess(s))));
  }
  return out;
}

std::vector<Policy> Neighbours(const SearchSpace& s, const Policy& p) {
  std::vector<Policy> out;
  if (p.sequential || p.maxconn1) return out;
  Add(&out, WithPriority(p, !p.comm_priority));
  const int g = std::max(1, s.greenctx_granularity);
  if (s.app || s.own_gemm) {
    if (p.shape == ShapeMode::kCap) {
      for (int d : {-1, +1}) {
        const int k = p.shape_cap + d;
        if (k >= 1 && k <= MaxCap(s)) {
          Policy q = p;
          q.shape_cap = k;
          Add(&out, q);
        }
      }
      Policy none = p;
      none.shape = ShapeMode::kNone;
      Add(&out, none);
    } else if (p.shape == ShapeMode::kNone && p.greenctx == 0 && p.ncclctas == 0 && p.smtarget == 0 &&
               !p.smtarget_auto) {
      const int k = s.auto_cap > 0 ? s.auto_cap : std::max(1, (s.app ? 6 : s.natural_blocks) - 2);
      Policy q = p;
      q.shape = ShapeMode::kCap;
      q.shape_cap = k;
      if (k <= MaxCap(s)) Add(&out, q);
    }
  }
  // SM targets and green splits step by one and two granules: wave quantisation makes the time
  // jump between neighbouring SM counts, and a single step would stop at the first bump.
  if (!s.app && !s.own_gemm) {
    if (p.smtarget > 0) {
      for (int d : {-2 * g, -g, +g, +2 * g}) {
        const int n = p.smtarget + d;
        if (n >= g && n <= s.num_sms) {
          Policy q = p;
          q.smtarget = n;
          Add(&out, q);
        }
      }
    } else if (p.greenctx == 0 && p.ncclctas == 0) {
      Policy q = p;
      q.smtarget = SmGuess(s);
      Add(&out, q);
    }
  }
  if (!s.app) {
    if (p.greenctx > 0) {
      for (int d : {-2 * g, -g, +g, +2 * g}) {
        const int n = p.greenctx + d;
        if (n >= g && n < s.num_sms) {
          Policy q = p;
          q.greenctx = n;
          Add(&out, q);
        }
      }
    } else if (p.shape == ShapeMode::kNone && p.smtarget == 0) {
      Policy q = p;
      q.greenctx = GreenGuess(s);
      Add(&out, q);
    }
  }
  if (p.ncclctas == 0 && p.shape == ShapeMode::kNone && p.greenctx == 0 && p.smtarget == 0 && !p.smtarget_auto) {
    Policy q = p;
    q.ncclctas = CtaCapGuess(s);
    Add(&out, q);
  }
  if (s.app && p.shape == ShapeMode::kNone && !p.smtarget_auto && p.ncclctas == 0) {
    Policy q = p;
    q.smtarget_auto = true;
    Add(&out, q);
  }
  // Stay inside the space an exhaustive sweep covers, so the two can be compared.
  const std::vector<Policy> full = FullSpace(s);
  std::vector<Policy> kept;
  for (const Policy& q : out)
    if (std::find(full.begin(), full.end(), q) != full.end()) kept.push_back(q);
  return kept;
}

std::vector<Policy> FullSpace(const SearchSpace& s) {
  std::vector<Policy> out;
  for (bool prio : {false, true}) {
    Add(&out, WithPriority(P("overlap"), prio));
    if (s.app || s.own_gemm)
      for (int k = 1; k <= MaxCap(s); ++k) Add(&out, WithPriority(P("shape:" + std::to_string(k)), prio));
    const int g = std::max(1, s.greenctx_granularity);
    if (!s.app && !s.own_gemm)
      for (int d = -2; d <= 2; ++d) {
        const int n = SmGuess(s) + d * g;
        if (n >= g && n <= s.num_sms) Add(&out, WithPriority(P("smtarget:" + std::to_string(n)), prio));
      }
    if (s.app) Add(&out, WithPriority(P("smtarget:auto"), prio));
    if (!s.app)
      for (int d = -2; d <= 2; ++d) {
        const int n = GreenGuess(s) + d * g;
        if (n >= g && n < s.num_sms) Add(&out, WithPriority(P("greenctx:" + std::to_string(n)), prio));
      }
    Add(&out, WithPriority(P("ncclctas:" + std::to_string(CtaCapGuess(s))), prio));
  }
  return out;
}

Tuner::Tuner(SearchSpace space, TuneOptions opt)
    : space_(space), opt_(opt), space_size_(static_cast<int>(FullSpace(space).size())) {}

void Tuner::Account(int reps, const RunCost& cost) {
  ++runs_;
  wall_s_ += cost.wall_s;
  if (cost.wall_s <= 0 || reps <= 0) return;
  ++costed_;
  fixed_sum_ += std::max(0.0, cost.wall_s - cost.timed_s);
  per_rep_sum_ += cost.timed_s / reps;
}

double Tuner::Predict(int reps) const {
  if (costed_ == 0) return 0;
  return (fixed_sum_ + per_rep_sum_ * reps) / costed_;
}

double Tuner::SweepWallEstimate() const { return space_size_ * Predict(opt_.sweep_reps); }

bool Tuner::Separated(const Measured& a, const Measured& b) const {
  // Medians further apart than half the two spreads together; the spread of a candidate seen in
  // one run only is at least the drift between runs.
  auto spread = [&](const Measured& m) {
    const double range = m.summary.max - m.summary.min;
    return m.runs >= 2 ? range : std::max(range, opt_.run_drift * m.summary.median);
  };
  return std::abs(a.summary.median - b.summary.median) > 0.25 * (spread(a) + spread(b));
}

void Tuner::Report(const Policy& p, const std::vector<double>& samples, const RunCost& cost) {
  Account(static_cast<int>(samples.size()), cost);
  Measured& m = seen_[p.Name()];
  m.policy = p;
  m.samples.insert(m.samples.end(), samples.begin(), samples.end());
  ++m.runs;
  m.summary = Summarize(m.samples);
  trials_ += static_cast<int>(samples.size());
}

void Tuner::Reject(const Policy& p, const RunCost& cost) {
  ++runs_;
  wall_s_ += cost.wall_s;  // a failed candidate's time is spent too, but says nothing of a run's cost
  rejected_.insert(p.Name());
}

const Measured* Tuner::Best() const {
  const Measured* best = nullptr;
  for (const auto& [name, m] : seen_)
    if (!m.samples.empty() && (!best || m.summary.median < best->summary.median)) best = &m;
  return best;
}

const Measured* Tuner::Baseline() const {
  auto it = seen_.find("overlap");
  return it == seen_.end() ? nullptr : &it->second;
}

std::vector<Measured> Tuner::All() const {
  std::vector<Measured> v;
  for (const auto& [name, m] : seen_) v.push_back(m);
  std::sort(v.begin(), v.end(), [](const Measured& a, const Measured& b) { return a.summary.median < b.summary.median; });
  return v;
}

std::vector<Request> Tuner::Next() {
  std::vector<Request> req;
  auto fresh = [&](const Policy& p) { return !seen_.count(p.Name()) && !rejected_.count(p.Name()); };
  auto fit = [&](std::vector<Request>* r) {
    // Keep within the budgets: drop what does not fit. The wall-clock budget applies once a
    // run's cost is known (the first guesses always run).
    const bool by_wall = opt_.budget_fraction > 0 && costed_ > 0;
    double wall_left = by_wall ? BudgetS() - wall_s_ : 0;
    int left = opt_.budget_trials - trials_;
    std::vector<Request> kept;
    for (const Request& x : *r) {
      if (opt_.budget_trials > 0 && x.reps > left) {
        why_ = "trial budget reached";
        continue;
      }
      if (by_wall && Predict(x.reps) > wall_left) {
        why_ = "wall-clock budget reached";
        continue;
      }
      kept.push_back(x);
      left -= x.reps;
      wall_left -= Predict(x.reps);
    }
    *r = kept;
  };
  if (++rounds_ > opt_.max_rounds) {
    why_ = "round limit reached";
    return req;
  }
  if (phase_ == "seed") {
    phase_ = "climb";
    for (const Policy& p : FirstGuesses(space_))
      if (fresh(p)) req.push_back({p, opt_.first_reps});
    fit(&req);
    if (!req.empty()) return req;
  }
  if (phase_ == "climb") {
    // Local search from the three best candidates (a beam: the runners-up are often another
    // kind of knob whose neighbourhood holds the optimum).
    const std::vector<Measured> all = All();
    for (size_t i = 0; i < all.size() && i < 3; ++i) {
      const std::string name = all[i].policy.Name();
      if (explored_.count(name)) continue;
      explored_.insert(name);
      for (const Policy& p : Neighbours(space_, all[i].policy))
        if (fresh(p) && std::none_of(req.begin(), req.end(), [&](const Request& r) { return r.policy == p; }))
          req.push_back({p, opt_.first_reps});
    }
    fit(&req);
    if (!req.empty()) return req;
    if (!why_.empty()) return req;
    phase_ = "refine";
  }
  // Refine: add repetitions to the best and the next two (and the baseline, which the result
  // must not lose to) until they separate or reach the cap.
  const std::vector<Measured> all = All();
  if (all.size() < 2) {
    why_ = "nothing to compare";
    return req;
  }
  const Measured& a = all[0];
  std::vector<const Measured*> rivals = {&all[1]};
  if (all.size() > 2) rivals.push_back(&all[2]);
  if (const Measured* base = Baseline();
      base && std::none_of(rivals.begin(), rivals.end(), [&](const Measured* r) { return r == base; }) &&
      base->policy.Name() != a.policy.Name())
    rivals.push_back(base);
  std::set<std::string> want;
  for (const Measured* r : rivals)
    if (!Separated(a, *r)) {
      if (static_cast<int>(a.samples.size()) < opt_.max_reps) want.insert(a.policy.Name());
      if (static_cast<int>(r->samples.size()) < opt_.max_reps) want.insert(r->policy.Name());
    }
  for (const std::string& n : want) req.push_back({seen_.at(n).policy, opt_.more_reps});
  fit(&req);
  if (req.empty() && why_.empty()) why_ = want.empty() ? "best candidate separated from its rivals" : "repetition cap reached";
  // A refinement can change the leader: climb again from a new one.
  if (!req.empty()) phase_ = "climb";
  return req;
}

const Measured* RunTunerWithCost(Tuner* t, const CostedMeasureFn& measure) {
  for (std::vector<Request> batch = t->Next(); !batch.empty(); batch = t->Next())
    for (const Request& r : batch) {
      std::vector<double> s;
      RunCost cost;
      if (measure(r.policy, r.reps, &s, &cost))
        t->Report(r.policy, s, cost);
      else
        t->Reject(r.policy, cost);
    }
  return t->Best();
}

const Measured* RunTuner(Tuner* t, const MeasureFn& measure) {
  for (std::vector<Request> batch = t->Next(); !batch.empty(); batch = t->Next())
    for (const Request& r : batch) {
      std::vector<double> s;
      if (measure(r.policy, r.reps, &s))
        t->Report(r.policy, s);
      else
        t->Reject(r.policy);
    }
  return t->Best();
}

}  // namespace corun
