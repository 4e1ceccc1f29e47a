// The search against synthetic cost models with a known optimum and measurement noise, and the
// profile cache.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>

#include "corun/profile.h"
#include "corun/tune.h"

using namespace corun;

namespace {

// Own GEMM (6 blocks/SM): priority helps, a cap of 4 helps most (more with priority), small caps
// cost throughput, CTA caps hurt, a green split helps a little. Optimum: shape:4+priority.
double OwnCost(const Policy& p) {
  double t = 10.0;
  if (p.comm_priority) t -= 1.5;
  if (p.shape == ShapeMode::kCap) t += 0.4 * std::abs(p.shape_cap - 4) - 0.6 - (p.comm_priority ? 0.3 : 0.0);
  if (p.greenctx) t -= 0.5;
  if (p.ncclctas) t += 1.5;
  return t;
}

// cuBLAS: an SM target of 100 is best, priority hurts a little. Optimum: smtarget:100.
double CublasCost(const Policy& p) {
  double t = 12.0;
  if (p.smtarget) t += -1.2 + 0.05 * std::abs(p.smtarget - 100);
  if (p.greenctx) t += -0.9 + 0.04 * std::abs(p.greenctx - 24);
  if (p.comm_priority) t += 0.3;
  if (p.ncclctas) t += 2.0;
  return t;
}

// cuBLAS with wave quantisation (measured so on H200, alltoall): the SM target the model guesses
// (100) is good, 92 is worse, 84 is best by far. A single-step local search stops at 100.
double WavyCost(const Policy& p) {
  double t = 2.72;
  if (p.smtarget == 84) t = 2.09;
  else if (p.smtarget == 92) t = 2.47;
  else if (p.smtarget == 100) t = 2.42;
  else if (p.smtarget == 108) t = 2.74;
  else if (p.smtarget == 116) t = 2.86;
  if (p.greenctx) t = p.greenctx >= 32 ? 2.45 : 2.63;
  if (p.ncclctas) t = 3.5;
  return t + (p.comm_priority ? -0.005 : 0.0);
}

struct Outcome {
  double tuned_true, best_true, overlap_true;
  int trials, sweep_trials;
  std::string policy;
};

Outcome Simulate(const SearchSpace& s, double (*cost)(const Policy&), unsigned seed, double noise, int sweep_reps = 10) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> n(0.0, noise);
  const auto space = FullSpace(s);
  double best = 1e30;
  for (const Policy& p : space) best = std::min(best, cost(p));
  TuneOptions opt;
  opt.budget_trials = static_cast<int>(space.size()) * sweep_reps / 4;
  Tuner t(s, opt);
  const Measured* m = RunTuner(&t, [&](const Policy& p, int reps, std::vector<double>* out) {
    for (int i = 0; i < reps; ++i) out->push_back(cost(p) * (1.0 + n(rng)));
    return true;
  });
  EXPECT_NE(m, nullptr);
  EXPECT_LE(t.trials(), opt.budget_trials);
  return {cost(m->policy), best, cost(Policy{}), t.trials(), static_cast<int>(space.size()) * sweep_reps,
          m->policy.Name()};
}

}  // namespace

TEST(Tune, SpacesAreSensible) {
  SearchSpace own{true, false, 6, 0, 132, 24, 8};
  auto g = FirstGuesses(own);
  ASSERT_GE(g.size(), 3u);
  EXPECT_EQ(g[0].Name(), "overlap");
  EXPECT_EQ(g[2].Name(), "shape:4+priority");  // natural - 2 when no cap leaves room for NCCL
  own.auto_cap = 3;
  EXPECT_EQ(FirstGuesses(own)[2].Name(), "shape:3+priority");
  Policy p;
  ASSERT_TRUE(ParsePolicy("shape:4+priority", &p).ok());
  std::vector<std::string> nb;
  for (const Policy& q : Neighbours(own, p)) nb.push_back(q.Name());
  EXPECT_NE(std::find(nb.begin(), nb.end(), "shape:4"), nb.end());
  EXPECT_NE(std::find(nb.begin(), nb.end(), "shape:3+priority"), nb.end());
  EXPECT_NE(std::find(nb.begin(), nb.end(), "shape:5+priority"), nb.end());
  for (const Policy& q : FullSpace(own)) EXPECT_FALSE(q.shape == ShapeMode::kCap && q.shape_cap >= 6) << q.Name();
  SearchSpace lt{false, false, 0, 0, 132, 24, 8};
  EXPECT_EQ(FirstGuesses(lt)[2].Name(), "smtarget:108");
  EXPECT_EQ(FirstGuesses(lt)[3].Name(), "greenctx:24");
}

