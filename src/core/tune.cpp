#include "corun/tune.h"

#include <algorithm>
#include <set>

#include <nlohmann/json.hpp>

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

// The compute side of `c` with the communication kernel's geometry of `g`.
Policy WithGeometry(Policy c, const Policy& g) {
  c.nthreads = g.nthreads;
  c.proto = g.proto;
  c.ctas = g.ctas;
  return c;
}

}  // namespace

// Measured on 2x H200 (own GEMM 8192^3 + 896 MiB allreduce; README, issue #10's table): NCCL's
// default 544-thread CTA leaves no room for a compute block, 288-thread CTAs (NCCL_NTHREADS=256)
// do, and with priority these three beat the default (proto:simple 7.177 ms, ctas:32 7.219,
// default 7.440). NCCL_NTHREADS=128 cut the bus bandwidth by a third (216 vs 322 GB/s) and lost;
// a CTA count alone keeps the 544-thread CTA and so no room. Listed best first: the first one the
// model lets co-reside is the first guess.
const std::vector<Policy>& CommGeometries() {
  static const std::vector<Policy> g = [] {
    std::vector<Policy> v;
    for (const char* s : {"nthreads:256+proto:simple", "nthreads:256+ctas:32", "nthreads:256"}) v.push_back(P(s));
    return v;
  }();
  return g;
}

int BlocksBesideGeometry(const SearchSpace& s, const Policy& g) {
  if (s.compute.threads <= 0 || s.limits.max_threads_per_sm <= 0) return -1;
  KernelFootprint comm = s.comm.threads > 0 ? s.comm : kNcclCtaSm90;
  // NCCL keeps the CTA's registers and shared memory whatever its width; its kernels carry one
  // warp beyond NCCL_NTHREADS (256 -> 288, measured).
  if (g.nthreads > 0) comm.threads = g.nthreads + 32;
  return CoResidenceByOrder(s.limits, s.compute, comm).comm_first.blocks;
}

std::vector<Policy> GeometryPartners(const SearchSpace& s, const Policy& g) {
  std::vector<Policy> out = {P("priority")};
  if (!s.app && s.own_gemm) {
    const int beside = std::min(BlocksBesideGeometry(s, g), MaxCap(s));
    for (int k = 1; k <= beside; ++k) out.push_back(P("shape:" + std::to_string(k) + "+priority"));
  }
  return out;
}

bool NeedsOwnProcess(const SearchSpace& s, const Policy& p) {
  return !s.app && (p.has_env_geometry() || (p.ce && !s.ce_in_process));
}

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
  // The communication side: the first geometry the model lets compute blocks share an SM with,
  // with priority; ce where it serves the collective.
  if (s.geometry && !s.app)
    for (const Policy& g : CommGeometries())
      if (BlocksBesideGeometry(s, g) > 0) {
        Add(&out, WithGeometry(P("priority"), g));
        break;
      }
  if (s.ce) Add(&out, P("ce"));
  // The estimate of the sweep needs the cost of a run in a process of its own: where the space
  // has such candidates, one of them is a first guess.
  if (std::none_of(out.begin(), out.end(), [&](const Policy& p) { return NeedsOwnProcess(s, p); }))
    for (const Policy& p : FullSpace(s))
      if (NeedsOwnProcess(s, p)) {
        Add(&out, p);
        break;
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
  // The communication side: a geometry off, on or swapped for another (FullSpace keeps the
  // combinations the model allows); ce from an NCCL policy and back.
  if (s.geometry && !p.ce) {
    if (p.has_env_geometry()) Add(&out, WithGeometry(p, Policy{}));
    for (const Policy& g : CommGeometries()) Add(&out, WithGeometry(p, g));
    // With a geometry and no cap: the largest cap whose blocks all fit beside its CTA.
    const int k = std::min(BlocksBesideGeometry(s, p), MaxCap(s));
    if (p.has_env_geometry() && p.shape == ShapeMode::kNone && k >= 1) {
      Policy q = p;
      q.shape = ShapeMode::kCap;
      q.shape_cap = k;
      Add(&out, q);
    }
  }
  if (s.ce) Add(&out, p.ce ? P("priority") : P("ce"));
  // Stay inside the space an exhaustive sweep covers, so the two can be compared.
  const std::vector<Policy> full = FullSpace(s);
  std::vector<Policy> kept;
  for (const Policy& q : out)
    if (!(q == p) && std::find(full.begin(), full.end(), q) != full.end()) kept.push_back(q);
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
  // The communication side, pruned by the model (GeometryPartners): each geometry with the
  // compute-side policies that can profit from it; ce alone (it folds priority, and its data
  // moves without SMs, so compute shaping has nothing to make room for).
  if (s.geometry)
    for (const Policy& g : CommGeometries())
      for (const Policy& c : GeometryPartners(s, g)) Add(&out, WithGeometry(c, g));
  if (s.ce) Add(&out, P("ce"));
  return out;
}

Tuner::Tuner(SearchSpace space, TuneOptions opt) : space_(space), opt_(opt), full_(FullSpace(space)) {}

void Tuner::Account(const Policy& p, int reps, const RunCost& cost) {
  ++runs_;
  wall_s_ += cost.wall_s;
  if (cost.wall_s <= 0 || reps <= 0) return;
  const int c = NeedsOwnProcess(space_, p) ? 1 : 0;
  ++costed_[c];
  fixed_sum_[c] += std::max(0.0, cost.wall_s - cost.timed_s);
  per_rep_sum_[c] += cost.timed_s / reps;
}

double Tuner::Predict(const Policy& p, int reps) const {
  int c = NeedsOwnProcess(space_, p) ? 1 : 0;
  if (costed_[c] == 0) c = 1 - c;
  if (costed_[c] == 0) return 0;
  return (fixed_sum_[c] + per_rep_sum_[c] * reps) / costed_[c];
}

double Tuner::SweepWallEstimate() const {
  // A candidate refused for needing a process of its own (under mpirun/torchrun) is skipped by
  // the sweep before anything runs; one refused here (a failed set-up) costs the sweep a run.
  double t = 0;
  for (const Policy& p : full_)
    if (!(NeedsOwnProcess(space_, p) && rejected_.count(p.Name()))) t += Predict(p, opt_.sweep_reps);
  return t;
}

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
  Account(p, static_cast<int>(samples.size()), cost);
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
    const bool by_wall = opt_.budget_fraction > 0 && costed_[0] + costed_[1] > 0;
    double wall_left = by_wall ? BudgetS() - wall_s_ : 0;
    int left = opt_.budget_trials - trials_;
    std::vector<Request> kept;
    for (const Request& x : *r) {
      if (opt_.budget_trials > 0 && x.reps > left) {
        why_ = "trial budget reached";
        continue;
      }
      if (by_wall && Predict(x.policy, x.reps) > wall_left) {
        why_ = "wall-clock budget reached";
        continue;
      }
      kept.push_back(x);
      left -= x.reps;
      wall_left -= Predict(x.policy, x.reps);
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

std::string CeServedNothing(const std::vector<std::string>& reports) {
  int told = 0;
  for (const std::string& text : reports) {
    const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("ce_served") || !j["ce_served"].is_number()) continue;
    if (j["ce_served"].get<double>() > 0) return "";
    ++told;
  }
  return told ? "ce served no collective (communicators of more than CORUN_CE_MAX_RANKS ranks?)" : "";
}

}  // namespace corun
