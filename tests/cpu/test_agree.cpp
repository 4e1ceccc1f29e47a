// Set-up steps agreed across ranks (corun/agree.h), with threads as ranks and a host max-reduce
// as the agreement: a failure injected on one rank must end the step on every rank, before any
// rank enters the next step (which in the harness is a collective that would hang).
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "corun/agree.h"
#include "corun/strings.h"

using namespace corun;

namespace {

// A reusable all-ranks max-reduce of one integer (what Comm::Barrier does with NCCL).
class HostAgreement {
 public:
  explicit HostAgreement(int n) : n_(n) {}
  Status Agree(int flag, int* max_flag) {
    std::unique_lock<std::mutex> l(mu_);
    const long gen = gen_;
    acc_ = arrived_ == 0 ? flag : std::max(acc_, flag);
    if (++arrived_ == n_) {
      result_ = acc_;
      arrived_ = 0;
      ++gen_;
      ++rounds_;
      cv_.notify_all();
    } else {
      cv_.wait(l, [&] { return gen_ != gen; });
    }
    *max_flag = result_;
    return Status::Ok();
  }
  int rounds() const { return rounds_; }

 private:
  int n_;
  std::mutex mu_;
  std::condition_variable cv_;
  int arrived_ = 0, acc_ = 0, result_ = 0, rounds_ = 0;
  long gen_ = 0;
};

struct RankResult {
  Status status;
  std::vector<std::string> ran;  // steps whose body ran on this rank
};

// Every rank walks the same steps; returns what each rank did.
std::vector<RankResult> RunRanks(int n, const FailureInjection& inject, const std::vector<std::string>& steps,
                                 int body_fails_on_rank = -1, const std::string& body_fails_step = "") {
  HostAgreement agreement(n);
  std::vector<RankResult> out(n);
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r)
    threads.emplace_back([&, r] {
      const AgreeFn agree = [&](int flag, int* worst) { return agreement.Agree(flag, worst); };
      for (const std::string& step : steps) {
        Status s = AgreedStep(step, r, inject, agree, [&]() -> Status {
          out[r].ran.push_back(step);
          if (r == body_fails_on_rank && step == body_fails_step) return Status::Error("cuda says no");
          return Status::Ok();
        });
        if (!s.ok()) {
          out[r].status = s;
          return;
        }
      }
    });
  for (auto& t : threads) t.join();
  return out;
}

}  // namespace

TEST(Agree, NoFailureRunsEveryStepEverywhere) {
  const auto res = RunRanks(4, FailureInjection{}, {"unique_id", "broadcast", "ncclctas"});
  for (const auto& r : res) {
    EXPECT_TRUE(r.status.ok()) << r.status.ToString();
    EXPECT_EQ(r.ran, (std::vector<std::string>{"unique_id", "broadcast", "ncclctas"}));
  }
}

TEST(Agree, InjectedFailureOnOneRankEndsTheStepOnAllBeforeItRuns) {
  FailureInjection inj;
  ASSERT_TRUE(ParseFailureInjection("1:broadcast", &inj).ok());
  const auto res = RunRanks(4, inj, {"unique_id", "broadcast", "ncclctas"});
  for (int r = 0; r < 4; ++r) {
    // Nobody entered the broadcast (a collective rank 1 would never join), nor anything after.
    EXPECT_EQ(res[r].ran, std::vector<std::string>{"unique_id"}) << "rank " << r;
    ASSERT_FALSE(res[r].status.ok()) << "rank " << r;
    if (r == 1) {
      EXPECT_NE(res[r].status.message().find("injected failure (CORUN_TEST_FAIL_SETUP=1:broadcast)"), std::string::npos)
          << res[r].status.message();
    } else {
      EXPECT_NE(res[r].status.message().find("set-up step 'broadcast' failed on rank 1"), std::string::npos)
          << res[r].status.message();
    }
  }
}

TEST(Agree, AFailingStepOnOneRankIsAgreedAfterwards) {
  const auto res = RunRanks(3, FailureInjection{}, {"shape", "greenctx", "ncclctas"}, 2, "greenctx");
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(res[r].ran, (std::vector<std::string>{"shape", "greenctx"})) << "rank " << r;
    ASSERT_FALSE(res[r].status.ok());
    const std::string want = r == 2 ? "set-up step 'greenctx' failed: cuda says no" : "failed on rank 2";
    EXPECT_NE(res[r].status.message().find(want), std::string::npos) << res[r].status.message();
  }
}

TEST(Agree, InjectionNamesOneRankAndOneStep) {
  FailureInjection inj;
  ASSERT_TRUE(ParseFailureInjection("", &inj).ok());
  EXPECT_FALSE(inj.Hits(0, "probe"));
  ASSERT_TRUE(ParseFailureInjection("3:greenctx", &inj).ok());
  EXPECT_TRUE(inj.Hits(3, "greenctx"));
  EXPECT_FALSE(inj.Hits(2, "greenctx"));
  EXPECT_FALSE(inj.Hits(3, "probe"));
  for (const char* bad : {"x:probe", "1", ":probe", "1:", "1:probe:2", "-1:probe"}) {
    Status s = ParseFailureInjection(bad, &inj);
    EXPECT_FALSE(s.ok()) << bad;
    EXPECT_NE(s.message().find(bad), std::string::npos) << s.message();
  }
}

TEST(Strings, SplitKeepsOrDropsEmptyPieces) {
  EXPECT_EQ(Split("a,,b", ','), (std::vector<std::string>{"a", "", "b"}));
  EXPECT_EQ(Split("", ','), std::vector<std::string>{""});
  EXPECT_EQ(Split("a,,b,", ',', false), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(Split("", ',', false).empty());
  EXPECT_EQ(Split("shape:2+priority", '+'), (std::vector<std::string>{"shape:2", "priority"}));
}