TEST(Tune, FindsTheOptimumOfTheOwnGemmModelWithinBudget) {
  SearchSpace s{true, false, 6, 0, 132, 24, 8};
  int exact = 0;
  for (unsigned seed = 1; seed <= 25; ++seed) {
    const Outcome o = Simulate(s, OwnCost, seed, 0.01);
    EXPECT_LE(o.tuned_true, o.best_true * 1.03) << "seed " << seed << " chose " << o.policy;
    EXPECT_LE(o.tuned_true, o.overlap_true) << "seed " << seed;
    EXPECT_LE(o.trials * 4, o.sweep_trials) << "seed " << seed;
    exact += o.tuned_true == o.best_true;
  }
  EXPECT_GE(exact, 20);  // with 1% noise the exact optimum nearly always
}

TEST(Tune, FindsTheOptimumOfTheCublasModelWithinBudget) {
  SearchSpace s{false, false, 0, 0, 132, 24, 8};
  for (unsigned seed = 1; seed <= 25; ++seed) {
    const Outcome o = Simulate(s, CublasCost, seed, 0.01);
    EXPECT_LE(o.tuned_true, o.best_true * 1.03) << "seed " << seed << " chose " << o.policy;
    EXPECT_LE(o.trials * 4, o.sweep_trials) << "seed " << seed;
  }
}

TEST(Tune, StepsOverAWaveQuantisationBump) {
  SearchSpace s{false, false, 0, 0, 132, 32, 8};  // NCCL's alltoall: 32 CTAs -> guess 100
  for (unsigned seed = 1; seed <= 25; ++seed) {
    const Outcome o = Simulate(s, WavyCost, seed, 0.01);
    EXPECT_LE(o.tuned_true, o.best_true * 1.03) << "seed " << seed << " chose " << o.policy;
  }
}

TEST(Tune, NoisyMeasurementsStillLandClose) {
  SearchSpace s{true, false, 6, 0, 132, 24, 8};
  for (unsigned seed = 100; seed < 120; ++seed) {
    const Outcome o = Simulate(s, OwnCost, seed, 0.03);  // ±3% per repetition
    EXPECT_LE(o.tuned_true, o.best_true * 1.05) << "seed " << seed << " chose " << o.policy;
  }
}

TEST(Tune, RejectedCandidatesAreNotRetried) {
  SearchSpace s{false, false, 0, 0, 132, 24, 8};
  TuneOptions opt;
  Tuner t(s, opt);
  int greens = 0;
  RunTuner(&t, [&](const Policy& p, int reps, std::vector<double>* out) {
    if (p.greenctx) {
      ++greens;
      return false;  // e.g. no green-context support
    }
    for (int i = 0; i < reps; ++i) out->push_back(CublasCost(p));
    return true;
  });
  EXPECT_GE(greens, 1);
  EXPECT_EQ(t.Best()->policy.Name(), "smtarget:100");
  for (const Measured& m : t.All()) EXPECT_EQ(m.policy.greenctx, 0);
}

TEST(Profile, RoundTripAndStaleEntries) {
  const std::string path = ::testing::TempDir() + "/corun_profiles_test/p.json";
  std::remove(path.c_str());
  ProfileCache c;
  ASSERT_TRUE(c.Load(path).ok());  // missing file: empty
  EXPECT_TRUE(c.entries().empty());
  ProfileEntry e;
  e.key = {"NVIDIA H100 80GB HBM3", 132, 2, "2.28.9", "13.0", "tiled64x64x64 8192x8192x8192 x1 + allreduce bf16 896M"};
  e.policy = "shape:4+priority";
  e.t_ms = 8.1;
  c.Put(e);
  e.policy = "shape:3+priority";  // same key: replaced
  c.Put(e);
  ASSERT_TRUE(c.Save(path).ok());
  ProfileCache d;
  ASSERT_TRUE(d.Load(path).ok());
  ASSERT_EQ(d.entries().size(), 1u);
  std::string stale;
  const ProfileEntry* hit = d.Find(e.key, &stale);
  ASSERT_NE(hit, nullptr);
  EXPECT_EQ(hit->policy, "shape:3+priority");
  ProfileKey other = e.key;
  other.gpus = 4;
  EXPECT_EQ(d.Find(other, &stale), nullptr);
  EXPECT_NE(stale.find("not applied"), std::string::npos);
  other = e.key;
  other.nccl = "2.29.0";
  EXPECT_EQ(d.Find(other, &stale), nullptr);
  other.workload = "something else";
  stale.clear();
  EXPECT_EQ(d.Find(other, &stale), nullptr);
  EXPECT_TRUE(stale.empty());
  std::FILE* f = std::fopen(path.c_str(), "w");
  std::fputs("{broken", f);
  std::fclose(f);
  EXPECT_FALSE(d.Load(path).ok());
}
