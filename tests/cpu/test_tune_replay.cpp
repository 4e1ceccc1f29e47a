// The search replayed on landscapes measured on GPUs (tests/fixtures/tune_landscapes_*.json, made
// by scripts/tune_landscape.py from `corun tune --sweep` runs): every request draws its step
// times from the ones measured for that policy (search and sweep runs pooled, so the drift between
// separate runs of one policy is in the draw). A policy the fixture has no data for counts as one
// that could not run. The truth of a policy is the median of all its measured times.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "corun/tune.h"

using namespace corun;

namespace {

struct Landscape {
  std::string name;
  SearchSpace space;
  std::map<std::string, std::vector<double>> samples;  // policy name -> step times, ms
  std::map<std::string, double> truth;
};

std::vector<Landscape> Load(const std::string& file) {
  std::ifstream f(std::string(CORUN_FIXTURE_DIR) + "/" + file);
  EXPECT_TRUE(f.good()) << file;
  std::vector<Landscape> out;
  if (!f.good()) return out;
  const nlohmann::json j = nlohmann::json::parse(f);
  for (const auto& w : j.at("workloads")) {
    Landscape l;
    l.name = w.at("name").get<std::string>() + " (" + std::to_string(w.at("gpus").get<int>()) + "x " +
             w.at("card").get<std::string>() + ")";
    l.space.own_gemm = w.at("own_gemm");
    l.space.natural_blocks = w.at("natural_blocks");
    l.space.num_sms = w.at("num_sms");
    l.space.nccl_ctas = w.at("nccl_ctas");
    for (const auto& [p, v] : w.at("policies").items()) {
      l.samples[p] = v.get<std::vector<double>>();
      l.truth[p] = Summarize(l.samples[p]).median;
    }
    out.push_back(l);
  }
  return out;
}

struct Replay {
  int runs = 0, hits = 0, not_worse_than_overlap = 0, max_trials = 0, budget = 0;
  double trials_sum = 0, worst_ratio = 1, wall_sum = 0, budget_sum = 0;
  int over_budget = 0;  // searches whose wall time passed the budget (the first guesses did)
  std::map<std::string, int> chosen;
};

// The default --budget (BenchOptions::tune_budget): half of the sweep's wall time.
const double kBudget = 0.5;

// Wall-clock seconds of one measurement of a policy whose step takes `step_ms`: set-up, warm-up
// (3 cycles), the sustained phase, verification, and the timed repetitions (a cycle is compute
// alone, communication alone and both together: about 2.5 steps).
RunCost WallOf(double step_ms, int reps, double sustain_s) {
  const double cycle_s = 2.5 * step_ms / 1e3;
  return {0.02 + 3 * cycle_s + std::max(sustain_s, cycle_s) + step_ms / 1e3 + reps * cycle_s, reps * cycle_s};
}

// `runs` searches with different seeds at a budget of a fraction of a 10-repetition sweep's wall
// time, every phase counted (`sustain_s` of sustained phase per run; the measured tune runs used
// --sustain 0.5).
Replay ReplayOn(const Landscape& l, int runs, TuneOptions opt = {}, double sustain_s = 0.5, double budget = kBudget) {
  Replay r;
  const std::vector<Policy> space = FullSpace(l.space);
  double best = 1e30;
  for (const Policy& p : space)
    if (l.truth.count(p.Name())) best = std::min(best, l.truth.at(p.Name()));
  const double overlap = l.truth.at("overlap");
  opt.budget_fraction = budget;
  opt.sweep_reps = 10;
  for (int seed = 1; seed <= runs; ++seed) {
    std::mt19937 rng(seed);
    Tuner t(l.space, opt);
    const Measured* m = RunTunerWithCost(&t, [&](const Policy& p, int reps, std::vector<double>* out, RunCost* c) {
      auto it = l.samples.find(p.Name());
      *c = WallOf(overlap, 0, sustain_s);  // a candidate that cannot run still pays its set-up
      c->timed_s = 0;
      if (it == l.samples.end()) return false;
      std::uniform_int_distribution<size_t> pick(0, it->second.size() - 1);
      for (int i = 0; i < reps; ++i) out->push_back(it->second[pick(rng)]);
      *c = WallOf(l.truth.at(p.Name()), reps, sustain_s);
      return true;
    });
    if (!m) continue;
    const double truth = l.truth.at(m->policy.Name());
    ++r.runs;
    r.hits += truth <= best * 1.03;
    r.not_worse_than_overlap += truth <= overlap;
    r.worst_ratio = std::max(r.worst_ratio, truth / best);
    r.trials_sum += t.Runs();
    r.max_trials = std::max(r.max_trials, t.Runs());
    r.budget = static_cast<int>(space.size());
    r.wall_sum += t.wall_s();
    r.budget_sum += t.BudgetS();
    // The budget is a fraction of an estimate that moves as runs come in: 2% slack.
    r.over_budget += t.wall_s() > t.BudgetS() * 1.02;
    ++r.chosen[m->policy.Name()];
  }
  return r;
}

std::string Top(const std::map<std::string, int>& chosen) {
  std::vector<std::pair<int, std::string>> v;
  for (const auto& [p, n] : chosen) v.push_back({n, p});
  std::sort(v.rbegin(), v.rend());
  std::string s;
  for (size_t i = 0; i < v.size() && i < 3; ++i) s += (i ? ", " : "") + v[i].second + " " + std::to_string(v[i].first);
  return s;
}

// Every landscape of a fixture: within 3% of the best policy in 17 searches of 20, never slower
// than naive overlap, never more than 10% slower than the best, never over the wall-clock budget
// (the last line printed also gives the lowest rate without the run-drift floor, and with a 2 s
// sustained phase per run). Under the earlier budget of timed repetitions only (about as much
// wall time as the sweep) the rate was 19 of 20; at half the sweep's wall time the held-out
// landscapes gave 90% at the lowest, and at a quarter 75% (one landscape up to +60%).
void CheckLandscapes(const std::string& file, size_t count) {
  const std::vector<Landscape> ls = Load(file);
  ASSERT_EQ(ls.size(), count) << file;
  const int kRuns = 200;
  int lowest = kRuns, lowest_without_floor = kRuns, lowest_sustained = kRuns;
  for (const Landscape& l : ls) {
    const Replay r = ReplayOn(l, kRuns);
    std::printf("%-62s hit %3d%%  >=overlap %3d%%  worst %+5.1f%%  runs %.1f (max %d of %d)  wall %.0f%% of budget  chose: %s\n",
                l.name.c_str(), 100 * r.hits / std::max(1, r.runs), 100 * r.not_worse_than_overlap / std::max(1, r.runs),
                100 * (r.worst_ratio - 1), r.trials_sum / std::max(1, r.runs), r.max_trials, r.budget,
                100 * r.wall_sum / std::max(1e-9, r.budget_sum), Top(r.chosen).c_str());
    EXPECT_EQ(r.runs, kRuns) << l.name;
    EXPECT_EQ(r.over_budget, 0) << l.name;
    EXPECT_GE(r.hits, kRuns * 17 / 20) << l.name;
    EXPECT_EQ(r.not_worse_than_overlap, r.runs) << l.name;
    EXPECT_LE(r.worst_ratio, 1.10) << l.name;
    lowest = std::min(lowest, r.hits);
    TuneOptions no_floor;
    no_floor.run_drift = 0;  // what the run-drift floor buys, for the record (not asserted)
    lowest_without_floor = std::min(lowest_without_floor, ReplayOn(l, kRuns, no_floor).hits);
    lowest_sustained = std::min(lowest_sustained, ReplayOn(l, kRuns, {}, 2.0).hits);  // for the record
  }
  std::printf("lowest hit rate: %d%% (without the run-drift floor: %d%%; with a 2 s sustained phase: %d%%)\n",
              100 * lowest / kRuns, 100 * lowest_without_floor / kRuns, 100 * lowest_sustained / kRuns);
}

}  // namespace

// Which landscapes set the search's constants: the first fixture (2x H200, the search and bench
// of commit cd5bd2f, results/..._H200_2gpu_tune; green splits of 40 and 48 SMs and part of the
// last sweep missing) was in view when the beam of three, the two-granule steps (0f47a54) and the
// 10% run-drift floor (d9ddb57) were chosen. The v3 fixture (two later runs, each policy's warm-up
// in its timed cycle, results/..._H200_2gpu_tune_v3) was added afterwards (0d9fe13) and no
// constant has changed since: it is the held-out set the search is judged on. Both are from the
// same machine (2x H200, NCCL 2.28.9, CUDA 13.0) and mostly the same workloads (own GEMM and
// cuBLAS x allreduce, allgather, alltoall, 8192^3 + 896 MiB), so this is a held-out set of runs,
// not of machines or workloads.
TEST(TuneReplay, HeldOutH200Landscapes) { CheckLandscapes("tune_landscapes_h200_2gpu_v3.json", 12); }

// The landscapes the constants were tuned on: passing here proves little on its own.
TEST(TuneReplay, TuningSetH200Landscapes) { CheckLandscapes("tune_landscapes_h200_2gpu.json", 6); }
