// The process layouts of an 8-GPU node without GPUs: every launcher's environment read for each of
// 8 ranks, the rank -> GPU mapping, and the TCP rendezvous that hands rank 0's NCCL id to 7 others.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "bootstrap.h"

using namespace corun;

namespace {

const char* kVars[] = {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "RANK",
                       "WORLD_SIZE", "LOCAL_RANK", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MASTER_ADDR",
                       "MASTER_PORT", "CORUN_BOOTSTRAP_PORT"};

class Env : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* v : kVars) unsetenv(v);
  }
  void TearDown() override { SetUp(); }
};

}  // namespace

TEST_F(Env, NoLauncherMeansThreads) {
  ProcessModel pm;
  ASSERT_TRUE(DetectProcessModel(&pm).ok());
  EXPECT_EQ(pm.kind, "threads");
  EXPECT_FALSE(pm.multi_process());
}

TEST_F(Env, EightRanksUnderEachLauncher) {
  struct Launcher {
    const char *kind, *rank, *size, *local;
  } launchers[] = {{"mpi", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"},
                   {"torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK"},
                   {"pmi", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID"}};
  for (const Launcher& l : launchers)
    for (int r = 0; r < 8; ++r) {
      SetUp();
      setenv(l.rank, std::to_string(r).c_str(), 1);
      setenv(l.size, "8", 1);
      setenv(l.local, std::to_string(r).c_str(), 1);
      setenv("MASTER_PORT", "29500", 1);
      ProcessModel pm;
      ASSERT_TRUE(DetectProcessModel(&pm).ok()) << l.kind << " rank " << r;
      EXPECT_EQ(pm.kind, l.kind);
      EXPECT_EQ(pm.rank, r);
      EXPECT_EQ(pm.world, 8);
      EXPECT_EQ(pm.local_rank, r);
      EXPECT_EQ(pm.port, 29501);  // torchrun's store keeps MASTER_PORT
      EXPECT_EQ(DeviceForLocalRank(pm.local_rank, 8), r);  // all 8 GPUs visible: GPU i
      EXPECT_EQ(DeviceForLocalRank(pm.local_rank, 1), 0);  // one GPU visible per process
    }
}

TEST_F(Env, TwoNodesOfEightAndBadLayouts) {
  // Rank 13 of 16 is local rank 5 on the second node.
  setenv("RANK", "13", 1);
  setenv("WORLD_SIZE", "16", 1);
  setenv("LOCAL_RANK", "5", 1);
  setenv("MASTER_ADDR", "node0", 1);
  setenv("CORUN_BOOTSTRAP_PORT", "31000", 1);
  ProcessModel pm;
  ASSERT_TRUE(DetectProcessModel(&pm).ok());
  EXPECT_EQ(DeviceForLocalRank(pm.local_rank, 8), 5);
  EXPECT_EQ(pm.addr, "node0");
  EXPECT_EQ(pm.port, 31000);
  setenv("RANK", "8", 1);
  setenv("WORLD_SIZE", "8", 1);
  const Status s = DetectProcessModel(&pm);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("rank 8 of world 8"), std::string::npos) << s.message();
}

TEST(Bootstrap, RankZeroReachesSevenOthers) {
  const int port = FreeLocalPort();
  std::vector<std::vector<unsigned char>> got(8, std::vector<unsigned char>(128, 0));
  for (int i = 0; i < 128; ++i) got[0][i] = static_cast<unsigned char>(i * 7 + 3);
  std::vector<Status> st(8, Status::Ok());
  std::vector<std::thread> ts;
  for (int r = 7; r >= 0; --r)  // the others first: they must retry until rank 0 listens
    ts.emplace_back([&, r] {
      ProcessModel pm;
      pm.kind = "torchrun";
      pm.rank = r;
      pm.world = 8;
      pm.port = port;
      st[r] = ExchangeBytes(pm, got[r].data(), got[r].size(), 20);
    });
  for (auto& t : ts) t.join();
  for (int r = 0; r < 8; ++r) {
    EXPECT_TRUE(st[r].ok()) << "rank " << r << ": " << st[r].message();
    EXPECT_EQ(got[r], got[0]) << "rank " << r;
  }
}

TEST(Bootstrap, AMissingRankIsReportedNotAwaitedForever) {
  ProcessModel pm;
  pm.kind = "torchrun";
  pm.rank = 0;
  pm.world = 8;
  pm.port = FreeLocalPort();
  unsigned char id[128] = {1};
  const Status s = ExchangeBytes(pm, id, sizeof(id), 1);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("only 1 of 8 ranks connected within 1 s"), std::string::npos) << s.message();
}

// Ranks that wait for each other in vain say so (once) well before the timeout, naming where.
TEST(Bootstrap, AWaitingRankSaysWhereItWaits) {
  ProcessModel pm;
  pm.kind = "torchrun";
  pm.rank = 1;
  pm.world = 2;
  pm.addr = "127.0.0.1";
  pm.port = FreeLocalPort();  // nobody listens there
  unsigned char id[16] = {};
  testing::internal::CaptureStderr();
  const Status s = ExchangeBytes(pm, id, sizeof(id), 2, 1);
  const std::string err = testing::internal::GetCapturedStderr();
  ASSERT_FALSE(s.ok());
  const std::string where = "rank 1 still waiting for rank 0 at 127.0.0.1:" + std::to_string(pm.port) + " after 1 s";
  EXPECT_NE(err.find(where), std::string::npos) << err;
  EXPECT_NE(err.find("MASTER_PORT"), std::string::npos) << err;
  EXPECT_EQ(err.find("corun: bootstrap:"), err.rfind("corun: bootstrap:")) << "one line, not one per retry: " << err;

  pm.rank = 0;  // rank 0 alone: says how many came
  testing::internal::CaptureStderr();
  const Status s0 = ExchangeBytes(pm, id, sizeof(id), 2, 1);
  const std::string err0 = testing::internal::GetCapturedStderr();
  ASSERT_FALSE(s0.ok());
  EXPECT_NE(err0.find("rank 0 listening on port " + std::to_string(pm.port) + ": 1 of 2 ranks connected after 1 s"),
            std::string::npos)
      << err0;
}
